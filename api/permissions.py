"""Authorisation checks used by every resolver. Unauthorised access is an error, not data."""

from __future__ import annotations

from graphql import GraphQLError

from vouch.api.context import Context, KeyPrincipal, WidgetPrincipal
from vouch.models.enums import Scope

_IMPLIED = {
    Scope.READ: {Scope.READ.value, Scope.WRITE.value, Scope.ADMIN.value},
    Scope.WRITE: {Scope.WRITE.value, Scope.ADMIN.value},
    Scope.ADMIN: {Scope.ADMIN.value},
}


class NotAuthorized(GraphQLError):
    def __init__(self, message: str = "not authorised") -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN"})


def require_scope(ctx: Context, scope: Scope) -> KeyPrincipal:
    """The API key principal, if it holds ``scope`` (admin implies write implies read)."""
    principal = ctx.principal
    if principal is None:
        raise NotAuthorized(
            ctx.auth_error or "authentication required: send 'Authorization: Bearer <api key>'"
        )
    if not isinstance(principal, KeyPrincipal):
        raise NotAuthorized("a widget token cannot do this")
    if not principal.scopes & _IMPLIED[scope]:
        raise NotAuthorized(f"this API key lacks the '{scope.value}' scope")
    return principal


WIDGET_OWN_ONLY = "a widget token can only see its own advocate"


def require_advocate_access(ctx: Context, advocate_id: int) -> None:
    """Read access to one advocate: a read-scoped key, or that advocate's widget token."""
    principal = ctx.principal
    if isinstance(principal, WidgetPrincipal):
        if principal.advocate_id != advocate_id:
            raise NotAuthorized(WIDGET_OWN_ONLY)
        return
    require_scope(ctx, Scope.READ)


def conceal_absence(ctx: Context) -> None:
    """A widget token gets the same answer for an unknown id as for another advocate's, so it
    cannot probe which ids exist; API keys are told NOT_FOUND (the caller re-raises it)."""
    if isinstance(ctx.principal, WidgetPrincipal):
        raise NotAuthorized(WIDGET_OWN_ONLY)


def require_widget(ctx: Context) -> int:
    """The advocate id of a widget token; API keys name the advocate explicitly instead."""
    principal = ctx.principal
    if isinstance(principal, WidgetPrincipal):
        return principal.advocate_id
    if principal is None:
        raise NotAuthorized(ctx.auth_error or "authentication required: send a widget token")
    raise NotAuthorized("only a widget token has a 'me'; query advocate(id:) with an API key")


def require_authenticated(ctx: Context) -> None:
    """Any valid credential; the caller then checks what it may see."""
    if ctx.principal is None:
        require_scope(ctx, Scope.READ)


def require_advocate_write(ctx: Context, advocate_id: int) -> None:
    """Act for one advocate: a write-scoped key, or that advocate's own widget token."""
    principal = ctx.principal
    if isinstance(principal, WidgetPrincipal):
        if principal.advocate_id != advocate_id:
            raise NotAuthorized("a widget token can only act for its own advocate")
        return
    require_scope(ctx, Scope.WRITE)


def is_widget(ctx: Context) -> bool:
    """The caller is an advocate's widget: friends' contact details are hidden from it."""
    return isinstance(ctx.principal, WidgetPrincipal)
