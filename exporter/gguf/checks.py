"""Fail fast on a GGUF whose tensors contradict themselves or its metadata, before transformers
spends a minute dequantizing it (and then fails with a size-mismatch traceback, or worse, not at all).

Checked per tensor: the declared type's block size divides the innermost dimension; for the
Llama-family tensors this exporter reads, the shape (GGUF order: innermost first) matches the
metadata's embedding / feed-forward / head sizes, the vocabulary and the block count.
"""

from __future__ import annotations

import re

from gguf import GGML_QUANT_SIZES

from exporter.errors import CorruptCheckpointError
from exporter.gguf.reader import GgufFile

DERIVED_HEAD_DIM = ("llama", "qwen2")


def _expected_shapes(gguf: GgufFile) -> tuple[dict[str, tuple[int, ...]], int] | None:
    """Tensor-name pattern -> expected GGUF shape, and the block count; None when metadata is missing."""
    arch = gguf.architecture
    embed, ffn, heads, blocks = (
        gguf.integer(f"{arch}.{key}")
        for key in ("embedding_length", "feed_forward_length", "attention.head_count", "block_count")
    )
    tokens = gguf.field("tokenizer.ggml.tokens")
    if embed is None or ffn is None or heads is None or blocks is None or not isinstance(tokens, list):
        return None
    kv_heads = gguf.integer(f"{arch}.attention.head_count_kv") or heads
    # Llama and Qwen2 derive the head size; Qwen3 and Gemma 3 configs state their own, which a GGUF
    # may leave out (transformers then takes the config default): attention shapes are checked only when known.
    head_dim = gguf.integer(f"{arch}.attention.key_length") or (embed // heads if arch in DERIVED_HEAD_DIM else None)
    vocab = len(tokens)
    shapes = {
        "token_embd.weight": (embed, vocab),
        "output.weight": (embed, vocab),
        "output_norm.weight": (embed,),
        "attn_norm.weight": (embed,),
        "ffn_norm.weight": (embed,),
        "ffn_gate.weight": (embed, ffn),
        "ffn_up.weight": (embed, ffn),
        "ffn_down.weight": (ffn, embed),
    }
    if head_dim is not None:
        shapes |= {
            "attn_q.weight": (embed, heads * head_dim),
            "attn_k.weight": (embed, kv_heads * head_dim),
            "attn_v.weight": (embed, kv_heads * head_dim),
            "attn_output.weight": (heads * head_dim, embed),
        }
    return shapes, blocks


def check_tensors(gguf: GgufFile) -> None:
    """Raises CorruptCheckpointError naming the first inconsistent tensor."""
    fix = "re-download the .gguf file, or convert it again with llama.cpp (convert_hf_to_gguf.py + llama-quantize)"
    expected = _expected_shapes(gguf)
    for tensor in gguf.tensors():
        shape = tuple(int(x) for x in tensor.shape)
        block, _ = GGML_QUANT_SIZES[tensor.tensor_type]
        if shape and shape[0] % block:
            raise CorruptCheckpointError(
                f"{gguf.path}: tensor {tensor.name} is declared {tensor.tensor_type.name} (blocks of {block}) "
                f"but its rows hold {shape[0]} values",
                fix=fix,
            )
        if expected is None:
            continue
        shapes, blocks = expected
        match = re.fullmatch(r"blk\.(\d+)\.(.+)", tensor.name)
        if match and int(match.group(1)) >= blocks:
            raise CorruptCheckpointError(
                f"{gguf.path}: tensor {tensor.name} is past the {blocks} blocks the metadata declares", fix=fix
            )
        want = shapes.get(match.group(2) if match else tensor.name)
        if want is not None and shape != want:
            raise CorruptCheckpointError(
                f"{gguf.path}: tensor {tensor.name} has shape {list(shape)}, the metadata implies {list(want)}",
                fix=fix,
            )
