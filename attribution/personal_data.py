"""Where personal data lives: every column and webhook payload key that holds it, in one place.

Erasure (``attribution.erasure``) walks these maps, so a column added here is erased
everywhere, and ``tests/security/test_erasure_dump.py`` dumps every table after an erasure to
prove none of the person's values is left. A new column that can hold a person's data belongs
here; each entry says how erasure treats it:

- ``NULL``: cleared;
- ``HASH``: replaced by a keyed hash (``erased:<hex>``), for identifiers that deduplication or
  a unique constraint still needs (a second signup with the same email stays a duplicate);
- ``SCRUB``: free-form JSON, kept with every string removed (numbers and booleans stay, so
  nothing counted changes), because free text (an NPS comment) may name anyone.

Two subjects: an *advocate* (a customer contact, found by advocate id) and a *referred person*
(a friend, found by email or referral id). Values that travel outside these columns — stored
idempotent responses and pending or delivered webhook payloads — are covered by
``PAYLOAD_KEYS`` and by replacing the erased values wherever a stored response repeats them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute

from vouch.models import (
    AdvocacyAction,
    Advocate,
    Ask,
    Click,
    OfferRedemption,
    OpportunityContact,
    Referral,
    RevenueEvent,
    Signal,
)


class Treatment(StrEnum):
    NULL = "null"
    HASH = "hash"
    SCRUB = "scrub"


Columns = dict[InstrumentedAttribute[Any], Treatment]

# The advocate's own row and the rows that describe them (found by advocate_id).
ADVOCATE: Columns = {
    Advocate.external_id: Treatment.HASH,
    Advocate.email: Treatment.NULL,
    Advocate.email_normalized: Treatment.NULL,
    Advocate.first_name: Treatment.NULL,
    Advocate.last_name: Treatment.NULL,
    Advocate.persona: Treatment.NULL,
}
ADVOCATE_SIGNALS: Columns = {Signal.external_id: Treatment.HASH, Signal.data: Treatment.SCRUB}
ADVOCATE_ACTIONS: Columns = {
    AdvocacyAction.url: Treatment.NULL,  # a review or post URL may carry their name
    AdvocacyAction.external_id: Treatment.HASH,
    AdvocacyAction.data: Treatment.SCRUB,
}
ADVOCATE_ASKS: Columns = {Ask.decline_reason: Treatment.NULL, Ask.outcome: Treatment.NULL}

# The referred person: their referrals, the clicks that led to them, their redemptions and the
# revenue recorded against them (found by referral id), and CRM contacts (by person key).
REFERRAL: Columns = {
    Referral.person_key: Treatment.HASH,
    Referral.email: Treatment.NULL,
    Referral.name: Treatment.NULL,
    Referral.company: Treatment.NULL,
    Referral.external_id: Treatment.NULL,
    Referral.visitor_id: Treatment.NULL,
    Referral.ip_hash: Treatment.NULL,
}
REFERRAL_CLICKS: Columns = {
    Click.ip_hash: Treatment.NULL,
    Click.user_agent: Treatment.NULL,
    Click.visitor_id: Treatment.NULL,
}
REFERRAL_REDEMPTIONS: Columns = {
    OfferRedemption.redeemed_by: Treatment.HASH,
    OfferRedemption.order_ref: Treatment.HASH,
}
REFERRAL_REVENUE: Columns = {RevenueEvent.data: Treatment.SCRUB}
CONTACTS: Columns = {OpportunityContact.person_key: Treatment.HASH}

# Webhook payload keys holding a referred person's data, by event type (payloads name
# everything else by id). Erasure rewrites them in every stored event of the person's
# referrals, so pending and retried deliveries send the erased payload.
PAYLOAD_KEYS: dict[str, tuple[str, ...]] = {"offer.redeemed": ("order_ref", "redeemed_by")}


def scrub(value: Any) -> Any:
    """JSON without its strings: objects and arrays keep their numbers, booleans and nulls."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not isinstance(v, str)}
    if isinstance(value, list):
        return [scrub(v) for v in value if not isinstance(v, str)]
    return value


# A stored string that merely contains an erased value this short (a first name, a short id)
# is left alone: only an exact match is replaced, so other people's text is not clobbered.
MIN_CONTAINED = 6


def replace_values(value: Any, replacements: dict[str, str]) -> Any:
    """JSON with every string equal to an erased value, or containing one of at least
    ``MIN_CONTAINED`` characters (free text naming the person), replaced by its hash."""
    if isinstance(value, dict):
        return {k: replace_values(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_values(v, replacements) for v in value]
    if isinstance(value, str):
        lowered = value.lower()
        for old, new in replacements.items():
            folded = old.lower()
            if lowered == folded or (len(folded) >= MIN_CONTAINED and folded in lowered):
                return new
    return value
