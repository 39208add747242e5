"""A realistic, deterministic demo data set: two programs, ~50 advocates, the whole loop."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.asks import advocates_due, evaluate_asks
from vouch.advocacy.tiers import recompute_all_tiers
from vouch.attribution import reward_fulfilment, rewards, rollups
from vouch.attribution.revenue import reward_ref
from vouch.core.codes import LinkCodec
from vouch.core.emails import normalize_email
from vouch.core.security import hash_ip
from vouch.models import (
    Advocate,
    AttributionDecision,
    Click,
    OfferRedemption,
    Opportunity,
    OpportunityEvent,
    Program,
    Referral,
    ReferralEvent,
    ReferralLink,
    RevenueEvent,
    RewardRule,
    Signal,
)
from vouch.models.enums import (
    AttributionEvidence,
    AttributionModel,
    OfferKind,
    OpportunityStatus,
    ReferralStatus,
    RevenueKind,
    RewardCalc,
    RewardKind,
    RewardSide,
    RewardTrigger,
    SignalKind,
)

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Linus",
    "Radia",
    "Ken",
    "Frances",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Dennis",
    "Anita",
    "Guido",
    "Sophie",
    "Bjarne",
    "Mary",
    "Niklaus",
    "Jean",
    "Claude",
    "Lynn",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Torvalds",
    "Perlman",
    "Thompson",
    "Allen",
    "Berners-Lee",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "Ritchie",
    "Borg",
    "Rossum",
    "Wilson",
    "Stroustrup",
    "Keller",
    "Wirth",
    "Sammet",
    "Shannon",
    "Conway",
]
COMPANIES = [
    ("Acme Analytics", "acme.io"),
    ("Globex", "globex.com"),
    ("Initech", "initech.com"),
    ("Umbrella Health", "umbrella.health"),
    ("Hooli", "hooli.xyz"),
    ("Stark Logistics", "stark.dev"),
    ("Wayne Capital", "wayne.co"),
    ("Cyberdyne", "cyberdyne.ai"),
    ("Soylent Foods", "soylent.food"),
    ("Tyrell Labs", "tyrell.tech"),
]
PERSONAS = ["champion", "admin", "executive", "end_user", "developer"]
SEGMENTS = ["smb", "mid_market", "enterprise"]
CHANNELS = ["email", "linkedin", "x", "whatsapp", "sms", "direct"]
UAS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
]
DEMO_SLUGS = ("refer-a-friend", "partner-referrals")


@dataclass(frozen=True, slots=True)
class DemoSummary:
    programs: int
    advocates: int
    share_code: str
    created: bool
    advocate_id: int


async def seed_demo_data(
    session: AsyncSession, codec: LinkCodec, *, secret: str, now: datetime, seed: int = 7
) -> DemoSummary:
    """Insert the demo once; a second run finds it and returns the same share code."""
    existing = await session.scalar(select(Program).where(Program.slug == DEMO_SLUGS[0]))
    if existing is not None:
        first_link = (
            await session.execute(
                select(ReferralLink.code, ReferralLink.advocate_id)
                .where(ReferralLink.program_id == existing.id)
                .order_by(ReferralLink.id)
                .limit(1)
            )
        ).one()
        advocate_count = await session.scalar(select(func.count()).select_from(Advocate))
        return DemoSummary(
            2,
            int(advocate_count or 0),
            str(first_link[0]),
            created=False,
            advocate_id=int(first_link[1]),
        )

    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    consumer = Program(
        slug=DEMO_SLUGS[0],
        name="Refer a friend",
        currency="USD",
        description="Give 15% off, get $50 credit when your friend buys.",
        attribution_window_days=30,
        attribution_model=AttributionModel.LAST_TOUCH,
        offer_kind=OfferKind.PERCENT_OFF,
        offer_value=15,
        offer_title="15% off your first order",
        offer_terms="New customers only. One use per customer. Valid for 90 days after claiming.",
    )
    partner = Program(
        slug=DEMO_SLUGS[1],
        name="Partner referrals",
        currency="USD",
        description="B2B referrals: a 30-day trial extension for the friend, 10% of first-year "
        "revenue for the advocate.",
        attribution_window_days=90,
        attribution_model=AttributionModel.FIRST_TOUCH,
        offer_kind=OfferKind.TRIAL_EXTENSION_DAYS,
        offer_value=30,
        offer_title="A 30-day extended trial",
        offer_terms="For new workspaces only.",
    )
    session.add_all([consumer, partner])
    await session.flush()
    rules = {
        "consumer_referrer": RewardRule(
            program_id=consumer.id,
            name="Referrer credit",
            side=RewardSide.REFERRER,
            trigger=RewardTrigger.WON,
            calc=RewardCalc.FIXED,
            kind=RewardKind.CREDIT,
            amount_minor=5000,
            currency="USD",
            cap_count=10,
            cap_period_days=365,
        ),
        "consumer_bonus": RewardRule(
            program_id=consumer.id,
            name="Fifth-referral bonus",
            side=RewardSide.REFERRER,
            trigger=RewardTrigger.WON,
            calc=RewardCalc.FIXED,
            kind=RewardKind.GIFT_CARD,
            amount_minor=10000,
            currency="USD",
            from_nth_referral=5,
        ),
        "partner_share": RewardRule(
            program_id=partner.id,
            name="Revenue share",
            side=RewardSide.REFERRER,
            trigger=RewardTrigger.REVENUE,
            calc=RewardCalc.PERCENT,
            kind=RewardKind.CASH,
            percent_bps=1000,
            currency="USD",
            clawback_days=90,
        ),
    }
    session.add_all(rules.values())

    advocates: list[Advocate] = []
    for i in range(50):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        company, domain = COMPANIES[i % len(COMPANIES)]
        score = round(max(0.0, min(100.0, rng.gauss(55, 20))), 2)
        advocates.append(
            Advocate(
                external_id=f"crm-contact-{1000 + i}",
                email=f"{first.lower()}.{last.lower()}@{domain}",
                email_normalized=normalize_email(f"{first.lower()}.{last.lower()}@{domain}"),
                first_name=first,
                last_name=last,
                account_id=f"acct-{i % 10}",
                account_name=company,
                account_domain=domain,
                persona=PERSONAS[i % len(PERSONAS)],
                segment=SEGMENTS[i % 3],
                is_icp=i % 3 != 0,
                consent_referral=True,
                consent_marketing=i % 2 == 0,
                score=score,
                scored_at=now,
            )
        )
    ranked = sorted(advocates, key=lambda a: a.score, reverse=True)
    for rank, advocate in enumerate(ranked):
        pct = rank / len(ranked)
        advocate.tier = 1 if pct < 0.10 else 2 if pct < 0.30 else 3 if pct < 0.60 else None
    session.add_all(advocates)
    await session.flush()

    signals: list[Signal] = []
    for advocate in advocates:
        base = advocate.score
        nps = max(0, min(10, round(base / 10 + rng.uniform(-1.5, 1.5))))
        signals.append(
            Signal(
                advocate_id=advocate.id,
                kind=SignalKind.NPS,
                value=nps,
                occurred_at=now - timedelta(days=rng.randint(1, 80)),
                source="survey",
            )
        )
        if base > 40:
            signals.append(
                Signal(
                    advocate_id=advocate.id,
                    kind=SignalKind.USAGE_MILESTONE,
                    value=rng.choice([10, 50, 100]),
                    source="product",
                    occurred_at=now - timedelta(days=rng.randint(1, 60)),
                )
            )
        if base > 60:
            signals.append(
                Signal(
                    advocate_id=advocate.id,
                    kind=SignalKind.RENEWAL,
                    value=1,
                    source="crm",
                    occurred_at=now - timedelta(days=rng.randint(5, 120)),
                )
            )
        if rng.random() < 0.3:
            signals.append(
                Signal(
                    advocate_id=advocate.id,
                    kind=SignalKind.SUPPORT_RESOLVED,
                    value=5,
                    source="helpdesk",
                    occurred_at=now - timedelta(days=rng.randint(1, 30)),
                )
            )
    session.add_all(signals)

    links: list[ReferralLink] = []
    for i, advocate in enumerate(advocates):
        links.append(
            ReferralLink(
                advocate_id=advocate.id,
                program_id=consumer.id,
                channel="direct",
                nonce=codec.new_nonce(),
            )
        )
        if i % 2 == 0:
            links.append(
                ReferralLink(
                    advocate_id=advocate.id,
                    program_id=partner.id,
                    channel="linkedin",
                    nonce=codec.new_nonce(),
                )
            )
    session.add_all(links)
    await session.flush()
    for link in links:
        link.code = codec.encode(link.id, link.nonce)

    clicks: list[Click] = []
    weights = [max(a.score, 1.0) ** 2 for a in advocates]
    link_by_adv = {(link.advocate_id, link.program_id): link for link in links}
    for _ in range(900):
        advocate = rng.choices(advocates, weights=weights)[0]
        program = (
            partner if rng.random() < 0.3 and (advocate.id, partner.id) in link_by_adv else consumer
        )
        link = link_by_adv[(advocate.id, program.id)]
        at = now - timedelta(days=rng.uniform(0, 90))
        bot = rng.random() < 0.08
        clicks.append(
            Click(
                link_id=link.id,
                program_id=program.id,
                occurred_at=at,
                channel=rng.choice(CHANNELS),
                utm={"utm_source": "demo"},
                ip_hash=hash_ip(secret, f"198.51.100.{rng.randint(1, 254)}", at.date()),
                user_agent="Slackbot-LinkExpanding 1.0" if bot else rng.choice(UAS),
                is_bot=bot,
                bot_reason="unfurler" if bot else None,
                visitor_id=f"v{rng.getrandbits(48):012x}",
            )
        )
    session.add_all(clicks)
    await session.flush()

    stages = (
        [ReferralStatus.LEAD] * 30
        + [ReferralStatus.QUALIFIED] * 15
        + [ReferralStatus.OPPORTUNITY] * 12
        + [ReferralStatus.WON] * 16
        + [ReferralStatus.LOST] * 7
    )
    path = [ReferralStatus.LEAD, ReferralStatus.QUALIFIED, ReferralStatus.OPPORTUNITY]
    # What each won referral earns, replayed through the engine in time order after the loop.
    earnings: list[tuple[datetime, int, Referral, RevenueEvent | None]] = []
    for n, final in enumerate(stages):
        click = rng.choice([c for c in clicks[n * 9 : (n + 1) * 9] if not c.is_bot] or clicks[:1])
        link = next(lk for lk in links if lk.id == click.link_id)
        program = consumer if link.program_id == consumer.id else partner
        created = click.occurred_at + timedelta(minutes=rng.randint(3, 600))
        email = f"friend{n}@example-{n % 17}.com"
        referral = Referral(
            program_id=program.id,
            advocate_id=link.advocate_id,
            link_id=link.id,
            person_key=normalize_email(email),
            email=email,
            name=f"Friend {n}",
            company=f"Prospect {n % 17}",
            status=final,
            consent=True,
            click_id=click.id,
            visitor_id=click.visitor_id,
            created_at=created,
            updated_at=created,
        )
        session.add(referral)
        await session.flush()
        session.add(
            AttributionDecision(
                referral_id=referral.id,
                advocate_id=link.advocate_id,
                link_id=link.id,
                click_id=click.id,
                rule=program.attribution_model,
                rules_version=1,
                window_days=program.attribution_window_days,
                evidence=AttributionEvidence.CLICK,
                actor="landing",
                reason=f"{program.attribution_model} click within "
                f"{program.attribution_window_days} days",
                decided_at=created,
            )
        )
        session.add(
            OfferRedemption(
                referral_id=referral.id,
                program_id=program.id,
                code=f"DEMO-{n:04d}-{rng.getrandbits(20):05X}",
                issued_at=created,
                expires_at=created + timedelta(days=program.redemption_ttl_days),
                redeemed_at=created + timedelta(days=1) if final != ReferralStatus.LEAD else None,
                redeemed_by="demo-shop" if final != ReferralStatus.LEAD else None,
            )
        )
        steps = [ReferralStatus.LEAD]
        if final != ReferralStatus.LEAD:
            steps = path[: path.index(final) + 1] if final in path else [*path, final]
        at = created
        previous: str | None = None
        for step in steps:
            session.add(
                ReferralEvent(
                    referral_id=referral.id,
                    from_status=previous,
                    to_status=step,
                    at=at,
                    source="landing" if previous is None else "crm_sync",
                )
            )
            previous = step
            won_at = at
            at += timedelta(days=rng.randint(1, 9))
        if final in (ReferralStatus.OPPORTUNITY, ReferralStatus.WON, ReferralStatus.LOST):
            amount = rng.choice([1200_00, 4800_00, 9600_00, 24000_00])
            status = {
                ReferralStatus.WON: OpportunityStatus.WON,
                ReferralStatus.LOST: OpportunityStatus.LOST,
            }.get(final, OpportunityStatus.OPEN)
            opp = Opportunity(
                crm_id=f"006DEMO{n:05d}",
                referral_id=referral.id,
                program_id=program.id,
                name=f"Prospect {n % 17} — new business",
                amount_minor=amount,
                currency="USD",
                stage={"won": "Closed Won", "lost": "Closed Lost"}.get(status, "Proposal"),
                status=status,
                owner="ae@vouch.example",
                close_date=(at + timedelta(days=14)).date(),
            )
            session.add(opp)
            await session.flush()
            session.add(
                OpportunityEvent(
                    opportunity_id=opp.id,
                    from_stage=None,
                    to_stage=opp.stage,
                    to_amount_minor=amount,
                    at=at,
                    source="crm_sync",
                )
            )
            if status == OpportunityStatus.WON:
                charge = RevenueEvent(
                    external_id=f"ch_demo_{n:05d}",
                    opportunity_id=opp.id,
                    referral_id=referral.id,
                    program_id=program.id,
                    kind=RevenueKind.RECURRING,
                    amount_minor=amount,
                    currency="USD",
                    occurred_at=at + timedelta(days=15),
                    source="billing",
                )
                session.add(charge)
                await session.flush()
                earnings.append((won_at, n, referral, None))
                earnings.append((charge.occurred_at, n, referral, charge))
    await session.flush()
    await _demo_rewards(session, earnings)
    # Derive what the engine derives, with the engine's own functions: readiness scores and
    # tiers from the signals, the reporting rollup from the journeys, and the asks that the
    # moments earn (each within the contact cap).
    await recompute_all_tiers(session, now=now, reason="demo")
    await rollups.rebuild(session)
    for program in (consumer, partner):
        for advocate_id in await advocates_due(session, program.id, now=now):
            await evaluate_asks(session, advocate_id, program.id, now=now)
    return DemoSummary(
        2, len(advocates), str(links[0].code), created=True, advocate_id=links[0].advocate_id
    )


async def _demo_rewards(
    session: AsyncSession, earnings: list[tuple[datetime, int, Referral, RevenueEvent | None]]
) -> None:
    """Rewards earned by the engine itself (the won milestone, then the first charge), in time
    order; a third stay pending, a third are approved and a third fulfilled by a person."""
    for at, n, referral, charge in sorted(earnings, key=lambda e: (e[0], e[1], e[3] is not None)):
        if charge is None:
            evaluation = await rewards.on_referral_event(
                session, referral, RewardTrigger.WON, now=at, actor="demo"
            )
        else:
            evaluation = await rewards.on_referral_event(
                session,
                referral,
                RewardTrigger.REVENUE,
                now=at,
                base_amount_minor=charge.amount_minor,
                base_currency=charge.currency,
                trigger_ref=reward_ref(charge.id),
                actor="demo",
            )
        final = n % 3
        for reward in evaluation.created:
            if final >= 1:
                await rewards.approve_reward(session, reward.id, actor="demo", reason=None, now=at)
            if final == 2:
                await reward_fulfilment.fulfil_reward(
                    session, reward.id, actor="demo", now=at, fulfilment_ref=f"demo-{reward.id}"
                )
