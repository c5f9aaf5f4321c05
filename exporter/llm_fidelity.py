"""How closely an exported decoder follows its PyTorch reference, and how fast it runs natively.

On a fixed set of prompts (through the tokenizer's chat template; as plain text where there is none):
  * reference: PyTorch fp32 greedy continuation of NEW_TOKENS tokens per prompt (EOS not special)
  * forced agreement: fed prompt + reference tokens in one pass, how often the ONNX argmax is the
    reference's next token (PyTorch itself scores 1.0 by construction)
  * NLL: mean negative log-likelihood of the reference tokens (lower is better), vs PyTorch's own
  * greedy match: leading tokens of the ONNX model's own KV-cache greedy decode equal to PyTorch's
  * speed: onnxruntime prefill and decode tokens/s (2 threads; informational)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from runtime.onnx_decoder import OnnxDecoder
from runtime.progress import bar

NEW_TOKENS = 32
PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Write a haiku about the ocean.",
    "Explain in two sentences why the sky is blue.",
    "Give me three tips for learning a new language.",
)
# Targets for every file a browser runtime loads by default.
MIN_AGREEMENT = 0.95
MAX_NLL_REL = 0.03
# Stricter targets for a GGUF's blocks carried exactly: the weights are PyTorch's own, bit for bit.
CARRIED_MIN_AGREEMENT = 0.99
CARRIED_MAX_NLL_REL = 0.01


@dataclass(frozen=True)
class PromptReference:
    prompt: list[int]
    continuation: list[int]  # PyTorch greedy tokens
    nll: float  # PyTorch's mean NLL of its own continuation


@dataclass(frozen=True)
class Fidelity:
    forced_agreement: float
    nll: float
    nll_reference: float
    nll_rel_diff: float  # (nll - nll_reference) / nll_reference
    greedy_match: list[int]  # per prompt: leading tokens equal to PyTorch's greedy decode (of NEW_TOKENS)
    prefill_tok_s: float
    decode_tok_s: float

    def meets_targets(self, carried: bool = False) -> bool:
        return (
            self.forced_agreement >= (CARRIED_MIN_AGREEMENT if carried else MIN_AGREEMENT)
            and abs(self.nll_rel_diff) <= (CARRIED_MAX_NLL_REL if carried else MAX_NLL_REL)
            and min(self.greedy_match) >= NEW_TOKENS
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "meets_targets": self.meets_targets()}


def prompt_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Chat models: the prompt as a user turn; base models without a chat template: plain completion."""
    if not tokenizer.chat_template:
        return list(tokenizer(text).input_ids)
    return list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True))


def mean_nll(logits: np.ndarray, targets: list[int]) -> float:
    """logits [T, V] predicting targets [T]: mean -log softmax, in float64."""
    x = logits.astype(np.float64)
    top = x.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(x - top).sum(axis=-1)) + top[:, 0]
    return float(np.mean(log_z - x[np.arange(len(targets)), targets]))


@torch.inference_mode()
def torch_reference(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: tuple[str, ...] = PROMPTS
) -> list[PromptReference]:
    """PyTorch greedy continuations (KV cache) and their NLL under a single full forward pass."""
    refs = []
    with bar(len(prompts), "[llm] PyTorch reference", unit="prompt") as progress:
        for text in prompts:
            ids = prompt_ids(tokenizer, text)
            out = model(torch.tensor([ids]), use_cache=True)
            tokens: list[int] = []
            for _ in range(NEW_TOKENS):
                tokens.append(int(out.logits[0, -1].argmax()))
                out = model(torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True)
            logits = model(torch.tensor([ids + tokens])).logits[0, len(ids) - 1 : -1].numpy()
            refs.append(PromptReference(ids, tokens, mean_nll(logits, tokens)))
            progress.update(1)
    return refs


def leading_matches(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def evaluate(path: Path, refs: list[PromptReference], label: str) -> Fidelity:
    decoder = OnnxDecoder(path)
    decoder.greedy(refs[0].prompt, 2)  # warm-up: first runs allocate and pre-pack
    agree = total = 0
    nlls, matches = [], []
    prefill_tokens = prefill_s = decode_s = 0.0
    with bar(len(refs), f"[llm] fidelity {label}", unit="prompt") as progress:
        for ref in refs:
            logits, _ = decoder.forward(ref.prompt + ref.continuation, decoder.empty_past())
            logits = logits[len(ref.prompt) - 1 : -1]  # [NEW_TOKENS, V]: predictions of the continuation
            agree += int((logits.argmax(-1) == np.array(ref.continuation)).sum())
            total += len(ref.continuation)
            nlls.append(mean_nll(logits, ref.continuation))
            tokens, t_prefill, t_decode = decoder.greedy(ref.prompt, NEW_TOKENS)
            matches.append(leading_matches(tokens, ref.continuation))
            prefill_tokens += len(ref.prompt)
            prefill_s += t_prefill
            decode_s += t_decode
            progress.update(1)
    nll, nll_ref = float(np.mean(nlls)), float(np.mean([r.nll for r in refs]))
    return Fidelity(
        forced_agreement=agree / total,
        nll=nll,
        nll_reference=nll_ref,
        nll_rel_diff=(nll - nll_ref) / nll_ref,
        greedy_match=matches,
        prefill_tok_s=prefill_tokens / prefill_s,
        decode_tok_s=len(refs) * (NEW_TOKENS - 1) / decode_s,
    )
