"""Programs: create, update, pause/activate, their reward rules and the referred-side offer."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.catalog.landing_cache import announce_landing_change
from vouch.core.batching import any_ids, ids_params
from vouch.core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from vouch.core.money import check_amount, check_currency
from vouch.core.paging import Page, paginate
from vouch.models import Program, RewardRule
from vouch.models.enums import (
    AttributionModel,
    FulfilledOnReattribution,
    OfferKind,
    ProgramStatus,
    RewardCalc,
    RewardKind,
    RewardSide,
    RewardTrigger,
)

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_RULES = 50
MAX_TEXT = 5_000


@dataclass(frozen=True, slots=True)
class ProgramChanges:
    """Fields to set on a program; ``None`` means 'leave as is'."""

    name: str | None = None
    description: str | None = None
    currency: str | None = None
    attribution_window_days: int | None = None
    attribution_model: AttributionModel | None = None
    require_tracking_consent: bool | None = None
    frequency_cap_days: int | None = None
    frequency_cap_count: int | None = None
    tier1_cap_count: int | None = None
    offer_kind: OfferKind | None = None
    offer_value: int | None = None
    offer_title: str | None = None
    offer_terms: str | None = None
    offer_expires_at: datetime | None = None
    redemption_ttl_days: int | None = None
    # Reward settings kept in ``Program.settings`` (read by ``attribution.rewards``).
    auto_approve_rewards: bool | None = None
    fulfilled_on_reattribution: FulfilledOnReattribution | None = None
    # The link preview's image (og:image) for the program's share links; "" removes it (the
    # generated offer card is used again). Kept in ``Program.settings``.
    preview_image_url: str | None = None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    side: RewardSide
    trigger: RewardTrigger
    kind: RewardKind = RewardKind.CREDIT
    calc: RewardCalc = RewardCalc.FIXED
    amount_minor: int = 0
    currency: str | None = None
    percent_bps: int = 0
    points: int = 0
    from_nth_referral: int = 1
    cap_count: int | None = None
    cap_period_days: int = 365
    clawback_days: int = 60
    holding_days: int = 0


async def get_program(
    session: AsyncSession, program_id: int, *, for_update: bool = False
) -> Program:
    """The program; ``for_update`` locks its row so concurrent changes apply one at a time."""
    program = await session.get(
        Program, program_id, with_for_update=for_update, populate_existing=for_update
    )
    if program is None:
        raise NotFound("no such program", field="id")
    return program


_PROGRAMS_BY_IDS = select(Program).where(any_ids(Program.id))
_RULES_BY_PROGRAMS = (
    select(RewardRule)
    .where(any_ids(RewardRule.program_id), RewardRule.active)
    .order_by(RewardRule.program_id, RewardRule.from_nth_referral, RewardRule.id)
)


async def programs_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Program]:
    rows = await session.scalars(_PROGRAMS_BY_IDS, ids_params(ids))
    return {p.id: p for p in rows}


async def rules_by_programs(
    session: AsyncSession, program_ids: Sequence[int]
) -> dict[int, list[RewardRule]]:
    """Active reward rules of each program, in one statement."""
    rows = await session.scalars(_RULES_BY_PROGRAMS, ids_params(program_ids))
    grouped: dict[int, list[RewardRule]] = defaultdict(list)
    for rule in rows:
        grouped[rule.program_id].append(rule)
    return grouped


async def list_programs(
    session: AsyncSession,
    *,
    status: str | None,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[Program]:
    stmt = select(Program)
    if status is not None:
        stmt = stmt.where(Program.status == status)
    return await paginate(
        session, stmt, key=Program.id, first=first, after=after, before=before, from_end=from_end
    )


def _bounded(value: int, low: int, high: int, field: str) -> int:
    if not low <= value <= high:
        raise ValidationFailed(f"must be between {low} and {high}", field=field)
    return value


def _text(value: str, field: str, *, max_length: int, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise ValidationFailed("must not be empty", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"must be at most {max_length} characters", field=field)
    return value


def _check_changes(c: ProgramChanges) -> dict[str, Any]:
    """Validate every given field; return the column values to write."""
    values: dict[str, Any] = {}
    if c.name is not None:
        values["name"] = _text(c.name, "name", max_length=200, required=True)
    if c.description is not None:
        values["description"] = _text(c.description, "description", max_length=MAX_TEXT)
    if c.currency is not None:
        values["currency"] = check_currency(c.currency)
    if c.attribution_window_days is not None:
        values["attribution_window_days"] = _bounded(
            c.attribution_window_days, 1, 365, "attributionWindowDays"
        )
    if c.attribution_model is not None:
        values["attribution_model"] = c.attribution_model.value
    if c.require_tracking_consent is not None:
        values["require_tracking_consent"] = c.require_tracking_consent
    if c.frequency_cap_days is not None:
        values["frequency_cap_days"] = _bounded(c.frequency_cap_days, 1, 365, "frequencyCapDays")
    if c.frequency_cap_count is not None:
        values["frequency_cap_count"] = _bounded(c.frequency_cap_count, 1, 10, "frequencyCapCount")
    if c.tier1_cap_count is not None:
        values["tier1_cap_count"] = _bounded(c.tier1_cap_count, 1, 10, "tier1CapCount")
    if c.offer_kind is not None:
        values["offer_kind"] = c.offer_kind.value
    if c.offer_value is not None:
        values["offer_value"] = check_amount(c.offer_value, field="offer.value")
    if c.offer_title is not None:
        values["offer_title"] = _text(c.offer_title, "offer.title", max_length=200, required=True)
    if c.offer_terms is not None:
        values["offer_terms"] = _text(c.offer_terms, "offer.terms", max_length=MAX_TEXT)
    if c.offer_expires_at is not None:
        if c.offer_expires_at.tzinfo is None:
            raise ValidationFailed("must include a time zone", field="offer.expiresAt")
        values["offer_expires_at"] = c.offer_expires_at
    if c.redemption_ttl_days is not None:
        values["redemption_ttl_days"] = _bounded(
            c.redemption_ttl_days, 1, 3650, "offer.redemptionTtlDays"
        )
    return values


MAX_IMAGE_URL = 2048


def preview_image_url(value: str) -> str | None:
    """A program's link-preview image: an absolute ``https`` URL (unfurlers fetch it from the
    open internet), without credentials or whitespace; "" for none."""
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if (
        len(value) > MAX_IMAGE_URL
        or parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        raise ValidationFailed(
            f"must be an absolute https:// URL of at most {MAX_IMAGE_URL} characters, "
            "without credentials",
            field="previewImageUrl",
        )
    return value


def _with_reward_settings(c: ProgramChanges, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The program's settings with the given reward and preview settings applied; None if
    none given."""
    if (
        c.auto_approve_rewards is None
        and c.fulfilled_on_reattribution is None
        and c.preview_image_url is None
    ):
        return None
    merged = dict(settings)
    if c.preview_image_url is not None:
        image = preview_image_url(c.preview_image_url)
        if image is None:
            merged.pop("preview_image_url", None)
        else:
            merged["preview_image_url"] = image
    if c.auto_approve_rewards is not None:
        merged["auto_approve_rewards"] = c.auto_approve_rewards
    if c.fulfilled_on_reattribution is not None:
        merged["reattribution_fulfilled"] = c.fulfilled_on_reattribution.value
    return merged


