"""Opportunities from the CRM: upserted by CRM id, with stage and amount history.

A referral can lead to several opportunities (new business, expansion, renewal) and an
opportunity can have several contacts. Only *new business* moves the referral through its
lifecycle (open → opportunity, won → won, lost → lost when nothing else is open or won);
expansion and renewal deals are reported as expansion revenue of an existing customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, bindparam, func, literal_column, select
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
from vouch.core.raw_select import run_raw
from vouch.models import Opportunity, OpportunityContact, OpportunityEvent, Program, Referral
from vouch.models.enums import (
    CrmProvider,
    OpportunityKind,
    OpportunityStatus,
    ReferralStatus,
    RewardTrigger,
)


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
    opportunity: Opportunity
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


# Prebuilt (every deal push runs them): the deal by provider and CRM id ($provider, $crm_id).
_THE_DEAL = (Opportunity.provider == bindparam("provider")) & (
    Opportunity.crm_id == bindparam("crm_id")
)
_LINK_AND_CURRENCY = select(Opportunity.referral_id, Opportunity.currency).where(_THE_DEAL)
_CLOSE_DATE = select(Opportunity.close_date).where(_THE_DEAL)
_LOCK_DEAL = (
    select(Opportunity).where(_THE_DEAL).with_for_update().execution_options(populate_existing=True)
)
_INSERT_DEAL = (
    insert(Opportunity)
    .values(
        {
            name: bindparam(name)
            for name in (
                "provider",
                "crm_id",
                "referral_id",
                "program_id",
                "kind",
                "name",
                "amount_minor",
                "currency",
                "stage",
                "status",
                "close_date",
                "owner",
                "created_at",
                "updated_at",
            )
        }
    )
    .on_conflict_do_nothing(index_elements=["provider", "crm_id"])
    .returning(Opportunity.id)
)


async def _resolve_referral(
    session: AsyncSession, data: OpportunityData, *, lock: bool = False
) -> tuple[Referral | None, _Earning | None]:
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


_MOVE_RULES = f"""(SELECT json_agg(rule ORDER BY rule.id) FROM reward_rules AS rule
WHERE rule.program_id = referrals.program_id AND rule.active
  AND rule.trigger IN ('{RewardTrigger.QUALIFIED.value}', '{RewardTrigger.WON.value}'))"""  # noqa: S608
# A change to a deal of one locked referral: what it adds to both rollups and its
# ``opportunity.updated`` outbox event, in one statement. $1-$10 ``rollups.deal_change_args``,
# $11 the payload, $12 now.
_DEAL_CHANGED = "".join(
    (
        "WITH ",
        rollups.DEAL_CHANGE_CTES,
        ",",
        webhooks.enqueue_ctes(event_type="'opportunity.updated'", payload="$11::jsonb", now="$12"),
        " SELECT id FROM event",
    )
)
# A referral under its row lock (loaded, as ``lifecycle.lock_referral``), with its program's
# settings and active qualified and won rules (what the referral's move may earn): one statement.
_LOCK_WITH_RULES = (
    select(
        Referral,
        Program.settings,
        literal_column(
            _MOVE_RULES,
            type_=JSON,
        ),
    )
    .join(Program, Program.id == Referral.program_id)
    .where(Referral.id == bindparam("r_id"))
    .with_for_update(of=Referral)
    .execution_options(populate_existing=True)
)


@dataclass(frozen=True, slots=True)
class _Earning:
    """What a locked referral's move may earn, read with it."""

    rules: dict[str, list[rewards.EngineRule]]
    auto_approve: bool


async def _lock_with_rules(
    session: AsyncSession, referral_id: int
) -> tuple[Referral | None, _Earning | None]:
    row = (await session.execute(_LOCK_WITH_RULES, {"r_id": referral_id})).one_or_none()
    if row is None:
        return None, None
    referral, settings, rules = row
    return referral, _Earning(
        rules=rewards.rules_by_trigger(rewards.rule_snapshots(rules)),
        auto_approve=bool((settings or {}).get(rewards.AUTO_APPROVE)),
    )


