"""A 375 px wide phone screen: no tab of the app scrolls sideways, with content in every tab
(classify results, a loaded chat with a long reply, the Storage tab with cached models)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from browser_support import TINY_LLM, fixed_images, open_app, png_bytes, screenshot

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}
# Elements sticking out past the right edge of the screen (the cause of a sideways scroll).
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > width + 0.5;
  }).map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}: right ${Math.round(el.getBoundingClientRect().right)}`);
  return { scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10) };
}"""


def test_no_tab_scrolls_sideways_on_a_375px_screen(tiny_app_url, browser, tmp_path, request):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        open_app(page, tiny_app_url, f"model=tiny-random-clip&runtime=wasm&chat={TINY_LLM}")
        images = []
        for i, image in enumerate(fixed_images(seed=0)[:2]):
            path = tmp_path / f"a-rather-long-file-name-for-a-phone-screen-{i}.png"
            path.write_bytes(png_bytes(image))
            images.append(str(path))
        page.set_input_files("#classify-files", images)
        page.fill("#labels", "\n".join(["cat", "a very long label that describes a scene in many words", "dog"]))
        page.click("#classify-run")
        expect(page.locator(".result-card")).to_have_count(2)

        page.click("#tab-chat")
        page.wait_for_selector('#panel-chat[data-state="ready"]')
        page.fill("#chat-max-tokens", "40")
        page.fill("#chat-input", "x" * 120)  # one unbroken word longer than the screen
        page.click("#chat-send")
        page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="done"]')

        tabs = page.locator('[role="tab"]')
        names = [tabs.nth(i).get_attribute("id") for i in range(tabs.count())]
        assert {"tab-classify", "tab-search", "tab-chat", "tab-storage"} <= set(names)
        for name in names:
            page.click(f"#{name}")
            page.wait_for_timeout(300)
            if name == "tab-storage":
                expect(page.locator("#storage-models tr")).not_to_have_count(0)
            got = page.evaluate(OVERFLOW_JS)
            screenshot(page, f"phone-{name}")
            assert got["scrollWidth"] <= got["width"] and not got["wide"], (name, got)
    finally:
        context.close()


def test_untrained_banner_only_on_vision_tabs_dismissible_with_the_command_as_code(tiny_app_url, page_and_log):
    page, log = page_and_log
    open_app(page, tiny_app_url, "model=tiny-random-clip&runtime=wasm&autoload=1")
    banner = page.locator("#untrained-banner")
    expect(banner).to_be_visible()
    assert "python -m exporter" in banner.locator("code").first.inner_text()
    assert "reload" in banner.inner_text()
    page.click("#tab-chat")
    expect(banner).to_be_hidden()
    page.click("#tab-search")
    expect(banner).to_be_visible()
    page.click("#untrained-banner-close")
    expect(banner).to_be_hidden()
    page.reload()
    page.evaluate("window.lumenReady")
    expect(page.locator("#untrained-banner")).to_be_hidden()  # dismissed for this session
    log.assert_clean()
