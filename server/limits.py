"""Connection limits for hostile or unlucky clients, on top of uvicorn's h11 protocol.

- Header size: h11 refuses a request head over HEADER_BYTES with 431 as soon as its buffer passes
  the limit (httptools buffered 128 MB first; measured in tests/test_server_limits.py).
- Request deadline: a connection must deliver a complete request head within `request_timeout`
  seconds of opening (or of its last response), however slowly it trickles bytes; then it is
  closed. uvicorn's own keep-alive timer restarts on every byte received, so it cannot do this.
- Connection cap: at most `max_connections` sockets; a new one evicts the oldest connection that
  has no request in progress (idle or still sending its head), or is refused when none is.
- Parser-level errors (malformed request, oversized head) answer with the security headers and the
  status h11 suggests (431 for a too-large head) instead of uvicorn's bare 400.
Every limit that bites is logged, at most once a second per limit (a flood must not flood the log).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.static import SECURITY_HEADERS

log = logging.getLogger("lumen.server")

HEADER_BYTES = 32 * 1024  # the whole request head; browsers send 1-3 KB
FDS_RESERVED = 64  # listening socket, log files, the event loop, manifest reads


@dataclass
class RateLimitedLog:
    """Counts events and logs them at most once per `interval` seconds."""

    message: str
    interval: float = 1.0
    _count: int = 0
    _last: float = field(default=-1e9)

    def bump(self) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            log.warning("%s (%d since the last report)", self.message, self._count)
            self._count, self._last = 0, now


@dataclass
class Limits:
    request_timeout: float = 10.0
    max_connections: int = 512  # x ~0.6 MB per stalled download (tests/test_server_limits.py)

    def effective_max_connections(self) -> int:
        """Each busy connection holds two fds (its socket and the file it serves): stay under RLIMIT_NOFILE."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(8, min(self.max_connections, (soft - FDS_RESERVED) // 2))


_EVICTED = RateLimitedLog("connection cap reached: closed the oldest idle connection")
_REFUSED = RateLimitedLog("connection cap reached with every connection busy: refused a new one")
_TIMED_OUT = RateLimitedLog("closed a connection that sent no complete request head in time")
_BAD_REQUEST = RateLimitedLog("refused a malformed or oversized request head")


def protocol_class(limits: Limits) -> type[H11Protocol]:
    """An H11Protocol subclass bound to `limits` (uvicorn instantiates the class it is given)."""
    cap = limits.effective_max_connections()
    log.info("connection cap %d, request-head deadline %.0f s", cap, limits.request_timeout)

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _opened_at: float = 0.0
        _parse_error: h11.RemoteProtocolError | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._opened_at = time.monotonic()
            self._remember_parse_errors()
            if len(self.connections) > cap and not self._evict_one():
                _REFUSED.bump()
                self.transport.close()
                return
            self._arm_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_deadline()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.busy:
                self._disarm_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.busy:
                self._arm_deadline()

        @property
        def busy(self) -> bool:
            """A request head arrived and its response is not finished."""
            return self.cycle is not None and not self.cycle.response_complete

        def _evict_one(self) -> bool:
            idle = [c for c in self.connections if c is not self and not getattr(c, "busy", True)]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: getattr(c, "_opened_at", 0.0))  # ours all have it
            _EVICTED.bump()
            oldest.transport.close()
            return True

        def _arm_deadline(self) -> None:
            self._disarm_deadline()
            self._deadline = self.loop.call_later(limits.request_timeout, self._deadline_passed)

        def _disarm_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _deadline_passed(self) -> None:
            self._deadline = None
            if not self.busy and not self.transport.is_closing():
                _TIMED_OUT.bump()
                self.transport.close()

        def _remember_parse_errors(self) -> None:
            """uvicorn swallows h11's error (and its status hint); keep it for send_400_response."""
            next_event = self.conn.next_event

            def next_event_remembering() -> Any:
                try:
                    return next_event()
                except h11.RemoteProtocolError as err:
                    self._parse_error = err
                    raise

            self.conn.next_event = next_event_remembering  # type: ignore[method-assign]

        def send_400_response(self, msg: str) -> None:
            _BAD_REQUEST.bump()
            status = self._parse_error.error_status_hint if self._parse_error is not None else 400
            body = b"Request header fields too large\n" if status == 431 else b"Invalid HTTP request\n"
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"connection", b"close"),
                *((name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
            ]
            try:
                for event in (
                    h11.Response(status_code=status, headers=headers),
                    h11.Data(data=body),
                    h11.EndOfMessage(),
                ):
                    self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:  # the response had already started: nothing more to say
                pass
            self.transport.close()

    return GuardedH11Protocol
