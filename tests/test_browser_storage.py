"""The Storage tab and the model pickers (web/src/ui/{storage,model_picker,confirm,fewshot_storage}.ts,
engine/storage/cache.ts, engine/fudd/cache.ts) in Chromium, against the manifest's own numbers.

* The pickers: each option's size is what loading the model downloads (the wasm default variant's
  files, a chat model's external data, the configs the loaders read), computed here from
  manifest.json; after a load the option says "cached", and the bytes the load put in the cache
  equal that size (the picker's file list is the loader's).
* The Storage tab: a model's size equals the manifest's bytes of its cached files; the summary's
  "Models" figure counts each stored file once; the search index, FuDD's saved descriptions and a
  few-shot classifier are listed with sizes; every delete opens the in-page confirmation, Cancel
  keeps the data and the confirm button deletes it.
* A download cut short (a real interrupted connection, tests/test_browser_offline.py's proxy) is
  labelled as unfinished with the bytes received.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from browser_support import TINY_LLM, data_url, fixed_images, open_app, png_bytes
from test_browser_offline import proxy_in_front, wait_until

pytestmark = pytest.mark.browser

CLIP = "tiny-random-clip"
SIGLIP = "tiny-random-siglip"
LOADED_CONFIGS = ("preprocessor", "tokenizer", "tokenizer_config", "chat_template")
ANSWERS = [
    {
        "key": f'["{TINY_LLM}","rev",1,2,"a cat","a dog {i}"]',
        "text": f"- fur\n- whiskers {i}",
        "tokenIds": [1, 2, 3 + i],
        "savedAt": 1_700_000_000_000 + i,
    }
    for i in range(3)
]
PUT_ANSWERS_JS = """(answers) => new Promise((resolve, reject) => {
  const req = indexedDB.open("lumen-fudd", 1);
  req.onupgradeneeded = () => req.result.createObjectStore("answers", { keyPath: "key" });
  req.onsuccess = () => {
    const tx = req.result.transaction("answers", "readwrite");
    for (const a of answers) tx.objectStore("answers").put(a);
    tx.oncomplete = () => { req.result.close(); resolve(); };
    tx.onerror = () => reject(tx.error);
  };
  req.onerror = () => reject(req.error);
})"""
COUNT_ANSWERS_JS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("lumen-fudd", 1);
  req.onsuccess = () => {
    const count = req.result.transaction("answers").objectStore("answers").count();
    count.onsuccess = () => { req.result.close(); resolve(count.result); };
  };
  req.onerror = () => reject(req.error);
})"""
# The search index as stored (IndexedDB "lumen"): per index key, images and their payload bytes.
INDEX_RECORDS_JS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("lumen");
  req.onsuccess = () => {
    const all = req.result.transaction("images").objectStore("images").getAll();
    all.onsuccess = () => resolve(all.result.map((r) => ({ index: r.index, embedding: r.embedding.byteLength,
      thumbnail: r.thumbnail.size, path: new TextEncoder().encode(r.path).length })));
  };
  req.onerror = () => reject(req.error);
})"""
FIT_JS = """async (images) => {
  const fit = await window.engine.fewshot.fit({ labels: ["left", "right"], name: "sides",
    examples: images.map((image, i) => ({ image, label: i % 2 ? "right" : "left" })) });
  const file = await window.engine.fewshot.export(fit.id);
  return { id: fit.id, bytes: new TextEncoder().encode(JSON.stringify(file)).length };
}"""


def size_text(n: int) -> str:
    """The page's size format (ui/storage.ts megabytes)."""
    return f"{n / 1e3:.1f} kB" if n < 100_000 else f"{n / 1e6:.{2 if n < 1e7 else 1}f} MB"


def manifest(root: Path) -> dict[str, dict]:
    return {m["id"]: m for m in json.loads((root / "manifest.json").read_text())["models"]}


def download_bytes(model: dict, runtime: str = "wasm") -> int:
    """What loading `model` on `runtime` fetches, from the manifest alone."""
    roles = model["variants"][model["defaults"][runtime]]["files"]
    # A CLIP-family load reads its two towers, not the combined model.onnx of the variant.
    variant = [roles["vision_model"], roles["text_model"]] if model.get("vision") else list(roles.values())
    configs = {model.get("configs", {}).get(role) for role in LOADED_CONFIGS} - {None}
    chat_data = [p for p in variant if p.endswith(".onnx")] if model.get("llm") else []
    return sum(
        f["bytes"]
        for f in model["files"]
        if f["path"] in variant or f["path"] in configs or any(f["path"].startswith(p + "_data") for p in chat_data)
    )


def option(page, select: str, model_id: str) -> dict:
    return page.evaluate(
        """([select, id]) => {
      const o = [...document.querySelectorAll(`#${select} option`)].find((o) => o.value === id);
      return { text: o.text, bytes: Number(o.dataset.bytes), cache: o.dataset.cache };
    }""",
        [select, model_id],
    )


