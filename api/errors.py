"""Expected failures are data: every mutation payload carries a typed ``errors`` list."""

from __future__ import annotations

import strawberry

from vouch.core.errors import DomainError, ErrorCode

UserErrorCode = strawberry.enum(
    ErrorCode, name="UserErrorCode", description="Machine-readable reason for a user error."
)


@strawberry.interface(description="A problem with the request that the caller can fix.")
class UserError:
    message: str = strawberry.field(description="Human-readable explanation.")
    field: str | None = strawberry.field(
        description="The input field at fault (camelCase path), if any."
    )


@strawberry.type(description="A user error with a machine-readable code.")
class InputError(UserError):
    code: ErrorCode = strawberry.field(description="Machine-readable reason.")


def user_error(exc: DomainError) -> InputError:
    return InputError(
        message=exc.message,
        field=exc.field,
        code=exc.code,
    )


def user_errors(exc: DomainError) -> list[InputError]:
    return [user_error(exc)]
