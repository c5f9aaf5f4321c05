"""Repeated measurements -> median with min/max; the one summary every row of the report uses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def summarize(samples: Sequence[float]) -> dict[str, float | int]:
    """{'median', 'min', 'max', 'n'} of the samples (at least one)."""
    if not samples:
        raise ValueError("no samples to summarize")
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def time_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Wall milliseconds of `runs` calls of fn after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def speed_ratio(ours: dict | None, theirs: dict | None, higher_is_better: bool) -> float | None:
    """How many times faster `ours` is than `theirs` (medians); >1 means ours is faster."""
    if not ours or not theirs or not ours["median"] or not theirs["median"]:
        return None
    return ours["median"] / theirs["median"] if higher_is_better else theirs["median"] / ours["median"]