def open_storage(page) -> None:
    page.click("#tab-storage")
    page.wait_for_timeout(200)
    wait_until(page, "() => document.querySelector('#storage-summary').textContent.startsWith('Models:')")


def report(page) -> dict:
    return page.evaluate("window.engine.storage.report()")


def ask(page, button) -> str:
    """Clicks a delete button; returns the confirmation's text (the dialog is left open)."""
    button.click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    return page.locator("#confirm-message").inner_text()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))  # a window.confirm would land here
    yield page
    context.close()
    assert dialogs == [], f"native dialogs were opened: {dialogs}"


def test_pickers_mark_cached_models_with_the_manifest_sizes(tiny_app_url, shared_artifacts, page):
    models = manifest(shared_artifacts.root)
    open_app(page, tiny_app_url, f"model={CLIP}&runtime=wasm&chat={TINY_LLM}")
    wait_until(page, f"() => document.body.dataset.model === '{CLIP}'")
    wait_until(
        page, f"() => document.querySelector('#model-select option[value=\"{CLIP}\"]').dataset.cache === 'cached'"
    )

    clip, siglip = option(page, "model-select", CLIP), option(page, "model-select", SIGLIP)
    assert clip["bytes"] == download_bytes(models[CLIP]) and clip["cache"] == "cached"
    assert clip["text"].endswith(f" · {download_bytes(models[CLIP]) / 1e6:.2f} MB · cached"), clip
    assert siglip["bytes"] == download_bytes(models[SIGLIP]) and siglip["cache"] == "not cached"
    assert "cached" not in siglip["text"] and f"{siglip['bytes'] / 1e6:.2f} MB" in siglip["text"]
    # The load cached exactly the files the picker counts.
    assert {m["id"]: m["bytes"] for m in report(page)["models"]}[CLIP] == clip["bytes"]

    llm = option(page, "chat-model", TINY_LLM)
    assert llm["bytes"] == download_bytes(models[TINY_LLM]) and llm["cache"] != "cached"
    page.click("#tab-chat")
    page.wait_for_selector('#panel-chat[data-state="ready"]')
    wait_until(
        page, f"() => document.querySelector('#chat-model option[value=\"{TINY_LLM}\"]').dataset.cache === 'cached'"
    )
    assert option(page, "chat-model", TINY_LLM)["text"].endswith(f"{llm['bytes'] / 1e6:.2f} MB · cached")
    assert {m["id"]: m["bytes"] for m in report(page)["models"]}[TINY_LLM] == llm["bytes"]


