"""Chromium through Playwright for the benchmarks: Lumen's web app or the Transformers.js peer page,
served by the real model host (COOP/COEP, so multi-threaded WASM), one fresh context per
configuration (onnxruntime-web fixes its thread count per worker; a context also has its own cache)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.plan import REPO, BenchError
from harness.chromium import CHROMIUM, CHROMIUM_ARGS, WEBGPU_ARGS
from harness.images import data_url, fixed_images, png_bytes
from harness.live_server import free_port, live_server
from harness.web_app import build_web

__all__ = ["CHROMIUM", "Browser", "free_port", "image_urls", "live_server", "web_bundle", "webgpu_adapter"]
TIMEOUT_MS = 900_000  # one measurement (the slowest: 4-bit generation in Transformers.js)
READY_MS = 120_000  # a page whose module failed to import never gets ready


def web_bundle() -> tuple[Path, str]:
    """(web/dist, how fresh it is). A failed rebuild (someone mid-edit) falls back to the last good
    bundle, and the report says so, rather than losing the whole run."""
    try:
        return build_web(), "built from the current web/src"
    except AssertionError as err:
        dist = REPO / "web" / "dist"
        if not (dist / "index.html").is_file():
            raise BenchError(f"the web app does not build: {err}", fix="cd web && npm ci && npm run build") from err
        print(
            f"warning: npm run build failed; benchmarking the last built web/dist\n{str(err)[-500:]}", file=sys.stderr
        )
        return dist, "STALE: npm run build failed, so the last built web/dist ran"


def image_urls() -> list[str]:
    """The browser tests' fixed non-square images as PNG data: URLs (decode + resize + crop on every run)."""
    return [data_url(png_bytes(image)) for image in fixed_images()]


class Browser:
    """One Chromium; `page(url)` opens it in a fresh context."""

    def __init__(self, chromium) -> None:
        self.chromium = chromium

    @contextmanager
    def context(self) -> Iterator[object]:
        context = self.chromium.new_context()
        try:
            yield context
        finally:
            context.close()

    @staticmethod
    def open(context, url: str, ready: str):
        """A new page at url, once the JS expression `ready` is truthy (it may be a promise)."""
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)
        try:
            page.wait_for_function(ready, timeout=READY_MS)
        except Exception as err:
            raise BenchError(
                f"{url} did not become ready ({ready}): {err}; page errors: {errors}",
                fix="build the page (npm ci / npm run build) and check the browser console",
            ) from err
        return page


@contextmanager
def chromium(extra_args: tuple[str, ...] = ()) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is missing", fix="apt-get install chromium (never `playwright install`)")
    with sync_playwright() as pw:
        # Eager: performance.measureUserAgentSpecificMemory() answers now, not at the next GC (up to 20 s).
        args = [*CHROMIUM_ARGS, "--enable-blink-features=ForceEagerMeasureMemory", *extra_args]
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield Browser(browser)
        finally:
            browser.close()


def evaluate(page, script: str, args: list) -> Any:
    """page.evaluate with JSON-able args; failures name the script's first line."""
    try:
        return page.evaluate(script, args)
    except Exception as err:
        raise BenchError(f"browser benchmark failed: {err}", fix="rerun with --only to isolate it") from err


def or_reason(run: Callable[[], dict]) -> dict | str:
    """An engine's numbers, or why it has none: one engine failing on one file costs one cell."""
    try:
        return run()
    except BenchError as err:
        print(f"warning: {err}", file=sys.stderr)
        return f"failed: {str(err).splitlines()[0][:160]}"


WEBGPU_PROBE = """async () => {
  if (!navigator.gpu) return { adapter: null, why: "navigator.gpu is undefined" };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { adapter: null, why: "requestAdapter() returned null" };
  const info = adapter.info || {};
  return { adapter: { vendor: info.vendor, architecture: info.architecture, description: info.description,
                      fallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter) } };
}"""


def webgpu_adapter(url: str) -> dict:
    """What WebGPU adapter Chromium offers here; a software one (SwiftShader) earns no speed claims."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            found = page.evaluate(WEBGPU_PROBE)
        finally:
            browser.close()
    adapter = found.get("adapter")
    software = adapter is None or adapter["fallback"] or "swiftshader" in json.dumps(adapter).lower()
    return {**found, "real_gpu": not software}
