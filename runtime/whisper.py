"""An exported Whisper (artifacts/<id>/...) in Python onnxruntime, as the browser runs it.

Same files and rules as web/src/engine/speech/: log-mel features from preprocessor_config.json
(Hugging Face's WhisperFeatureExtractor, numpy only), onnx/encoder_model*.onnx once per 30 s
window, onnx/decoder_model_merged*.onnx step by step with its KV cache (use_cache_branch false
on the first call, true after), greedy decoding by runtime/whisper_decode.py, text by tokenizer.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from runtime.whisper_decode import Decoded, DecodeRules, greedy, is_quiet

SAMPLE_RATE = 16_000
THREADS = 2


def log_mel(folder: Path, samples: np.ndarray) -> np.ndarray:
    """samples [N] float32 at 16 kHz -> input_features [1, n_mels, 3000] (padded/truncated to 30 s)."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor.from_pretrained(str(folder))
    features = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    return features.astype(np.float32)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Transcript:
    text: str
    decoded: Decoded


class OnnxWhisper:
    """Encoder + merged decoder sessions of one variant (batch 1)."""

    def __init__(self, folder: Path, encoder: Path, decoder: Path, threads: int = THREADS) -> None:
        self.folder = Path(folder)
        self.encoder = _session(encoder, threads)
        self.decoder = _session(decoder, threads)
        self.rules = DecodeRules.from_generation_config(self.folder / "generation_config.json")
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.past_names = [i.name for i in self.decoder.get_inputs() if i.name.startswith("past_key_values.")]
        self.output_names = [o.name for o in self.decoder.get_outputs()]
        first = next(i for i in self.decoder.get_inputs() if i.name.startswith("past_key_values."))
        self.heads, self.head_dim = int(first.shape[1]), int(first.shape[3])

    def encode(self, features: np.ndarray) -> np.ndarray:
        """input_features [1, n_mels, 3000] -> encoder_hidden_states [1, 1500, d_model]."""
        return self.encoder.run(None, {"input_features": features})[0]

    def decoder_stepper(self, hidden: np.ndarray):
        """A `step(new_ids) -> logits [S, V]` closure holding the KV cache (self and cross attention)."""
        past = {n: np.zeros((1, self.heads, 0, self.head_dim), np.float32) for n in self.past_names}
        state = {"first": True}

        def step(ids: list[int]) -> np.ndarray:
            feed = {
                "input_ids": np.array([ids], np.int64),
                "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([not state["first"]]),
                **past,
            }
            outputs = dict(zip(self.output_names, self.decoder.run(None, feed), strict=True))
            for name in self.past_names:
                # The cross-attention cache is computed on the first call only; later calls echo nothing new.
                if state["first"] or ".decoder." in name:
                    past[name] = outputs[name.replace("past_key_values.", "present.")]
            state["first"] = False
            return outputs["logits"][0]

        return step

    def transcribe_window(self, samples: np.ndarray) -> Transcript | None:
        """One window of at most 30 s; silence (no-speech rule) gives empty text; None when quiet (not decoded)."""
        if is_quiet(samples):
            return None
        hidden = self.encode(log_mel(self.folder, samples))
        decoded = greedy(self.decoder_stepper(hidden), self.rules)
        text = "" if decoded.is_silence else self.tokenizer.decode(decoded.tokens, skip_special_tokens=True).strip()
        return Transcript(text, decoded)


def variant_files(folder: Path, variant: str) -> tuple[Path, Path]:
    """The (encoder, decoder) files of a variant, from the manifest-independent export report."""
    report = json.loads((Path(folder) / "export-report.json").read_text(encoding="utf-8"))
    files = report["variants"][variant]["files"]
    return Path(folder) / files["encoder_model"]["path"], Path(folder) / files["decoder_model_merged"]["path"]