def test_the_storage_tab_lists_everything_with_sizes_and_asks_before_deleting(
    tiny_app_url, shared_artifacts, page, tmp_path
):
    models = manifest(shared_artifacts.root)
    open_app(page, tiny_app_url, f"model={CLIP}&runtime=wasm")
    wait_until(page, f"() => document.body.dataset.model === '{CLIP}'")
    # A search index of 3 images, FuDD's saved answers, a few-shot classifier.
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(fixed_images(seed=1)[:3]):
        (folder / f"photo-{i}.png").write_bytes(png_bytes(image))
    page.click("#tab-search")
    page.set_input_files("#folder-input", str(folder))
    expect(page.locator("#index-status")).to_contain_text("3 images indexed")
    page.evaluate(PUT_ANSWERS_JS, ANSWERS)
    fitted = page.evaluate(FIT_JS, [data_url(png_bytes(img)) for img in fixed_images(seed=2)[:4]])

    open_storage(page)
    got = report(page)
    # A model's size: the manifest's bytes of its cached files; the summary counts each file once.
    cached = {f["sha256"]: f["bytes"] for m in models.values() for f in m["files"]}
    stored = set(
        page.evaluate("""async () => {
      const dir = await (await (await navigator.storage.getDirectory()).getDirectoryHandle("lumen-models")).getDirectoryHandle("files");
      const names = []; for await (const h of dir.values()) names.push(h.name); return names; }""")
    )
    assert got["modelBytes"] == sum(n for sha, n in cached.items() if sha in stored)
    row = page.locator(f'#storage-models tr[data-model="{CLIP}"]')
    assert int(row.get_attribute("data-bytes")) == download_bytes(models[CLIP])
    assert f"{download_bytes(models[CLIP]) / 1e6:.2f} MB" in row.inner_text() and "Cached" in row.inner_text()
    summary = page.locator("#storage-summary").inner_text()
    assert summary.startswith(f"Models: {got['modelBytes'] / 1e6:.2f} MB stored in this browser"), summary
    counted = re.search(r"The browser counts ([\d.]+) MB for this site in all", summary)
    assert counted and float(counted.group(1)) * 1e6 >= got["modelBytes"], summary
    assert "larger than the models alone" in summary

    # The search index: 3 images, its stored bytes.
    records = page.evaluate(INDEX_RECORDS_JS)
    index_row = page.locator('#storage-data tr[data-kind="search-index"]')
    expect(index_row).to_have_count(1)
    assert index_row.get_attribute("data-index").startswith(f"{CLIP}@") and "3 images" in index_row.inner_text()
    assert int(index_row.get_attribute("data-bytes")) == sum(
        r["embedding"] + r["thumbnail"] + r["path"] for r in records
    )
    assert all(r["embedding"] == models[CLIP]["vision"]["embed_dim"] * 4 for r in records)
    # FuDD's answers: their size as JSON, computed here.
    answers_row = page.locator('#storage-data tr[data-kind="descriptions"]')
    answers_bytes = sum(len(json.dumps(a, separators=(",", ":"), ensure_ascii=False).encode()) for a in ANSWERS)
    assert "3 answers" in answers_row.inner_text() and size_text(answers_bytes) in answers_row.inner_text()
    assert int(answers_row.get_attribute("data-bytes")) == answers_bytes
    # The classifier: the size of its exported file.
    classifier = page.locator(f'#fewshot-classifiers tr[data-classifier="{fitted["id"]}"]')
    assert int(classifier.get_attribute("data-bytes")) == fitted["bytes"]
    assert size_text(fitted["bytes"]) in classifier.inner_text()

    # Every delete asks first; Cancel keeps the data.
    message = ask(page, row.locator("button"))
    assert CLIP in message and f"{download_bytes(models[CLIP]) / 1e6:.2f} MB" in message
    page.click("#confirm-cancel")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert CLIP in {m["id"] for m in report(page)["models"]} and row.count() == 1
    for button in (
        index_row.locator("button"),
        answers_row.locator("button"),
        classifier.locator('button[aria-label^="Delete"]'),
    ):
        ask(page, button)
        page.keyboard.press("Escape")  # Escape cancels too
        expect(page.locator("#confirm-dialog")).to_be_hidden()
    page.wait_for_timeout(300)
    assert page.evaluate(COUNT_ANSWERS_JS) == 3 and len(page.evaluate(INDEX_RECORDS_JS)) == 3
    assert fitted["id"] in {c["id"] for c in page.evaluate("window.engine.fewshot.list()")}

    # Confirmed, each goes.
    ask(page, row.locator("button"))
    page.click("#confirm-ok")
    expect(row).to_have_count(0)
    assert CLIP not in {m["id"] for m in report(page)["models"]}
    wait_until(
        page, f"() => document.querySelector('#model-select option[value=\"{CLIP}\"]').dataset.cache === 'not cached'"
    )
    ask(page, index_row.locator("button"))
    page.click("#confirm-ok")
    expect(index_row).to_have_count(0)
    assert page.evaluate(INDEX_RECORDS_JS) == []
    ask(page, answers_row.locator("button"))
    page.click("#confirm-ok")
    expect(answers_row).to_have_count(0)
    assert page.evaluate(COUNT_ANSWERS_JS) == 0
    ask(page, classifier.locator('button[aria-label^="Delete"]'))
    page.click("#confirm-ok")
    expect(classifier).to_have_count(0)
    assert page.evaluate("window.engine.fewshot.list()") == []


def test_an_unfinished_download_is_labelled_with_the_bytes_received(tiny_app_url, shared_artifacts, page):
    model = manifest(shared_artifacts.root)[CLIP]
    text_path = model["variants"][model["defaults"]["wasm"]]["files"]["text_model"]
    text = next(f for f in model["files"] if f["path"] == text_path)
    cut = 100_000
    assert text["bytes"] > 4 * cut
    with proxy_in_front(urlsplit(tiny_app_url).port) as (proxy, proxy_port):
        # Three cuts in a row exhaust one load's retries: the load fails and the bytes stay.
        proxy.cuts[f"/models/{text_path}"] = [cut, cut, cut]
        open_app(page, f"http://127.0.0.1:{proxy_port}", f"model={CLIP}&runtime=wasm")
        expect(page.locator("#alerts .alert")).not_to_have_count(0)
        open_storage(page)
        row = page.locator(f'#storage-models tr[data-model="{CLIP}"]')
        assert row.get_attribute("data-state") == "partial"
        assert f"Unfinished download: {3 * cut / 1e6:.2f} MB received of 1 file" in row.inner_text()
        assert row.locator(".storage-state.partial").count() == 1
        got = report(page)
        assert {m["id"]: m["partialBytes"] for m in got["models"]}[CLIP] == 3 * cut
        assert f"plus {3 * cut / 1e6:.2f} MB of unfinished downloads" in page.locator("#storage-summary").inner_text()
        assert option(page, "model-select", CLIP)["cache"] != "cached"
        # Deleting the model removes the kept bytes too (after the confirmation).
        ask(page, row.locator("button"))
        page.click("#confirm-ok")
        expect(row).to_have_count(0)
        assert report(page)["partialBytes"] == 0
