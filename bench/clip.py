"""CLIP ms per image and per text, batch 1 and 8: Lumen's browser engine (WASM, 1 and 2 threads),
Transformers.js in the same Chromium, native onnxruntime on the same files, PyTorch fp32.

Every engine starts from the same PNG bytes and strings, so each number includes image decode,
preprocessing (resize, crop, normalize) or tokenization, and the tower: what a caller waits for."""

from __future__ import annotations

import base64
import io
from functools import partial
from pathlib import Path

import numpy as np

from bench import rows
from bench.browser import Browser, evaluate, image_urls, or_reason
from bench.plan import TEXTS, Plan
from bench.stats import summarize, time_ms
from contract.manifest import ModelEntry
from runtime.progress import bar

OURS_JS = """async ([id, variant, threads, urls, texts, batches, runs, minRuns, budgetMs, expandWeights]) => {
  const load = await window.engine.load({ clip: id }, { runtime: 'wasm', threads, variant, expandWeights });
  const pick = (list, n, i) => Array.from({ length: n }, (_, k) => list[(i + k) % list.length]);
  async function perItem(fn, list, n) {
    await fn(pick(list, n, 0));  // warm-up
    const ms = [];
    const start = performance.now();
    for (let i = 0; i < runs && (i < minRuns || performance.now() - start < budgetMs); i++) {
      const batch = pick(list, n, i + 1);
      const t0 = performance.now();
      await fn(batch);
      ms.push((performance.now() - t0) / n);
    }
    return ms;
  }
  const out = { image: {}, text: {}, threads: load.threads, loadMs: load.loadMs };
  for (const n of batches) {
    out.image[n] = await perItem((b) => window.engine.embedImages(b), urls, n);
    out.text[n] = await perItem((b) => window.engine.embedTexts(b), texts, n);
  }
  // After the runs: the WASM memory never shrinks, so its size now is its peak; the JS heap part is
  // a sample (the downloaded and expanded model bytes are garbage by now). Page + worker, all agents.
  const measure = performance.measureUserAgentSpecificMemory;
  out.memoryMb = crossOriginIsolated && measure ? (await measure.call(performance)).bytes / 2 ** 20 : null;
  const expanded = load.clip.expanded;
  out.expandedMb = expanded ? expanded.modelBytes / 2 ** 20 : null;
  return out;
}"""
PEER_JS = (
    "([id, files, urls, texts, batches, runs, minRuns, budgetMs]) => "
    "window.peer.clip(id, files, urls, texts, batches, runs, minRuns, budgetMs)"
)


def _browser_summary(out: dict, batches: tuple[int, ...]) -> dict:
    summary = {f"{kind}_b{n}": summarize(out[kind][str(n)]) for kind in ("image", "text") for n in batches}
    for key, metric in (("memoryMb", "memory_mb"), ("expandedMb", "expanded_mb")):
        if out.get(key) is not None:
            summary[metric] = summarize([out[key]])
    return summary


def ours(
    browser: Browser, url: str, plan: Plan, variant: str, threads: int, urls: list[str], expand: bool | None = None
) -> dict:
    """`expand` None: as the manifest says for WASM; True / False: expanded / the files as downloaded."""
    with browser.context() as context:
        page = browser.open(context, f"{url}/?autoload=0", "window.lumenReady !== undefined")
        page.evaluate("window.lumenReady")
        out = evaluate(
            page,
            OURS_JS,
            [
                plan.clip_id,
                variant,
                threads,
                urls,
                list(TEXTS),
                list(plan.batches),
                plan.runs,
                plan.min_runs,
                plan.budget_ms,
                expand,
            ],
        )
    if out["threads"] != threads:
        raise AssertionError(f"asked for {threads} WASM threads, got {out['threads']}: no COOP/COEP?")
    return _browser_summary(out, plan.batches)


def peer(browser: Browser, url: str, plan: Plan, files: dict[str, str], threads: int, urls: list[str]) -> dict:
    with browser.context() as context:
        page = browser.open(context, f"{url}/?threads={threads}&cache=0", "window.peer !== undefined")
        out = evaluate(
            page,
            PEER_JS,
            [plan.clip_id, files, urls, list(TEXTS), list(plan.batches), plan.runs, plan.min_runs, plan.budget_ms],
        )
    return _browser_summary(out, plan.batches)


class _Inputs:
    """The same PNGs and strings the browsers get, prepared the way Python callers would."""

    def __init__(self, root: Path, model_id: str, urls: list[str]) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        self.pngs = [base64.b64decode(u.split(",", 1)[1]) for u in urls]
        self.processor = AutoImageProcessor.from_pretrained(root / model_id, use_fast=False)
        self.tokenizer = AutoTokenizer.from_pretrained(root / model_id)

    def pixels(self, n: int, i: int) -> np.ndarray:
        """[n, 3, H, W] float32 from PNG bytes (decode + resize + crop + normalize)."""
        from PIL import Image

        images = [Image.open(io.BytesIO(self.pngs[(i + k) % len(self.pngs)])).convert("RGB") for k in range(n)]
        return self.processor(images=images, return_tensors="np")["pixel_values"]

    def tokens(self, n: int, i: int) -> dict[str, np.ndarray]:
        texts = [TEXTS[(i + k) % len(TEXTS)] for k in range(n)]
        return dict(self.tokenizer(texts, padding=True, return_tensors="np"))


