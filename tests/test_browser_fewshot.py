"""Few-shot adaptation in the browser (web/src/engine/fewshot/, ui/fewshot.ts) against reference/fewshot.py.

* engine.fewshot.fit + engine.classify({classifier}) in Chromium on tiny-random-clip (fp32, WASM):
  the example embeddings are Python onnxruntime's within 1e-4, and given the browser's embeddings the
  numpy reference makes the same choice, with weights and probabilities within 1e-5.
* Export / import: the file round-trips; a tampered weight or another model's file is refused by name.
* The Classify tab's "Teach by example", clicked through: "this is X" on each result and images dropped
  on a label add examples (the curve grows, adapted scores appear beside zero-shot and equal
  engine.classify's); after a reload with the server stopped and the network off, the classifier,
  labels and curve are restored, classify shows adapted scores and more examples can be added.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from browser_support import ConsoleLog, data_url, png_bytes, screenshot
from reference.fewshot import fit, predict
from reference.fewshot_data import CLASSES, POOL, TEST, render
from reference.vision import VisionModel
from server_support import live_server

CLIP = "tiny-random-clip"
LABELS = [c.label for c in CLASSES[:4]]
PARITY = 1e-5


def urls(split: int, per_class: int) -> tuple[list[str], list[int]]:
    out, labels = [], []
    for c in range(len(LABELS)):
        for i in range(per_class):
            out.append(data_url(png_bytes(render(split, c, i))))
            labels.append(c)
    return out, labels


FIT_JS = """async ([model, labels, exampleUrls, exampleLabels, testUrls]) => {
  const engine = window.engine;
  const load = await engine.load({clip: model}, {variant: "fp32", runtime: "wasm"});
  const examples = exampleUrls.map((image, i) => ({image, label: labels[exampleLabels[i]]}));
  const out = {scale: load.clip.vision.logit_scale, template: load.clip.vision.template, fits: {}};
  for (const method of ["probe", "tip", "auto"]) {
    const fit = await engine.fewshot.fit({labels, examples, method});
    const file = await engine.fewshot.export(fit.id);
    const classified = await engine.classify({images: testUrls, labels, classifier: fit.id});
    out.fits[method] = {fit, file, classified};
  }
  out.examples = (await engine.embedImages(exampleUrls)).map((e) => Array.from(e));
  out.tests = (await engine.embedImages(testUrls)).map((e) => Array.from(e));
  out.texts = (await engine.embedTexts(labels.map((l) => out.template.split("{}").join(l)))).map((e) => Array.from(e));
  out.listed = await engine.fewshot.list(model);
  return out;
}"""


@pytest.mark.browser
def test_fit_and_classify_match_the_numpy_reference(vision_artifacts, lumen_url, page_and_log):
    page, log = page_and_log
    page.goto(f"{lumen_url}/?autoload=0")
    page.evaluate("window.lumenReady")
    example_urls, example_labels = urls(POOL, 3)
    test_urls, _ = urls(TEST, 3)
    got = page.evaluate(FIT_JS, [CLIP, LABELS, example_urls, example_labels, test_urls])

    # The full path starts from the same embeddings as Python onnxruntime.
    ref = VisionModel(vision_artifacts, CLIP, variant="fp32")
    pictures = [render(POOL, c, i) for c in range(len(LABELS)) for i in range(3)]
    np.testing.assert_allclose(got["examples"], ref.embed_images(pictures), atol=1e-4, rtol=0)

    x = np.array(got["examples"], dtype=np.float32)
    text = np.array(got["texts"], dtype=np.float32)
    tests = np.array(got["tests"], dtype=np.float32)
    y = np.array(example_labels)
    chosen = set()
    for method, run in got["fits"].items():
        want = fit(text, got["scale"], x, y, method)
        fitted, file = run["fit"], run["file"]
        chosen.add(want.method)
        assert (fitted["method"], fitted["params"]) == (want.method, want.params), method
        assert fitted["looAccuracy"] == want.loo_accuracy and fitted["examples"] == len(x)
        assert fitted["fitMs"] >= 0  # present; its size is machine noise here
        assert fitted["perLabel"] == [3, 3, 3, 3]
        assert [c["correct"] for c in fitted["candidates"]] == [c.correct for c in want.candidates]
        np.testing.assert_allclose(file["text"], text, atol=0, rtol=0)
        if want.weights is not None:
            np.testing.assert_allclose(file["weights"], want.weights, atol=PARITY, rtol=0)
        else:
            assert file["weights"] is None
        probs = predict(want, tests)  # [m, C]
        for ranked, p in zip(run["classified"], probs, strict=True):
            assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
            scores = {r["label"]: r["score"] for r in ranked}
            np.testing.assert_allclose([scores[label] for label in LABELS], p, atol=PARITY, rtol=0)
    assert chosen == {"probe", "tip"}  # both methods were exercised
    assert len(got["listed"]) == 3 and all(c["model"]["id"] == CLIP for c in got["listed"])
    log.assert_clean()


IMPORT_JS = """async ([model, labels, exampleUrls, exampleLabels]) => {
  const engine = window.engine;
  await engine.load({clip: model}, {variant: "fp32", runtime: "wasm"});
  const examples = exampleUrls.map((image, i) => ({image, label: labels[exampleLabels[i]]}));
  const fit = await engine.fewshot.fit({labels, examples, method: "probe", name: "shapes"});
  const file = await engine.fewshot.export(fit.id);
  await engine.fewshot.delete(fit.id);
  const afterDelete = (await engine.fewshot.list()).length;
  const imported = await engine.fewshot.import(new Blob([JSON.stringify(file)], {type: "application/json"}));
  const error = async (f) => { try { await f(); return null; } catch (e) { return {name: e.name, message: e.message, fix: e.fix}; } };
  const tampered = structuredClone(file);
  tampered.weights[0][0] += 0.01;
  const otherModel = {...structuredClone(file), model: {...file.model, id: "some-other-model"}};
  return {
    fit, afterDelete, imported,
    tampered: await error(() => engine.fewshot.import(tampered)),
    otherModel: await error(() => engine.fewshot.import(otherModel)),
    notJson: await error(() => engine.fewshot.import("{not json")),
    badLabel: await error(() => engine.fewshot.fit({labels, examples: [{image: exampleUrls[0], label: "unicorn"}]})),
    wrongLabels: await error(() => engine.classify({images: exampleUrls.slice(0, 1), labels: ["x", "y"], classifier: fit.id})),
  };
}"""


@pytest.mark.browser
def test_export_import_round_trip_and_named_refusals(lumen_url, page_and_log):
    page, log = page_and_log
    page.goto(f"{lumen_url}/?autoload=0")
    page.evaluate("window.lumenReady")
    example_urls, example_labels = urls(POOL, 2)
    got = page.evaluate(IMPORT_JS, [CLIP, LABELS, example_urls, example_labels])
    assert got["afterDelete"] == 0
    keep = ("id", "name", "method", "params", "examples", "looAccuracy", "perLabel", "labels")
    assert {k: got["imported"][k] for k in keep} == {k: got["fit"][k] for k in keep}
    assert (
        got["tampered"]["name"] == "CorruptFileError"
        and "do not follow from its own examples" in got["tampered"]["message"]
    )
    assert got["otherModel"]["name"] == "InvalidRequestError" and "load some-other-model" in got["otherModel"]["fix"]
    assert got["notJson"]["name"] == "CorruptFileError" and got["notJson"]["fix"]
    assert got["badLabel"]["name"] == "InvalidRequestError" and "unicorn" in got["badLabel"]["message"]
    assert got["wrongLabels"]["name"] == "InvalidRequestError" and got["wrongLabels"]["fix"]
    log.assert_clean()


# ---------------------------------------------------------------- the UI: examples, reload, offline


def wait_until(page, script: str, arg=None, timeout_s: float = 120) -> None:
    """Polls `script` (an arrow function, run with page.evaluate: the CSP forbids eval) until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(script, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {script}"
        time.sleep(0.2)


def examples_shown(page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.fewshotExamples ?? 0)"))


DROP_JS = """async ([label, urls]) => {
  const transfer = new DataTransfer();
  urls.forEach((url, i) => {
    const bytes = Uint8Array.from(atob(url.slice(url.indexOf(",") + 1)), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], `dropped-${i}.png`, {type: "image/png"}));
  });
  const chip = document.querySelector(`#fewshot-labels li[data-label="${label}"]`);
  chip.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""

ADAPTED_JS = """() => Array.from(document.querySelectorAll("#classify-results .result-card")).map((card) =>
  Array.from(card.querySelectorAll(".fewshot-adapted li.bar")).map((li) => [li.dataset.label, Number(li.dataset.score)]))"""


@pytest.mark.browser
def test_teach_by_example_in_the_ui_survives_reload_and_works_offline(vision_artifacts, web_dist, browser):
    pictures = [(c, i, png_bytes(render(POOL, c, i))) for c in range(len(LABELS)) for i in range(2)]
    files = [{"name": f"{c}-{i}.png", "mimeType": "image/png", "buffer": png} for c, i, png in pictures]
    context = browser.new_context(viewport={"width": 1280, "height": 1400}, service_workers="allow")
    page = context.new_page()
    page.set_default_timeout(120_000)
    log = ConsoleLog()
    log.attach(page)
    try:
        with live_server(vision_artifacts, web_dist) as (host, port):
            page.goto(f"http://{host}:{port}/?model={CLIP}&runtime=wasm&variant=fp32")
            page.evaluate("window.lumenReady")
            wait_until(page, "() => navigator.serviceWorker.controller !== null")
            assert page.locator("#fewshot-status").inner_text().startswith("No examples yet")
            page.fill("#labels", "\n".join(LABELS))
            page.set_input_files("#classify-files", files)
            page.click("#classify-run")
            wait_until(page, "() => document.querySelectorAll('#classify-results .fewshot-add').length === 8")
            # "This is X" on every result, one after the other: each adds an example and refits.
            for k, (c, _, _) in enumerate(pictures):
                card = page.locator("#classify-results .result-card").nth(k)
                card.locator(".fewshot-truth").select_option(LABELS[c])
                card.locator(".fewshot-add").click()
                wait_until(page, "(n) => Number(document.body.dataset.fewshotExamples) === n", k + 1)
            # Two more images dropped onto a label.
            extra = [data_url(png_bytes(render(POOL, 1, i))) for i in (5, 6)]
            page.evaluate(DROP_JS, [LABELS[1], extra])
            wait_until(page, "() => Number(document.body.dataset.fewshotExamples) === 10")
            assert page.locator(f'#fewshot-labels li[data-label="{LABELS[1]}"] .fewshot-count').inner_text() == "4"
            status = page.locator("#fewshot-status").inner_text()
            assert status.startswith("10 examples") and "leave-one-out accuracy" in status
            curve = json.loads(page.locator("#fewshot-curve svg").get_attribute("data-points"))
            assert [n for n, _ in curve] == [1, 2, 3, 4, 5, 6, 7, 8, 10]
            # Adapted scores beside the zero-shot ones, equal to engine.classify with the same classifier.
            wait_until(page, "() => document.querySelectorAll('#classify-results .fewshot-adapted').length === 8")
            shown = page.evaluate(ADAPTED_JS)
            classifier = page.evaluate("() => engine.fewshot.list().then((l) => l[0])")
            assert classifier["examples"] == 10 and len(page.evaluate("() => engine.fewshot.list()")) == 1
            urls_ = [data_url(png) for _, _, png in pictures]
            direct = page.evaluate(
                "([urls, labels, id]) => engine.classify({images: urls, labels, classifier: id})",
                [urls_, LABELS, classifier["id"]],
            )
            for ui, api in zip(shown, direct, strict=True):
                assert [label for label, _ in ui] == [r["label"] for r in api]
                np.testing.assert_allclose([s for _, s in ui], [r["score"] for r in api], atol=1e-12)
            page.click("#tab-storage")
            wait_until(
                page,
                "(id) => !!document.querySelector(`#fewshot-classifiers tr[data-classifier='${id}']`)",
                classifier["id"],
            )
            screenshot(page, "fewshot-ui-online")
        # The server is gone and the network is off: the page, model and classifier come from the browser.
        context.set_offline(True)
        page.reload()
        page.evaluate("window.lumenReady")
        wait_until(page, "(m) => document.body.dataset.model === m", CLIP)
        assert page.locator("#fewshot-status").inner_text() == status
        assert page.locator("#labels").input_value().split("\n") == LABELS
        assert json.loads(page.locator("#fewshot-curve svg").get_attribute("data-points")) == curve
        page.click("#tab-classify")
        page.set_input_files("#classify-files", files[:2])
        page.click("#classify-run")
        wait_until(page, "() => document.querySelectorAll('#classify-results .fewshot-adapted').length === 2")
        assert page.evaluate(ADAPTED_JS)[:2] == shown[:2]
        # Learning works offline too.
        page.locator("#classify-results .result-card").nth(1).locator(".fewshot-add").click()
        wait_until(page, "() => Number(document.body.dataset.fewshotExamples) === 11")
        screenshot(page, "fewshot-ui-offline")
        log.errors = [e for e in log.errors if "ERR_INTERNET_DISCONNECTED" not in e]
        log.assert_clean()
    finally:
        context.close()


@pytest.mark.browser
def test_search_more_like_these_uses_the_adapted_class(lumen_url, page_and_log, tmp_path):
    page, log = page_and_log
    folder = tmp_path / "shapes"
    folder.mkdir()
    pictures = {f"{c}-{i}.png": png_bytes(render(TEST, c, i)) for c in range(len(LABELS)) for i in range(3)}
    for name, png in pictures.items():
        (folder / name).write_bytes(png)
    example_urls, example_labels = urls(POOL, 2)
    page.goto(f"{lumen_url}/?model={CLIP}&runtime=wasm&variant=fp32")
    page.evaluate("window.lumenReady")
    fitted = page.evaluate(
        """([labels, urls, ys]) => engine.fewshot.fit({labels, method: "probe",
             examples: urls.map((image, i) => ({image, label: labels[ys[i]]}))})""",
        [LABELS, example_urls, example_labels],
    )
    page.reload()  # the Classify panel restores the newest classifier of the model
    page.evaluate("window.lumenReady")
    assert examples_shown(page) == 8
    page.click("#tab-search")
    page.set_input_files("#folder-input", str(folder))
    wait_until(page, "() => document.querySelector('#index-status').textContent.includes('12 images indexed')")
    target = LABELS[2]
    page.select_option("#more-like-class", target)
    page.click("#more-like-run")
    wait_until(page, "() => document.querySelectorAll('#search-results .fewshot-pick').length === 12")
    shown = page.evaluate(
        """() => Array.from(document.querySelectorAll('#search-results li.thumb'))
             .map((li) => [li.dataset.path.split('/').pop(), Number(li.dataset.score)])"""
    )
    # The same images through engine.classify with the classifier: the ranking is by that class's probability.
    names = list(pictures)
    direct = page.evaluate(
        "([urls, id]) => engine.classify({images: urls, labels: [], classifier: id})",
        [[data_url(pictures[n]) for n in names], fitted["id"]],
    )
    want = {
        n: next(r["score"] for r in ranked if r["label"] == target) for n, ranked in zip(names, direct, strict=True)
    }
    assert [s for _, s in shown] == sorted(want.values(), reverse=True)
    for name, score in shown:
        assert score == pytest.approx(want[name], abs=1e-12)
    # Tick the two best and add them as examples of the class: the classifier refits with 10 examples.
    page.locator("#search-results .fewshot-pick").nth(0).check()
    page.locator("#search-results .fewshot-pick").nth(1).check()
    page.click("#more-like-add")
    wait_until(page, "() => Number(document.body.dataset.fewshotExamples) === 10")
    listed = page.evaluate("(id) => engine.fewshot.list().then((l) => l.find((c) => c.id === id))", fitted["id"])
    assert listed["perLabel"] == [2, 2, 4, 2]
    log.assert_clean()
