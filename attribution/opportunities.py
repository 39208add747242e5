"""Opportunities from the CRM: upserted by CRM id, with stage and amount history.

A referral can lead to several opportunities (new business, expansion, renewal) and an
opportunity can have several contacts. Only *new business* moves the referral through its
lifecycle (open → opportunity, won → won, lost → lost when nothing else is open or won);
expansion and renewal deals are reported as expansion revenue of an existing customer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access import idempotency
from vouch.attribution import lifecycle, rewards, rollups, webhooks
from vouch.attribution.referrals import latest_referral_of_people
from vouch.core.batching import NESTED_LIST_MAX
from vouch.core.emails import normalize_email
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.money import check_amount, check_currency
from vouch.core.paging import Page, paginate
from vouch.core.raw_select import flush_pending, run_raw
from vouch.core.snapshot import copy_to_loaded, snapshot_class
from vouch.models import Opportunity, OpportunityContact, OpportunityEvent, Program, Referral
from vouch.models.enums import (
    CrmProvider,
    OpportunityKind,
    OpportunityStatus,
    ReferralStatus,
    RewardTrigger,
)
from vouch.models.snapshots import OpportunitySnapshot, ReferralSnapshot


@dataclass(frozen=True, slots=True)
class ContactData:
    email: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class OpportunityData:
    crm_id: str
    stage: str
    amount_minor: int
    # None: the deal's current currency, else its referral's program's; never assumed USD.
    currency: str | None
    status: str = OpportunityStatus.OPEN
    kind: str = OpportunityKind.NEW_BUSINESS
    name: str | None = None
    referral_id: int | None = None
    close_date: date | None = None
    owner: str | None = None
    contacts: list[ContactData] = field(default_factory=list)
    # Which CRM the id belongs to (the id itself is kept exactly as the CRM gives it).
    provider: str = CrmProvider.OTHER

    def fingerprint(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "crm_id": self.crm_id,
            "stage": self.stage,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "status": self.status,
            "kind": self.kind,
            "name": self.name,
            "referral_id": self.referral_id,
            "close_date": self.close_date.isoformat() if self.close_date else None,
            "owner": self.owner,
            "contacts": [[c.email, c.role] for c in self.contacts],
        }


@dataclass(frozen=True, slots=True)
class UpsertResult:
    opportunity: OpportunitySnapshot  # the deal as written (an ORM object on a replay)
    created: bool
    changed: bool


def _text(value: str | None, name: str, limit: int, *, required: bool = False) -> str | None:
    value = value.strip() if value is not None else None
    if required and not value:
        raise ValidationFailed(f"{name} is required", field=name)
    if value is not None and len(value) > limit:
        raise ValidationFailed(f"{name} must be at most {limit} characters", field=name)
    return value or None


def validate(data: OpportunityData) -> OpportunityData:
    """Check and normalise the input; raises before anything is written."""
    try:
        kind = OpportunityKind(data.kind)
    except ValueError:
        raise ValidationFailed(
            "kind must be new_business, expansion or renewal", field="kind"
        ) from None
    try:
        status = OpportunityStatus(data.status)
    except ValueError:
        raise ValidationFailed("status must be open, won or lost", field="status") from None
    provider = parse_provider(data.provider)
    contacts: list[ContactData] = []
    for i, contact in enumerate(data.contacts[:50]):
        email = _text(contact.email, f"contacts[{i}].email", 254, required=True)
        assert email is not None
        if "@" not in email:
            raise ValidationFailed("not a valid email address", field=f"contacts[{i}].email")
        contacts.append(ContactData(email=email, role=_text(contact.role, "role", 64)))
    if len(data.contacts) > 50:
        raise ValidationFailed("at most 50 contacts per opportunity", field="contacts")
    return OpportunityData(
        provider=provider,
        crm_id=_text(data.crm_id, "crmId", 128, required=True) or "",
        stage=_text(data.stage, "stage", 64, required=True) or "",
        amount_minor=check_amount(data.amount_minor),
        currency=check_currency(data.currency) if data.currency else None,
        status=status,
        kind=kind,
        name=_text(data.name, "name", 200),
        referral_id=data.referral_id,
        close_date=data.close_date,
        owner=_text(data.owner, "owner", 128),
        contacts=contacts,
    )


def parse_provider(value: str | None, *, field: str = "provider") -> CrmProvider:
    """``hubspot``, ``salesforce`` or ``other`` (the default: any other CRM)."""
    try:
        return CrmProvider((value or CrmProvider.OTHER).strip().lower())
    except ValueError:
        raise ValidationFailed(
            "provider must be hubspot, salesforce or other", field=field
        ) from None


_DEAL_ROW = snapshot_class(Opportunity)
_REFERRAL_ROW = snapshot_class(Referral)
_REFERRAL_WIDTH = len(_REFERRAL_ROW._fields)
_DEAL_COLUMNS = ", ".join(_DEAL_ROW._fields)
_HISTORY_COLUMNS = (
    "opportunity_id, from_stage, to_stage, from_amount_minor, to_amount_minor, at, source"
)
# Prebuilt (every deal push runs them), on the deal by provider and CRM id ($1, $2): its current
# link and currency (read before any lock: which referrals to lock), and the deal locked.
_LINK_AND_CURRENCY = (
    "SELECT referral_id, currency FROM opportunities WHERE provider = $1 AND crm_id = $2"
)
_LOCK_DEAL = (
    f"SELECT {_DEAL_COLUMNS} FROM opportunities"  # noqa: S608 (column names only)
    " WHERE provider = $1 AND crm_id = $2 FOR UPDATE"
)
# A new deal (once per provider and CRM id: a concurrent creator's row wins and nothing is
# returned) with its first history line: one statement. $1-$12 its columns, $13 now, $14 the
# history line's source.
_INSERT_DEAL = f"""
WITH deal AS (
    INSERT INTO opportunities (provider, crm_id, referral_id, program_id, kind, name,
        amount_minor, currency, stage, status, close_date, owner, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
    ON CONFLICT (provider, crm_id) DO NOTHING
    RETURNING {_DEAL_COLUMNS}
), history AS (
    INSERT INTO opportunity_events ({_HISTORY_COLUMNS})
    SELECT id, NULL, stage, NULL, amount_minor, $13, $14 FROM deal
)
SELECT * FROM deal"""  # noqa: S608 (column names only)
_MOVE_RULES = f"""(SELECT json_agg(rule ORDER BY rule.id) FROM reward_rules AS rule
WHERE rule.program_id = referrals.program_id AND rule.active
  AND rule.trigger IN ('{RewardTrigger.QUALIFIED.value}', '{RewardTrigger.WON.value}'))"""  # noqa: S608
# What a change to a deal adds to both rollups (the deal's own rows before and after, for its
# locked referral; empty arrays add nothing), its ``opportunity.updated`` outbox event and, under
# an idempotency key, the key's answer (NULL key: none). $1-$10 ``rollups.deal_change_args``
# ($8 the deal), $11 the payload, $12 now, $13-$15 the key's owner, key and operation, $16 the
# answer.
_ANNOUNCE_CTES = ",".join(
    (
        rollups.DEAL_CHANGE_CTES,
        webhooks.enqueue_ctes(event_type="'opportunity.updated'", payload="$11::jsonb", now="$12"),
        "answered AS ("
        + idempotency.store_sql(response="$16::jsonb", owner="$13", key="$14", scope="$15")
        + ")",
    )
)
# A new deal's rollup rows, outbox event and answer (the deal and its history line written).
_DEAL_CHANGED = f"WITH {_ANNOUNCE_CTES} SELECT id FROM event"  # noqa: S608 (constants only)
# A change to an existing deal, locked: the deal updated, its history line when the stage or
# amount moved, and what ``_DEAL_CHANGED`` writes, in one statement. $17-$26 the deal's new
# referral, program, kind, name, amount, currency, stage, status, close date and owner; $27,
# $28 the stage and amount before, $29 the history line's source, $30 whether there is one.
_DEAL_UPDATED = f"""
WITH deal AS (
    UPDATE opportunities SET referral_id = $17, program_id = $18, kind = $19, name = $20,
        amount_minor = $21, currency = $22, stage = $23, status = $24, close_date = $25,
        owner = $26, updated_at = $12
    WHERE id = $8
), history AS (
    INSERT INTO opportunity_events ({_HISTORY_COLUMNS})
    SELECT $8, $27::varchar, $23, $28::bigint, $21, $12, $29::varchar WHERE $30::boolean
), {_ANNOUNCE_CTES}
SELECT id FROM event"""  # noqa: S608 (column names only)
# A referral under its row lock, with its program's settings and active qualified and won rules
# (what the referral's move may earn): one statement. $1 the referral.
_LOCK_WITH_RULES = f"""
SELECT {", ".join(f"referrals.{name}" for name in _REFERRAL_ROW._fields)}, programs.settings,
    {_MOVE_RULES}
FROM referrals JOIN programs ON programs.id = referrals.program_id
WHERE referrals.id = $1
FOR UPDATE OF referrals"""  # noqa: S608 (column names and enum values only)


async def _resolve_referral(
    session: AsyncSession, data: OpportunityData, *, lock: bool = False
) -> tuple[Referral | ReferralSnapshot | None, _Earning | None]:
    """The referral named, or the referral of a contact. ``lock``: the named one is read under
    its row lock (the deal's rollup and the referral's move need it), with what its move may
    earn."""
    if data.referral_id is not None:
        referral, earning = (
            await _lock_with_rules(session, data.referral_id)
            if lock
            else (await session.get(Referral, data.referral_id), None)
        )
        if referral is None:
            raise NotFound("no such referral", field="referralId")
        return referral, earning
    # A contact who was referred: the most recent live referral of that person.
    keys = [normalize_email(c.email) for c in data.contacts]
    return await latest_referral_of_people(session, keys), None


@dataclass(frozen=True, slots=True)
class _Earning:
    """What a locked referral's move may earn, read with it."""

    rules: dict[str, list[rewards.EngineRule]]
    auto_approve: bool


async def _lock_with_rules(
    session: AsyncSession, referral_id: int
) -> tuple[ReferralSnapshot | None, _Earning | None]:
    """(Raw: its caller, ``upsert_opportunity``, has flushed the session's changes.)"""
    rows = await run_raw(session, _LOCK_WITH_RULES, [referral_id])
    if not rows:
        return None, None
    row = rows[0]
    settings, rules = row[_REFERRAL_WIDTH], row[_REFERRAL_WIDTH + 1]
    return _REFERRAL_ROW._make(row[:_REFERRAL_WIDTH]), _Earning(
        rules=rewards.rules_by_trigger(rewards.rule_snapshots(rules)),
        auto_approve=bool((settings or {}).get(rewards.AUTO_APPROVE)),
    )


def opportunity_payload(opp: OpportunitySnapshot) -> dict[str, Any]:
    return {
        "opportunity_id": opp.id,
        "provider": opp.provider,
        "crm_id": opp.crm_id,
        "referral_id": opp.referral_id,
        "program_id": opp.program_id,
        "kind": opp.kind,
        "stage": opp.stage,
        "status": opp.status,
        "amount_minor": opp.amount_minor,
        "currency": opp.currency,
    }


@dataclass(frozen=True, slots=True)
class _Key:
    """An idempotency key claimed for this push: its answer is kept in the push's last write."""

    owner: str
    key: str
    operation: str

    def args(self, answer: dict[str, Any]) -> list[Any]:
        return [
            self.owner[: idempotency.MAX_OWNER_LENGTH],
            self.key,
            self.operation,
            json.dumps(answer, separators=(",", ":")),
        ]


async def upsert_opportunity(
    session: AsyncSession,
    data: OpportunityData,
    *,
    source: str,
    actor: str | None,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_owner: str = "",
    operation: str = "upsert_opportunity",
    sent: dict[str, Any] | None = None,
) -> UpsertResult:
    """Create or update the opportunity with this CRM id; idempotent for identical input.

    With an idempotency key a retry gets the first answer back (``created`` and ``changed``
    as first answered). ``sent`` is what the caller sent when ``data`` was completed from the
    stored deal (``move_stage``); only that is fingerprinted.
    """
    data = validate(data)
    key: _Key | None = None
    if idempotency_key is not None:
        stored = await idempotency.claim(
            session,
            scope=operation,
            key=idempotency_key,
            payload=sent if sent is not None else data.fingerprint(),
            owner=idempotency_owner,
        )
        if stored is not None:
            return UpsertResult(
                opportunity=await get_opportunity(session, int(stored["opportunity_id"])),
                created=bool(stored.get("created", False)),
                changed=bool(stored.get("changed", False)),
            )
        key = _Key(idempotency_owner, idempotency_key, operation)
    await flush_pending(session)
    linked = await run_raw(session, _LINK_AND_CURRENCY, [data.provider, data.crm_id])
    exists = bool(linked)
    linked_before, current_currency = linked[0] if linked else (None, None)
    # The referral under its row lock when it is the only one the deal involves (the rollup
    # takes no lock of its own then, and the referral's move none either); a deal moving from
    # one referral to another locks both in the rollup, in id order.
    referral, earning = await _resolve_referral(
        session, data, lock=linked_before is None or linked_before == data.referral_id
    )
    locked: ReferralSnapshot | None = None
    if referral is not None and linked_before in (None, referral.id):
        if data.referral_id is not None:
            locked = referral
        else:  # a contact's referral: locked now, with what its move may earn
            locked, earning = await _lock_with_rules(session, referral.id)
            if locked is None:
                raise NotFound("no such referral", field="contacts")
    if data.currency is None:
        program = await session.get(Program, referral.program_id) if referral else None
        currency = current_currency or (program.currency if program else None)
        if currency is None:
            raise ValidationFailed(
                "currency is required for a deal not linked to a referral", field="currency"
            )
        data = replace(data, currency=currency)
    if locked is not None:
        # The deal's one referral, locked: what the change adds to the rollup is the deal's own
        # rows, before and after (no read of the referral's whole contribution, twice), written
        # with the deal's change.
        written = await _write_deal(
            session, data, locked, exists=exists, rollup=True, key=key, source=source, now=now
        )
    else:
        async with rollups.track(session, [linked_before, referral.id if referral else None]):
            written = await _write_deal(
                session,
                data,
                referral,
                exists=exists,
                rollup=False,
                key=key,
                source=source,
                now=now,
            )
    opp = written.deal
    if written.changed and not written.created:
        copy_to_loaded(session, Opportunity, opp)  # a caller's loaded object sees the change
    if data.contacts:
        await _add_contacts(session, opp.id, data.contacts, referral)
    if written.changed and opp.referral_id is not None and opp.kind == OpportunityKind.NEW_BUSINESS:
        await _move_referral(
            session,
            opp,
            written.previous_status,
            source=source,
            actor=actor,
            now=now,
            locked=locked,
            earning=earning,
        )
    if key is not None and not written.changed:  # (a change keeps its answer as it writes)
        await idempotency.store_response(
            session,
            scope=operation,
            key=key.key,
            response={"opportunity_id": opp.id, "created": False, "changed": False},
            owner=key.owner,
        )
    return UpsertResult(opportunity=opp, created=written.created, changed=written.changed)


@dataclass(frozen=True, slots=True)
class _Written:
    deal: OpportunitySnapshot  # as it now is
    created: bool
    changed: bool
    previous_status: str | None


async def _write_deal(
    session: AsyncSession,
    data: OpportunityData,
    referral: Referral | ReferralSnapshot | None,
    *,
    exists: bool,
    rollup: bool,
    key: _Key | None,
    source: str,
    now: datetime,
) -> _Written:
    """Create or change the deal, with its history line, its outbox event, the key's answer
    and (``rollup``: ``referral`` is locked and the deal's only one) what it adds to both
    rollups: two statements for a new deal, two for a change (the deal locked, then one write),
    one when nothing changed."""
    before = await _lock_deal(session, data) if exists else None
    if before is None:
        closes = data.close_date or (now.date() if data.status == OpportunityStatus.WON else None)
        rows = await run_raw(
            session,
            _INSERT_DEAL,
            [
                data.provider,
                data.crm_id,
                referral.id if referral else None,
                referral.program_id if referral else None,
                data.kind,
                data.name,
                data.amount_minor,
                data.currency,
                data.stage,
                data.status,
                closes,
                data.owner,
                now,
                source,
            ],
        )
        if rows:
            deal = _DEAL_ROW._make(rows[0])
            await _announce(
                session,
                _DEAL_CHANGED,
                None,
                deal,
                rollup=rollup,
                key=key,
                now=now,
                answer={"opportunity_id": deal.id, "created": True, "changed": True},
            )
            return _Written(deal=deal, created=True, changed=True, previous_status=None)
        before = await _lock_deal(session, data)  # created concurrently: committed by now
        assert before is not None
    after = before._replace(
        stage=data.stage,
        amount_minor=data.amount_minor,
        currency=data.currency,
        status=data.status,
        kind=data.kind,
        name=data.name if data.name is not None else before.name,
        # A deal reported won without a close date closed today (unless it had one).
        close_date=data.close_date
        or before.close_date
        or (now.date() if data.status == OpportunityStatus.WON else None),
        owner=data.owner if data.owner is not None else before.owner,
    )
    if referral is not None and before.referral_id != referral.id:
        after = after._replace(referral_id=referral.id, program_id=referral.program_id)
    if after == before:
        return _Written(deal=before, created=False, changed=False, previous_status=before.status)
    after = after._replace(updated_at=now)
    moved = before.stage != after.stage or before.amount_minor != after.amount_minor
    await _announce(
        session,
        _DEAL_UPDATED,
        before,
        after,
        rollup=rollup,
        key=key,
        now=now,
        answer={"opportunity_id": after.id, "created": False, "changed": True},
        extra=[
            after.referral_id,
            after.program_id,
            after.kind,
            after.name,
            after.amount_minor,
            after.currency,
            after.stage,
            after.status,
            after.close_date,
            after.owner,
            before.stage,
            before.amount_minor,
            source,
            moved,
        ],
    )
    return _Written(deal=after, created=False, changed=True, previous_status=before.status)


async def _lock_deal(session: AsyncSession, data: OpportunityData) -> Any:
    rows = await run_raw(session, _LOCK_DEAL, [data.provider, data.crm_id])
    return _DEAL_ROW._make(rows[0]) if rows else None


async def _announce(
    session: AsyncSession,
    sql: str,
    before: OpportunitySnapshot | None,
    after: OpportunitySnapshot,
    *,
    rollup: bool,
    key: _Key | None,
    now: datetime,
    answer: dict[str, Any],
    extra: list[Any] | None = None,
) -> None:
    """Run ``_DEAL_CHANGED`` or ``_DEAL_UPDATED`` for a change to a deal."""
    changes = (
        rollups.deal_change_args(after.referral_id, after.id, before, after)
        if rollup and after.referral_id is not None
        else None
    )
    await run_raw(
        session,
        sql,
        [
            *(changes or [after.referral_id, *[[]] * 6, after.id, after.kind, after.kind]),
            webhooks.payload_json(opportunity_payload(after)),
            now,
            *(key.args(answer) if key is not None else [None] * 4),
            *(extra or ()),
        ],
    )


async def _add_contacts(
    session: AsyncSession,
    deal_id: int,
    contacts: list[ContactData],
    referral: Referral | ReferralSnapshot | None,
) -> None:
    for contact in contacts:
        person = normalize_email(contact.email)
        await session.execute(
            insert(OpportunityContact)
            .values(
                opportunity_id=deal_id,
                person_key=person,
                role=contact.role,
                referral_id=referral.id if referral and referral.person_key == person else None,
            )
            .on_conflict_do_update(
                index_elements=["opportunity_id", "person_key"],
                set_={"role": contact.role},
            )
        )


async def _move_referral(
    session: AsyncSession,
    opp: OpportunitySnapshot,
    previous_status: str | None,
    *,
    source: str,
    actor: str | None,
    now: datetime,
    locked: ReferralSnapshot | None = None,
    earning: _Earning | None = None,
) -> None:
    """``locked``: the deal's referral, read under its row lock in this transaction already
    (``earning``: with what its move may earn)."""
    assert opp.referral_id is not None
    if locked is None or locked.id != opp.referral_id:
        locked, earning = await lifecycle.lock_referral(session, opp.referral_id), None
    referral = locked
    rules, auto_approve = (earning.rules, earning.auto_approve) if earning else (None, None)
    target = await _move_target(session, opp, previous_status, referral)
    if target is None:
        return
    won = target == ReferralStatus.WON
    await lifecycle.transition(
        session,
        referral.id,
        target,
        source=source,
        actor=actor,
        now=now,
        detail={"opportunity_id": opp.id, "provider": opp.provider, "crm_id": opp.crm_id},
        locked=referral,
        rules=rules,
        auto_approve=auto_approve,
        won_amount_minor=opp.amount_minor if won else None,
        won_currency=opp.currency if won else None,
    )


async def _move_target(
    session: AsyncSession,
    opp: OpportunitySnapshot,
    previous_status: str | None,
    referral: ReferralSnapshot,
) -> ReferralStatus | None:
    """Where a new-business deal's change moves its referral, if anywhere: won → won; open →
    opportunity (from lead, qualified or lost); newly lost → lost, when no other new-business
    deal of the referral is open or won. A rejected referral stays where it is."""
    if referral.status == ReferralStatus.REJECTED:
        return None
    if opp.status == OpportunityStatus.WON and referral.status != ReferralStatus.WON:
        return ReferralStatus.WON
    if opp.status == OpportunityStatus.OPEN and referral.status in (
        ReferralStatus.LEAD,
        ReferralStatus.QUALIFIED,
        ReferralStatus.LOST,
    ):
        return ReferralStatus.OPPORTUNITY
    if opp.status != OpportunityStatus.LOST or previous_status == OpportunityStatus.LOST:
        return None
    if referral.status not in (
        ReferralStatus.LEAD,
        ReferralStatus.QUALIFIED,
        ReferralStatus.OPPORTUNITY,
        ReferralStatus.WON,
    ):
        return None
    others = await session.scalar(
        select(Opportunity.id)
        .where(
            Opportunity.referral_id == referral.id,
            Opportunity.id != opp.id,
            Opportunity.kind == OpportunityKind.NEW_BUSINESS,
            Opportunity.status.in_([OpportunityStatus.OPEN, OpportunityStatus.WON]),
        )
        .limit(1)
    )
    return ReferralStatus.LOST if others is None else None


async def find_by_crm_id(
    session: AsyncSession,
    crm_id: str,
    provider: str | None,
    *,
    field: str = "crmId",
    lock: bool = False,
) -> Opportunity:
    """The opportunity with this CRM id. Without a provider the id must be unambiguous: when
    two CRMs use the same id, the caller is asked to name the provider."""
    stmt = select(Opportunity).where(Opportunity.crm_id == crm_id.strip())
    if provider is not None:
        stmt = stmt.where(Opportunity.provider == parse_provider(provider))
    if lock:
        stmt = stmt.with_for_update()
    rows = list((await session.scalars(stmt.order_by(Opportunity.id).limit(2))).all())
    if not rows:
        raise NotFound("no opportunity with this CRM id", field=field)
    if len(rows) > 1:
        raise ValidationFailed(
            "several CRMs use this id: name the provider (hubspot, salesforce or other)",
            field=field,
        )
    return rows[0]


async def move_stage(
    session: AsyncSession,
    crm_id: str,
    *,
    stage: str,
    status: str | None,
    amount_minor: int | None,
    source: str,
    actor: str | None,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_owner: str = "",
    provider: str | None = None,
) -> UpsertResult:
    """Move an existing opportunity to a new stage (and optionally status and amount).

    The idempotency fingerprint is what the caller sent, not the deal it was completed from
    (a won deal gets today's close date, which its retry must not see as a different request).
    """
    sent = {"crm_id": crm_id.strip(), "stage": stage, "status": status, "amount": amount_minor}
    if provider is not None:
        sent["provider"] = provider
    opp = await find_by_crm_id(session, crm_id, provider)
    return await upsert_opportunity(
        session,
        OpportunityData(
            provider=opp.provider,
            crm_id=opp.crm_id,
            stage=stage,
            amount_minor=opp.amount_minor if amount_minor is None else amount_minor,
            currency=opp.currency,
            status=status or opp.status,
            kind=opp.kind,
            name=opp.name,
            referral_id=opp.referral_id,
            close_date=opp.close_date,
            owner=opp.owner,
        ),
        source=source,
        actor=actor,
        now=now,
        idempotency_key=idempotency_key,
        idempotency_owner=idempotency_owner,
        operation="move_opportunity_stage",
        sent=sent,
    )


@dataclass(frozen=True, slots=True)
class OpportunityFilter:
    provider: str | None = None
    crm_id: str | None = None
    status: tuple[str, ...] = ()
    # True: only referral-sourced deals; False: only deals without a referral; None: all.
    referred: bool | None = None
    referral_id: int | None = None
    updated_from: datetime | None = None


async def list_opportunities(
    session: AsyncSession, flt: OpportunityFilter, *, first: int, after: int | None
) -> Page[Opportunity]:
    """Every opportunity Vouch has received, referral-sourced or not, newest first."""
    stmt = select(Opportunity)
    if flt.provider is not None:
        stmt = stmt.where(
            Opportunity.provider == parse_provider(flt.provider, field="filter.provider")
        )
    if flt.crm_id is not None:
        stmt = stmt.where(Opportunity.crm_id == flt.crm_id.strip())
    if flt.status:
        for value in flt.status:
            if value not in {s.value for s in OpportunityStatus}:
                raise ValidationFailed("status must be open, won or lost", field="filter.status")
        stmt = stmt.where(Opportunity.status.in_(flt.status))
    if flt.referred is True:
        stmt = stmt.where(Opportunity.referral_id.is_not(None))
    elif flt.referred is False:
        stmt = stmt.where(Opportunity.referral_id.is_(None))
    if flt.referral_id is not None:
        stmt = stmt.where(Opportunity.referral_id == flt.referral_id)
    if flt.updated_from is not None:
        stmt = stmt.where(Opportunity.updated_at >= flt.updated_from)
    return await paginate(
        session, stmt, key=Opportunity.id, first=first, after=after, descending=True
    )


async def get_opportunity(session: AsyncSession, opportunity_id: int) -> Opportunity:
    opp = await session.get(Opportunity, opportunity_id)
    if opp is None:
        raise NotFound("no such opportunity", field="id")
    return opp


async def opportunities_by_referrals(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[Opportunity]]:
    """Each referral's ``NESTED_LIST_MAX`` most recent deals, oldest first."""
    rank = func.row_number().over(
        partition_by=Opportunity.referral_id, order_by=Opportunity.id.desc()
    )
    ranked = (
        select(Opportunity.id, rank.label("recency"))
        .where(Opportunity.referral_id.in_(ids))
        .subquery()
    )
    rows = await session.scalars(
        select(Opportunity)
        .join(ranked, ranked.c.id == Opportunity.id)
        .where(ranked.c.recency <= NESTED_LIST_MAX)
        .order_by(Opportunity.id)
    )
    out: dict[int, list[Opportunity]] = {i: [] for i in ids}
    for row in rows:
        assert row.referral_id is not None
        out[row.referral_id].append(row)
    return out


async def history_by_opportunities(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[OpportunityEvent]]:
    rows = await session.scalars(
        select(OpportunityEvent)
        .where(OpportunityEvent.opportunity_id.in_(ids))
        .order_by(OpportunityEvent.at, OpportunityEvent.id)
    )
    out: dict[int, list[OpportunityEvent]] = {i: [] for i in ids}
    for row in rows:
        out[row.opportunity_id].append(row)
    return out


async def contacts_by_opportunities(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[OpportunityContact]]:
    rows = await session.scalars(
        select(OpportunityContact)
        .where(OpportunityContact.opportunity_id.in_(ids))
        .order_by(OpportunityContact.id)
    )
    out: dict[int, list[OpportunityContact]] = {i: [] for i in ids}
    for row in rows:
        out[row.opportunity_id].append(row)
    return out
