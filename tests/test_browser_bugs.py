"""Regression tests for the five UI bugs of issue 11, each driven by clicks in the real app.

1. Classify results belong to the images they were computed for, even if the picker changes mid-run.
2. "New chat" during generation aborts it and starts clean.
3. A failed chat request leaves no empty bubble; a later success clears the error; an empty
   max-tokens field means the default.
4. One undecodable image does not fail the Classify batch.
5. A software WebGPU adapter (SwiftShader) makes "auto" pick WASM; the page's runtime switch says so.

The chat tests use the tiny-random LLM (fast on WASM); its words are random, which is all they need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from browser_support import data_url, fixed_images, load_tiny_chat, open_app, png_bytes, screenshot, send_chat

pytestmark = pytest.mark.browser

LABELS = ["cat", "dog", "red car"]


def write_pngs(folder: Path, images: list[Image.Image], prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}-{i}.png"
        path.write_bytes(png_bytes(image))
        paths.append(path)
    return paths


def large_image(size: int = 2400) -> Image.Image:
    """A big smooth gradient (compresses well, decodes and resizes slowly): keeps a run busy."""
    y, x = np.mgrid[0:size, 0:size]
    pixels = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def shown_results(page) -> dict[str, list[tuple[str, float]]]:
    cards = page.locator(".result-card")
    out = {}
    for i in range(cards.count()):
        card = cards.nth(i)
        bars = card.locator(".bar")
        out[card.locator("h3").inner_text()] = [
            (bars.nth(j).get_attribute("data-label"), float(bars.nth(j).get_attribute("data-score")))
            for j in range(bars.count())
        ]
    return out


def engine_scores(page, paths: list[Path], labels: list[str]) -> list[list[dict]]:
    return page.evaluate(
        "async ([urls, labels]) => await window.engine.classify({images: urls, labels})",
        [[data_url(p.read_bytes()) for p in paths], labels],
    )


def test_classify_results_stay_with_their_images_when_the_picker_changes(tiny_app_url, page_and_log, tmp_path):
    page, log = page_and_log
    open_app(page, tiny_app_url, "model=tiny-random-clip&runtime=wasm")
    first = write_pngs(tmp_path / "a", [large_image(), *fixed_images(seed=0)[:2]], "first")
    second = write_pngs(tmp_path / "b", fixed_images(seed=3)[:1], "second")
    page.fill("#labels", "\n".join(LABELS))
    page.set_input_files("#classify-files", [str(p) for p in first])
    page.click("#classify-run")
    # Picking other files while the run is busy must not move its results under their names.
    assert page.get_attribute("#classify-results", "aria-busy") == "true"
    page.set_input_files("#classify-files", [str(p) for p in second])
    expect(page.locator(".result-card")).to_have_count(3, timeout=120_000)
    expect(page.locator("#classify-results")).not_to_have_attribute("aria-busy", "true")
    shown = shown_results(page)
    assert list(shown) == [p.name for p in first]
    for path, want in zip(first, engine_scores(page, first, LABELS), strict=True):
        got = shown[path.name]
        assert [label for label, _ in got] == [w["label"] for w in want]
        assert all(abs(score - w["score"]) < 1e-12 for (_, score), w in zip(got, want, strict=True))
    assert page.locator(".alert").count() == 0
    # The next run classifies what is picked now.
    page.click("#classify-run")
    expect(page.locator(".result-card h3")).to_have_text([second[0].name], timeout=120_000)
    log.assert_clean()


def test_one_undecodable_image_does_not_fail_the_batch(tiny_app_url, page_and_log, tmp_path):
    page, log = page_and_log
    open_app(page, tiny_app_url, "model=tiny-random-clip&runtime=wasm")
    good = write_pngs(tmp_path, fixed_images(seed=0)[:2], "good")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not really a png")
    page.fill("#labels", "\n".join(LABELS))
    page.set_input_files("#classify-files", [str(good[0]), str(broken), str(good[1])])
    page.click("#classify-run")
    expect(page.locator(".result-card:not([data-failed])")).to_have_count(2, timeout=120_000)
    shown = shown_results(page)
    for path, want in zip(good, engine_scores(page, good, LABELS), strict=True):
        assert [label for label, _ in shown[path.name]] == [w["label"] for w in want]
    failed = page.locator(".result-card[data-failed]")
    assert failed.count() == 1 and "broken.png" in failed.inner_text()
    alert = page.locator('.alert[data-error="UnsupportedImageError"]')
    assert alert.count() == 1 and "broken.png" in alert.inner_text()
    screenshot(page, "classify-one-bad-image")
    assert all("broken.png" in e or "Failed to load resource" in e for e in log.errors), log.errors


def test_new_chat_during_generation_aborts_it_and_starts_clean(tiny_app_url, page_and_log):
    page, log = page_and_log
    load_tiny_chat(page, tiny_app_url)
    page.fill("#chat-max-tokens", "4000")
    send_chat(page, "Tell me everything.")
    page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="streaming"]')
    page.click("#chat-clear")
    page.wait_for_selector('#panel-chat[data-state="ready"]')
    page.wait_for_timeout(1000)  # an unstopped stream would keep writing into the new chat
    assert page.locator("#chat-log li").count() == 0
    page.fill("#chat-max-tokens", "4")
    send_chat(page, "Hello again.")
    page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="done"]')
    sent = page.evaluate("window.sentMessages")
    assert [m for m in sent[-1] if m["role"] != "system"] == [{"role": "user", "content": "Hello again."}]
    assert [li.get_attribute("data-role") for li in page.locator("#chat-log li").all()] == ["user", "assistant"]
    log.assert_clean()


def test_failed_chat_request_leaves_no_empty_turn_and_success_clears_the_error(tiny_app_url, page_and_log):
    page, log = page_and_log
    load_tiny_chat(page, tiny_app_url)
    page.fill("#chat-max-tokens", "0")
    send_chat(page, "First question.")
    alert = page.locator(".alert")
    expect(alert).to_have_count(1)
    assert "max_tokens" in alert.inner_text()
    # The failed turn leaves the conversation (no empty reply); its text goes back to the input box.
    page.wait_for_selector('#panel-chat[data-state="ready"]')
    assert page.locator("#chat-log li").count() == 0
    assert page.input_value("#chat-input") == "First question."

    # An empty field means "the default", not 0.
    page.fill("#chat-max-tokens", "")
    send_chat(page, "Second question.")
    page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="done"]')
    expect(page.locator(".alert")).to_have_count(0)
    sent = page.evaluate("window.sentMessages")
    assert [m for m in sent[-1] if m["role"] != "system"] == [{"role": "user", "content": "Second question."}]
    log.assert_clean()


@pytest.mark.browser
def test_software_webgpu_adapter_prefers_wasm_and_the_switch_shows_it(tiny_app_url, webgpu_page_and_log):
    page, log = webgpu_page_and_log
    open_app(page, tiny_app_url, "model=tiny-random-clip")
    assert page.locator("#runtime-badge").get_attribute("data-runtime") == "wasm"
    assert "software" in page.locator("#runtime-reason").text_content()
    switch = page.locator("#runtime-select")
    assert switch.input_value() == "auto"
    assert "WASM" in switch.locator("option:checked").inner_text()
    # Asking for WebGPU explicitly still gets it (and says so), from the switch in the page.
    with page.expect_navigation():
        switch.select_option("webgpu")
    page.evaluate("window.lumenReady")
    assert page.locator("#runtime-badge").get_attribute("data-runtime") == "webgpu"
    assert page.locator("#runtime-select").input_value() == "webgpu"
    screenshot(page, "runtime-switch-webgpu")
    log.assert_clean()
