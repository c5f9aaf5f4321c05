"""Peak memory of a page: the high-water mark of resident memory (Linux /proc VmHWM) of the Chromium
renderer processes that appeared while it ran. A page and its workers (onnxruntime-web's or
llama.cpp's WASM threads included) live in its renderer process, so this is everything the page
held at its worst moment: JS heaps, every WebAssembly.Memory, transient buffers (a model's bytes
while they are expanded), plus the renderer's own baseline (the same for every engine).

Why not performance.measureUserAgentSpecificMemory(): it waits for every worker to answer, and
WASM threads blocked in Atomics.wait never do (a minute per call here), and it sees only what is
alive at the call, not the peak."""

from __future__ import annotations

from pathlib import Path

from bench.browser import Browser


def renderers(browser: Browser) -> set[int]:
    """Process ids of the browser's renderers now."""
    session = browser.chromium.new_browser_cdp_session()
    try:
        info = session.send("SystemInfo.getProcessInfo")
    finally:
        session.detach()
    return {p["id"] for p in info["processInfo"] if p["type"] == "renderer"}


def _high_water_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # exited, or not Linux
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return int(line.split()[1]) if line else 0


def peak_mb(pids: set[int]) -> float | None:
    """The largest peak RSS among `pids` (MB), None where none could be read."""
    peak = max((_high_water_kb(pid) for pid in pids), default=0)
    return peak * 1024 / 1e6 if peak else None
