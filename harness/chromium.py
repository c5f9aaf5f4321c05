"""How the system Chromium runs here (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# SwiftShader's software WebGPU adapter: correct but slow, so only tiny models go there.
WEBGPU_ARGS = [*CHROMIUM_ARGS, "--enable-unsafe-webgpu"]
