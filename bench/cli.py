"""`python -m bench [--quick] [--only llm,clip,load,sizes,server,speech]`: every engine on the same files,
same machine, one run; JSON + Markdown + PNG into bench/results/, the tables printed.

Exit codes: 0 done, 2 bad input or a benchmark that cannot run (the message says how to fix it)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.plan import RESULTS, SECTIONS, Plan, ensure_models, make_plan
from contract.errors import LumenError


def _sections(text: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [t for t in items if t not in SECTIONS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SECTIONS)} (comma-separated), got {text!r}")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny random models, one iteration (about a minute); numbers mean nothing",
    )
    parser.add_argument(
        "--only", type=_sections, default=SECTIONS, help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--runs", type=int, help="timed iterations after the warm-up (default 5; --quick 1)")
    parser.add_argument(
        "--artifacts",
        type=Path,
        help="artifact folder to export into / reuse (default bench/results/artifacts[-quick])",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where bench.{json,md,png} go (default bench/results)"
    )
    return parser


def _measure(plan: Plan, results: dict) -> None:
    from bench import clip, llm, load, server, sizes, speech, transformers_js, wllama
    from bench.browser import chromium, live_server, web_bundle, webgpu_adapter

    llm_entry, clip_entry = ensure_models(plan)
    speech_entry = (
        speech.ensure_model(plan) if "speech" in plan.sections else None
    )  # before the server reads the manifest
    sections = results["sections"]
    if "sizes" in plan.sections:
        sections["sizes"] = sizes.run([e for e in (llm_entry, clip_entry) if e], plan.llm_source)
    browser_sections = [s for s in ("llm", "clip", "load", "speech") if s in plan.sections]
    if browser_sections:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lumen-bench-peer-")))
            dist, results["config"]["web_bundle"] = web_bundle()
            host, port = stack.enter_context(live_server(plan.artifacts, dist))
            peer_root = transformers_js.assemble(tmp)
            gguf = wllama.gguf_for(plan.llm_source)
            wllama.assemble(peer_root, None if isinstance(gguf, str) else gguf)
            peer_host, peer_port = stack.enter_context(live_server(plan.artifacts, peer_root))
            ours_url, peer_url = f"http://{host}:{port}", f"http://{peer_host}:{peer_port}"
            results["config"]["transformers_js"] = transformers_js.library_version()
            results["config"]["wllama"] = wllama.library_version()
            adapter = webgpu_adapter(f"{ours_url}/?autoload=0")
            results["webgpu"] = adapter | {
                "summary": (
                    "a real GPU adapter was found, but this version measures WASM only"
                    if adapter["real_gpu"]
                    else f"no real GPU here ({adapter.get('why') or 'software adapter: ' + str(adapter['adapter'])}), "
                    "WebGPU speed is not measured and no WebGPU claims are made"
                )
            }
            browser = stack.enter_context(chromium())
            if "llm" in plan.sections and llm_entry:  # ensure_models exported what the sections need
                sections["llm"] = llm.run(plan, llm_entry, ours_url, peer_url, browser)
            if "clip" in plan.sections and clip_entry:
                sections["clip"] = clip.run(plan, clip_entry, ours_url, peer_url, browser)
            if "load" in plan.sections:
                sections["load"] = load.run(plan, llm_entry, clip_entry, ours_url, peer_url, browser)
            if "speech" in plan.sections and speech_entry:
                sections["speech"] = speech.run(plan, speech_entry, ours_url, peer_url, browser)
    if "server" in plan.sections:
        sections["server"] = server.run(plan)
    if clip_entry is not None:
        results["config"]["clip_default"] = clip_entry.defaults["wasm"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs is not None and args.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return 2
    from bench import machine, plot, report
    from bench.browser import CHROMIUM

    plan = make_plan(args.quick, args.only, args.artifacts, args.runs)
    started = time.time()
    results: dict = {
        "machine": machine.describe(CHROMIUM),
        "config": {
            "quick": plan.quick,
            "runs": plan.runs,
            "min_runs": plan.min_runs,
            "budget_s": plan.budget_ms / 1000,
            "sections": list(plan.sections),
            "llm": plan.llm_id,
            "clip": plan.clip_id,
            "command": "python -m bench" + (" --quick" if plan.quick else ""),
        },
        "webgpu": {"summary": "not probed (no browser section ran)"},
        "sections": {},
    }
    try:
        _measure(plan, results)
    except LumenError as err:  # BenchError, or an export the plan asked for
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    results["machine"]["load_average_end"] = machine.load_average()
    results["seconds"] = round(time.time() - started, 1)
    results["goals"] = report.goals(results)
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot.draw(results, args.out / "bench.png")
    json_path, md_path = report.write(results, args.out, png)
    print(report.markdown(results, None))
    print(f"wrote {json_path}, {md_path}, {png} in {results['seconds']:.0f} s", file=sys.stderr)
    return 0
