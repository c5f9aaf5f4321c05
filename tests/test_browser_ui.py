"""The app at / driven by clicks: classify, search a folder, and the error messages users see.

Screenshots of every test land in test-results/ (browser_support.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from browser_support import data_url, fixed_images, png_bytes, screenshot

pytestmark = pytest.mark.browser

LABELS = ["cat", "dog", "red car"]


def _write_pngs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    images = (fixed_images(seed=0) + fixed_images(seed=1))[:count]
    paths = []
    for i, image in enumerate(images):
        path = folder / f"photo-{i}.png"
        path.write_bytes(png_bytes(image))
        paths.append(path)
    return paths


def _open_app(page, url: str, query: str) -> None:
    page.goto(f"{url}/?{query}")
    page.evaluate("window.lumenReady")


def test_classify_by_clicking(lumen_url, page_and_log, tmp_path):
    page, log = page_and_log
    _open_app(page, lumen_url, "model=tiny-random-clip&runtime=auto")
    # No WebGPU in this browser: the fallback is taken and said so.
    assert page.locator("#runtime-badge").get_attribute("data-runtime") == "wasm"
    assert "no WebGPU adapter" in page.locator("#runtime-reason").text_content()
    banner = page.locator("#untrained-banner")
    assert banner.is_visible() and "untrained test model" in banner.inner_text()

    files = _write_pngs(tmp_path / "pick", 3)
    page.set_input_files("#classify-files", [str(p) for p in files])
    page.fill("#labels", "\n".join(LABELS))
    page.click("#classify-run")
    # Locator waits, not wait_for_function: the page's CSP (rightly) forbids eval.
    expect(page.locator(".result-card")).to_have_count(3, timeout=120_000)
    cards = page.locator(".result-card")
    shown = []
    for i in range(3):
        bars = cards.nth(i).locator(".bar")
        assert bars.count() == len(LABELS)
        shown.append(
            [
                (bars.nth(j).get_attribute("data-label"), float(bars.nth(j).get_attribute("data-score")))
                for j in range(len(LABELS))
            ]
        )
    # The bars are what the engine computes for the same files, ranked best first (softmax: sum 1).
    expected = page.evaluate(
        """async ([urls, labels]) => await window.engine.classify({images: urls, labels})""",
        [[data_url(p.read_bytes()) for p in files], LABELS],
    )
    for bars, want in zip(shown, expected, strict=True):
        assert [label for label, _ in bars] == [w["label"] for w in want]
        assert all(abs(score - w["score"]) < 1e-12 for (_, score), w in zip(bars, want, strict=True))
        assert abs(sum(score for _, score in bars) - 1) < 1e-6
    screenshot(page, "classify-results")
    log.assert_clean()


def test_search_a_folder_by_clicking(lumen_url, page_and_log, tmp_path):
    page, log = page_and_log
    _open_app(page, lumen_url, "model=tiny-random-siglip")
    folder = tmp_path / "album"
    files = _write_pngs(folder, 6)
    (folder / "broken.png").write_bytes(b"not really a png")
    (folder / "notes.txt").write_text("not an image")
    page.click("#tab-search")
    page.set_input_files("#folder-input", str(folder))
    expect(page.locator("#index-status")).to_contain_text("6 images indexed", timeout=120_000)
    alert = page.locator('.alert[data-error="UnsupportedImageError"]')
    assert alert.is_visible() and "broken.png" in alert.inner_text()
    page.fill("#search-query", "a striped pattern")
    page.click("#search-run")
    expect(page.locator("#search-results .thumb")).to_have_count(6, timeout=120_000)
    thumbs = page.locator("#search-results .thumb")
    ranked = [
        (thumbs.nth(i).get_attribute("data-path"), float(thumbs.nth(i).get_attribute("data-score"))) for i in range(6)
    ]
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    # The ranking is cosine similarity of the engine's own embeddings.
    cosines = page.evaluate(
        """async ([urls, query]) => {
        const images = await window.engine.embedImages(urls);
        const [text] = await window.engine.embedTexts([query]);
        return images.map((e) => e.reduce((s, v, i) => s + v * text[i], 0));
    }""",
        [[data_url(p.read_bytes()) for p in files], "a striped pattern"],
    )
    by_name = {f"album/{p.name}": c for p, c in zip(files, cosines, strict=True)}
    assert {path for path, _ in ranked} == set(by_name)
    assert all(abs(score - by_name[path]) < 1e-5 for path, score in ranked)
    screenshot(page, "search-results")

    # The index survives a reload (IndexedDB): the count comes back without re-indexing.
    _open_app(page, lumen_url, "model=tiny-random-siglip")
    page.click("#tab-search")
    expect(page.locator("#index-status")).to_contain_text("6 images indexed", timeout=120_000)
    assert all("broken.png" in e or "Failed to load resource" in e for e in log.errors), log.errors


def test_failed_download_and_too_large_are_explained(lumen_url, page_and_log):
    page, log = page_and_log
    _open_app(page, lumen_url, "model=tiny-random-clip")
    page.route("**/models/tiny-random-siglip/onnx/**", lambda route: route.abort())
    page.select_option("#model-select", "tiny-random-siglip")
    alert = page.locator('.alert[data-error="DownloadError"]')
    alert.wait_for()
    assert "Download failed" in alert.inner_text() and "What to do" in alert.inner_text()
    screenshot(page, "download-failed")

    # A manifest that says the ALIGN files are 5 GB: refused before any download.
    def huge(route):
        manifest = json.loads(route.fetch().text())
        for model in manifest["models"]:
            if model["id"] == "tiny-random-align":
                for f in model["files"]:
                    f["bytes"] = 5 * 1024**3 if f["path"].endswith(".onnx") else f["bytes"]
        route.fulfill(json=manifest)

    page.route("**/api/models", huge)
    page.select_option("#model-select", "tiny-random-align")
    alert = page.locator('.alert[data-error="ModelTooLargeError"]')
    alert.wait_for()
    assert "Model too large" in alert.inner_text()
    screenshot(page, "model-too-large")
    assert all("Failed to load resource" in e for e in log.errors), log.errors


def test_search_shows_more_results_on_request(lumen_url, page_and_log, tmp_path):
    page, log = page_and_log
    _open_app(page, lumen_url, "model=tiny-random-siglip")
    folder = tmp_path / "many"
    folder.mkdir()
    images = fixed_images(seed=0) + fixed_images(seed=1) + fixed_images(seed=2) + fixed_images(seed=3)
    for i in range(30):
        (folder / f"img-{i:02d}.png").write_bytes(png_bytes(images[i % len(images)].rotate(i * 7)))
    page.click("#tab-search")
    page.set_input_files("#folder-input", str(folder))
    expect(page.locator("#index-status")).to_contain_text("30 images indexed", timeout=120_000)
    page.fill("#search-query", "a striped pattern")
    page.click("#search-run")
    thumbs = page.locator("#search-results .thumb")
    expect(thumbs).to_have_count(24)
    more = page.locator("#search-more")
    expect(more).to_have_text("More results (6 more)")
    first_page = [thumbs.nth(i).get_attribute("data-path") for i in range(24)]
    more.click()
    expect(thumbs).to_have_count(30)
    expect(more).to_be_hidden()
    paths = [thumbs.nth(i).get_attribute("data-path") for i in range(30)]
    assert paths[:24] == first_page and len(set(paths)) == 30
    scores = [float(thumbs.nth(i).get_attribute("data-score")) for i in range(30)]
    assert scores == sorted(scores, reverse=True)
    log.assert_clean()
