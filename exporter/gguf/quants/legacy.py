"""ggml's 32-weight block types (one f16 scale d, maybe an f16 minimum m, per block).

Q4_0  d | qs[16]              w = d * (q - 8)      q: 4 bits, element i < 16 low nibble of qs[i], else high of qs[i-16]
Q4_1  d | m | qs[16]          w = d * q + m
Q5_0  d | qh[4] | qs[16]      w = d * (q - 16)     q = nibble | (bit i of the uint32 qh) << 4
Q5_1  d | m | qh[4] | qs[16]  w = d * q + m
Q8_0  d | qs[32] (int8)       w = d * q            carried as the unsigned code q + 128, zero point 128
"""

from __future__ import annotations

import numpy as np

from exporter.gguf.quants.base import BlockType, bits_of_u32, f16, nibbles_low_then_high


class _Legacy(BlockType):
    block_elements = 32
    sub_size = 32


class Q4_0(_Legacy):
    name, block_bytes, bits, zero_point = "Q4_0", 18, 4, 8

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return nibbles_low_then_high(blocks[..., None, 2:18]), f16(blocks[..., None, 0:2]), None


class Q4_1(_Legacy):
    name, block_bytes, bits, zero_point = "Q4_1", 20, 4, 0

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return nibbles_low_then_high(blocks[..., None, 4:20]), f16(blocks[..., None, 0:2]), f16(blocks[..., None, 2:4])


def _five_bit(qh: np.ndarray, qs: np.ndarray) -> np.ndarray:
    return nibbles_low_then_high(qs) | (bits_of_u32(qh, 32) << 4)


class Q5_0(_Legacy):
    name, block_bytes, bits, zero_point = "Q5_0", 22, 5, 16

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return _five_bit(blocks[..., None, 2:6], blocks[..., None, 6:22]), f16(blocks[..., None, 0:2]), None


class Q5_1(_Legacy):
    name, block_bytes, bits, zero_point = "Q5_1", 24, 5, 0

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        codes = _five_bit(blocks[..., None, 4:8], blocks[..., None, 8:24])
        return codes, f16(blocks[..., None, 0:2]), f16(blocks[..., None, 2:4])


class Q8_0(_Legacy):
    name, block_bytes, bits, zero_point = "Q8_0", 34, 8, 128

    @classmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        codes = blocks[..., None, 2:34] ^ np.uint8(0x80)  # int8 two's complement + 128, as uint8
        return codes, f16(blocks[..., None, 0:2]), None