def _check_offer(kind: str, value: int) -> None:
    if kind == OfferKind.PERCENT_OFF and not 1 <= value <= 100:
        raise ValidationFailed("a percent_off offer must be 1 to 100 percent", field="offer.value")


async def create_program(
    session: AsyncSession, *, slug: str, status: ProgramStatus, changes: ProgramChanges
) -> Program:
    """Create a program; the slug is unique (a taken slug is a ``Conflict``, nothing written)."""
    slug = slug.strip().lower()
    if not SLUG_PATTERN.match(slug):
        raise ValidationFailed(
            "slug must be 1 to 64 lower-case letters, digits or inner hyphens", field="slug"
        )
    if await session.scalar(select(Program.id).where(Program.slug == slug)):
        # Said first: a taken slug is the answer, whatever else the input holds.
        raise Conflict(f"a program with slug '{slug}' already exists", field="slug")
    if changes.name is None:
        raise ValidationFailed("name is required", field="name")
    if status is ProgramStatus.ARCHIVED:
        raise ValidationFailed("a new program cannot be archived", field="status")
    values = _check_changes(changes)
    kind = values.get("offer_kind", OfferKind.PERCENT_OFF)
    if kind != OfferKind.PERCENT_OFF and "offer_value" not in values:
        raise ValidationFailed("give the offer's value for this offer kind", field="offer.value")
    _check_offer(kind, values.get("offer_value", 15))
    settings = _with_reward_settings(changes, {})
    if settings is not None:
        values["settings"] = settings
    program_id = await session.scalar(
        insert(Program)
        .values(slug=slug, status=status.value, **values)
        .on_conflict_do_nothing(index_elements=["slug"])
        .returning(Program.id)
    )
    if program_id is None:
        raise Conflict(f"a program with slug '{slug}' already exists", field="slug")
    return await get_program(session, program_id)


