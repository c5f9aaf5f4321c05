"""Progress on stderr for every step that takes seconds: counted tqdm bars, timed step lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def step(label: str) -> Iterator[None]:
    """A step that has no count: `label ...` when it starts, `label: 2.4 s` when it ends."""
    print(f"{label} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def bar(total: int, label: str, unit: str = "it") -> tqdm:
    """A counted bar; `unit="B"` scales bytes."""
    scale = unit == "B"
    return tqdm(
        total=total,
        desc=label,
        unit=unit,
        unit_scale=scale,
        unit_divisor=1024 if scale else 1000,
        file=sys.stderr,
        leave=True,
    )


class Timer:
    """Wall time of a block, for the export report."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