def _per_item(fn, n: int, runs: int) -> dict:
    calls = iter(range(1 << 30))
    return summarize([ms / n for ms in time_ms(lambda: fn(n, next(calls)), runs)])


def native(root: Path, files: dict[str, str], threads: int, plan: Plan, inputs: _Inputs, expand: bool = False) -> dict:
    """`expand`: run the graphs the browser runs after expanding int8 weights (runtime/onnx_int8_expand.py)."""
    import onnx
    import onnxruntime as ort

    from runtime.onnx_int8_expand import expand_int8_weights

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1

    def session(role: str) -> ort.InferenceSession:
        path = str(root / files[role])
        model = expand_int8_weights(onnx.load(path)).model.SerializeToString() if expand else path
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    vision, text = session("vision_model"), session("text_model")
    text_inputs = {i.name for i in text.get_inputs()}
    out = {}
    for n in plan.batches:
        out[f"image_b{n}"] = _per_item(
            lambda n, i: vision.run(None, {"pixel_values": inputs.pixels(n, i)}), n, plan.runs
        )
        out[f"text_b{n}"] = _per_item(
            lambda n, i: text.run(
                None, {k: v.astype(np.int64) for k, v in inputs.tokens(n, i).items() if k in text_inputs}
            ),
            n,
            plan.runs,
        )
    return out


def pytorch(root: Path, model_id: str, plan: Plan, inputs: _Inputs) -> dict:
    """The same architecture (config.json) in PyTorch fp32; random weights: speed only."""
    import torch
    from transformers import AutoConfig, AutoModel

    torch.set_num_threads(plan.native_threads)
    model = AutoModel.from_config(AutoConfig.from_pretrained(root / model_id)).eval()

    @torch.inference_mode()
    def image(n: int, i: int) -> None:
        model.get_image_features(pixel_values=torch.from_numpy(inputs.pixels(n, i)))

    @torch.inference_mode()
    def text(n: int, i: int) -> None:
        model.get_text_features(**{k: torch.from_numpy(v) for k, v in inputs.tokens(n, i).items()})

    out = {}
    for n in plan.batches:
        out[f"image_b{n}"] = _per_item(image, n, plan.runs)
        out[f"text_b{n}"] = _per_item(text, n, plan.runs)
    return out


def run(plan: Plan, entry: ModelEntry, ours_url: str, peer_url: str, browser: Browser) -> dict:
    urls = image_urls()
    inputs = _Inputs(plan.artifacts, plan.clip_id, urls)
    variants = plan.variants(entry)
    table: list[dict] = []
    with bar(len(variants) * (len(plan.threads) + 4) + 1, "[bench] clip", unit="config") as progress:
        for variant in variants:
            files = entry.variants[variant].files
            expanded = "wasm" in entry.variants[variant].expand_weights
            engines: dict[str, dict | str] = {}
            for threads in plan.threads:
                engines[f"ours_wasm_{threads}t"] = ours(browser, ours_url, plan, variant, threads, urls)
                progress.update(1)
            if entry.variants[variant].dtype != "fp32":
                # The other form of the same files, so each run re-measures the manifest's choice (expanded
                # by default: as downloaded; as downloaded by default: expanded), and natively the expanded graph.
                n = plan.native_threads
                other = "as_downloaded" if expanded else "expanded"
                engines[f"ours_wasm_{n}t_{other}"] = ours(
                    browser, ours_url, plan, variant, n, urls, expand=not expanded
                )
                engines[f"native_ort_{n}t_expanded"] = native(plan.artifacts, files, n, plan, inputs, expand=True)
            progress.update(2)
            stems = {"vision": Path(files["vision_model"]).stem, "text": Path(files["text_model"]).stem}
            engines[f"transformers_js_{plan.native_threads}t"] = or_reason(
                partial(peer, browser, peer_url, plan, stems, plan.native_threads, urls)
            )
            progress.update(1)
            engines[f"native_ort_{plan.native_threads}t"] = native(
                plan.artifacts, files, plan.native_threads, plan, inputs
            )
            progress.update(1)
            label = f"{variant} ({Path(files['vision_model']).name}, {Path(files['text_model']).name})"
            table += rows.metric_rows("clip", plan.clip_id, label, engines, rows.CLIP_METRICS, plan.native_threads)
        torch_engine: dict[str, dict | str] = {"pytorch_fp32": pytorch(plan.artifacts, plan.clip_id, plan, inputs)}
        progress.update(1)
    table += rows.metric_rows(
        "clip", plan.clip_id, "PyTorch fp32 (same architecture)", torch_engine, rows.CLIP_METRICS, plan.native_threads
    )
    return {"rows": table}
