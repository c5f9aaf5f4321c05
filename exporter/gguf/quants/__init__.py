"""ggml block types carried exactly (one class each), and unpack_blocks: raw tensor bytes -> BlockWeight."""

from __future__ import annotations

import numpy as np

from exporter.errors import CorruptCheckpointError, UnsupportedQuantizationError
from exporter.gguf.blocks import BlockWeight
from exporter.gguf.quants.base import BlockType
from exporter.gguf.quants.kquants import Q4_K, Q5_K, Q6_K
from exporter.gguf.quants.legacy import Q4_0, Q4_1, Q5_0, Q5_1, Q8_0

BLOCK_TYPES: dict[str, type[BlockType]] = {t.name: t for t in (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)}
# Float tensors need no carrying: the fp32 export holds their values exactly (F16/BF16 widen without rounding).
FLOAT_TYPES = ("F32", "F16", "BF16")
SUPPORTED_TYPES = (*BLOCK_TYPES, *FLOAT_TYPES)


def unsupported_type(ggml_type: str, tensor: str) -> UnsupportedQuantizationError:
    return UnsupportedQuantizationError(
        f"GGUF tensor {tensor} has type {ggml_type}, which cannot be carried over exactly "
        f"(supported: {', '.join(SUPPORTED_TYPES)})",
        fix="re-quantize the model with llama-quantize to Q4_K_M, Q4_0 or Q8_0, or pass an fp16/fp32 checkpoint folder",
    )


def unpack_blocks(raw: np.ndarray, ggml_type: str, shape: tuple[int, int], tensor: str = "a tensor") -> BlockWeight:
    """ggml bytes of a [N, K] tensor (any array holding its N*K/block_elements blocks) -> BlockWeight."""
    kind = BLOCK_TYPES.get(ggml_type)
    if kind is None:
        raise unsupported_type(ggml_type, tensor)
    n, k = shape
    if k % kind.block_elements or raw.size != n * k // kind.block_elements * kind.block_bytes:
        raise CorruptCheckpointError(
            f"{tensor}: a {ggml_type} tensor of shape {shape} needs "
            f"{n * k // kind.block_elements * kind.block_bytes} bytes, the file holds {raw.size}",
            fix="re-download or re-convert the GGUF file",
        )
    blocks = np.ascontiguousarray(raw, dtype=np.uint8).reshape(n, k // kind.block_elements, kind.block_bytes)
    codes, scales, mins = kind.unpack(blocks)  # [N, kb, subs, sub], [N, kb, subs] (x2)
    subs = k // kind.sub_size
    return BlockWeight(
        codes=np.ascontiguousarray(codes.reshape(n, subs, kind.sub_size), dtype=np.uint8),
        scales=np.ascontiguousarray(scales.reshape(n, subs), dtype=np.float32),
        mins=None if mins is None else np.ascontiguousarray(mins.reshape(n, subs), dtype=np.float32),
        bits=kind.bits,
        zero_point=kind.zero_point,
        ggml_type=ggml_type,
    )
