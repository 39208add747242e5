"""Revenue events from billing: one-time, recurring and refunds, keyed by the billing id.

Each event links to an opportunity (by CRM id) or directly to a referral. The billing system's
``external_id`` is the natural idempotency key: re-sending an event is a no-op, re-sending it
with different values is refused. A charge earns revenue-share rewards; a refund inside the
clawback window voids the reward earned by the charge it refunds, and a refund that takes the
referral's net revenue to zero moves a won referral to ``refunded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access import idempotency
from vouch.attribution import lifecycle, opportunities, rewards, rollups, webhooks
from vouch.core.batching import NESTED_LIST_MAX
from vouch.core.errors import Conflict, NotFound, ValidationFailed
from vouch.core.money import check_amount, check_currency
from vouch.core.raw_select import flush_pending, run_raw
from vouch.core.snapshot import snapshot_class
from vouch.models import Opportunity, Program, Referral, RevenueEvent
from vouch.models.enums import ReferralStatus, RevenueKind, RewardTrigger
from vouch.models.snapshots import OpportunitySnapshot, ReferralSnapshot, RevenueEventSnapshot


@dataclass(frozen=True, slots=True)
class RevenueData:
    external_id: str
    kind: str
    amount_minor: int
    # None: the refunded charge's, else the deal's, else the program's (never assumed USD).
    currency: str | None
    occurred_at: datetime
    opportunity_crm_id: str | None = None
    referral_id: int | None = None
    # hubspot, salesforce or other; needed only when two CRMs use the same id.
    opportunity_provider: str | None = None
    # For refunds: the billing id of the charge being refunded.
    refunds_external_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "kind": self.kind,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "occurred_at": self.occurred_at.isoformat(),
            "opportunity_crm_id": self.opportunity_crm_id,
            "opportunity_provider": self.opportunity_provider,
            "referral_id": self.referral_id,
            "refunds_external_id": self.refunds_external_id,
        }


@dataclass(frozen=True, slots=True)
class RecordResult:
    event: RevenueEventSnapshot
    created: bool


def validate(data: RevenueData) -> RevenueData:
    external_id = data.external_id.strip()
    if not external_id or len(external_id) > 128:
        raise ValidationFailed("externalId must be 1 to 128 characters", field="externalId")
    try:
        kind = RevenueKind(data.kind)
    except ValueError:
        raise ValidationFailed("kind must be one_time, recurring or refund", field="kind") from None
    amount = check_amount(data.amount_minor)
    if amount == 0:
        raise ValidationFailed("amount must be positive", field="amountMinor")
    if data.occurred_at.tzinfo is None:
        raise ValidationFailed("occurredAt must include a timezone", field="occurredAt")
    if (
        data.opportunity_crm_id is None
        and data.referral_id is None
        and data.refunds_external_id is None
    ):
        raise ValidationFailed(
            "link the revenue to an opportunity (CRM id), a referral or (refunds) the charge it "
            "refunds",
            field="opportunityCrmId",
        )
    if data.refunds_external_id is not None and kind != RevenueKind.REFUND:
        raise ValidationFailed("only refunds refer to a charge", field="refundsExternalId")
    return RevenueData(
        external_id=external_id,
        kind=kind,
        amount_minor=amount,
        currency=check_currency(data.currency) if data.currency else None,
        occurred_at=data.occurred_at,
        opportunity_crm_id=data.opportunity_crm_id.strip() if data.opportunity_crm_id else None,
        referral_id=data.referral_id,
        opportunity_provider=data.opportunity_provider,
        refunds_external_id=data.refunds_external_id.strip() if data.refunds_external_id else None,
        data=data.data,
    )


def revenue_payload(event: RevenueEventSnapshot) -> dict[str, Any]:
    return {
        "revenue_event_id": event.id,
        "external_id": event.external_id,
        "opportunity_id": event.opportunity_id,
        "referral_id": event.referral_id,
        "program_id": event.program_id,
        "kind": event.kind,
        "amount_minor": event.amount_minor,
        "currency": event.currency,
        "occurred_at": event.occurred_at.isoformat(),
    }


reward_ref = rewards.revenue_trigger_ref


async def record_revenue(
    session: AsyncSession,
    data: RevenueData,
    *,
    source: str,
    actor: str | None,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_owner: str = "",
) -> RecordResult:
    """Record a charge or refund once, and apply its reward effects. A retry under the same
    idempotency key gets the first answer back (``created`` included)."""
    data = validate(data)
    await flush_pending(session)  # the caller's own changes first, as before any statement
    if idempotency_key is not None:
        stored = await idempotency.claim(
            session,
            scope=SCOPE,
            key=idempotency_key,
            payload=data.fingerprint(),
            owner=idempotency_owner,
        )
        if stored is not None:
            rows = await run_raw(session, _BY_ID, [int(stored["revenue_event_id"])])
            return RecordResult(
                event=_EVENT_ROW._make(rows[0]), created=bool(stored.get("created", False))
            )
    refunded: RevenueEventSnapshot | None = None
    if data.refunds_external_id is not None:
        refunded = await session.scalar(
            select(RevenueEvent).where(RevenueEvent.external_id == data.refunds_external_id)
        )
        if refunded is None:
            raise NotFound("no charge with this external id", field="refundsExternalId")
        if refunded.kind == RevenueKind.REFUND:
            raise ValidationFailed(
                "a refund refunds a charge, not a refund", field="refundsExternalId"
            )
    opportunity: OpportunitySnapshot | None = None
    if data.opportunity_crm_id is not None:
        opportunity = await _deal(session, data.opportunity_crm_id, data.opportunity_provider)
    if refunded is not None:
        if opportunity is not None and opportunity.id != refunded.opportunity_id:
            raise ValidationFailed(
                "the refunded charge belongs to another opportunity", field="opportunityCrmId"
            )
        if data.referral_id is not None and data.referral_id != refunded.referral_id:
            raise ValidationFailed(
                "the refunded charge belongs to another referral", field="referralId"
            )
        if opportunity is None and refunded.opportunity_id is not None:
            opportunity = await session.get(Opportunity, refunded.opportunity_id)
    referral_id = (
        data.referral_id
        or (opportunity.referral_id if opportunity else None)
        or (refunded.referral_id if refunded else None)
    )
    referral: ReferralSnapshot | None = None
    rules: list[rewards.EngineRule] = []
    auto_approve = False
    program_currency: str | None = None
    if referral_id is not None and data.kind == RevenueKind.REFUND:
        # Locked before the event's foreign key takes its share lock (as below). A refund may
        # move the referral: the session's object is the one moved, and stays current.
        referral = await lifecycle.lock_referral(session, referral_id)
    elif referral_id is not None:
        # Locked before the event's foreign key takes its share lock: reward evaluation runs
        # under the referral's row lock, and two charges of one referral queue here. Read with
        # its program's currency and setting and its revenue rules (one statement).
        rows = await run_raw(session, _LOCK_REFERRAL, [referral_id])
        if not rows:
            raise NotFound("no such referral", field="referralId")
        referral = _REFERRAL_ROW._make(rows[0][:_WIDTH])
        program_currency, settings, rule_rows = rows[0][_WIDTH:]
        rules = rewards.rule_snapshots(rule_rows)
        auto_approve = bool(settings.get(rewards.AUTO_APPROVE))
    if (
        referral is not None
        and opportunity is not None
        and opportunity.referral_id not in (None, referral.id)
    ):
        raise ValidationFailed("the opportunity belongs to another referral", field="referralId")
    program_id = (
        referral.program_id if referral else (opportunity.program_id if opportunity else None)
    )
    data = replace(
        data,
        currency=await _currency(
            session, data, refunded, opportunity, program_id, program_currency
        ),
    )
    # A re-sent event is compared with the first below, not checked again: whether it was
    # sent before is asked only when a check would refuse it (a charge's checks need no read).
    if (data.kind == RevenueKind.REFUND or not _sane_charge(data, referral, now)) and not (
        await run_raw(session, _SEEN, [data.external_id])
    ):
        await _check_sane(session, data, refunded, opportunity, referral, now=now)
    payload_data = dict(data.data)
    if data.refunds_external_id:
        payload_data["refunds_external_id"] = data.refunds_external_id
    occurred_at = data.occurred_at.astimezone(UTC)
    event_payload = {
        "external_id": data.external_id,
        "opportunity_id": opportunity.id if opportunity else None,
        "referral_id": referral.id if referral else None,
        "program_id": program_id,
        "kind": str(data.kind),
        "amount_minor": data.amount_minor,
        "currency": data.currency,
        "occurred_at": occurred_at.isoformat(),
    }
    inserted = await run_raw(
        session,
        _INSERT,
        [
            data.external_id,
            event_payload["opportunity_id"],
            event_payload["referral_id"],
            program_id,
            str(data.kind),
            data.amount_minor,
            data.currency,
            occurred_at,
            source[:64],
            webhooks.payload_json(payload_data),
            now,
            webhooks.payload_json(event_payload),
            *(
                (idempotency_owner[: idempotency.MAX_OWNER_LENGTH], idempotency_key)
                if idempotency_key is not None
                else (None, None)
            ),
            SCOPE,
        ],
    )
    if not inserted:
        found = await run_raw(session, _BY_EXTERNAL_ID, [data.external_id])
        event = _EVENT_ROW._make(found[0])  # the conflicting row is committed: visible
        same = (
            event.kind == data.kind
            and event.amount_minor == data.amount_minor
            and event.currency == data.currency
            and event.referral_id == (referral.id if referral else None)
        )
        if not same:
            raise Conflict(
                "this external id was already recorded with different values",
                field="externalId",
            )
        if idempotency_key is not None:
            await idempotency.store_response(
                session,
                scope=SCOPE,
                key=idempotency_key,
                response={"revenue_event_id": event.id, "created": False},
                owner=idempotency_owner,
            )
        return RecordResult(event=event, created=False)
    event = _EVENT_ROW._make(inserted[0])
    if referral is not None:
        await _apply(
            session,
            referral,
            event,
            refunded,
            actor=actor or source,
            now=now,
            rules=rules,
            auto_approve=auto_approve,
        )
    return RecordResult(event=event, created=True)


SCOPE = "record_revenue"
_EVENT_ROW = snapshot_class(RevenueEvent)
_EVENT_COLUMNS = ", ".join(_EVENT_ROW._fields)
_DEAL_ROW = snapshot_class(Opportunity)
_REFERRAL_ROW = snapshot_class(Referral)
_WIDTH = len(_REFERRAL_ROW._fields)
_BY_ID = f"SELECT {_EVENT_COLUMNS} FROM revenue_events WHERE id = $1"  # noqa: S608
_BY_EXTERNAL_ID = f"SELECT {_EVENT_COLUMNS} FROM revenue_events WHERE external_id = $1"  # noqa: S608
_SEEN = "SELECT 1 FROM revenue_events WHERE external_id = $1"
# The deals with a CRM id, of one CRM ($2) or any (NULL): two at most, enough to tell an id two
# CRMs share.
_DEALS = f"""
SELECT {", ".join(_DEAL_ROW._fields)} FROM opportunities
WHERE crm_id = $1 AND ($2::varchar IS NULL OR provider = $2::varchar)
ORDER BY id LIMIT 2"""  # noqa: S608 (column names only)
# The referral under its row lock, with its program's currency and settings and the program's
# active revenue rules (what a charge may earn): one statement. $1 the referral.
_LOCK_REFERRAL = f"""
SELECT {", ".join(f"r.{name}" for name in _REFERRAL_ROW._fields)}, p.currency, p.settings,
       (SELECT json_agg(rule ORDER BY rule.id) FROM reward_rules AS rule
        WHERE rule.program_id = r.program_id AND rule.active
          AND rule.trigger = '{RewardTrigger.REVENUE.value}')
