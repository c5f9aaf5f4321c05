"""LLM prefill and decode speed in the browser (onnxruntime-web WASM, 1 and 2 threads) next to native
onnxruntime (Python, same threads) on the same ONNX files.

    python bench/browser_llm.py [--artifacts DIR] [--model smollm2] [--variants q8,q4] [--runs 5] [--tokens 64]

Without --artifacts the model is exported into a temporary folder first (SmolLM2: about 2-3
minutes). Every configuration gets one warm-up run, then --runs timed runs; the table shows medians.
Prefill: the chat prompt in one forward pass (ms, and prompt tokens/s). Decode: tokens after the
first, over their time (greedy). The browser numbers are the engine's own (usage.extra of
engine.chat.completions.create), measured in the worker around session.run and sampling; the
native loop is exporter.llm_fidelity.OnnxDecoder, fed the same prompt ids. JSON goes to
bench/results/browser_llm.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from browser_support import CHROMIUM, CHROMIUM_ARGS, build_web  # noqa: E402
from exporter.llm_fidelity import OnnxDecoder  # noqa: E402
from exporter.progress import bar  # noqa: E402
from server_support import live_server  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]

RUN_JS = """async ([id, variant, threads, tokens, runs, expandWeights]) => {
  const load = await window.engine.loadChat(id, { runtime: 'wasm', threads, variant, expandWeights });
  const request = { messages: %s, max_tokens: tokens, temperature: 0 };
  const warm = await window.engine.chat.completions.create(request);
  const results = [];
  for (let i = 0; i < runs; i++) {
    const r = await window.engine.chat.completions.create(request);
    results.push({ ...r.usage.extra, completion_tokens: r.usage.completion_tokens });
  }
  return { load, prompt: warm.prompt_token_ids, results, isolated: self.crossOriginIsolated };
}""" % json.dumps(PROMPT)


def export(out: Path, model: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "exporter", "llm", "--model", model, "--out", str(out), "--no-mlc"],
                          cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"export of {model} failed ({proc.returncode})")


def browser_runs(url: str, model: str, variant: str, threads: int, tokens: int, runs: int, expand: bool) -> dict:
    """One fresh page per configuration: onnxruntime-web's thread count is fixed per worker."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(f"{url}/?autoload=0")
            page.wait_for_function("window.lumenReady !== undefined")
            page.evaluate("window.lumenReady")
            out = page.evaluate(RUN_JS, [model, variant, threads, tokens, runs, expand])
        finally:
            browser.close()
    if out["load"]["threads"] != threads:
        raise SystemExit(f"asked for {threads} WASM threads, got {out['load']['threads']} "
                         f"(crossOriginIsolated={out['isolated']}): the server must send COOP/COEP")
    return out


def native_runs(model_file: Path, prompt: list[int], threads: int, tokens: int, runs: int) -> list[dict]:
    decoder = OnnxDecoder(model_file, threads=threads)
    decoder.greedy(prompt, tokens)  # warm-up: first runs allocate and pre-pack weights
    results = []
    for _ in range(runs):
        _, prefill_s, decode_s = decoder.greedy(prompt, tokens)
        results.append({"prefill_ms": prefill_s * 1000, "prefill_tokens_per_s": len(prompt) / prefill_s,
                        "decode_tokens_per_s": (tokens - 1) / decode_s, "completion_tokens": tokens})
    return results


def summarize(results: list[dict]) -> dict:
    keys = ("prefill_ms", "prefill_tokens_per_s", "decode_tokens_per_s")
    return {k: statistics.median(r[k] for r in results) for k in keys} | {
        "decode_tokens": statistics.median(r["completion_tokens"] - 1 for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, help="artifact folder that already holds the model")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--variants", help="comma-separated variant names (default: all the manifest lists)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per run (default 64)")
    parser.add_argument("--expand", action=argparse.BooleanOptionalAction, default=True,
                        help="browser: expand MatMulNBits weights to fp32 at load (the engine's default on WASM)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "browser_llm.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.artifacts or Path(tmp)
        if args.artifacts is None:
            export(root, args.model)
        manifest = json.loads((root / "manifest.json").read_text())
        entry = next(m for m in manifest["models"] if m["id"] == args.model)
        variants = args.variants.split(",") if args.variants else list(entry["variants"])
        thread_counts = [int(t) for t in args.threads.split(",")]
        rows = []
        with live_server(root, build_web()) as (host, port), \
                bar(len(variants) * len(thread_counts), "[bench] browser + native", unit="config") as progress:
            for variant in variants:
                model_file = root / next(p for p in entry["variants"][variant]["files"].values() if p.endswith(".onnx"))
                for threads in thread_counts:
                    web = browser_runs(f"http://{host}:{port}", args.model, variant, threads, args.tokens, args.runs,
                                       args.expand)
                    native = native_runs(model_file, web["prompt"], threads, args.tokens, args.runs)
                    rows.append({"variant": variant, "file": model_file.name, "threads": threads,
                                 "prompt_tokens": len(web["prompt"]), "browser": summarize(web["results"]),
                                 "native": summarize(native), "browser_runs": web["results"], "native_runs": native,
                                 "browser_runtime": web["load"]["llm"]["runtime"],
                                 "browser_load_ms": web["load"]["loadMs"]})
                    progress.update(1)

    report = {"model": args.model, "runs": args.runs, "tokens": args.tokens, "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "platform": platform.platform(), "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))

    print(f"\n{args.model}, greedy, {args.tokens} new tokens, medians of {args.runs} runs after a warm-up "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    head = f"{'variant':8} {'file':24} {'thr':>3} | {'browser prefill':>15} {'decode':>10} | " \
           f"{'native prefill':>14} {'decode':>10} | {'decode ratio':>12}"
    print(head)
    print("-" * len(head))
    for r in rows:
        b, n = r["browser"], r["native"]
        print(f"{r['variant']:8} {r['file']:24} {r['threads']:>3} | "
              f"{b['prefill_ms']:>12.0f} ms {b['decode_tokens_per_s']:>6.1f} t/s | "
              f"{n['prefill_ms']:>11.0f} ms {n['decode_tokens_per_s']:>6.1f} t/s | "
              f"{b['decode_tokens_per_s'] / n['decode_tokens_per_s']:>11.0%}")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
