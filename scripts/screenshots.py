"""`python -m scripts.screenshots`: regenerate the README's screenshots from the running app.

Serves web/dist (rebuilt when stale) over an artifact folder with the real server, drives Debian's
Chromium through Playwright on WASM, and writes docs/screenshot-{classify,chat,storage}.png:
Classify with "Ask the LLM" (FuDD re-ranking), a Chat reply, and the Storage tab after both loads
and a search index of the pictures.
The folder defaults to artifacts/ (what `make demo` exported); when it has no vision or no chat
model, the tiny-random ones are exported into it first (random predictions and words, labelled so
in the page). PNGs are quantized to a 256-colour palette to keep them small.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Page, ViewportSize, sync_playwright

from contract.manifest import load_manifest
from harness.chromium import CHROMIUM, CHROMIUM_ARGS
from harness.live_server import live_server
from harness.web_app import build_web

REPO = Path(__file__).resolve().parent.parent
VIEWPORT: ViewportSize = {"width": 1100, "height": 760}
# The longest a screenshot may be (full page, cut here): the README shows them at this width.
MAX_HEIGHT = 1300
LABELS = ["a red ball", "a blue box", "a green tree", "the sea at sunset"]
CHAT_PROMPT = "Write two short sentences about the sea."
TIMEOUT_MS = 600_000


def pictures(folder: Path) -> list[Path]:
    """Three simple drawn pictures (no photos ship with the project)."""
    scenes = [
        ("ball.png", (250, 250, 245), lambda d: d.ellipse((60, 50, 200, 190), fill=(215, 40, 40))),
        ("box.png", (235, 240, 250), lambda d: d.rectangle((70, 60, 200, 180), fill=(40, 80, 200))),
        (
            "sunset.png",
            (250, 170, 90),
            lambda d: (
                d.rectangle((0, 150, 260, 220), fill=(30, 70, 140)),
                d.ellipse((95, 95, 165, 165), fill=(255, 220, 80)),
            ),
        ),
    ]
    paths = []
    for name, background, draw in scenes:
        image = Image.new("RGB", (260, 220), background)
        draw(ImageDraw.Draw(image))
        image.save(folder / name)
        paths.append(folder / name)
    return paths


def ensure_models(artifacts: Path) -> tuple[str, str]:
    """(vision id, chat id) from the folder's manifest; exports the tiny-random ones when missing."""

    def pick() -> tuple[str | None, str | None]:
        models = load_manifest(artifacts).models
        vision = next((m.id for m in models if m.vision and m.trained), None) or next(
            (m.id for m in models if m.vision), None
        )
        chat = next((m.id for m in models if m.task == "text-generation" and m.trained), None) or next(
            (m.id for m in models if m.task == "text-generation"), None
        )
        return vision, chat

    vision, chat = pick()
    exports = ([] if vision else [["clip", "--model", "tiny-random-clip"]]) + (
        [] if chat else [["llm", "--model", "tiny-random-llama", "--no-mlc"]]
    )
    for args in exports:
        print(f"==> exporting {' '.join(args)} into {artifacts}")
        subprocess.run([sys.executable, "-m", "exporter", *args, "--out", str(artifacts)], cwd=REPO, check=True)
    vision, chat = pick()
    assert vision and chat, f"{artifacts} still lacks a vision or a chat model"
    return vision, chat


def save(page: Page, path: Path) -> None:
    """A viewport-wide shot of the page down to MAX_HEIGHT, as a palette PNG."""
    height = min(MAX_HEIGHT, page.evaluate("document.documentElement.scrollHeight"))
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)
    print(f"==> {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size // 1000} kB)")


def wait(page: Page, condition: str) -> None:
    """Polls a JS arrow function in the page (the app's CSP forbids wait_for_function's eval)."""
    page.evaluate(f"""async () => {{
      const condition = {condition};
      const deadline = performance.now() + {TIMEOUT_MS};
      while (!(await condition())) {{
        if (performance.now() > deadline) throw new Error("timed out waiting for: " + condition);
        await new Promise((r) => setTimeout(r, 200));
      }}
    }}""")


def shoot(url: str, vision: str, chat: str, out: Path, images: list[Path]) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/?runtime=wasm&model={vision}&chat={chat}")
        page.evaluate("window.lumenReady")

        page.set_input_files("#classify-files", [str(p) for p in images])
        page.fill("#labels", "\n".join(LABELS))
        page.check("#fudd-toggle")
        page.fill("#fudd-k", "2")
        page.click("#classify-run")
        page.wait_for_selector("#fudd-status[data-state='done']")
        save(page, out / "screenshot-classify.png")

        page.click("#tab-chat")
        page.wait_for_selector('#panel-chat[data-state="ready"]')
        page.fill("#chat-max-tokens", "60")
        page.fill("#chat-input", CHAT_PROMPT)
        page.click("#chat-send")
        page.wait_for_selector('#chat-log li[data-role="assistant"][data-status="done"]')
        save(page, out / "screenshot-chat.png")

        # A search index, so the Storage tab lists one.
        page.click("#tab-search")
        page.set_input_files("#folder-input", str(images[0].parent))
        wait(
            page, f"() => document.querySelector('#index-status').textContent.includes('{len(images)} images indexed')"
        )

        page.click("#tab-storage")
        wait(page, "() => document.querySelector('#storage-models tr[data-model]') !== null")
        page.wait_for_timeout(500)  # the classifier and data tables fill in too
        save(page, out / "screenshot-storage.png")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    args.artifacts.mkdir(parents=True, exist_ok=True)
    vision, chat = ensure_models(args.artifacts)
    print(f"==> screenshots of {vision} and {chat}")
    with tempfile.TemporaryDirectory() as tmp, live_server(args.artifacts, build_web()) as (host, port):
        shoot(f"http://{host}:{port}", vision, chat, args.out, pictures(Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
