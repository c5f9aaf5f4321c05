"""Progress bars for every step that takes seconds (tqdm on stderr; quiet when not a TTY)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def step(label: str) -> Iterator[None]:
    """A one-line step with elapsed time: `[export] vision fp32 ... 2.4 s`."""
    bar = tqdm(total=1, desc=label, bar_format="{desc}: {elapsed}", file=sys.stderr, leave=True)
    try:
        yield
        bar.update(1)
    finally:
        bar.close()


def bar(total: int, label: str, unit: str = "it") -> tqdm:
    """A counted bar; `unit="B"` scales bytes."""
    scale = unit == "B"
    return tqdm(total=total, desc=label, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                file=sys.stderr, leave=True)


class Timer:
    """Wall time of a block, for the export report."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