async def update_program(
    session: AsyncSession, program_id: int, changes: ProgramChanges
) -> Program:
    """Change the given fields; attribution changes bump ``rules_version``."""
    program = await get_program(session, program_id, for_update=True)
    values = _check_changes(changes)
    if values.get("offer_kind", program.offer_kind) != program.offer_kind and (
        "offer_value" not in values
    ):
        raise ValidationFailed(
            "give the offer's value when changing its kind (its unit changes)",
            field="offer.value",
        )
    _check_offer(
        values.get("offer_kind", program.offer_kind),
        values.get("offer_value", program.offer_value),
    )
    attribution_changed = any(
        key in values and values[key] != getattr(program, key)
        for key in ("attribution_window_days", "attribution_model")
    )
    settings = _with_reward_settings(changes, program.settings or {})
    if settings is not None:
        values["settings"] = settings
    for key, value in values.items():
        setattr(program, key, value)
    if attribution_changed:
        program.rules_version += 1
    await session.flush()
    await announce_landing_change(session)  # offer, terms or rules show on landing pages
    await session.refresh(program)
    return program


# Target status -> the statuses it can be reached from. Archived is final.
_TRANSITIONS: dict[ProgramStatus, set[ProgramStatus]] = {
    ProgramStatus.ACTIVE: {ProgramStatus.DRAFT, ProgramStatus.PAUSED, ProgramStatus.ACTIVE},
    ProgramStatus.PAUSED: {ProgramStatus.ACTIVE, ProgramStatus.PAUSED},
    ProgramStatus.ARCHIVED: {
        ProgramStatus.DRAFT,
        ProgramStatus.ACTIVE,
        ProgramStatus.PAUSED,
        ProgramStatus.ARCHIVED,
    },
}


async def set_program_status(
    session: AsyncSession, program_id: int, status: ProgramStatus
) -> Program:
    """Move a program to ``status`` (re-setting the current status is a no-op)."""
    program = await get_program(session, program_id, for_update=True)
    current = ProgramStatus(program.status)
    if current not in _TRANSITIONS.get(status, set()):
        raise InvalidTransition(
            f"a {current.value} program cannot become {status.value}", field="status"
        )
    if current is not status:
        program.status = status.value
        await session.flush()
        await announce_landing_change(session)
        await session.refresh(program)
    return program


