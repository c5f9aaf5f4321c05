"""A decoder exported with KV cache, run step by step in Python onnxruntime (no torch: the Python references use it too)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

THREADS = 2


class OnnxDecoder:
    """One onnxruntime session of a decoder exported with KV cache (batch 1)."""

    def __init__(self, path: Path, threads: int = THREADS) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.past_names = [i.name for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        kv = next(i for i in self.session.get_inputs() if i.name.startswith("past_key_values."))
        self.kv_heads, self.head_dim = int(kv.shape[1]), int(kv.shape[3])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_names = {i.name for i in self.session.get_inputs()}  # Gemma 3 exports have no position_ids

    def empty_past(self) -> dict[str, np.ndarray]:
        return {n: np.zeros((1, self.kv_heads, 0, self.head_dim), np.float32) for n in self.past_names}

    def forward(self, ids: list[int], past: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """ids [S] after `past` (P cached positions) -> logits [S, V], the new past (P + S positions)."""
        start = next(iter(past.values())).shape[2]
        feed = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, start + len(ids)), np.int64),
            "position_ids": np.arange(start, start + len(ids), dtype=np.int64)[None],
            **past,
        }
        feed = {name: value for name, value in feed.items() if name in self.input_names}
        outputs = dict(zip(self.output_names, self.session.run(None, feed), strict=True))
        present = {n: outputs[n.replace("past_key_values.", "present.")] for n in self.past_names}
        return outputs["logits"][0], present

    def greedy(self, ids: list[int], n: int) -> tuple[list[int], float, float]:
        """n greedy tokens after ids; also prefill and decode seconds."""
        t0 = time.perf_counter()
        logits, past = self.forward(ids, self.empty_past())
        t1 = time.perf_counter()
        tokens = [int(logits[-1].argmax())]
        for _ in range(n - 1):
            logits, past = self.forward(tokens[-1:], past)
            tokens.append(int(logits[-1].argmax()))
        return tokens, t1 - t0, time.perf_counter() - t1