def opportunity_payload(opp: Opportunity) -> dict[str, Any]:
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
    linked_before, current_currency = (
        await session.execute(
            _LINK_AND_CURRENCY, {"provider": data.provider, "crm_id": data.crm_id}
        )
    ).one_or_none() or (None, None)
    # The referral under its row lock when it is the only one the deal involves (the rollup
    # takes no lock of its own then, and the referral's move none either); a deal moving from
    # one referral to another locks both in the rollup, in id order.
    referral, earning = await _resolve_referral(
        session, data, lock=linked_before is None or linked_before == data.referral_id
    )
    locked: list[int] = []
    if referral is not None and linked_before in (None, referral.id):
        if data.referral_id is None:  # a contact's referral
            referral = await lifecycle.lock_referral(session, referral.id)
        locked = [referral.id]
    if data.currency is None:
        program = await session.get(Program, referral.program_id) if referral else None
        currency = current_currency or (program.currency if program else None)
        if currency is None:
            raise ValidationFailed(
                "currency is required for a deal not linked to a referral", field="currency"
            )
        data = replace(data, currency=currency)
    if referral is not None and locked == [referral.id]:
        # The deal's one referral, locked: what the change adds to the rollup is the deal's own
        # rows, before and after (no read of the referral's whole contribution, twice).
        opp, created, changed, previous_status, before = await _upsert(
            session, data, referral, source=source, now=now
        )
        if changed:  # with its ``opportunity.updated`` outbox event: one statement
            args = rollups.deal_change_args(referral.id, opp.id, before, opp)
            await run_raw(
                session,
                _DEAL_CHANGED,
                [
                    *(args or [referral.id, *[[]] * 6, opp.id, opp.kind, opp.kind]),
                    webhooks.payload_json(opportunity_payload(opp)),
                    now,
                ],
            )
        else:
            await rollups.add_deal_change(session, referral.id, opp.id, before, opp)
        announced = changed
    else:
        async with rollups.track(session, [linked_before, referral.id if referral else None]):
            opp, created, changed, previous_status, _ = await _upsert(
                session, data, referral, source=source, now=now
            )
        announced = False
    if changed:
        if not announced:
            await webhooks.enqueue(
                session, "opportunity.updated", opportunity_payload(opp), now=now
            )
        if opp.referral_id is not None and opp.kind == OpportunityKind.NEW_BUSINESS:
            await _move_referral(
                session,
                opp,
                previous_status,
                source=source,
                actor=actor,
                now=now,
                locked=referral if referral is not None and referral.id in locked else None,
                earning=earning,
            )
    if idempotency_key is not None:
        await idempotency.store_response(
            session,
            scope=operation,
            key=idempotency_key,
            response={"opportunity_id": opp.id, "created": created, "changed": changed},
            owner=idempotency_owner,
        )
    return UpsertResult(opportunity=opp, created=created, changed=changed)


@dataclass(frozen=True, slots=True)
class _Before:
    """What the rollup counts of a deal, as it was before a change (``rollups.DealImage``)."""

    referral_id: int | None
    kind: str
    status: str
    amount_minor: int
    currency: str
    created_at: datetime
    close_date: date | None
    updated_at: datetime


