"""RFC 9110/9112 rules the routes should not each re-implement (an ASGI wrapper around the app).

- A method the server does not know: 501 (RFC 9110 15.6.2); a known one a route lacks stays 405.
- HTTP/1.1 needs exactly one valid Host header (RFC 9112 3.2): else 400.
- More than MAX_HEADER_FIELDS header fields: 431 (the byte limit is h11's, see server/limits.py).
- A redirect to this same host is sent as a relative Location: the Host header is the client's
  word, never copied into an absolute URL.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# RFC 9110's methods, PATCH (RFC 5789) and QUERY (the IANA-registered safe method with a body, which
# schemathesis probes): a route that lacks one answers 405, not 501.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"})
MAX_HEADER_FIELDS = 100
# RFC 3986 host (reg-name, IPv4, or an [IPv6] literal; empty is allowed, RFC 9112 3.2) and an
# optional port: no spaces, slashes, '@' or other characters that could confuse a URL builder.
_HOST = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]{0,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{0,5})?")
_SAME_ORIGIN = re.compile(r"https?://([^/?#]*)(.*)", re.DOTALL)


def request_error(scope: Scope) -> tuple[int, str] | None:
    """(status, reason) when the request breaks one of the rules above, else None."""
    if scope["method"] not in KNOWN_METHODS:
        return 501, f"method {scope['method']} is not implemented"
    headers = scope["headers"]
    if len(headers) > MAX_HEADER_FIELDS:
        return 431, f"more than {MAX_HEADER_FIELDS} header fields"
    hosts = [value for name, value in headers if name == b"host"]
    if scope.get("http_version") == "1.1" and len(hosts) != 1:
        return 400, "HTTP/1.1 requests carry exactly one Host header"
    if hosts and not _HOST.fullmatch(hosts[0].decode("latin-1")):
        return 400, "invalid Host header"
    return None


def relative_location(location: str, host: str | None) -> str:
    """http(s)://<this host>/path?q -> /path?q; any other Location unchanged."""
    match = _SAME_ORIGIN.fullmatch(location)
    if match is None or host is None or match.group(1).lower() != host.lower():
        return location
    return match.group(2) or "/"


class ProtocolRules:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = request_error(scope)
        if error is not None:
            status, reason = error
            await PlainTextResponse(reason + "\n", status_code=status, headers={"connection": "close"})(
                scope, receive, send
            )
            return
        host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), None)

        async def send_relative_redirects(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "location" in headers:
                    headers["location"] = relative_location(headers["location"], host)
            await send(message)

        await self.app(scope, receive, send_relative_redirects)