FROM referrals AS r JOIN programs AS p ON p.id = r.program_id
WHERE r.id = $1
FOR UPDATE OF r"""  # noqa: S608 (column names and enum values only)
# The event (once per billing id: a re-sent one inserts nothing), what it adds to both rollups,
# its ``revenue.recorded`` outbox event with deliveries and, under an idempotency key, the key's
# first answer, in one statement. $1-$11 the event's columns, $12 the payload but the id,
# $13-$15 the key's owner, key and operation (NULL: no key).
_INSERT = "".join(
    (
        """
WITH revenue AS (
    INSERT INTO revenue_events (external_id, opportunity_id, referral_id, program_id, kind,
                                amount_minor, currency, occurred_at, source, data, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)
    ON CONFLICT (external_id) DO NOTHING
    RETURNING """,
        _EVENT_COLUMNS,
        "\n),",
        rollups.add_revenue_ctes("revenue"),
        ",",
        webhooks.enqueue_ctes(
            event_type="'revenue.recorded'",
            payload="$12::jsonb || jsonb_build_object('revenue_event_id', revenue.id)",
            now="$11",
            source="revenue",
        ),
        ", ",
        idempotency.answer_cte(
            source="revenue", id_name="revenue_event_id", owner="$13", key="$14", scope="$15"
        ),
        f"\nSELECT {_EVENT_COLUMNS} FROM revenue",
    )
)


async def _deal(session: AsyncSession, crm_id: str, provider: str | None) -> OpportunitySnapshot:
    """``opportunities.find_by_crm_id``, read as a row."""
    rows = await run_raw(
        session,
        _DEALS,
        [
            crm_id.strip(),
            opportunities.parse_provider(provider).value if provider is not None else None,
        ],
    )
    if not rows:
        raise NotFound("no opportunity with this CRM id", field="opportunityCrmId")
    if len(rows) > 1:
        raise ValidationFailed(
            "several CRMs use this id: name the provider (hubspot, salesforce or other)",
            field="opportunityCrmId",
        )
    deal: OpportunitySnapshot = _DEAL_ROW._make(rows[0])
    return deal


# Billing clocks drift a little; a charge dated further ahead than this is a mistake.
FUTURE_TOLERANCE = timedelta(minutes=5)


async def _currency(
    session: AsyncSession,
    data: RevenueData,
    refunded: RevenueEventSnapshot | None,
    opportunity: OpportunitySnapshot | None,
    program_id: int | None,
    program_currency: str | None = None,
) -> str:
    """The given currency, else the refunded charge's, the deal's or the program's (read with
    the referral when there is one)."""
    if data.currency is not None:
        return data.currency
    if refunded is not None:
        return refunded.currency
    if opportunity is not None:
        return opportunity.currency
    if program_currency is not None:
        return program_currency
    program = await session.get(Program, program_id) if program_id is not None else None
    if program is None:
        raise ValidationFailed("currency is required", field="currency")
    return program.currency


def _sane_charge(data: RevenueData, referral: ReferralSnapshot | None, now: datetime) -> bool:
    """Whether a charge passes ``_check_sane`` (its checks need no read)."""
    return data.occurred_at <= now + FUTURE_TOLERANCE and (
        referral is None or data.occurred_at >= referral.created_at
    )


async def _check_sane(
    session: AsyncSession,
    data: RevenueData,
    refunded: RevenueEventSnapshot | None,
    opportunity: OpportunitySnapshot | None,
    referral: ReferralSnapshot | None,
    *,
    now: datetime,
) -> None:
    """Refuse dates and refunds that cannot be right (before anything is written)."""
    if data.occurred_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed("occurredAt is in the future", field="occurredAt")
    if referral is not None and data.occurred_at < referral.created_at:
        raise ValidationFailed(
            "occurredAt is before the referral was made; it is not referral revenue",
            field="occurredAt",
        )
    if data.kind != RevenueKind.REFUND:
        return
    if refunded is not None:
        if data.currency != refunded.currency:
            raise ValidationFailed(
                f"the refunded charge is in {refunded.currency}", field="currency"
            )
        left = refunded.amount_minor - await _refunded_already(session, refunded.external_id)
        if data.amount_minor > left:
            raise ValidationFailed(
                f"the refund is larger than what is left of the charge ({left} minor units)",
                field="amountMinor",
            )
        return
    charged = await _net(session, data.currency, opportunity=opportunity, referral=referral)
    if data.amount_minor > charged:
        raise ValidationFailed(
            f"the refund is larger than what was charged ({charged} minor units net)",
            field="amountMinor",
        )


async def _refunded_already(session: AsyncSession, charge_external_id: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(RevenueEvent.amount_minor), 0)).where(
            RevenueEvent.kind == RevenueKind.REFUND,
            RevenueEvent.data["refunds_external_id"].astext == charge_external_id,
        )
    )
    return int(total or 0)


async def _net(
    session: AsyncSession,
    currency: str | None,
    *,
    opportunity: OpportunitySnapshot | None,
    referral: ReferralSnapshot | None,
) -> int:
    """Charges minus refunds in one currency, on the deal (or else the referral)."""
    signed = case(
        (RevenueEvent.kind == RevenueKind.REFUND, -RevenueEvent.amount_minor),
        else_=RevenueEvent.amount_minor,
    )
    scope = (
        RevenueEvent.opportunity_id == opportunity.id
        if opportunity is not None
        else RevenueEvent.referral_id == (referral.id if referral else None)
    )
    total = await session.scalar(
        select(func.coalesce(func.sum(signed), 0)).where(scope, RevenueEvent.currency == currency)
    )
    return int(total or 0)


async def _apply(
    session: AsyncSession,
    referral: ReferralSnapshot,
    event: RevenueEventSnapshot,
    refunded: RevenueEventSnapshot | None,
    *,
    actor: str,
    now: datetime,
    rules: list[rewards.EngineRule],
    auto_approve: bool,
) -> None:
    if event.kind != RevenueKind.REFUND:
        await rewards.on_referral_event(
            session,
            referral,
            RewardTrigger.REVENUE,
            now=now,
            base_amount_minor=event.amount_minor,
            base_currency=event.currency,
            trigger_ref=reward_ref(event.id),
            actor=actor,
            rules=rules,
            auto_approve=auto_approve,
        )
        return
    if refunded is not None:
        await rewards.claw_back(
            session,
            referral.id,
            at=event.occurred_at,
            actor=actor,
            reason=f"charge {refunded.external_id} refunded",
            now=now,
            trigger_ref=reward_ref(refunded.id),
        )
    if referral.status == ReferralStatus.WON and await net_revenue(session, referral.id) <= 0:
        await lifecycle.transition(
            session,
            referral.id,
            ReferralStatus.REFUNDED,
            source="billing",
            actor=actor,
            now=now,
            detail={"revenue_event_id": event.id},
            locked=referral,
        )


async def net_revenue(session: AsyncSession, referral_id: int) -> int:
    """Charges minus refunds for one referral, in minor units (single-currency programs)."""
    total = await session.scalar(
        select(
            func.coalesce(
                func.sum(
                    case(
                        (RevenueEvent.kind == RevenueKind.REFUND, -RevenueEvent.amount_minor),
                        else_=RevenueEvent.amount_minor,
                    )
                ),
                0,
            )
        ).where(RevenueEvent.referral_id == referral_id)
    )
    return int(total or 0)


async def get_revenue_event(session: AsyncSession, event_id: int) -> RevenueEvent:
    event = await session.get(RevenueEvent, event_id)
    if event is None:
        raise NotFound("no such revenue event", field="id")
    return event


async def revenue_by_referrals(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[RevenueEvent]]:
    """Each referral's ``NESTED_LIST_MAX`` most recent charges and refunds, oldest first."""
    rank = func.row_number().over(
        partition_by=RevenueEvent.referral_id,
        order_by=(RevenueEvent.occurred_at.desc(), RevenueEvent.id.desc()),
    )
    ranked = (
        select(RevenueEvent.id, rank.label("recency"))
        .where(RevenueEvent.referral_id.in_(ids))
        .subquery()
    )
    rows = await session.scalars(
        select(RevenueEvent)
        .join(ranked, ranked.c.id == RevenueEvent.id)
        .where(ranked.c.recency <= NESTED_LIST_MAX)
        .order_by(RevenueEvent.occurred_at, RevenueEvent.id)
    )
    out: dict[int, list[RevenueEvent]] = {i: [] for i in ids}
    for row in rows:
        assert row.referral_id is not None
        out[row.referral_id].append(row)
    return out
