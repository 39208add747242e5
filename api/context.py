"""Per-request context: the session, the caller, and the dataloaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from strawberry.types import Info as StrawberryInfo

from vouch.api.loaders import Loaders
from vouch.core.codes import LinkCodec
from vouch.core.security import WidgetTokens
from vouch.core.settings import Settings


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """An API-key holder."""

    key_id: int
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api_key:{self.name}"

    @property
    def idempotency_owner(self) -> str:
        """Idempotency keys are scoped to the credential that sent them."""
        return f"api_key:{self.key_id}"


@dataclass(frozen=True, slots=True)
class WidgetPrincipal:
    """A widget token: sees one advocate and nothing else."""

    advocate_id: int

    @property
    def actor(self) -> str:
        return f"widget:{self.advocate_id}"

    @property
    def idempotency_owner(self) -> str:
        return f"widget:{self.advocate_id}"


Principal = KeyPrincipal | WidgetPrincipal | None


@dataclass
class Context:
    request: Request
    session: AsyncSession
    principal: Principal
    settings: Settings
    codec: LinkCodec
    widget_tokens: WidgetTokens
    # The request's dataloaders (``api.loaders``), made from ``session`` with the context.
    loaders: Loaders = field(init=False)
    # Why a presented credential was refused (expired token, revoked key), for a clear error.
    auth_error: str | None = None
    # Reports read here: a session on DATABASE_REPLICA_URL when configured, else ``session``.
    report_session: AsyncSession | None = None

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.session)

    @property
    def max_cost(self) -> int:
        """The most objects one operation may return for this caller (``api.cost``)."""
        if isinstance(self.principal, WidgetPrincipal):
            return self.settings.graphql_widget_max_cost
        return self.settings.graphql_max_cost

    @property
    def cost_payer(self) -> str:
        """The kind of caller the cost limit applies to, as the refusal names it."""
        return "widget tokens" if isinstance(self.principal, WidgetPrincipal) else "API keys"

    @property
    def reports_db(self) -> AsyncSession:
        return self.report_session or self.session


Info = StrawberryInfo[Context, None]
