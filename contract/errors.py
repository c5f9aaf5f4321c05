"""The one base of every error a Lumen user sees: what went wrong, and the fix.

The exporter's, the server's, the references' and the benchmarks' named errors all derive from
LumenError, so each command line prints `error: <what>\n  fix: <what to do>` and exits 2.
"""

from __future__ import annotations


class LumenError(Exception):
    """`str(err)` says what went wrong and, on a second line, `err.fix` (what to do about it)."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  fix: {self.fix}" if self.fix else base
