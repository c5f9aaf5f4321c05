"""Seeded tiny-random GGUF files written with gguf-py's GGUFWriter, for fast tests of every carried
block type on every supported architecture.

Each file is a 2-layer decoder (hidden 256: K-quants need rows of 256) with a tiny SentencePiece
vocabulary. Tensor types cycle through TYPES, so each architecture's file holds all of them. Legacy
blocks come from gguf-py's own quantizer on random weights; gguf-py cannot quantize K-quants, so
those are random blocks with small finite f16 scales (any bytes are valid codes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, quants

from exporter.gguf.quants import BLOCK_TYPES

TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32")
ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")
HIDDEN, FFN, HEADS, KV_HEADS, LAYERS = 256, 512, 4, 2, 2
# transformers reads no head size from qwen3 GGUFs and takes Qwen3Config's default, 128
HEAD_DIMS = {"llama": 64, "qwen2": 64, "qwen3": 128, "gemma3": 64}
SLIDING_WINDOW = 8  # Gemma 3: shorter than the test prompts, so the local layers really slide
_K_SCALE_FIELDS = {"Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
_PIECES = [
    "▁the",
    "▁a",
    "▁of",
    "▁and",
    "▁to",
    "▁in",
    "▁is",
    "▁it",
    "th",
    "he",
    "in",
    "er",
    "an",
    "re",
    "on",
    "at",
    "en",
    "nd",
    "ti",
    "es",
    "or",
    "te",
    "▁w",
    "▁s",
    "▁c",
    "▁p",
]


def tiny_vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Control tokens, 256 byte tokens, printable ASCII, then merged pieces (scores: minus the rank)."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [3, 3, 3, 2]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    singles = ["▁"] + [chr(c) for c in range(33, 127)]
    tokens += singles + _PIECES
    types += [1] * (len(singles) + len(_PIECES))
    tokens += [f"<unused{i}>" for i in range(512 - len(tokens))]  # a round vocabulary size
    types += [3] * (512 - len(types))
    scores = [0.0 if t != 1 else -float(i) for i, t in enumerate(types)]
    return tokens, scores, types


def _block_bytes(kind: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    if kind in ("F16", "BF16", "F32"):
        w = rng.normal(scale=0.05, size=(n, k)).astype(np.float32)
        if kind == "F16":
            return w.astype(np.float16)
        if kind == "BF16":
            return quants.quantize(w, GGMLQuantizationType.BF16)
        return w
    if kind not in BLOCK_TYPES:  # a type the exporter refuses: any bytes of the right size
        elements, size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
        return rng.integers(0, 256, size=(n, k // elements * size), dtype=np.uint8)
    t = BLOCK_TYPES[kind]
    if kind not in _K_SCALE_FIELDS:
        return quants.quantize(rng.normal(scale=0.05, size=(n, k)).astype(np.float32), GGMLQuantizationType[kind])
    raw = rng.integers(0, 256, size=(n, k // t.block_elements, t.block_bytes), dtype=np.uint8)
    scale = 3e-5 if kind == "Q6_K" else 2e-4
    for offset in _K_SCALE_FIELDS[kind]:
        d = np.abs(rng.normal(scale=scale, size=raw.shape[:2])).astype(np.float16)
        raw[..., offset : offset + 2] = d[..., None].view(np.uint8)
    return raw.reshape(n, -1)


def write_tiny_gguf(
    path: Path, arch: str, seed: int = 0, tied: bool | None = None, types_cycle: tuple[str, ...] = TYPES
) -> Path:
    """A seeded tiny-random `arch` GGUF at path; tensor types cycle through types_cycle over the 2-D tensors."""
    rng = np.random.default_rng(seed)
    head_dim = HEAD_DIMS.get(arch, 64)
    tokens, scores, types = tiny_vocabulary()
    tied = arch in ("gemma3", "qwen2") if tied is None else tied
    writer = GGUFWriter(str(path), arch)
    writer.add_context_length(2048)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    if arch == "gemma3":
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(SLIDING_WINDOW)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)

    matrices: list[tuple[str, int, int]] = [("token_embd.weight", len(tokens), HIDDEN)]
    if not tied:
        matrices.append(("output.weight", len(tokens), HIDDEN))
    vectors: list[tuple[str, int]] = [("output_norm.weight", HIDDEN)]
    for i in range(LAYERS):
        b = f"blk.{i}"
        matrices += [
            (f"{b}.attn_q.weight", HEADS * head_dim, HIDDEN),
            (f"{b}.attn_k.weight", KV_HEADS * head_dim, HIDDEN),
            (f"{b}.attn_v.weight", KV_HEADS * head_dim, HIDDEN),
            (f"{b}.attn_output.weight", HIDDEN, HEADS * head_dim),
            (f"{b}.ffn_gate.weight", FFN, HIDDEN),
            (f"{b}.ffn_up.weight", FFN, HIDDEN),
            (f"{b}.ffn_down.weight", HIDDEN, FFN),
        ]
        vectors += [(f"{b}.attn_norm.weight", HIDDEN), (f"{b}.ffn_norm.weight", HIDDEN)]
        if arch == "qwen2":
            vectors += [(f"{b}.attn_{x}.bias", (HEADS if x == "q" else KV_HEADS) * head_dim) for x in "qkv"]
        if arch in ("qwen3", "gemma3"):
            vectors += [(f"{b}.attn_q_norm.weight", head_dim), (f"{b}.attn_k_norm.weight", head_dim)]
        if arch == "gemma3":
            vectors += [(f"{b}.post_attention_norm.weight", HIDDEN), (f"{b}.post_ffw_norm.weight", HIDDEN)]
    for j, (name, n, k) in enumerate(matrices):
        kind = types_cycle[(j + seed) % len(types_cycle)]
        writer.add_tensor(name, _block_bytes(kind, n, k, rng), raw_dtype=GGMLQuantizationType[kind])
    for name, n in vectors:
        base = 0.0 if arch == "gemma3" else 1.0  # Gemma's norms scale by (1 + w); llama.cpp stores w + 1
        writer.add_tensor(name, (base + rng.normal(scale=0.1, size=n)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tensor_types(path: Path) -> set[str]:
    from gguf import GGUFReader

    return {t.tensor_type.name for t in GGUFReader(path).tensors if len(t.shape) == 2}
