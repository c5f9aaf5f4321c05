"""ggml's K-quants: 256-weight super-blocks with integer sub-block scales under one f16 scale.

    Q4_K  d | dmin | scales[12] | qs[128]            8 sub-blocks of 32:  w = (d*sc_j) * q - (dmin*m_j), q 4 bits
    Q5_K  d | dmin | scales[12] | qh[32] | qs[128]   8 sub-blocks of 32:  the same with q 5 bits
    Q6_K  ql[128] | qh[64] | scales[16] (int8) | d  16 sub-blocks of 16: w = (d*sc_j) * (q - 32), q 6 bits
The products d*sc_j and dmin*m_j have at most 11 + 8 significant bits, so they are exact in
float32 and become the BlockWeight's per-sub-block scales and (negated) minimums.
"""

from __future__ import annotations

import numpy as np

from exporter.gguf.quants.base import BlockType, f16


def six_bit_scales_and_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [..., 12] -> (sc, m) uint8 [..., 8] each: sub-blocks 0..3 in the low 6 bits of bytes 0..3
    (scales) and 4..7 (mins); sub-blocks 4..7 take their low 4 bits from the nibbles of bytes 8..11 and
    their top 2 bits from the top bits of bytes 0..3 (scales) and 4..7 (mins)."""
    first, second, low4 = packed[..., 0:4], packed[..., 4:8], packed[..., 8:12]
    sc = np.concatenate([first & 0x3F, (low4 & 0x0F) | ((first >> 6) << 4)], axis=-1)
    m = np.concatenate([second & 0x3F, (low4 >> 4) | ((second >> 6) << 4)], axis=-1)
    return sc, m


def _sub_block_nibbles(qs: np.ndarray) -> np.ndarray:
    """uint8 [..., 128] -> [..., 8, 32]: sub-block 2i = low nibbles of qs[32i:32i+32], 2i+1 = their high nibbles."""
    chunks = qs.reshape(*qs.shape[:-1], 4, 1, 32)
    return np.concatenate([chunks & 0x0F, chunks >> 4], axis=-2).reshape(*qs.shape[:-1], 8, 32)


def _scales_and_mins(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sc, m = six_bit_scales_and_mins(blocks[..., 4:16])
    d, dmin = f16(blocks[..., None, 0:2]), f16(blocks[..., None, 2:4])
    return d * sc.astype(np.float32), -(dmin * m.astype(np.float32))  # w = s*q + (-dmin*m): ggml's s*q - dmin*m


class Q4_K(BlockType):
    name, block_bytes, block_elements, sub_size, bits, zero_point = "Q4_K", 144, 256, 32, 4, 0

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        scales, mins = _scales_and_mins(blocks)
        return _sub_block_nibbles(blocks[..., 16:144]), scales, mins


class Q5_K(BlockType):
    name, block_bytes, block_elements, sub_size, bits, zero_point = "Q5_K", 176, 256, 32, 5, 0

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        scales, mins = _scales_and_mins(blocks)
        qh = blocks[..., None, 16:48]  # [..., 1, 32]: bit j of qh[e] is the 5th bit of element e of sub-block j
        high = (qh >> np.arange(8, dtype=np.uint8)[:, None]) & 1  # [..., 8, 32]
        return _sub_block_nibbles(blocks[..., 48:176]) | (high << 4), scales, mins


class Q6_K(BlockType):
    name, block_bytes, block_elements, sub_size, bits, zero_point = "Q6_K", 210, 256, 16, 6, 32

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        lead = blocks.shape[:-1]
        # Each half of 128 weights uses ql[64h : 64h+64] and qh[32h : 32h+32]; its four groups of 32 are
        # (low nibbles of ql[0:32], of ql[32:64], high nibbles of ql[0:32], of ql[32:64]) with the
        # 2-bit pairs 0, 1, 2, 3 of qh as their top bits.
        ql = blocks[..., 0:128].reshape(*lead, 2, 1, 2, 32)  # [..., half, nibble, chunk, 32]
        low = np.concatenate([ql & 0x0F, ql >> 4], axis=-3).reshape(*lead, 2, 4, 32)
        qh = blocks[..., 128:192].reshape(*lead, 2, 1, 32)
        high = (qh >> (2 * np.arange(4, dtype=np.uint8))[:, None]) & 0x03  # [..., half, 4, 32]
        codes = (low | (high << 4)).reshape(*lead, 16, 16)
        sc = blocks[..., 192:208].view(np.int8).astype(np.float32)  # [..., 16]
        return codes, f16(blocks[..., None, 208:210]) * sc, None
