"""One parser for a choice a caller names by its value (an ask type, a team, a status, ...)."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from vouch.core.errors import ValidationFailed

E = TypeVar("E", bound=Enum)


def parse_choice(enum: type[E], value: object, *, field: str, what: str) -> E:
    """The member of ``enum`` whose value ``value`` names (surrounding space and case ignored),
    else ``ValidationFailed`` on ``field`` listing every allowed value. ``what`` names the
    choice in the message ("ask type")."""
    text = str(value).strip() if value is not None else ""
    try:
        return enum(text.lower())
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise ValidationFailed(
            f"unknown {what} '{text[:32]}'; use one of: {allowed}", field=field
        ) from None
