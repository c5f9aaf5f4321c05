"""BlockWeight: a [N, K] weight as blocks along K, in the one form every carried ggml type reduces to:

    w[n, B*b + i] = scales[n, b] * (codes[n, b, i] - zero_point) + mins[n, b]     (B = block size)

so that repacking it for MatMulNBits never re-quantizes anything. Codes wider than 4 bits are split
into exact 4-bit parts (nibble_parts), because onnxruntime's fast native kernels are the 4-bit ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class BlockWeight:
    """w[n, B*b + i] = scales[n, b] * (codes[n, b, i] - zero_point) + mins[n, b] (mins: 0 when None)."""

    codes: np.ndarray  # uint8 [N, k_blocks, B], each < 2**bits
    scales: np.ndarray  # float32 [N, k_blocks]: exact products of ggml's f16 scales and integer sub-scales
    mins: np.ndarray | None  # float32 [N, k_blocks], added after the product (Q4_1, Q5_1, K-quants), else None
    bits: int
    zero_point: int
    ggml_type: str

    @property
    def block_size(self) -> int:
        return int(self.codes.shape[2])

    @property
    def shape(self) -> tuple[int, int]:
        n, k_blocks, block = self.codes.shape
        return n, k_blocks * block

    def dequantize(self) -> np.ndarray:
        """float32 [N, K], one product then one addition, as ggml does, so it matches gguf-py bit for bit."""
        q = self.codes.astype(np.float32) - np.float32(self.zero_point)
        w = self.scales[..., None] * q
        if self.mins is not None:
            w = w + self.mins[..., None]
        return w.reshape(self.shape)

    def take_rows(self, order: np.ndarray) -> BlockWeight:
        """Rows reordered (row r of the result is row order[r]): blocks move whole, nothing is re-quantized."""
        return replace(
            self,
            codes=self.codes[order],
            scales=self.scales[order],
            mins=None if self.mins is None else self.mins[order],
        )


def nibble_parts(weight: BlockWeight) -> list[BlockWeight]:
    """4-bit pieces whose products sum to scale * (code - zero_point) (minimums left out), exactly.

    onnxruntime's fast native MatMulNBits kernels with fp32 activations are the 4-bit ones with
    integer zero points; its 8-bit kernel dequantizes the whole weight every call. So a 5..8-bit
    code u = 16 hi + lo becomes two 4-bit parts: (hi - zp_hi) * 16s + (lo - zp_lo) * s, with
    zp = 16 zp_hi + zp_lo. Scaling s by 16 is exact, and each product is exact (s carries at most
    18 significant bits, the codes at most 5), so the parts add up to ggml's value bit for bit.
    """
    if weight.bits == 4:
        return [replace(weight, mins=None)]
    hi = replace(
        weight,
        codes=weight.codes >> 4,
        scales=weight.scales * np.float32(16),
        mins=None,
        bits=4,
        zero_point=weight.zero_point >> 4,
    )
    lo = replace(weight, codes=weight.codes & 0x0F, mins=None, bits=4, zero_point=weight.zero_point & 0x0F)
    return [hi, lo]


# onnxruntime's fast MatMulNBits path needs blocks of at least 32 (block 16 measured ~45x slower)
FAST_BLOCK = 32


def widen_blocks(part: BlockWeight, block: int = FAST_BLOCK) -> list[BlockWeight]:
    """A part with B-wide blocks (B < block) -> block/B parts of block-wide blocks, exactly.

    Part j keeps sub-block j of every group of block/B consecutive sub-blocks (with its scale) and
    sets the codes of the others to the zero point, where they contribute (z - z) * s = 0 exactly.
    """
    width = part.block_size
    if width >= block:
        return [part]
    ratio = block // width
    n, k_blocks, _ = part.codes.shape
    codes = part.codes.reshape(n, k_blocks // ratio, ratio, width)
    scales = part.scales.reshape(n, k_blocks // ratio, ratio)
    widened = []
    for j in range(ratio):
        kept = np.full_like(codes, part.zero_point)
        kept[:, :, j] = codes[:, :, j]
        widened.append(
            replace(part, codes=kept.reshape(n, k_blocks // ratio, block), scales=scales[:, :, j].copy(), mins=None)
        )
    return widened


def matmul_parts(weight: BlockWeight) -> list[BlockWeight]:
    """The 4-bit, >= 32-wide parts MatMulNBits runs fast, whose products sum to scale * (code - zero_point)."""
    return [wide for part in nibble_parts(weight) for wide in widen_blocks(part)]


def pack_nibbles(part: BlockWeight) -> np.ndarray:
    """MatMulNBits input B of a 4-bit part: uint8 [N, k_blocks, B/2], byte j = code 2j | code 2j+1 << 4."""
    assert part.bits == 4, "split wider weights with nibble_parts() first"
    return part.codes[..., 0::2] | (part.codes[..., 1::2] << 4)


def pack_zero_points(part: BlockWeight) -> np.ndarray:
    """MatMulNBits zero points of a 4-bit part: uint8 [N, ceil(k_blocks / 2)], two a byte along k_blocks, low first."""
    n, k_blocks, _ = part.codes.shape
    zp = np.full((n, k_blocks + k_blocks % 2), part.zero_point, dtype=np.uint8)
    return zp[:, 0::2] | (zp[:, 1::2] << 4)
