"""Text feeds for an exported text tower from its written tokenizer.json (no torch: the Python references use it too)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


def tokenize(tokenizer_json: Path, texts: list[str], input_names: list[str]) -> dict[str, np.ndarray]:
    """Batch-encodes with the written tokenizer.json; pads to the longest unless the file pads itself."""
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    if tokenizer.padding is None:
        pad = _pad_token_id(tokenizer_json, tokenizer)
        tokenizer.enable_padding(pad_id=pad, pad_token=tokenizer.id_to_token(pad))
    encodings = tokenizer.encode_batch(texts)
    arrays = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),  # [B, T]
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }
    return {name: arrays[name] for name in input_names}


def _pad_token_id(tokenizer_json: Path, tokenizer: Tokenizer) -> int:
    config = json.loads((tokenizer_json.parent / "tokenizer_config.json").read_text(encoding="utf-8"))
    pad = config.get("pad_token")
    pad = pad["content"] if isinstance(pad, dict) else pad
    token_id = tokenizer.token_to_id(pad) if pad else None
    return 0 if token_id is None else token_id  # masked out either way