async def _upsert(
    session: AsyncSession,
    data: OpportunityData,
    referral: Referral | None,
    *,
    source: str,
    now: datetime,
) -> tuple[Opportunity, bool, bool, str | None, _Before | None]:
    if data.status == OpportunityStatus.WON and data.close_date is None:
        # A deal reported won without a close date closed today (read under the lock: a
        # concurrent writer of the deal has committed).
        existing_close = await session.scalar(
            _CLOSE_DATE, {"provider": data.provider, "crm_id": data.crm_id}
        )
        data = replace(data, close_date=existing_close or now.date())
    inserted = await session.scalar(
        _INSERT_DEAL,
        {
            "provider": data.provider,
            "crm_id": data.crm_id,
            "referral_id": referral.id if referral else None,
            "program_id": referral.program_id if referral else None,
            "kind": data.kind,
            "name": data.name,
            "amount_minor": data.amount_minor,
            "currency": data.currency,
            "stage": data.stage,
            "status": data.status,
            "close_date": data.close_date,
            "owner": data.owner,
            "created_at": now,
            "updated_at": now,
        },
    )
    opp = await session.scalar(_LOCK_DEAL, {"provider": data.provider, "crm_id": data.crm_id})
    assert opp is not None
    created = inserted is not None
    previous_status = None if created else opp.status
    before = (
        None
        if created
        else _Before(
            referral_id=opp.referral_id,
            kind=opp.kind,
            status=opp.status,
            amount_minor=opp.amount_minor,
            currency=opp.currency,
            created_at=opp.created_at,
            close_date=opp.close_date,
            updated_at=opp.updated_at,
        )
    )
    changed = created
    if created:
        session.add(
            OpportunityEvent(
                opportunity_id=opp.id,
                from_stage=None,
                to_stage=opp.stage,
                from_amount_minor=None,
                to_amount_minor=opp.amount_minor,
                at=now,
                source=source,
            )
        )
    else:
        if opp.stage != data.stage or opp.amount_minor != data.amount_minor:
            session.add(
                OpportunityEvent(
                    opportunity_id=opp.id,
                    from_stage=opp.stage,
                    to_stage=data.stage,
                    from_amount_minor=opp.amount_minor,
                    to_amount_minor=data.amount_minor,
                    at=now,
                    source=source,
                )
            )
            changed = True
        updates: dict[str, Any] = {
            "stage": data.stage,
            "amount_minor": data.amount_minor,
            "currency": data.currency,
            "status": data.status,
            "kind": data.kind,
            "name": data.name if data.name is not None else opp.name,
            "close_date": data.close_date or opp.close_date,
            "owner": data.owner if data.owner is not None else opp.owner,
        }
        if referral is not None and opp.referral_id != referral.id:
            updates["referral_id"] = referral.id
            updates["program_id"] = referral.program_id
        for key, value in updates.items():
            if getattr(opp, key) != value:
                setattr(opp, key, value)
                changed = True
        if changed:
            opp.updated_at = now
    for contact in data.contacts:
        key = normalize_email(contact.email)
        contact_referral = referral.id if referral and referral.person_key == key else None
        await session.execute(
            insert(OpportunityContact)
            .values(
                opportunity_id=opp.id,
                person_key=key,
                role=contact.role,
                referral_id=contact_referral,
            )
            .on_conflict_do_update(
                index_elements=["opportunity_id", "person_key"],
                set_={"role": contact.role},
            )
        )
    await session.flush()
    return opp, created, changed, previous_status, before


async def _move_referral(
    session: AsyncSession,
    opp: Opportunity,
    previous_status: str | None,
    *,
    source: str,
    actor: str | None,
    now: datetime,
    locked: Referral | None = None,
    earning: _Earning | None = None,
) -> None:
    """``locked``: the deal's referral, read under its row lock in this transaction already
    (``earning``: with what its move may earn)."""
    assert opp.referral_id is not None
    if locked is None or locked.id != opp.referral_id:
        locked, earning = await lifecycle.lock_referral(session, opp.referral_id), None
    referral = locked
    rules, auto_approve = (earning.rules, earning.auto_approve) if earning else (None, None)
    detail = {"opportunity_id": opp.id, "provider": opp.provider, "crm_id": opp.crm_id}
    if referral.status == ReferralStatus.REJECTED:
        return
    if opp.status == OpportunityStatus.WON and referral.status != ReferralStatus.WON:
        await lifecycle.transition(
            session,
            referral.id,
            ReferralStatus.WON,
            source=source,
            actor=actor,
            now=now,
            detail=detail,
            locked=referral,
            rules=rules,
            auto_approve=auto_approve,
            won_amount_minor=opp.amount_minor,
            won_currency=opp.currency,
        )
    elif opp.status == OpportunityStatus.OPEN and referral.status in (
        ReferralStatus.LEAD,
        ReferralStatus.QUALIFIED,
        ReferralStatus.LOST,
    ):
        await lifecycle.transition(
            session,
            referral.id,
            ReferralStatus.OPPORTUNITY,
            source=source,
            actor=actor,
            now=now,
            detail=detail,
            locked=referral,
            rules=rules,
            auto_approve=auto_approve,
        )
    elif opp.status == OpportunityStatus.LOST and previous_status != OpportunityStatus.LOST:
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
        if others is None and referral.status in (
            ReferralStatus.LEAD,
            ReferralStatus.QUALIFIED,
            ReferralStatus.OPPORTUNITY,
            ReferralStatus.WON,
        ):
            await lifecycle.transition(
                session,
                referral.id,
                ReferralStatus.LOST,
                source=source,
                actor=actor,
                now=now,
                detail=detail,
                locked=referral,
                rules=rules,
                auto_approve=auto_approve,
            )


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
