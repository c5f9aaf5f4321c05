"""Browser-test fixtures: the built web app served by the real server over the session's artifacts,
the system Chromium through Playwright, console-error collection, screenshots under test-results/.
Also run_engine_script (the engine's own TypeScript modules bundled with rolldown and run in Node) and
fp32_compute_copy (a native reference for WASM, which computes 4-bit MatMulNBits in fp32).

Registered from conftest.py (`pytest_plugins`). Browser tests are marked `@pytest.mark.browser`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import pytest

from harness.chromium import CHROMIUM as CHROMIUM
from harness.chromium import CHROMIUM_ARGS as CHROMIUM_ARGS
from harness.chromium import WEBGPU_ARGS as WEBGPU_ARGS
from harness.images import data_url as data_url
from harness.images import fixed_images as fixed_images
from harness.images import png_bytes as png_bytes
from harness.live_server import live_server
from harness.web_app import build_web as build_web

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web"
ENGINE = WEB / "src" / "engine"
RESULTS = REPO / "test-results"
VISION_MODELS = ("tiny-random-clip", "tiny-random-siglip", "tiny-random-align")
TINY_LLM = "tiny-random-llama"
# Wraps chat.completions.create so a test sees exactly which messages each request sends.
RECORD_CHAT_REQUESTS_JS = """() => {
  const completions = window.engine.chat.completions;
  const create = completions.create.bind(completions);
  window.sentMessages = [];
  completions.create = (params) => {
    window.sentMessages.push(params.messages.map((m) => ({ role: m.role, content: m.content })));
    return create(params);
  };
}"""
# MatMulNBits accuracy_level 4 quantizes activations to int8 in the native CPU kernel, never in WASM.
FP32_ACCURACY_LEVEL = 1


def run_engine_script(body: str) -> object:
    """Bundles `body` (a JS module that may import the engine's .ts files by absolute path and
    must `print(value)` once) with rolldown and runs it in Node; returns the printed JSON value."""
    with tempfile.TemporaryDirectory() as tmp:
        entry, bundle = Path(tmp) / "driver.mjs", Path(tmp) / "bundle.mjs"
        # The engine reads `self.location` only inside functions that these drivers do not call.
        # Exit once the write is flushed: process.exit() right after console.log cuts a long piped line.
        entry.write_text(
            f"const print = (v) => process.stdout.write(JSON.stringify(v) + '\\n', () => process.exit(0));\n{body}\n"
        )
        build = subprocess.run(
            [
                "npx",
                "rolldown",
                str(entry),
                "--format",
                "esm",
                "--platform",
                "node",
                "--external",
                "@mlc-ai/web-llm",
                "--no-codeSplitting",  # one file, dynamic imports (xgrammar) inlined
                "-o",
                str(bundle),
            ],
            cwd=WEB,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert build.returncode == 0, build.stderr[-3000:] + build.stdout[-3000:]
        run = subprocess.run(["node", str(bundle)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout.strip().splitlines()[-1])


def fp32_compute_copy(model_path: Path, out_dir: Path) -> Path:
    """`model_path` if no MatMulNBits node asks for int8 activations; else a copy that computes in fp32."""
    model = onnx.load(str(model_path))
    changed = False
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "MatMulNBits" and attr.name == "accuracy_level" and attr.i > FP32_ACCURACY_LEVEL:
                attr.i = FP32_ACCURACY_LEVEL
                changed = True
    if not changed:
        return model_path
    out = out_dir / model_path.name
    onnx.save(model, str(out), save_as_external_data=True, location=model_path.name + "_data")
    return out


@dataclass
class ConsoleLog:
    """Console errors and uncaught page errors seen by a page."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on(
            "console",
            lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))

    def assert_clean(self) -> None:
        assert not self.errors, "console errors:\n" + "\n".join(self.errors)


@pytest.fixture(scope="session")
def web_dist() -> Path:
    return build_web()


@pytest.fixture(scope="session")
def vision_artifacts(shared_artifacts) -> Path:
    """The session artifact folder with the three tiny vision models (fp32, int8, q4)."""
    for model in VISION_MODELS:
        shared_artifacts.clip(model)
    return shared_artifacts.root


@pytest.fixture(scope="session")
def lumen_url(vision_artifacts: Path, web_dist: Path) -> Iterator[str]:
    with live_server(vision_artifacts, web_dist) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture(scope="session")
def tiny_app_url(vision_artifacts: Path, shared_artifacts, web_dist: Path) -> Iterator[str]:
    """The app over the tiny vision models and the tiny-random LLM (fast on WASM, random words)."""
    shared_artifacts.llm(TINY_LLM)
    with live_server(shared_artifacts.root, web_dist) as (host, port):
        yield f"http://{host}:{port}"


def open_app(page, url: str, query: str) -> None:
    page.goto(f"{url}/?{query}")
    page.evaluate("window.lumenReady")


def load_tiny_chat(page, url: str, query: str = "") -> None:
    """Opens the Chat tab with the tiny LLM loaded on WASM and chat requests recorded (window.sentMessages)."""
    open_app(page, url, f"autoload=0&runtime=wasm&chat={TINY_LLM}{query}")
    page.click("#tab-chat")
    page.wait_for_selector('#panel-chat[data-state="ready"]')
    page.evaluate(RECORD_CHAT_REQUESTS_JS)


def send_chat(page, text: str) -> None:
    page.fill("#chat-input", text)
    page.click("#chat-send")


@pytest.fixture(scope="session")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance):
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def webgpu_browser(playwright_instance):
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS)
    yield browser
    browser.close()


def screenshot(page, name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _open_page(browser, request) -> Iterator[tuple[object, ConsoleLog]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    log = ConsoleLog()
    log.attach(page)
    try:
        yield page, log
    finally:
        try:
            screenshot(page, request.node.name.replace("/", "_"))
        finally:
            context.close()


@pytest.fixture
def page_and_log(browser, request):
    """A fresh page (own context, so own IndexedDB) and its console log; screenshot on teardown."""
    yield from _open_page(browser, request)


@pytest.fixture
def webgpu_page_and_log(webgpu_browser, request):
    yield from _open_page(webgpu_browser, request)


# engine.chat.completions.create in the page: the result, or the named error (name, message, fix).
CREATE_JS = "(request) => window.engine.chat.completions.create(request)"
ERROR_JS = """async (request) => {
  try { await window.engine.chat.completions.create(request); return null; }
  catch (e) { return { name: e.name, message: e.message, fix: e.fix ?? null }; }
}"""
