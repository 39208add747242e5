"""The HTTP edge, in front of every handler (docs/SECURITY.md, "HTTP edge limits").

- **Bodies are read here, whole, before any handler runs**, so no request can hold a pooled
  database connection while a slow client trickles its body in. Each path has a size limit: a
  larger ``Content-Length`` is refused at once (413, nothing read), a streamed (chunked) body is
  cut off as soon as it passes the limit, and the whole body must arrive within
  ``VOUCH_BODY_READ_TIMEOUT`` seconds (else 408). No endpoint takes files: multipart is 415.
  A client that disconnects mid-body is simply gone: no answer, no error logged.
- **Client address**: ``X-Forwarded-For`` is believed only from ``VOUCH_TRUSTED_PROXIES``
  (empty by default), walking the chain from the right past trusted hops.
- **Host**: in production a request for a host other than ``VOUCH_PUBLIC_BASE_URL``'s (or
  ``VOUCH_ALLOWED_HOSTS``) is a 400 (health probes excepted).
- **Redirects** are relative: an absolute ``Location`` (Starlette's trailing-slash redirect
  builds one from the Host header) is cut to its path and query.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vouch.api.view import MAX_BODY_BYTES as GRAPHQL_MAX_BYTES
from vouch.attribution.inbound import MAX_BODY_BYTES as INBOUND_MAX_BYTES
from vouch.core.settings import Environment, Settings

FORM_MAX_BYTES = 16_384  # the microsite's and the console's forms
API_MAX_BYTES = 8_192  # /api/redemptions, /api/conversions
SHARE_EVENT_MAX_BYTES = 4_096
# Longest prefix first.
BODY_LIMITS: tuple[tuple[str, int], ...] = (
    ("/graphql", GRAPHQL_MAX_BYTES),
    ("/webhooks/inbound", INBOUND_MAX_BYTES),
    ("/share/events", SHARE_EVENT_MAX_BYTES),
    ("/api/", API_MAX_BYTES),
)
HOST_EXEMPT = frozenset({"/healthz", "/readyz"})
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def body_limit(path: str) -> int:
    """The largest body ``path`` accepts, in bytes."""
    for prefix, limit in BODY_LIMITS:
        if path.startswith(prefix):
            return limit
    return FORM_MAX_BYTES


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _too_large() -> JSONResponse:
    return JSONResponse(
        {
            "error": "payload_too_large",
            "message": "the request body is larger than this endpoint accepts",
        },
        status_code=413,
        headers={"connection": "close", "cache-control": "no-store"},
    )


def _refusal(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message},
        status_code=status,
        headers={"connection": "close", "cache-control": "no-store"},
    )


def _networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _hostname(host: str) -> str:
    """``Host`` without its port (IPv6 literals keep their brackets' content)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class EdgeMiddleware:
    """Pure ASGI: see the module docstring."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.read_timeout = settings.body_read_timeout
        self.trusted = _networks(settings.trusted_proxies)
        self.check_host = settings.env is Environment.PRODUCTION
        self.hosts = frozenset(
            _hostname(h)
            for h in (urlsplit(settings.public_base_url).netloc, *settings.allowed_hosts)
            if h
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.trusted:
            self._resolve_client(scope, Headers(scope=scope))
        host, length, encoding, content_type = _edge_headers(scope["headers"])
        if (
            self.check_host
            and scope["path"] not in HOST_EXEMPT
            and _hostname(host) not in self.hosts
        ):
            await PlainTextResponse("Unknown host.\n", status_code=400)(scope, receive, send)
            return
        send = _relative_redirects(send)
        chunked = "chunked" in encoding.lower()
        if scope["method"] in _NO_BODY and not chunked and length in (None, "0"):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        if length is not None and (not length.isdigit() or len(length) > 12):
            refusal = _refusal(400, "bad_request", "Content-Length must be a number")
            await refusal(scope, receive, send)
            return
        if length is not None and int(length) > limit:
            await _too_large()(scope, receive, send)
            return
        if content_type.lower().lstrip().startswith("multipart/"):
            refusal = _refusal(415, "unsupported_media_type", "this endpoint takes no file uploads")
            await refusal(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await _read_body(receive, limit)
        except _Disconnected:
            return  # nobody is listening for an answer
        except _TooLarge:
            await _too_large()(scope, receive, send)
            return
        except TimeoutError:
            refusal = _refusal(408, "request_timeout", "the request body did not arrive in time")
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _resolve_client(self, scope: Scope, headers: Headers) -> None:
        """The client is the right-most address of ``X-Forwarded-For`` that is not a trusted
        proxy, provided the peer itself is one; otherwise the peer."""
        client = scope.get("client")
        if not client or not self._is_trusted(client[0]):
            return
        hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    return  # a garbled header: keep the proxy's own address
                scope["client"] = (hop, 0)
                return

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


_EDGE_HEADERS = {b"host": 0, b"content-length": 1, b"transfer-encoding": 2, b"content-type": 3}


def _edge_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None, str, str]:
    """Host, Content-Length (None when absent), Transfer-Encoding and Content-Type, the first
    of each as Starlette's ``Headers.get`` reads them, in one pass over the raw headers (a
    ``Headers`` and four lookups, each a scan, cost more on every request)."""
    found: list[bytes | None] = [None, None, None, None]
    for name, value in raw:
        index = _EDGE_HEADERS.get(name)
        if index is not None and found[index] is None:
            found[index] = value
    host, length, encoding, content_type = (
        None if value is None else value.decode("latin-1") for value in found
    )
    return host or "", length, encoding or "", content_type or ""


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body once; afterwards the real channel (to notice a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _relative_redirects(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers") or []
            for index, (name, value) in enumerate(headers):
                if name.lower() == b"location" and value[:8].lower().startswith(
                    (b"http://", b"https://")
                ):
                    parts = urlsplit(value.decode("latin-1"))
                    relative = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                    if relative.startswith("//"):  # never a scheme-relative URL
                        relative = "/" + relative.lstrip("/")
                    headers = list(headers)
                    headers[index] = (name, relative.encode("latin-1"))
                    message["headers"] = headers
        await send(message)

    return wrapped
