"""The GraphQL HTTP view: GraphQL over HTTP by the spec, hardened, and the per-request context.

- POST bodies must be ``application/json`` (form, multipart and ``text/plain`` are refused, so a
  cross-site form cannot post a mutation) and at most ``MAX_BODY_BYTES``, checked before parsing.
- GET serves queries only; a mutation over GET is a 405.
- A client that accepts ``application/graphql-response+json`` gets that media type, and a 400
  when the request fails before execution (parse, validation, variable coercion).
- NUL characters (which PostgreSQL text cannot store) are refused with a 400.
- Domain errors raised by queries carry ``extensions.code`` (and ``field``) like payload errors.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from cross_web import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_operation_type

from vouch.access.api_keys import authenticate_cached
from vouch.api.context import Context, KeyPrincipal, Principal, WidgetPrincipal
from vouch.api.execution import DocumentCache
from vouch.core.codes import LinkCodec
from vouch.core.errors import DomainError
from vouch.core.security import API_KEY_PREFIX, TokenError, WidgetTokens, bearer
from vouch.core.sessions import RequestSessions
from vouch.core.settings import Settings
from vouch.core.widget_cache import Key, WidgetResponses

# Room for a full importAdvocates batch (1,000 rows of ~200 bytes); anything bigger is refused
# before it is parsed.
MAX_BODY_BYTES = 256 * 1024
MAX_QUERY_STRING_BYTES = 16 * 1024
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
INVALID_KEY = "invalid or revoked API key"
_REQUEST_ERROR = "vouch.graphql_request_error"


class _BodyTooLarge(Exception):
    pass


def _wants_graphql_response(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE_JSON in accept


class VouchGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        schema: Any,
        *,
        settings: Settings,
        sessions: RequestSessions,
        codec: LinkCodec,
        widget_tokens: WidgetTokens,
        report_sessions: RequestSessions | None = None,
        fast_post: bool = True,
        widget_cache: WidgetResponses | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
        )
        self.settings = settings
        self.sessions = sessions
        self.report_sessions = report_sessions
        self.codec = codec
        self.widget_tokens = widget_tokens
        self.fast_post = fast_post
        # Widget tokens' query answers, kept briefly (core.widget_cache); POSTs only.
        self.widget_cache = widget_cache if fast_post else None
        self.documents: DocumentCache = schema.documents  # a VouchSchema's (api.execution)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        refusal = self._refuse_early(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope["method"] == "POST":
            try:
                body = await _read_bounded(receive, MAX_BODY_BYTES)
            except _BodyTooLarge:
                await _too_large()(scope, receive, send)
                return
            if _has_nul(body):
                await _nul_refused()(scope, receive, send)
                return
            if not body.lstrip(b" \t\r\n").startswith((b"{", b"[")):
                # A JSON scalar (42, "x", null) is no GraphQL request; strawberry would fail
                # on it with a 500. Objects are requests, arrays are refused as batches.
                await _not_an_object()(scope, receive, send)
                return
            if self.fast_post and not _wants_stream(scope):
                await self._answer_post(scope, receive, send, body)  # api.speed, piece 4
                return
            receive = _replay(body)
        elif _has_nul(unquote_to_bytes(scope.get("query_string", b""))):
            await _nul_refused()(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _answer_post(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """A POSTed JSON operation, answered without strawberry's generic view.

        Strawberry's ``run`` serves every transport and integration: request adapters, a
        sub-response, GraphiQL and streaming checks, a runtime protocol check on the result. For
        the one shape Vouch's clients POST (a JSON object, already size-, type- and NUL-checked
        in ``__call__``) that was ~10% of a widget request's CPU. Same answers, same errors."""
        request = Request(scope, _replay(body))
        try:
            data = self.parse_json(body)
            if isinstance(data, list):
                raise HTTPException(400, "Batching is not enabled")
            operation = _operation(data)
            kept = self._kept_for(request, operation)
            if kept is not None and kept.body is not None:
                response: Response = Response(kept.body, media_type=JSON)
                await self._finish(request, response)(scope, receive, send)
                return
            context = await self._context(request, kept.principal if kept else None)
            result = await self.execute_single(
                request=request,
                request_adapter=_POST,
                sub_response=None,
                context=context,
                root_value=None,
                request_data=operation,
            )
            response_data = await self.process_result(request, result)
            encoded = self.encode_json(response_data)
            if kept is not None and self._keepable(operation, result):
                kept.cache.put(kept.key, encoded, kept.epoch)
            response = Response(encoded, media_type=JSON)
        except HTTPException as exc:
            response = PlainTextResponse(exc.reason, status_code=exc.status_code)
        await self._finish(request, response)(scope, receive, send)

    def _kept_for(self, request: Request, operation: GraphQLRequestData) -> _Kept | None:
        """For a widget token's request: its kept answer (``body``), or where to keep the
        answer about to be computed (``core.widget_cache``). None: not a widget's request, or
        the cache is off."""
        cache = self.widget_cache
        if cache is None:
            return None
        token = bearer(request.headers.get("authorization")).token
        if not token or token.startswith(API_KEY_PREFIX):
            return None
        try:
            advocate_id = self.widget_tokens.verify(token)
        except TokenError:
            return None  # answered by the normal path, which names the refusal
        key = cache.key(advocate_id, operation.query, operation.operation_name, operation.variables)
        if key is None:
            return None
        epoch = cache.epoch
        principal = WidgetPrincipal(advocate_id=advocate_id)
        if _NO_CACHE.search(request.headers.get("cache-control", "")):
            cache.bypassed()
            return _Kept(cache, key, epoch, principal, None)
        return _Kept(cache, key, epoch, principal, cache.get(key))

    def _keepable(self, operation: GraphQLRequestData, result: ExecutionResult) -> bool:
        """A query's answer without errors (never a mutation's)."""
        if result.errors or result.data is None or operation.query is None:
            return False
        document = self.documents.get(operation.query).document
        if document is None:
            return False
        try:
            kind = get_operation_type(document, operation.operation_name)
        except RuntimeError:
            return False
        return kind is OperationType.QUERY

    def _refuse_early(self, scope: Scope) -> Response | None:
        """Refusals that need no parsing: size, and content types a browser form can send."""
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if len(scope.get("query_string", b"")) > MAX_QUERY_STRING_BYTES:
            return PlainTextResponse("query string too long", status_code=414)
        if scope["method"] != "POST":
            return None
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _too_large()
        if _media_type(headers.get(b"content-type", b"")) != "application/json":
            return PlainTextResponse("send GraphQL requests as application/json", status_code=415)
        return None

    def decode_json(self, data: str | bytes) -> object:
        """orjson: faster, and stricter (invalid UTF-8, lone surrogates, NaN are a 400)."""
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        """orjson: a page of 50 encodes in a fifth of the time ``json.dumps`` takes."""
        try:
            return orjson.dumps(data)
        except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits
            return json.dumps(data, separators=(",", ":")).encode()

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as exc:
            adapter = kwargs.get("request_adapter")
            if (
                isinstance(exc.__cause__, InvalidOperationTypeError)
                and getattr(adapter, "method", None) == "GET"
            ):
                raise HTTPException(405, "only queries are allowed over GET; use POST") from exc
            raise

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # (A database outage never gets here: api.execution re-raises it for the app's 503.)
        response = await super().process_result(request, result)
        errors = result.errors or []
        formatted = response.get("errors") or []
        for error, shown in zip(errors, formatted, strict=False):
            original = error.original_error
            if isinstance(original, DomainError) and isinstance(shown, dict):
                extensions = dict(shown.get("extensions") or {})
                extensions.setdefault("code", original.code.value)
                if original.field:
                    extensions.setdefault("field", original.field)
                shown["extensions"] = extensions
        request_error = result.data is None and bool(errors) and all(e.path is None for e in errors)
        setattr(request.state, _REQUEST_ERROR, request_error)
        if request_error and _wants_graphql_response(request):
            response.pop("data", None)
        return response

    async def run(self, request: Request | WebSocket, **kwargs: Any) -> Any:  # type: ignore[override]
        response = await super().run(request, **kwargs)
        if isinstance(request, Request) and isinstance(response, Response):
            return self._finish(request, response)
        return response

    def _finish(self, request: Request, response: Response) -> Response:
        """``application/graphql-response+json`` when the client asked for it, with a 400 for
        a request that failed before execution (GraphQL over HTTP)."""
        if response.media_type == JSON and _wants_graphql_response(request):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
            if getattr(request.state, _REQUEST_ERROR, False):
                response.status_code = 400
        return response

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        return await self._context(request)

    async def _context(self, request: Request, verified: WidgetPrincipal | None = None) -> Context:
        """The request's context; ``verified``: its widget token, already checked."""
        session = self.sessions.get(request.scope.setdefault("state", {}))
        principal: Principal = verified
        auth_error: str | None = None
        if verified is None:
            principal, auth_error = await self._principal(request, session)
        return Context(
            request=request,
            session=session,
            principal=principal,
            settings=self.settings,
            codec=self.codec,
            widget_tokens=self.widget_tokens,
            auth_error=auth_error,
            report_session=(
                # Lazily opened: a request that reads no report never touches the replica.
                self.report_sessions.get(request.scope["state"])
                if self.report_sessions is not None
                else None
            ),
        )

    async def _principal(
        self, request: Request, session: AsyncSession
    ) -> tuple[Principal, str | None]:
        """Who sent the request, or why the credential they sent was refused."""
        credential = bearer(request.headers.get("authorization"))
        token = credential.token or ""
        if credential.sent and credential.token is None:
            return None, "send credentials as 'Authorization: Bearer <api key or widget token>'"
        if token.startswith(API_KEY_PREFIX):
            key = await authenticate_cached(session, token)
            if key is None:
                return None, INVALID_KEY
            if session.in_transaction():
                await session.commit()  # a cache miss may have written last_used_at
            return KeyPrincipal(key_id=key.id, name=key.name, scopes=frozenset(key.scopes)), None
        if token:
            try:
                return WidgetPrincipal(advocate_id=self.widget_tokens.verify(token)), None
            except TokenError as exc:
                return None, str(exc)
        return None, None


