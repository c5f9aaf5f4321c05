"""Whisper greedy decoding rules, shared by every runner (PyTorch, onnxruntime) and mirrored in the browser.

The rules are CTranslate2's (src/models/whisper.cc) for a prompt that ends in <|notimestamps|>:
  - prompt [<|startoftranscript|>, <|notimestamps|>] (English-only models have no language/task tokens)
  - every step: generation_config.suppress_tokens get -inf; the first step also begin_suppress_tokens
  - greedy argmax until <|endoftext|>, at most min(max_length / 2, max_length - len(prompt)) tokens
  - no_speech_prob = softmax(logits after <|startoftranscript|>)[no-speech token], on raw logits
Silence detection then follows openai-whisper / faster-whisper: a window is silent when
no_speech_prob > NO_SPEECH_THRESHOLD and the average log-probability of its tokens < LOGPROB_THRESHOLD.
That rule empties sine and noise windows, but on digital silence tiny.en says "you" confidently
(avg log-prob -0.76 with Hugging Face's features; faster-whisper's own features happen to give a
low-probability "." there instead). So a window whose RMS is below QUIET_RMS (-80 dBFS) is empty
before any decoding: an energy gate, the simplest voice-activity check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
QUIET_RMS = 1e-4


def is_quiet(samples: np.ndarray) -> bool:
    """No signal at all (RMS below -80 dBFS): nothing to transcribe."""
    return samples.size == 0 or float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < QUIET_RMS


@dataclass(frozen=True)
class DecodeRules:
    prompt: tuple[int, ...]
    eot: int
    no_speech: int
    suppress: tuple[int, ...]
    begin_suppress: tuple[int, ...]
    max_length: int  # total decoder positions (448)

    @property
    def max_new_tokens(self) -> int:
        return min(self.max_length // 2, self.max_length - len(self.prompt))

    @classmethod
    def from_generation_config(cls, path: Path) -> DecodeRules:
        """From the exported generation_config.json (written by exporter/whisper/hf_files.py)."""
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        prompt = (config["decoder_start_token_id"], *(tok for _, tok in sorted(config.get("forced_decoder_ids") or [])))
        max_length = int(config.get("max_length", 448))
        return cls(
            prompt=tuple(int(t) for t in prompt),
            eot=int(config["eos_token_id"]),
            no_speech=int(config["no_speech_token_id"]),
            suppress=tuple(int(t) for t in config.get("suppress_tokens") or ()),
            begin_suppress=tuple(int(t) for t in config.get("begin_suppress_tokens") or ()),
            max_length=max_length,
        )


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]  # generated text tokens, without <|endoftext|>
    logprobs: list[float]  # log-probability of each generated token (and of <|endoftext|> when reached)
    no_speech_prob: float

    @property
    def avg_logprob(self) -> float:
        return float(np.mean(self.logprobs)) if self.logprobs else 0.0

    @property
    def is_silence(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob < LOGPROB_THRESHOLD


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max()
    return shifted - np.log(np.exp(shifted).sum())


def greedy(step: Callable[[list[int]], np.ndarray], rules: DecodeRules, max_new_tokens: int | None = None) -> Decoded:
    """`step(new_ids)` feeds tokens after those already fed and returns logits [len(new_ids), V].

    `max_new_tokens` caps the rules' limit (untrained test models never say <|endoftext|>).
    """
    logits = step(list(rules.prompt))
    no_speech = float(np.exp(_log_softmax(logits[0])[rules.no_speech]))  # position of <|startoftranscript|>
    last = logits[-1]
    tokens: list[int] = []
    logprobs: list[float] = []
    for i in range(min(rules.max_new_tokens, max_new_tokens or rules.max_new_tokens)):
        masked = last.astype(np.float32).copy()
        masked[list(rules.suppress)] = -np.inf
        if i == 0:
            masked[list(rules.begin_suppress)] = -np.inf
        token = int(masked.argmax())
        logprobs.append(float(_log_softmax(masked)[token]))
        if token == rules.eot:
            break
        tokens.append(token)
        last = step([token])[-1]
    return Decoded(tokens, logprobs, no_speech)
