"""The GraphQL HTTP view: authenticates the caller and builds the per-request context."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from access.api_keys import authenticate
from api.context import Context, KeyPrincipal, Principal, WidgetPrincipal
from core.codes import LinkCodec
from core.db import RequestSessions, is_database_unavailable
from core.security import TokenError, WidgetTokens
from core.settings import Settings


class VouchGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        schema: Any,
        *,
        settings: Settings,
        sessions: RequestSessions,
        codec: LinkCodec,
        widget_tokens: WidgetTokens,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
        )
        self.settings = settings
        self.sessions = sessions
        self.codec = codec
        self.widget_tokens = widget_tokens

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        session = self.sessions.get(request.scope.setdefault("state", {}))
        principal: Principal = None
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            token = token.strip()
            if token.startswith("vk_"):
                key = await authenticate(session, token)
                if key is not None:
                    principal = KeyPrincipal(
                        key_id=key.id, name=key.name, scopes=frozenset(key.scopes)
                    )
                    await session.commit()  # persist last_used_at, end the auth transaction
            else:
                try:
                    principal = WidgetPrincipal(advocate_id=self.widget_tokens.verify(token))
                except TokenError:
                    principal = None
        return Context(
            request=request,
            session=session,
            principal=principal,
            settings=self.settings,
            codec=self.codec,
            widget_tokens=self.widget_tokens,
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """A database outage is not a GraphQL error: re-raise it so the app answers 503."""
        for error in result.errors or ():
            original = error.original_error
            if original is not None and is_database_unavailable(original):
                raise original
        return await super().process_result(request, result)
