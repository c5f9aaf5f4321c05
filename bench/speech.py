"""Whisper real-time factor (seconds of compute per second of audio; lower is faster) on the same
espeak-ng clips: Lumen's browser engine (WASM, 1 and 2 threads), Transformers.js's
automatic-speech-recognition pipeline on the same ONNX files in the same Chromium, native
onnxruntime (runtime/whisper.py, the browser's algorithm), ctranslate2 on the CTranslate2 model
and faster-whisper (greedy, no timestamps). Each number covers log-mel features, encoder and
greedy decoding of one clip (audio decoding excluded: every engine gets 16 kHz float samples)."""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from bench import rows
from bench.browser import Browser, evaluate, or_reason
from bench.plan import Plan, _export
from bench.stats import summarize
from contract.manifest import ModelEntry, load_manifest
from runtime.progress import bar, step

METRICS = (rows.Metric("rtf", "real-time factor", "s/s", False),)
OURS_JS = """async ([id, variant, threads, clips, runs]) => {
  const load = await window.engine.loadSpeech(id, { runtime: 'wasm', threads, variant });
  const rtf = [];
  const texts = [];
  await window.engine.transcribe({ audio: Float32Array.from(clips[0]) });  // warm-up
  for (let r = 0; r < runs; r++) for (const c of clips) {
    const out = await window.engine.transcribe({ audio: Float32Array.from(c) });
    rtf.push(out.computeMs / 1000 / out.durationSeconds);
    texts.push(out.text);
  }
  return { rtf, texts, threads: load.threads };
}"""
PEER_JS = "([id, dtype, clips, runs]) => window.peer.asr(id, dtype, clips, runs)"
# Transformers.js dtype for each of our variants' file suffix.
PEER_DTYPES = {"fp32": "fp32", "int8": "q8", "q4": "q4"}


def ensure_model(plan: Plan) -> ModelEntry:
    entry = load_manifest(plan.artifacts).get(plan.speech_id)
    if entry is None:
        with step(f"[bench] export {plan.speech_id} (once; reused from {plan.artifacts})"):
            _export(plan, ["whisper", "--model", plan.speech_id, "--variants", "fp32,int8"])
        entry = load_manifest(plan.artifacts).get(plan.speech_id)
    assert entry is not None
    return entry


def _clips(folder: Path) -> list[tuple[str, np.ndarray]]:
    from exporter.whisper.clips import make_clips, read_wav

    return [(c.name, read_wav(c.path)) for c in make_clips(folder) if c.text]


def _timed_rtf(fn, clips: list[tuple[str, np.ndarray]], runs: int) -> dict:
    fn(clips[0][1])  # warm-up
    samples = []
    for _ in range(runs):
        for _, audio in clips:
            t0 = time.perf_counter()
            fn(audio)
            samples.append((time.perf_counter() - t0) / (len(audio) / 16_000))
    return {"rtf": summarize(samples)}


def native(root: Path, files: dict[str, str], threads: int, clips, runs: int) -> dict:
    from runtime.whisper import OnnxWhisper

    folder = root / files["encoder_model"].split("/", 1)[0]  # logical paths start with the model id
    model = OnnxWhisper(folder, root / files["encoder_model"], root / files["decoder_model_merged"], threads=threads)
    return _timed_rtf(model.transcribe_window, clips, runs)


def ctranslate2_engine(folder: Path, exported: Path, threads: int, clips, runs: int) -> dict:
    """ctranslate2 on the original model.bin, fed the exported preprocessor's features and prompt."""
    from exporter.whisper.parity import Ct2Whisper
    from runtime.whisper import log_mel
    from runtime.whisper_decode import DecodeRules

    model = Ct2Whisper(folder, threads=threads)
    prompt = list(DecodeRules.from_generation_config(exported / "generation_config.json").prompt)

    def run(audio: np.ndarray) -> None:
        features = log_mel(exported, audio)
        model.model.generate(model.ct2.StorageView.from_array(features), [prompt], beam_size=1)

    return _timed_rtf(run, clips, runs)


