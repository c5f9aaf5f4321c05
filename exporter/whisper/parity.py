"""Every exported Whisper file against PyTorch (the converted weights) and CTranslate2 (the original model.bin).

On each test clip (exporter/whisper/clips.py), with features from the written preprocessor_config.json:
  encoder    cosine / max |diff| of last_hidden_state [1, 1500, d] vs PyTorch (onnx variants, ctranslate2)
  decoder    logits of every greedy step, teacher-forced in PyTorch on the runner's own tokens:
             max |diff| and argmax agreement (suppressed tokens excluded)
  transcript greedy text of PyTorch, ctranslate2 and each onnx variant under the same rules
             (runtime/whisper_decode.py); WER against the spoken sentence and against ctranslate2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exporter.whisper.clips import Clip, read_wav
from runtime.whisper import OnnxWhisper, log_mel
from runtime.whisper_decode import Decoded, DecodeRules, greedy, is_quiet

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

Step = Callable[[list[int]], np.ndarray]


@dataclass
class Run:
    """One runner on one clip: its decode, the logits it produced at each generation step, its text."""

    decoded: Decoded
    step_logits: np.ndarray  # [steps, V] logits that chose each generated token (and <|endoftext|>)
    text: str


def normalize(text: str) -> str:
    """Lowercase words without punctuation: what WER compares."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp or "<empty>"))


def _recording(step: Step, rules: DecodeRules) -> tuple[Step, list[np.ndarray]]:
    """Wraps a step so the logits row that chose each generated token is kept."""
    rows: list[np.ndarray] = []

    def wrapped(ids: list[int]) -> np.ndarray:
        logits = step(ids)
        rows.append(np.asarray(logits[-1], np.float32))
        return logits

    return wrapped, rows


def _text(tokenizer: WhisperTokenizerFast, decoded: Decoded) -> str:
    return "" if decoded.is_silence else tokenizer.decode(decoded.tokens, skip_special_tokens=True).strip()


def run_greedy(step: Step, rules: DecodeRules, tokenizer: WhisperTokenizerFast, cap: int | None = None) -> Run:
    wrapped, rows = _recording(step, rules)
    decoded = greedy(wrapped, rules, cap)
    return Run(decoded, np.stack(rows[: len(decoded.logprobs)]), _text(tokenizer, decoded))