@functools.lru_cache(maxsize=64)
def _media_type(content_type: bytes) -> str:
    """The media type of a Content-Type header, lower case (strawberry's parser builds an email
    message per call; clients send a handful of distinct values)."""
    media_type, _ = parse_content_type(content_type.decode("latin-1"))
    return media_type


@dataclass(frozen=True, slots=True)
class _Kept:
    """A widget request's place in the widget cache: its key, the cache's epoch when it
    looked, the verified token's principal (not checked again for the request's context), and
    the kept answer if there was one."""

    cache: WidgetResponses
    key: Key
    epoch: int
    principal: WidgetPrincipal
    body: bytes | None


# A client that asks for a fresh answer gets one (and it is kept for the next request).
_NO_CACHE = re.compile(r"no-cache|no-store|max-age\s*=\s*0\b", re.IGNORECASE)


class _PostAdapter:
    """What ``execute_single`` reads of a request adapter: the method."""

    method = "POST"


_POST: Any = _PostAdapter()
_STREAMING = (b"text/event-stream", b"multipart/mixed")


def _wants_stream(scope: Scope) -> bool:
    """A streaming transport (SSE, incremental delivery) is asked for: strawberry's view
    answers those (Vouch has no subscriptions, so it refuses or answers plainly)."""
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return any(kind in value for kind in _STREAMING)
    return False


def _operation(data: Any) -> GraphQLRequestData:
    """The operation in a POSTed JSON object, checked as strawberry checks it."""
    query = data.get("query")
    if not isinstance(query, (str, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `query` must be a string or null, if provided."
        )
    variables = data.get("variables")
    if not isinstance(variables, (dict, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `variables` must be an object or null, if provided."
        )
    extensions = data.get("extensions")
    if not isinstance(extensions, (dict, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `extensions` must be an object or null, if provided."
        )
    return GraphQLRequestData(
        query=query,
        variables=variables,
        operation_name=data.get("operationName"),
        extensions=extensions,
        protocol="http",
    )


def _has_nul(raw: bytes) -> bool:
    """PostgreSQL text cannot hold NUL; refuse it at the edge instead of failing in SQL."""
    return b"\x00" in raw or b"\\u0000" in raw


def _nul_refused() -> Response:
    return PlainTextResponse("NUL characters are not allowed in requests", status_code=400)


def _not_an_object() -> Response:
    return PlainTextResponse("the body must be a JSON object", status_code=400)


def _too_large() -> Response:
    return PlainTextResponse(f"request body over {MAX_BODY_BYTES // 1024} KB", status_code=413)


async def _read_bounded(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
