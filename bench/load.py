"""Time to first answer as a user meets it, from navigation start: cold (fresh browser profile, so
every file is downloaded over loopback, verified and compiled) and warm (the same profile reloaded,
files from the browser's cache / OPFS). Lumen and Transformers.js on the same files, wllama (llama.cpp
in WASM) on the GGUF the default LLM comes from; 2 WASM threads.

Memory: the peak resident memory of the page's renderer process over the cold and the warm load
(bench/memory.py)."""

from __future__ import annotations

from pathlib import Path

from bench import memory, rows
from bench import wllama as wllama_peer
from bench.browser import READY_MS, Browser, evaluate, image_urls, or_reason
from bench.plan import CHAT, LABELS, BenchError, Plan
from bench.stats import summarize
from contract.manifest import ModelEntry
from runtime.progress import bar

OURS_CLIP_JS = """async ([id, variant, threads, url, labels]) => {
  await window.lumenReady;
  await window.engine.load({ clip: id }, { runtime: 'wasm', threads, variant });
  const ranked = await window.engine.classify({ images: [url], labels });
  if (!ranked[0].length) throw new Error('no classification');
  return performance.now();
}"""
OURS_CHAT_JS = """async ([id, variant, threads, messages]) => {
  await window.lumenReady;
  const load = await window.engine.loadChat(id, { runtime: 'wasm', threads, variant });
  const r = await window.engine.chat.completions.create({ messages, max_tokens: 1, temperature: 0 });
  if (r.usage.completion_tokens !== 1) throw new Error('no token');
  return { at: performance.now(), steps: load.llm.loadSteps };
}"""
# The engine's own split of an LLM load (web/src/engine/llm/onnx_chat_model.ts loadSteps): the profile.
LOAD_STEPS = ("read", "tokenizer", "expand", "session", "grammar")
STEP_METRICS = tuple(rows.Metric(f"warm_{s}_ms", f"warm load step: {s}", "ms", False) for s in LOAD_STEPS)
WLLAMA_CHAT_JS = """async ([messages, threads]) => {
  await window.wllamaPeer.firstChatToken(messages, threads);
  return performance.now();
}"""
PEER_CLIP_JS = """async ([id, files, url, labels]) => {
  await window.peer.firstClassification(id, files, url, labels);
  return performance.now();
}"""
PEER_CHAT_JS = """async ([id, file, messages]) => {
  await window.peer.firstChatToken(id, file, messages);
  return performance.now();
}"""


def _cold_warm(browser: Browser, url: str, ready: str, script: str, args: list, runs: int) -> dict:
    """Per run: a fresh context (cold), then the same page reloaded (warm); ms since navigation start,
    and the page's peak memory (MB) over both."""
    cold: list[float] = []
    warm: list[float] = []
    peaks: list[float] = []
    steps: dict[str, list[float]] = {}
    for _ in range(runs):
        before = memory.renderers(browser)
        with browser.context() as context:
            page = browser.open(context, url, ready)
            cold.append(_at(evaluate(page, script, args), {}))
            page.reload()
            page.wait_for_function(ready, timeout=READY_MS)
            warm.append(_at(evaluate(page, script, args), steps))
            peak = memory.peak_mb(memory.renderers(browser) - before)
            if peak is None:
                raise BenchError("no renderer process to measure", fix="run the benchmark on Linux (/proc)")
            peaks.append(peak)
    by_step = {f"warm_{name}_ms": summarize(ms) for name, ms in steps.items()}
    return {"cold_ms": summarize(cold), "warm_ms": summarize(warm), "peak_mb": summarize(peaks)} | by_step


def _at(answer: float | dict, steps: dict[str, list[float]]) -> float:
    """The answer's time; a script that also reports load steps adds them to `steps`."""
    if isinstance(answer, dict):
        for name, ms in (answer.get("steps") or {}).items():
            steps.setdefault(name, []).append(ms)
        return answer["at"]
    return answer


def run(
    plan: Plan, llm: ModelEntry | None, clip: ModelEntry | None, ours_url: str, peer_url: str, browser: Browser
) -> dict:
    threads = plan.native_threads
    runs = min(plan.runs, 3)  # each cold run downloads the model again
    ours_ready, peer_ready = "window.lumenReady !== undefined", "window.peer !== undefined"
    ours_page, peer_page = f"{ours_url}/?autoload=0", f"{peer_url}/?threads={threads}&cache=1"
    table: list[dict] = []
    with bar(3 * (llm is not None) + 2 * (clip is not None), "[bench] load", unit="config") as progress:
        if clip is not None:
            variant = clip.defaults["wasm"]
            files = clip.variants[variant].files
            stems = {"vision": Path(files["vision_model"]).stem, "text": Path(files["text_model"]).stem}
            image = image_urls()[0]
            engines: dict[str, dict | str] = {
                f"ours_wasm_{threads}t": _cold_warm(
                    browser,
                    ours_page,
                    ours_ready,
                    OURS_CLIP_JS,
                    [plan.clip_id, variant, threads, image, list(LABELS)],
                    runs,
                )
            }
            progress.update(1)
            engines[f"transformers_js_{threads}t"] = or_reason(
                lambda: _cold_warm(
                    browser, peer_page, peer_ready, PEER_CLIP_JS, [plan.clip_id, stems, image, list(LABELS)], runs
                )
            )
            progress.update(1)
            table += rows.metric_rows(
                "load", plan.clip_id, f"first classification, {variant} (default)", engines, rows.LOAD_METRICS, threads
            )
        if llm is not None:
            variant = llm.defaults["wasm"]
            stem = Path(llm.variants[variant].files["model"]).stem
            engines = {
                f"ours_wasm_{threads}t": _cold_warm(
                    browser, ours_page, ours_ready, OURS_CHAT_JS, [plan.llm_id, variant, threads, CHAT], runs
                )
            }
            progress.update(1)
            engines[f"transformers_js_{threads}t"] = or_reason(
                lambda: _cold_warm(browser, peer_page, peer_ready, PEER_CHAT_JS, [plan.llm_id, stem, CHAT], runs)
            )
            progress.update(1)
            gguf = wllama_peer.gguf_for(plan.llm_source)
            engines[f"wllama_{threads}t"] = (
                gguf
                if isinstance(gguf, str)
                else or_reason(
                    lambda: _cold_warm(
                        browser,
                        f"{peer_url}/wllama.html",
                        "window.wllamaPeer !== undefined",
                        WLLAMA_CHAT_JS,
                        [CHAT, threads],
                        runs,
                    )
                )
            )
            progress.update(1)
            table += rows.metric_rows(
                "load",
                plan.llm_id,
                f"first chat token, {variant} (default)",
                engines,
                rows.LOAD_METRICS + STEP_METRICS,
                threads,
            )
    return {"runs": runs, "rows": table}
