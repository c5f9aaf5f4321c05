"""CLIP image embedding speed in the browser (onnxruntime-web WASM, 1 and 2 threads) next to native
onnxruntime (Python, same threads) on the same files and the same PNG images.

    python bench/browser_vision.py [--artifacts DIR] [--model random-clip-vit-b32] [--variant int8] [--runs 15]

Without --artifacts the model is exported into a temporary folder first (random-clip-vit-b32:
the full ViT-B/32 architecture with random weights; pass --model tiny-random-clip for a quick run).
Browser: ms per image of engine.embedImages([png]) as the page sees it (PNG decode + PIL-exact
preprocessing + the vision tower + transfer), batch 1, after one warm-up; native: the HF image
processor + InferenceSession.run, and the run alone. Medians. JSON to bench/results/browser_vision.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from browser_support import CHROMIUM, CHROMIUM_ARGS, build_web, data_url, fixed_images, png_bytes  # noqa: E402
from contract.manifest import load_manifest  # noqa: E402
from exporter.progress import bar  # noqa: E402
from server_support import live_server  # noqa: E402

BROWSER_JS = """async ([id, variant, threads, urls, runs]) => {
  const load = await window.engine.load({clip: id}, {runtime: "wasm", threads, variant});
  await window.engine.embedImages([urls[0]]);  // warm-up
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await window.engine.embedImages([urls[i % urls.length]]);
    ms.push(performance.now() - t0);
  }
  return {ms, threads: load.threads, loadMs: load.loadMs};
}"""


def native(root: Path, model_id: str, variant: str, threads: int, runs: int) -> dict:
    import onnxruntime as ort
    from transformers import AutoImageProcessor

    entry = load_manifest(root).get(model_id)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(root / entry.variants[variant].files["vision_model"]), options,
                                   providers=["CPUExecutionProvider"])
    processor = AutoImageProcessor.from_pretrained(root / model_id, use_fast=False)
    images = fixed_images()
    session.run(None, {"pixel_values": processor(images=images[:1], return_tensors="np")["pixel_values"]})
    total, model = [], []
    for i in range(runs):
        t0 = time.perf_counter()
        pixels = processor(images=[images[i % len(images)]], return_tensors="np")["pixel_values"]
        t1 = time.perf_counter()
        session.run(None, {"pixel_values": pixels})
        t2 = time.perf_counter()
        total.append((t2 - t0) * 1000)
        model.append((t2 - t1) * 1000)
    return {"total_ms": statistics.median(total), "model_ms": statistics.median(model)}


def browser(url: str, model_id: str, variant: str, threads: int, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    urls = [data_url(png_bytes(img)) for img in fixed_images()]
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = chromium.new_page()
        page.set_default_timeout(600_000)
        page.goto(f"{url}/?autoload=0")
        page.evaluate("window.lumenReady")
        result = page.evaluate(BROWSER_JS, [model_id, variant, threads, urls, runs])
        chromium.close()
    return {"total_ms": statistics.median(result["ms"]), "threads": result["threads"], "load_ms": result["loadMs"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--model", default="random-clip-vit-b32")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "browser_vision.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
        root = args.artifacts or Path(tmp)
        entry = load_manifest(root).get(args.model)
        if entry is None or args.variant not in entry.variants:
            subprocess.run([sys.executable, "-m", "exporter", "clip", "--model", args.model, "--out", str(root),
                            "--variants", args.variant], cwd=REPO, check=True)
        build_web()
        rows = []
        with live_server(root, REPO / "web" / "dist") as (host, port), bar(4, "bench vision") as progress:
            for threads in (1, 2):
                web = browser(f"http://{host}:{port}", args.model, args.variant, threads, args.runs)
                progress.update(1)
                nat = native(root, args.model, args.variant, threads, args.runs)
                progress.update(1)
                rows.append({"threads": threads, "browser_ms": web["total_ms"], "browser_load_ms": web["load_ms"],
                             "native_ms": nat["total_ms"], "native_model_ms": nat["model_ms"]})

    print(f"\n{args.model} ({args.variant}), batch 1, median of {args.runs}, ms per image")
    print("| threads | browser WASM (decode+preprocess+run) | native ORT (processor+run) | native run only |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['browser_ms']:.1f} | {r['native_ms']:.1f} | {r['native_model_ms']:.1f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"model": args.model, "variant": args.variant, "runs": args.runs,
                                     "machine": platform.processor() or platform.machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