def _check_rule(spec: RuleSpec, index: int, program_currency: str) -> dict[str, Any]:
    at = f"rules.{index}"
    name = _text(spec.name, f"{at}.name", max_length=100, required=True)
    currency = check_currency(spec.currency or program_currency, field=f"{at}.currency")
    check_amount(spec.amount_minor, field=f"{at}.amountMinor")
    if spec.calc is RewardCalc.PERCENT:
        if not 1 <= spec.percent_bps <= 10_000:
            raise ValidationFailed(
                "a percent rule needs percentBps between 1 and 10000", field=f"{at}.percentBps"
            )
    elif spec.percent_bps != 0:
        raise ValidationFailed("percentBps is only for percent rules", field=f"{at}.percentBps")
    if spec.calc is RewardCalc.PERCENT and spec.trigger is not RewardTrigger.REVENUE:
        raise ValidationFailed(
            "percent rules pay a share of revenue: use the revenue trigger", field=f"{at}.trigger"
        )
    if spec.kind is RewardKind.POINTS:
        if spec.points <= 0:
            raise ValidationFailed("a points reward needs points > 0", field=f"{at}.points")
    elif spec.points < 0:
        raise ValidationFailed("points must not be negative", field=f"{at}.points")
    if (
        spec.calc is RewardCalc.FIXED
        and spec.kind not in (RewardKind.POINTS, RewardKind.STATUS)
        and spec.amount_minor == 0
    ):
        raise ValidationFailed(
            "a fixed reward needs an amount greater than 0", field=f"{at}.amountMinor"
        )
    _bounded(spec.from_nth_referral, 1, 10_000, f"{at}.fromNthReferral")
    if spec.cap_count is not None:
        _bounded(spec.cap_count, 1, 1_000_000, f"{at}.capCount")
    _bounded(spec.cap_period_days, 1, 3650, f"{at}.capPeriodDays")
    _bounded(spec.clawback_days, 0, 3650, f"{at}.clawbackDays")
    _bounded(spec.holding_days, 0, 365, f"{at}.holdingDays")
    return {
        "name": name,
        "side": spec.side.value,
        "trigger": spec.trigger.value,
        "kind": spec.kind.value,
        "calc": spec.calc.value,
        "amount_minor": spec.amount_minor,
        "currency": currency,
        "percent_bps": spec.percent_bps,
        "points": spec.points,
        "from_nth_referral": spec.from_nth_referral,
        "cap_count": spec.cap_count,
        "cap_period_days": spec.cap_period_days,
        "clawback_days": spec.clawback_days,
        "holding_days": spec.holding_days,
    }


_RULE_COLUMNS = tuple(f.name for f in fields(RuleSpec))


async def set_reward_rules(
    session: AsyncSession, program_id: int, specs: Sequence[RuleSpec]
) -> tuple[Program, bool]:
    """Replace the program's active rules with ``specs`` (matched by name).

    Rules that earned rewards cannot be deleted, so dropped rules are deactivated. Any change
    bumps ``rules_version``; sending the same rules again changes nothing.
    """
    if len(specs) > MAX_RULES:
        raise ValidationFailed(f"at most {MAX_RULES} rules per program", field="rules")
    program = await get_program(session, program_id, for_update=True)
    wanted = [_check_rule(spec, i, program.currency) for i, spec in enumerate(specs)]
    seen: set[str] = set()
    for i, rule in enumerate(wanted):
        if rule["name"] in seen:
            raise ValidationFailed("rule names must be unique", field=f"rules.{i}.name")
        seen.add(rule["name"])
    existing = {
        r.name: r
        for r in await session.scalars(
            select(RewardRule).where(RewardRule.program_id == program_id)
        )
    }
    changed = False
    for rule in wanted:
        current = existing.get(rule["name"])
        if current is None:
            session.add(RewardRule(program_id=program_id, active=True, **rule))
            changed = True
            continue
        differs = not current.active or any(
            getattr(current, col) != rule[col] for col in _RULE_COLUMNS
        )
        if differs:
            for col, value in rule.items():
                setattr(current, col, value)
            current.active = True
            changed = True
    for name, current in existing.items():
        if name not in seen and current.active:
            current.active = False
            changed = True
    if changed:
        program.rules_version += 1
    await session.flush()
    if changed:
        await session.refresh(program)
    return program, changed


def checked_rules(specs: Sequence[RuleSpec], program_currency: str) -> list[dict[str, Any]]:
    """Rule specs validated as ``set_reward_rules`` validates them, as column values."""
    if len(specs) > MAX_RULES:
        raise ValidationFailed(f"at most {MAX_RULES} rules per program", field="rules")
    wanted = [_check_rule(spec, i, program_currency) for i, spec in enumerate(specs)]
    seen: set[str] = set()
    for i, rule in enumerate(wanted):
        if rule["name"] in seen:
            raise ValidationFailed("rule names must be unique", field=f"rules.{i}.name")
        seen.add(rule["name"])
    return wanted
