"""What every ggml block type provides: its byte layout and an exact unpacking into BlockWeight's form."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np


class BlockType(ABC):
    """One ggml block type. `unpack` turns bytes [..., block_bytes] into
    codes uint8 [..., subs, sub_size], scales float32 [..., subs], mins float32 [..., subs] | None
    with w = scales * (codes - zero_point) + mins, equal bit for bit to ggml's own arithmetic."""

    name: ClassVar[str]
    block_bytes: ClassVar[int]  # bytes of one ggml block
    block_elements: ClassVar[int]  # weights of one ggml block (32, or 256 for K-quants)
    sub_size: ClassVar[int]  # weights sharing one scale (MatMulNBits block_size)
    bits: ClassVar[int]
    zero_point: ClassVar[int]

    @classmethod
    @abstractmethod
    def unpack(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...


def f16(two_bytes: np.ndarray) -> np.ndarray:
    """uint8 [..., 2] (little-endian IEEE half) -> float32 [...] (exact)."""
    return np.ascontiguousarray(two_bytes).view(np.float16)[..., 0].astype(np.float32)


def nibbles_low_then_high(qs: np.ndarray) -> np.ndarray:
    """uint8 [..., n] -> uint8 [..., 2n]: all low nibbles, then all high nibbles (ggml's order in a block)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def bits_of_u32(four_bytes: np.ndarray, count: int) -> np.ndarray:
    """uint8 [..., 4] (a little-endian uint32) -> uint8 [..., count]: bit i of the word at index i."""
    word = np.ascontiguousarray(four_bytes).view("<u4")  # [..., 1]
    return ((word >> np.arange(count, dtype=np.uint32)) & 1).astype(np.uint8)
