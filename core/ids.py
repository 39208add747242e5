"""Opaque public ids: base64url("Type:id"), the one id every surface shows and accepts.

GraphQL, outbound webhook payloads, inbound webhook answers, CSV exports, report keys, console
URLs and CLI output all carry these; a CRM that stores the id of ``referral.created`` can send
it back and query it with ``node(id:)``. Hashids are only for referral link codes.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from typing import Any

from vouch.core.errors import ValidationFailed

MAX_ID_LENGTH = 64

# Keys of outbound webhook payloads and inbound answers that hold a row id, and its type.
PAYLOAD_ID_TYPES: Mapping[str, str] = {
    "advocate_id": "Advocate",
    "conversion_id": "Conversion",
    "link_id": "ReferralLink",
    "opportunity_id": "Opportunity",
    "program_id": "Program",
    "redemption_id": "OfferRedemption",
    "referral_id": "Referral",
    "revenue_event_id": "RevenueEvent",
    "reward_id": "Reward",
    "signal_id": "Signal",
}


@functools.lru_cache(maxsize=65_536)
def encode_id(type_name: str, pk: int) -> str:
    """Pure and called for every object in every page: memoised."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def split_id(value: str, *, field: str = "id") -> tuple[str, int]:
    """The type name and row id of any opaque id, or ``ValidationFailed``."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise ValidationFailed("not a valid id", field=field)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed("not a valid id", field=field) from exc
    prefix, _, number = raw.partition(":")
    if not prefix.isalpha() or not number.isdigit() or len(number) > 18:
        raise ValidationFailed("not a valid id", field=field)
    return prefix, int(number)


def decode_id(value: str, type_name: str, *, field: str = "id") -> int:
    """Decode an opaque id of the given type, or raise ``ValidationFailed``."""
    try:
        prefix, number = split_id(value, field=field)
    except ValidationFailed:
        prefix, number = "", 0
    if prefix != type_name:
        raise ValidationFailed(f"not a valid {type_name} id", field=field)
    return number


def public_ids(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with each row id under a ``PAYLOAD_ID_TYPES`` key as an opaque id.

    Ids already opaque (strings) are kept, so applying it twice changes nothing."""
    out = dict(payload)
    for key, type_name in PAYLOAD_ID_TYPES.items():
        value = out.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = encode_id(type_name, value)
    return out
