"""Report rows: one per (model, file, metric), every engine's summary side by side, and the two
ratios that matter, both as speed (higher = ours faster): browser / native on the same file, and
ours / Transformers.js on the same file, each at the native thread count; where wllama (llama.cpp
in WASM, on the source GGUF) ran, ours / wllama at each thread count both ran at; where ours ran under
a JSON schema, constrained / free at each thread count."""

from __future__ import annotations

from typing import NamedTuple

from bench.stats import speed_ratio


class Metric(NamedTuple):
    key: str
    label: str
    unit: str
    higher_is_better: bool


LLM_METRICS = (Metric("prefill_ms", "prefill", "ms", False), Metric("decode_tok_s", "decode", "tok/s", True))
CLIP_METRICS = (
    Metric("image_b1", "image, batch 1", "ms/item", False),
    Metric("image_b8", "image, batch 8", "ms/item", False),
    Metric("text_b1", "text, batch 1", "ms/item", False),
    Metric("text_b8", "text, batch 8", "ms/item", False),
    # Measured after the runs in the page (performance.measureUserAgentSpecificMemory: JS heaps +
    # WASM memory of page and worker), and the model bytes handed to onnxruntime after expansion.
    Metric("memory_mb", "memory after the runs (JS + WASM)", "MB", False),
    Metric("expanded_mb", "model bytes after fp32 expansion (both towers)", "MB", False),
)
LOAD_METRICS = (
    Metric("cold_ms", "cold (download)", "ms", False),
    Metric("warm_ms", "warm (cached)", "ms", False),
    Metric("peak_mb", "peak memory (renderer RSS)", "MB", False),
)


def metric_rows(
    section: str, model: str, file: str, engines: dict[str, dict | str], metrics: tuple[Metric, ...], threads: int
) -> list[dict]:
    """engines: name -> {metric key: summary} or a string saying why that engine has no number."""
    out = []
    for metric in metrics:
        values = {
            name: got[metric.key] for name, got in engines.items() if isinstance(got, dict) and got.get(metric.key)
        }
        missing = {name: got for name, got in engines.items() if isinstance(got, str)}
        ours = values.get(f"ours_wasm_{threads}t")
        out.append(
            {
                "section": section,
                "model": model,
                "file": file,
                "metric": metric.label,
                "unit": metric.unit,
                "higher_is_better": metric.higher_is_better,
                "values": values,
                "missing": missing,
                "ratios": {
                    "browser_vs_native": speed_ratio(
                        ours, values.get(f"native_ort_{threads}t"), metric.higher_is_better
                    ),
                    "ours_vs_transformers_js": speed_ratio(
                        ours, values.get(f"transformers_js_{threads}t"), metric.higher_is_better
                    ),
                    **_wllama_ratios(values, metric.higher_is_better),
                    **_constrained_ratios(values, metric.higher_is_better),
                },
            }
        )
    return out


def _wllama_ratios(values: dict, higher_is_better: bool) -> dict[str, float | None]:
    """ours_vs_wllama_<N>t for every thread count both engines ran at."""
    out = {}
    for name in values:
        if name.startswith("wllama_") and f"ours_wasm_{name.removeprefix('wllama_')}" in values:
            threads = name.removeprefix("wllama_")
            out[f"ours_vs_wllama_{threads}"] = speed_ratio(
                values[f"ours_wasm_{threads}"], values[name], higher_is_better
            )
    return out


def _constrained_ratios(values: dict, higher_is_better: bool) -> dict[str, float | None]:
    """constrained_vs_free_<N>t: ours under a JSON schema over ours free, same file and threads."""
    return {
        f"constrained_vs_free_{name.removeprefix('ours_wasm_').removesuffix('_json')}": speed_ratio(
            values[name], values[name.removesuffix("_json")], higher_is_better
        )
        for name in values
        if name.startswith("ours_wasm_") and name.endswith("_json") and name.removesuffix("_json") in values
    }
