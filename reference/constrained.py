"""Grammar-constrained decoding with Python xgrammar, as web/src/engine/llm/grammar.ts does it in the browser.

Same vocabulary (tokenizer.json's tokens in their byte-level form, indexed by id, the logits' width
long), same stop tokens, same compile options (compact JSON, ", " and ": " separators, strict
schemas), and the mask applied to the logits before a greedy pick. The browser's masks and tokens
are compared with these in tests/test_browser_structured.py.

Note: the `xgrammar` package imports torch when it loads (nothing here runs it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xgrammar as xgr

from reference.llm import ChatLLM, Generation

JSON_SEPARATORS = (", ", ": ")


def encoded_vocab(tokenizer_json: Path, vocab_size: int) -> list[str]:
    """Token strings by id (byte-level form, "Ġ" for a space); ids without a token get ""."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = [""] * vocab_size
    for token, token_id in data["model"]["vocab"].items():
        if token_id < vocab_size:
            vocab[token_id] = token
    for added in data.get("added_tokens", []):
        if added["id"] < vocab_size:
            vocab[added["id"]] = added["content"]
    return vocab


class Grammars:
    """One model's grammar compiler; `compile` takes a spec as the browser's GrammarSpec spells it."""

    def __init__(self, vocab: list[str], stop_ids: list[int]) -> None:
        info = xgr.TokenizerInfo(
            vocab, xgr.VocabType.BYTE_LEVEL, vocab_size=len(vocab), stop_token_ids=stop_ids, add_prefix_space=False
        )
        self.vocab_size = len(vocab)
        self.compiler = xgr.GrammarCompiler(info)

    def compile(self, spec: dict) -> xgr.CompiledGrammar:
        if spec["kind"] == "any_json":
            return self.compiler.compile_builtin_json_grammar()
        if spec["kind"] == "json_schema":
            return self.compiler.compile_json_schema(
                spec["schema"], any_whitespace=False, indent=None, separators=JSON_SEPARATORS, strict_mode=True
            )
        return self.compiler.compile_grammar(spec["ebnf"])

    def allowed(self, matcher: xgr.GrammarMatcher) -> np.ndarray:
        """The ids the grammar allows next [n] (ascending), from xgrammar's bitmask [ceil(V / 32)] int32."""
        bitmask = np.zeros((1, (self.vocab_size + 31) // 32), np.int32)
        matcher.fill_next_token_bitmask(bitmask)
        bits = np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: self.vocab_size]  # [V], bit i = id i
        return np.nonzero(bits)[0]


def masks_along(grammars: Grammars, spec: dict, trace: list[int]) -> list[list[int]]:
    """Allowed ids before each token of `trace` is forced, and after the last one (len(trace) + 1 masks)."""
    matcher = xgr.GrammarMatcher(grammars.compile(spec))
    masks = []
    for token in trace:
        masks.append(grammars.allowed(matcher).tolist())
        if not matcher.accept_token(token):
            raise ValueError(f"the grammar rejects token {token} of the trace")
    masks.append(grammars.allowed(matcher).tolist())
    return masks


def constrained_greedy(
    llm: ChatLLM, grammars: Grammars, messages: list[dict[str, str]], spec: dict, n: int
) -> Generation:
    """Greedy decoding with every step's logits masked by the grammar; stops on a stop token or after n."""
    matcher = xgr.GrammarMatcher(grammars.compile(spec))
    prompt = llm.prompt_ids(messages)
    logits, past = llm.decoder.forward(prompt, llm.decoder.empty_past())  # [S, V]
    tokens: list[int] = []
    finish = "length"
    while len(tokens) < n:
        row = np.full(logits.shape[-1], -np.inf, np.float32)  # [V]
        allowed = grammars.allowed(matcher)
        row[allowed] = logits[-1][allowed]
        token = int(np.argmax(row))
        if not matcher.accept_token(token):
            raise ValueError(f"the grammar rejected token {token}, which its own mask allowed")
        if token in llm.stop_ids:
            finish = "stop"
            break
        tokens.append(token)
        if len(tokens) < n:
            logits, past = llm.decoder.forward([token], past)
    text = llm.tokenizer.decode(tokens, skip_special_tokens=True)
    return Generation(text=text, token_ids=tokens, finish_reason=finish, prompt_tokens=len(prompt))