def faster_whisper_engine(folder: Path, threads: int, clips, runs: int) -> dict:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(folder), device="cpu", compute_type="float32", cpu_threads=threads)

    def run(audio: np.ndarray) -> None:
        segments, _ = model.transcribe(
            audio,
            beam_size=1,
            language="en",
            without_timestamps=True,
            condition_on_previous_text=False,
            temperature=0.0,
        )
        list(segments)

    return _timed_rtf(run, clips, runs)


def run(plan: Plan, entry: ModelEntry, ours_url: str, peer_url: str, browser: Browser) -> dict:
    variants = plan.variants(entry)
    table: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lumen-bench-clips-") as tmp:
        # --quick: one clip (an untrained model never says <|endoftext|>: 224 tokens per clip per engine)
        clips = _clips(Path(tmp))[: 1 if plan.quick else None]
        wire = [audio.tolist() for _, audio in clips]
        with bar(len(variants) * (len(plan.threads) + 2) + 2, "[bench] speech", unit="config") as progress:
            for variant in variants:
                files = entry.variants[variant].files
                engines: dict[str, dict | str] = {}
                for threads in plan.threads:
                    engines[f"ours_wasm_{threads}t"] = or_reason(
                        partial(_ours, browser, ours_url, entry.id, variant, threads, wire, plan.runs)
                    )
                    progress.update(1)
                engines[f"transformers_js_{plan.native_threads}t"] = or_reason(
                    partial(
                        _peer, browser, peer_url, entry.id, PEER_DTYPES[variant], plan.native_threads, wire, plan.runs
                    )
                )
                progress.update(1)
                engines[f"native_ort_{plan.native_threads}t"] = native(
                    plan.artifacts, files, plan.native_threads, clips, plan.runs
                )
                progress.update(1)
                label = f"{variant} ({Path(files['encoder_model']).name}, {Path(files['decoder_model_merged']).name})"
                table += rows.metric_rows("speech", entry.id, label, engines, METRICS, plan.native_threads)
            ct2 = _ct2_folder(entry)
            peers: dict[str, dict | str] = {}
            if ct2 is None:
                peers["ctranslate2"] = peers["faster_whisper"] = "no CTranslate2 model for this source"
            else:
                peers[f"ctranslate2_{plan.native_threads}t"] = ctranslate2_engine(
                    ct2, plan.artifacts / entry.id, plan.native_threads, clips, plan.runs
                )
                progress.update(1)
                peers[f"faster_whisper_{plan.native_threads}t"] = faster_whisper_engine(
                    ct2, plan.native_threads, clips, plan.runs
                )
                progress.update(1)
        table += rows.metric_rows(
            "speech", entry.id, "original CTranslate2 model.bin (float32 compute)", peers, METRICS, plan.native_threads
        )
    return {"rows": table, "clips": [name for name, _ in clips]}


def _ct2_folder(entry: ModelEntry) -> Path | None:
    if entry.source == "whisper-tiny.en":
        from exporter.whisper.sources import packaged_model_dir

        return packaged_model_dir()
    source = Path(entry.source)
    return source if (source / "model.bin").is_file() else None


def _ours(browser: Browser, url: str, model_id: str, variant: str, threads: int, clips: list, runs: int) -> dict:
    with browser.context() as context:
        page = browser.open(context, f"{url}/?autoload=0", "window.lumenReady !== undefined")
        page.evaluate("window.lumenReady")
        out = evaluate(page, OURS_JS, [model_id, variant, threads, clips, runs])
    return {"rtf": summarize(out["rtf"])}


def _peer(browser: Browser, url: str, model_id: str, dtype: str, threads: int, clips: list, runs: int) -> dict:
    with browser.context() as context:
        page = browser.open(context, f"{url}/?threads={threads}&cache=0", "window.peer !== undefined")
        out = evaluate(page, PEER_JS, [model_id, dtype, clips, runs])
    return {"rtf": summarize(out["rtf"])}