class TorchWhisper:
    """The PyTorch reference: encoder once per clip, decoder re-run on the whole prefix each step (no cache)."""

    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        self.model = model

    def encode(self, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()

    def logits(self, hidden: np.ndarray, ids: list[int], last: int | None = None) -> np.ndarray:
        """ids [T] -> logits [T, V] (teacher forcing), or of the `last` positions only (cheaper)."""
        import torch

        with torch.no_grad():
            states = self.model.model.decoder(
                input_ids=torch.tensor([ids]), encoder_hidden_states=torch.from_numpy(hidden), use_cache=False
            ).last_hidden_state[0]  # [T, d]
            return self.model.proj_out(states[-(last or len(ids)) :]).numpy()

    def stepper(self, hidden: np.ndarray) -> Step:
        fed: list[int] = []

        def step(ids: list[int]) -> np.ndarray:
            fed.extend(ids)
            return self.logits(hidden, fed, last=len(ids))

        return step


class Ct2Whisper:
    """ctranslate2's own Whisper on the CTranslate2 folder, float32 compute (as on any CPU)."""

    def __init__(self, folder: Path, threads: int = 2) -> None:
        import ctranslate2

        self.ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(
            str(folder), device="cpu", compute_type="float32", intra_threads=threads
        )

    def encode(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.encode(self.ct2.StorageView.from_array(features), to_cpu=True))

    def generate(
        self, features: np.ndarray, rules: DecodeRules, tokenizer: WhisperTokenizerFast, cap: int | None = None
    ) -> Run:
        # suppress_tokens [-1] and suppress_blank apply config.json's lists, the same ones generation_config carries.
        result = self.model.generate(
            self.ct2.StorageView.from_array(features),
            [list(rules.prompt)],
            beam_size=1,
            # ctranslate2 generates min(max_length / 2, max_length - len(prompt)) tokens at most
            max_length=rules.max_length if cap is None else min(rules.max_length, 2 * max(cap, len(rules.prompt))),
            return_no_speech_prob=True,
            return_logits_vocab=True,
            suppress_blank=True,
            suppress_tokens=list(rules.suppress),
        )[0]
        tokens = list(result.sequences_ids[0])
        rows = np.stack([np.asarray(r, np.float32) for r in result.logits[0]])  # [steps, V], -FLT_MAX where suppressed
        chosen = [*tokens, rules.eot][: len(rows)]
        logprobs = [float(_log_softmax(row)[tok]) for row, tok in zip(rows, chosen, strict=True)]
        decoded = Decoded(tokens, logprobs, float(result.no_speech_prob))
        return Run(decoded, rows, _text(tokenizer, decoded))


def _log_softmax(row: np.ndarray) -> np.ndarray:
    x = row.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _logit_diff(run: Run, torch_rows: np.ndarray, rules: DecodeRules) -> tuple[float, int]:
    """(max |diff| over allowed tokens, argmax disagreements) of the runner's step logits vs PyTorch's."""
    allowed = np.ones(run.step_logits.shape[1], bool)
    allowed[list(rules.suppress)] = False
    worst, disagree = 0.0, 0
    for i, (ours, ref) in enumerate(zip(run.step_logits, torch_rows, strict=True)):
        mask = allowed.copy()
        if i == 0:
            mask[list(rules.begin_suppress)] = False
        worst = max(worst, float(np.abs(ours[mask] - ref[mask]).max()))
        disagree += int(np.argmax(np.where(mask, ours, -np.inf)) != np.argmax(np.where(mask, ref, -np.inf)))
    return worst, disagree


def _teacher_forced(torch_model: TorchWhisper, hidden: np.ndarray, run: Run, rules: DecodeRules) -> np.ndarray:
    ids = [*rules.prompt, *run.decoded.tokens]
    rows = torch_model.logits(hidden, ids)[len(rules.prompt) - 1 :]  # row i chose generated token i
    return rows[: len(run.step_logits)]


def measure(
    model: WhisperForConditionalGeneration,
    tokenizer: WhisperTokenizerFast,
    folder: Path,
    files: dict[str, dict[str, Path]],
    clips: list[Clip],
    ct2_dir: Path | None,
    cap: int | None = None,
) -> dict:
    """The parity section of export-report.json (see the module docstring). `cap` limits tokens per clip."""
    rules = DecodeRules.from_generation_config(folder / "generation_config.json")
    reference = TorchWhisper(model)
    onnx = {v: OnnxWhisper(folder, f["encoder_model"], f["decoder_model_merged"]) for v, f in files.items()}
    ct2 = Ct2Whisper(ct2_dir) if ct2_dir is not None else None
    runners = ["pytorch", *(["ctranslate2"] if ct2 else []), *(f"onnx:{v}" for v in files)]
    encoder = {name: {"cosine_min": 1.0, "max_abs": 0.0} for name in runners if name != "pytorch"}
    logits = {name: {"max_abs": 0.0, "argmax_disagreements": 0, "steps": 0} for name in encoder}
    transcripts: dict[str, dict] = {}
    for clip in clips:
        samples = read_wav(clip.path)
        quiet = is_quiet(samples)  # the energy gate empties the text; the numbers are still compared
        features = log_mel(folder, samples)  # [1, n_mels, 3000]
        hidden = reference.encode(features)  # [1, 1500, d]
        runs = {"pytorch": run_greedy(reference.stepper(hidden), rules, tokenizer, cap)}
        hiddens = {f"onnx:{v}": o.encode(features) for v, o in onnx.items()}
        if ct2:
            hiddens["ctranslate2"] = ct2.encode(features)
            runs["ctranslate2"] = ct2.generate(features, rules, tokenizer, cap)
        for v, o in onnx.items():
            runs[f"onnx:{v}"] = run_greedy(o.decoder_stepper(hiddens[f"onnx:{v}"]), rules, tokenizer, cap)
        for name, h in hiddens.items():
            encoder[name]["cosine_min"] = min(encoder[name]["cosine_min"], _cosine(h, hidden))
            encoder[name]["max_abs"] = max(encoder[name]["max_abs"], float(np.abs(h - hidden).max()))
            worst, disagree = _logit_diff(runs[name], _teacher_forced(reference, hidden, runs[name], rules), rules)
            logits[name]["max_abs"] = max(logits[name]["max_abs"], worst)
            logits[name]["argmax_disagreements"] += disagree
            logits[name]["steps"] += len(runs[name].step_logits)
        transcripts[clip.name] = {
            "spoken": clip.text,
            **{name: "" if quiet else run.text for name, run in runs.items()},
            "quiet": quiet,
            "decoded_text": {name: run.text for name, run in runs.items()},
            "no_speech_prob": {name: round(run.decoded.no_speech_prob, 6) for name, run in runs.items()},
        }
    return {
        "rules": {
            "prompt": list(rules.prompt),
            "max_new_tokens": min(rules.max_new_tokens, cap or rules.max_new_tokens),
        },
        "encoder_vs_pytorch": encoder,
        "decoder_logits_vs_pytorch": logits,
        "transcripts": transcripts,
        "wer": _wer_table(transcripts, runners, has_ct2=ct2 is not None),
    }


def _wer_table(transcripts: dict[str, dict], runners: list[str], has_ct2: bool) -> dict:
    """Mean WER over the speech clips vs the spoken text and vs ctranslate2; silent clips counted apart."""
    speech = [t for t in transcripts.values() if t["spoken"]]
    silent = [t for t in transcripts.values() if not t["spoken"]]
    table = {}
    for name in runners:
        row = {
            "vs_spoken": float(np.mean([wer(t["spoken"], t[name]) for t in speech])) if speech else None,
            "silent_clips_empty": f"{sum(1 for t in silent if not t[name])}/{len(silent)}",
        }
        if has_ct2:
            row["vs_ctranslate2"] = float(np.mean([wer(t["ctranslate2"], t[name]) for t in speech])) if speech else None
            row["same_text_as_ctranslate2"] = (
                f"{sum(1 for t in transcripts.values() if t[name] == t['ctranslate2'])}/{len(transcripts)}"
            )
        table[name] = row
    return table
