"""Opaque public ids: base64url("Type:id"). Hashids are only for referral link codes."""

from __future__ import annotations

import base64
import binascii
import functools

from vouch.core.errors import ValidationFailed


@functools.lru_cache(maxsize=65_536)
def encode_id(type_name: str, pk: int) -> str:
    """Pure and called for every object in every page: memoised."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_id(value: str, type_name: str, *, field: str = "id") -> int:
    """Decode an opaque id of the given type, or raise ``ValidationFailed``."""
    if len(value) > 64:
        raise ValidationFailed(f"not a valid {type_name} id", field=field)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(f"not a valid {type_name} id", field=field) from exc
    prefix, _, number = raw.partition(":")
    if prefix != type_name or not number.isdigit() or len(number) > 18:
        raise ValidationFailed(f"not a valid {type_name} id", field=field)
    return int(number)
