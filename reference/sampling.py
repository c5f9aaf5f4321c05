"""Next-token choice as web/src/engine/sampling.ts makes it: greedy at temperature 0, else seeded
temperature / nucleus sampling drawing from the same mulberry32 stream, so a seed replays the browser's
choices (up to float rounding at the nucleus edge)."""

from __future__ import annotations

import numpy as np

_MASK = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:  # JavaScript Math.imul, as an unsigned 32-bit result
    return (a * b) & _MASK


class SeededRandom:
    """mulberry32: uniform floats in [0, 1) from a 32-bit seed."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next(self) -> float:
        self.state = (self.state + 0x6D2B79F5) & _MASK
        t = self.state
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _MASK
        return ((t ^ (t >> 14)) & _MASK) / 4294967296


def sample_token(logits: np.ndarray, temperature: float, top_p: float, rng: SeededRandom) -> int:
    """logits [V] -> token id. The nucleus is the smallest prefix of tokens by descending weight
    (ties: lower id first) whose weight reaches top_p of the total."""
    if temperature == 0:
        return int(np.argmax(logits))
    x = logits.astype(np.float64)
    weights = np.exp((x - x.max()) / temperature)  # [V]
    order = np.arange(len(weights)) if top_p >= 1 else np.lexsort((np.arange(len(weights)), -weights))
    if top_p < 1:
        cumulative = np.cumsum(weights[order])
        end = int(np.searchsorted(cumulative, top_p * weights.sum())) + 1
        order = order[: min(end, len(order))]
    chosen = weights[order]
    u = rng.next() * chosen.sum()
    hit = np.nonzero(np.cumsum(chosen) > u)[0]
    return int(order[hit[0]]) if len(hit) else int(order[np.nonzero(chosen)[0][-1]])
