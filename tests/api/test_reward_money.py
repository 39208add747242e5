"""Issue 13, the reward engine through GraphQL and HTTP: re-attribution moves the credit, a
reopened deal pays once, retries replay the first answer, a paid reward is not paid twice,
voided points leave the balance, and rewards wait out their holding period."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from tests.api.builders import make_redemption
from tests.api.graphql import gql
from tests.attribution.factories import make_referral, make_world
from tests.factories import make_advocate, make_api_key, make_link, make_reward_rule
from vouch.api.ids import encode_id
from vouch.attribution import chain, lifecycle, moderation, reward_fulfilment, rewards
from vouch.core.clock import utcnow
from vouch.models import (
    Conversion,
    IdempotencyKey,
    Opportunity,
    OutboxEvent,
    PointsEntry,
    Reward,
    RewardEntry,
)

CHAIN = """query($id: ID){ attributionChain(referralId: $id) {
    advocate { id }
    decisions { advocateId isCurrent reason } } }"""
REWARDS = """query($id: ID){ rewards(filter: {referralId: $id}, first: 50) { nodes {
    advocateId amountMinor state round reviewReason
    entries { state reason fulfilmentRef } } } }"""
REATTRIBUTE = """mutation($r: ID!, $l: ID!){
  reattributeReferral(referralId: $r, linkId: $l, reason: "CRM says B sent them") {
    decision { advocateId isCurrent } errors { code field message } } }"""
APPROVE = """mutation($id: ID!){ approveReward(rewardId: $id) {
    reward { state heldUntil } errors { code field message } } }"""
FULFIL = """mutation($id: ID!, $ref: String){ fulfilReward(rewardId: $id, fulfilmentRef: $ref) {
    fulfilled reward { state } errors { code field message } } }"""
VOID = """mutation($id: ID!){ voidReward(rewardId: $id, reason: "customer refunded") {
    reward { state } errors { code } } }"""
UPSERT = """mutation($input: UpsertOpportunityInput!, $key: String) {
  upsertOpportunity(input: $input, idempotencyKey: $key) {
    created opportunity { id status } errors { code field message } } }"""
MOVE = """mutation($crm: String!, $stage: String!, $status: String, $key: String) {
  moveOpportunityStage(crmId: $crm, stage: $stage, status: $status, idempotencyKey: $key) {
    opportunity { status } errors { code field message } } }"""
CONVERT = """mutation($input: RecordConversionInput!) { recordConversion(input: $input) {
    conversion { kind externalRef occurredAt } errors { code field message } } }"""


def _id(kind: str, pk: int) -> str:
    return encode_id(kind, pk)


async def _rewards(session, referral_id: int) -> list[Reward]:
    return list(
        await session.scalars(
            select(Reward)
            .where(Reward.referral_id == referral_id)
            .order_by(Reward.id)
            .execution_options(populate_existing=True)
        )
    )


async def _win(session, referral_id: int, now: datetime | None = None) -> None:
    await lifecycle.transition(
        session, referral_id, "won", source="crm", actor="crm", now=now or utcnow()
    )


# --- 1. re-attribution moves the credit ---------------------------------------------------------


async def test_reattribution_credits_the_new_advocate_on_their_own_ladder(client, session, codec):
    program, a, a_link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="first", amount_minor=5000)
    await make_reward_rule(
        session, program=program, name="second", amount_minor=9000, from_nth_referral=2
    )
    b = await make_advocate(session)
    b_link = await make_link(session, codec, advocate=b, program=program)
    earlier = await make_referral(session, program=program, advocate=b, link=b_link)
    await _win(session, earlier.id)
    referral = await make_referral(session, program=program, advocate=a, link=a_link)
    await _win(session, referral.id)
    admin = await make_api_key(session, scopes=["admin"], name="ops")

    got = await gql(
        client,
        REATTRIBUTE,
        {"r": _id("Referral", referral.id), "l": _id("ReferralLink", b_link.id)},
        token=admin,
    )
    assert got["data"]["reattributeReferral"]["errors"] == []
    chain = (await gql(client, CHAIN, {"id": _id("Referral", referral.id)}, token=admin))["data"][
        "attributionChain"
    ]
    assert chain["advocate"]["id"] == _id("Advocate", b.id)
    # Both steps are in the decision history: A's decision superseded by B's.
    assert [(d["advocateId"], d["isCurrent"]) for d in chain["decisions"]] == [
        (_id("Advocate", b.id), True),
        (_id("Advocate", a.id), False),
    ]
    # A's unpaid reward is voided with the reason; B earns as their own second referral.
    got = await gql(client, REWARDS, {"id": _id("Referral", referral.id)}, token=admin)
    assert list(reversed(got["data"]["rewards"]["nodes"])) == [
        {
            "advocateId": _id("Advocate", a.id),
            "amountMinor": 5000,
            "state": "voided",
            "round": 0,
            "reviewReason": None,
            "entries": [
                {
                    "state": "pending",
                    "reason": "won (rule 'first', referral #1)",
                    "fulfilmentRef": None,
                },
                {
                    "state": "voided",
                    "reason": "re-attributed to another advocate",
                    "fulfilmentRef": None,
                },
            ],
        },
        {
            "advocateId": _id("Advocate", b.id),
            "amountMinor": 9000,
            "state": "pending",
            "round": 1,
            "reviewReason": None,
            "entries": [
                {
                    "state": "pending",
                    "reason": "won (rule 'second', referral #2)",
                    "fulfilmentRef": None,
                }
            ],
        },
    ]


async def test_reattribution_counts_the_new_advocates_cap(client, session, codec):
    program, a, a_link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="capped", amount_minor=5000, cap_count=1)
    b = await make_advocate(session)
    b_link = await make_link(session, codec, advocate=b, program=program)
    earlier = await make_referral(session, program=program, advocate=b, link=b_link)
    await _win(session, earlier.id)
    referral = await make_referral(session, program=program, advocate=a, link=a_link)
    await _win(session, referral.id)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    await gql(
        client,
        REATTRIBUTE,
        {"r": _id("Referral", referral.id), "l": _id("ReferralLink", b_link.id)},
        token=admin,
    )
    # B already used the cap: A's reward is voided and B earns nothing for this referral.
    assert [(r.advocate_id, r.state) for r in await _rewards(session, referral.id)] == [
        (a.id, "voided")
    ]
    assert (
        await session.scalar(
            select(func.count()).select_from(Reward).where(Reward.advocate_id == b.id)
        )
        == 1
    )


async def _fulfilled_then_moved(client, session, codec, admin, program, rule_kw=None):
    a = await make_advocate(session)
    a_link = await make_link(session, codec, advocate=a, program=program)
    b = await make_advocate(session)
    b_link = await make_link(session, codec, advocate=b, program=program)
    referral = await make_referral(session, program=program, advocate=a, link=a_link)
    await _win(session, referral.id)
    (reward,) = await _rewards(session, referral.id)
    rid = _id("Reward", reward.id)
    assert (await gql(client, APPROVE, {"id": rid}, token=admin))["data"]["approveReward"][
        "errors"
    ] == []
    assert (await gql(client, FULFIL, {"id": rid}, token=admin))["data"]["fulfilReward"][
        "fulfilled"
    ]
    got = await gql(
        client,
        REATTRIBUTE,
        {"r": _id("Referral", referral.id), "l": _id("ReferralLink", b_link.id)},
        token=admin,
    )
    assert got["data"]["reattributeReferral"]["errors"] == []
    return a, b, referral


async def test_fulfilled_rewards_are_held_for_review_or_clawed_back_per_program(
    client, session, codec
):
    program, *_ = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="won", amount_minor=5000)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    setting = """query($id: ID!){ program(id: $id) { fulfilledOnReattribution } }"""
    pid = _id("Program", program.id)
    assert (await gql(client, setting, {"id": pid}, token=admin))["data"]["program"] == {
        "fulfilledOnReattribution": "HOLD_FOR_REVIEW"
    }

    a, b, held = await _fulfilled_then_moved(client, session, codec, admin, program)
    assert [
        (r.advocate_id, r.state, r.review_reason, r.round) for r in await _rewards(session, held.id)
    ] == [
        (a.id, "fulfilled", "re-attributed to another advocate", 0),
        (b.id, "pending", None, 1),
    ]
    flagged = await session.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.event_type == "reward.review_requested")
    )
    assert flagged == 1

    update = """mutation($id: ID!){ updateProgram(id: $id,
        input: {fulfilledOnReattribution: CLAW_BACK}) {
        program { fulfilledOnReattribution } errors { code } } }"""
    assert (await gql(client, update, {"id": pid}, token=admin))["data"]["updateProgram"] == {
        "program": {"fulfilledOnReattribution": "CLAW_BACK"},
        "errors": [],
    }
    a2, b2, clawed = await _fulfilled_then_moved(client, session, codec, admin, program)
    rows = await _rewards(session, clawed.id)
    assert [(r.advocate_id, r.state, r.review_reason) for r in rows] == [
        (a2.id, "voided", None),
        (b2.id, "pending", None),
    ]
    states = list(
        await session.scalars(
            select(RewardEntry.state)
            .where(RewardEntry.reward_id == rows[0].id)
            .order_by(RewardEntry.id)
        )
    )
    assert states == ["pending", "approved", "fulfilled", "voided"]


# --- 2. a reopened deal pays once ---------------------------------------------------------------


async def test_reopened_deal_earns_again_exactly_once(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="won", amount_minor=5000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    writer = await make_api_key(session, scopes=["write"], name="crm")
    deal = {
        "crmId": "D-77",
        "stage": "Closed won",
        "amountMinor": 120000,
        "currency": "USD",
        "status": "won",
        "referralId": _id("Referral", referral.id),
    }
    assert (await gql(client, UPSERT, {"input": deal}, token=writer))["data"]["upsertOpportunity"][
        "errors"
    ] == []

    async def move(stage: str, status: str) -> None:
        body = await gql(
            client, MOVE, {"crm": "D-77", "stage": stage, "status": status}, token=writer
        )
        assert body["data"]["moveOpportunityStage"]["errors"] == []

    await move("Closed lost", "lost")
    await move("Reopened", "open")
    await move("Closed won", "won")
    rows = await _rewards(session, referral.id)
    assert [(r.state, r.round, r.amount_minor) for r in rows] == [
        ("voided", 0, 5000),
        ("pending", 1, 5000),
    ]
    # Repeating "won" changes nothing; another fall and re-win earns once more.
    await move("Closed won again", "won")
    await move("Closed lost", "lost")
    await move("Closed won", "won")
    rows = await _rewards(session, referral.id)
    assert [(r.state, r.round) for r in rows] == [("voided", 0), ("voided", 1), ("pending", 2)]


async def test_rewin_does_not_double_a_reward_kept_after_its_clawback_window(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="won", amount_minor=5000, clawback_days=1)
    await make_reward_rule(
        session, program=program, name="manual", side="referred", amount_minor=700
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    t = utcnow() - timedelta(days=10)
    await _win(session, referral.id, t)
    kept, manual = await _rewards(session, referral.id)
    await rewards.void_reward(session, manual.id, actor="admin", reason="duplicate", now=t)
    await lifecycle.transition(
        session, referral.id, "lost", source="crm", actor="crm", now=t + timedelta(days=5)
    )
    await _win(session, referral.id, t + timedelta(days=6))
    rows = await _rewards(session, referral.id)
    # The kept reward (outside its window) is not earned twice; the manual void stays in its
    # round and the re-win earns that rule again, once.
    assert [(r.rule_id, r.state, r.round) for r in rows] == [
        (kept.rule_id, "pending", 0),
        (manual.rule_id, "voided", 0),
        (manual.rule_id, "pending", 1),
    ]


# --- 3. retries replay the first answer ---------------------------------------------------------


async def test_conversion_without_occurred_at_retried_replays_the_first_answer(
    client, session, codec
):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    redemption = await make_redemption(session, referral=referral)
    writer = await make_api_key(session, scopes=["write"], name="shop")
    conv = {
        "redemptionCode": redemption.code,
        "kind": "SIGNUP",
        "externalRef": "acct-1",
        "idempotencyKey": "conv-1",
    }
    first = (await gql(client, CONVERT, {"input": conv}, token=writer))["data"]["recordConversion"]
    assert first["errors"] == []
    retry = (await gql(client, CONVERT, {"input": conv}, token=writer))["data"]["recordConversion"]
    assert retry == first
    assert await session.scalar(select(func.count()).select_from(Conversion)) == 1

    # Over HTTP too: no occurredAt, the same Idempotency-Key, the same answer.
    body = {
        "redemptionCode": redemption.code,
        "kind": "purchase",
        "externalRef": "o-1",
        "amountMinor": 4200,
    }
    h = {"authorization": f"Bearer {writer}", "idempotency-key": "http-1"}
    one = await client.post("/api/conversions", json=body, headers=h)
    two = await client.post("/api/conversions", json=body, headers=h)
    assert (one.status_code, two.status_code) == (200, 200)
    assert two.json() == one.json()
    assert await session.scalar(select(func.count()).select_from(Conversion)) == 2


async def test_move_to_won_retried_replays_and_keys_are_per_credential_and_operation(
    client, session, codec
):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="won", amount_minor=5000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    writer = await make_api_key(session, scopes=["write"], name="crm")
    other = await make_api_key(session, scopes=["write"], name="billing")
    deal = {
        "crmId": "D-9",
        "stage": "Demo",
        "amountMinor": 50000,
        "currency": "USD",
        "referralId": _id("Referral", referral.id),
    }
    created = await gql(client, UPSERT, {"input": deal, "key": "k-up"}, token=writer)
    assert created["data"]["upsertOpportunity"]["created"] is True
    won = {"crm": "D-9", "stage": "Closed won", "status": "won", "key": "k-won"}
    first = (await gql(client, MOVE, won, token=writer))["data"]["moveOpportunityStage"]
    retry = (await gql(client, MOVE, won, token=writer))["data"]["moveOpportunityStage"]
    assert first == retry == {"opportunity": {"status": "won"}, "errors": []}
    assert len(await _rewards(session, referral.id)) == 1
    # The first answer of upsertOpportunity is replayed too: created stays true.
    again = await gql(client, UPSERT, {"input": deal, "key": "k-up"}, token=writer)
    assert again["data"]["upsertOpportunity"]["created"] is True

    # A key reused on another operation is refused, and nothing is written.
    reused = (
        await gql(
            client, UPSERT, {"input": {**deal, "crmId": "D-10"}, "key": "k-won"}, token=writer
        )
    )["data"]["upsertOpportunity"]
    assert reused["errors"] == [
        {
            "code": "IDEMPOTENCY_MISMATCH",
            "field": "idempotencyKey",
            "message": "this idempotency key was already used for another operation "
            "(move_opportunity_stage)",
        }
    ]
    assert (
        await session.scalar(
            select(func.count()).select_from(Opportunity).where(Opportunity.crm_id == "D-10")
        )
        == 0
    )
    # Another credential's key space is its own.
    theirs = (
        await gql(client, UPSERT, {"input": {**deal, "crmId": "D-10"}, "key": "k-won"}, token=other)
    )["data"]["upsertOpportunity"]
    assert (theirs["created"], theirs["errors"]) == (True, [])
    owners = sorted(
        await session.scalars(select(IdempotencyKey.scope).where(IdempotencyKey.key == "k-won"))
    )
    assert owners == ["move_opportunity_stage", "upsert_opportunity"]


# --- 4. a paid reward is not paid twice ---------------------------------------------------------


async def test_a_different_fulfilment_of_a_fulfilled_reward_is_a_conflict(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="cash", kind="cash", amount_minor=5000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await _win(session, referral.id)
    (reward,) = await _rewards(session, referral.id)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    payer = await make_api_key(session, scopes=["write"], name="payouts")
    rid = _id("Reward", reward.id)
    await gql(client, APPROVE, {"id": rid}, token=admin)
    paid = (await gql(client, FULFIL, {"id": rid, "ref": "po_1"}, token=payer))["data"]
    assert paid["fulfilReward"] == {
        "fulfilled": True,
        "reward": {"state": "fulfilled"},
        "errors": [],
    }
    twice = (await gql(client, FULFIL, {"id": rid, "ref": "po_2"}, token=payer))["data"]
    assert twice["fulfilReward"] == {
        "fulfilled": False,
        "reward": None,
        "errors": [
            {
                "code": "CONFLICT",
                "field": "fulfilmentRef",
                "message": "this reward was already fulfilled with reference 'po_1'",
            }
        ],
    }
    same = (await gql(client, FULFIL, {"id": rid, "ref": "po_1"}, token=payer))["data"]
    assert same["fulfilReward"] == paid["fulfilReward"]
    refs = list(
        await session.scalars(
            select(RewardEntry.fulfilment_ref).where(
                RewardEntry.reward_id == reward.id, RewardEntry.state == "fulfilled"
            )
        )
    )
    assert refs == ["po_1"]


# --- 7. voided points leave the balance ---------------------------------------------------------


async def test_voiding_a_fulfilled_points_reward_takes_the_points_back(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(
        session, program=program, name="pts", kind="points", points=1200, amount_minor=0
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await _win(session, referral.id)
    (reward,) = await _rewards(session, referral.id)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    rid = _id("Reward", reward.id)
    await gql(client, APPROVE, {"id": rid}, token=admin)
    await gql(client, FULFIL, {"id": rid}, token=admin)
    standing = """query($id: ID!){ advocateStanding(advocateId: $id) {
        points level { name } badges { code } } }"""
    aid = {"id": _id("Advocate", advocate.id)}
    assert (await gql(client, standing, aid, token=admin))["data"]["advocateStanding"] == {
        "points": 1200,
        "level": {"name": "Advocate"},
        "badges": [{"code": "points_1000"}],
    }
    assert (await gql(client, VOID, {"id": rid}, token=admin))["data"]["voidReward"] == {
        "reward": {"state": "voided"},
        "errors": [],
    }
    assert (await gql(client, standing, aid, token=admin))["data"]["advocateStanding"] == {
        "points": 0,
        "level": {"name": "Member"},
        "badges": [],
    }
    ledger = list(
        await session.execute(
            select(PointsEntry.points, PointsEntry.reason)
            .where(PointsEntry.advocate_id == advocate.id)
            .order_by(PointsEntry.id)
        )
    )
    assert [tuple(r) for r in ledger] == [
        (1200, "referral_reward"),
        (-1200, "referral_reward_void"),
    ]


# --- 12. holding period -------------------------------------------------------------------------


async def test_holding_period_refuses_early_approval_and_a_churn_inside_it_voids(
    client, session, codec
):
    program, advocate, link = await make_world(session, codec)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    rules = """mutation($p: ID!){ setRewardRules(programId: $p, rules: [
        {name: "held", side: REFERRER, trigger: WON, amountMinor: 5000, holdingDays: 14}]) {
        program { rewardRules { name holdingDays } } errors { code field } } }"""
    set_rules = (await gql(client, rules, {"p": _id("Program", program.id)}, token=admin))["data"]
    assert set_rules["setRewardRules"] == {
        "program": {"rewardRules": [{"name": "held", "holdingDays": 14}]},
        "errors": [],
    }
    bad = rules.replace("holdingDays: 14", "holdingDays: 400")
    refused = (await gql(client, bad, {"p": _id("Program", program.id)}, token=admin))["data"]
    assert refused["setRewardRules"]["errors"] == [
        {"code": "INVALID", "field": "rules.0.holdingDays"}
    ]
    # Auto-approve does not skip the holding period.
    program.settings = {"auto_approve_rewards": True}
    await session.flush()
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    before = utcnow()
    await _win(session, referral.id)
    (reward,) = await _rewards(session, referral.id)
    assert reward.state == "pending"
    assert reward.held_until is not None
    assert before + timedelta(days=14) <= reward.held_until <= utcnow() + timedelta(days=14)
    early = (await gql(client, APPROVE, {"id": _id("Reward", reward.id)}, token=admin))["data"]
    assert early["approveReward"] == {
        "reward": None,
        "errors": [
            {
                "code": "CONFLICT",
                "field": "rewardId",
                "message": "this reward is in its holding period; it can be approved from "
                f"{reward.held_until.isoformat()}",
            }
        ],
    }
    assert (await _rewards(session, referral.id))[0].state == "pending"
    await lifecycle.transition(
        session, referral.id, "churned", source="billing", actor="b", now=utcnow()
    )
    assert [(r.state) for r in await _rewards(session, referral.id)] == ["voided"]


async def test_release_approves_due_rewards_of_auto_approving_programs(session, codec):
    program, advocate, link = await make_world(
        session, codec, settings={"auto_approve_rewards": True}
    )
    manual, m_adv, m_link = await make_world(session, codec)
    for p in (program, manual):
        await make_reward_rule(session, program=p, name="held", amount_minor=5000, holding_days=7)
    now = utcnow()
    due = await make_referral(session, program=program, advocate=advocate, link=link)
    await _win(session, due.id, now - timedelta(days=8))
    young = await make_referral(session, program=program, advocate=advocate, link=link)
    await _win(session, young.id, now - timedelta(days=2))
    not_auto = await make_referral(session, program=manual, advocate=m_adv, link=m_link)
    await _win(session, not_auto.id, now - timedelta(days=8))

    released = await rewards.release_due_rewards(session, now)
    assert [r.referral_id for r in released] == [due.id]
    assert [r.state for r in await _rewards(session, due.id)] == ["approved"]
    assert [r.state for r in await _rewards(session, young.id)] == ["pending"]
    assert [r.state for r in await _rewards(session, not_auto.id)] == ["pending"]
    entry = await session.scalar(
        select(RewardEntry).where(
            RewardEntry.reward_id == released[0].id, RewardEntry.state == "approved"
        )
    )
    assert (entry.actor, entry.reason) == ("system:release", "holding period ended")
    assert await rewards.release_due_rewards(session, now) == []


async def test_approving_a_flagged_referral_leaves_held_rewards_to_the_release(
    client, session, codec
):
    program, advocate, link = await make_world(
        session, codec, settings={"auto_approve_rewards": True}
    )
    await make_reward_rule(session, program=program, name="held", amount_minor=5000, holding_days=7)
    await make_reward_rule(
        session, program=program, name="friend", side="referred", amount_minor=1500
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await moderation.flag_referral(session, referral, ["too_fast"], now=utcnow())
    await _win(session, referral.id)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    mod = """mutation($id: ID!){ moderateReferral(referralId: $id, approve: true, reason: "ok") {
        moderation errors { code } } }"""
    got = await gql(client, mod, {"id": _id("Referral", referral.id)}, token=admin)
    assert got["data"]["moderateReferral"] == {"moderation": "approved", "errors": []}
    # The friend's reward (no holding period) is approved; the held one waits for its date.
    assert [(r.side, r.state) for r in await _rewards(session, referral.id)] == [
        ("referrer", "pending"),
        ("referred", "approved"),
    ]


async def test_reattribution_reearns_revenue_shares_of_unrefunded_charges(client, session, codec):
    program, a, a_link = await make_world(session, codec)
    await make_reward_rule(
        session,
        program=program,
        name="share",
        trigger="revenue",
        calc="percent",
        percent_bps=1000,
        amount_minor=0,
    )
    b = await make_advocate(session)
    b_link = await make_link(session, codec, advocate=b, program=program)
    referral = await make_referral(session, program=program, advocate=a, link=a_link)
    await _win(session, referral.id)
    writer = await make_api_key(session, scopes=["write"], name="billing")
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    record = """mutation($i: RecordRevenueInput!){ recordRevenue(input: $i) { errors { code } } }"""
    now = utcnow().isoformat()
    rid = _id("Referral", referral.id)
    for external_id, kind, amount, refunds in (
        ("ch_1", "recurring", 10000, None),
        ("ch_2", "recurring", 30000, None),
        ("re_2", "refund", 5000, "ch_2"),
    ):
        i = {
            "externalId": external_id,
            "kind": kind,
            "amountMinor": amount,
            "currency": "USD",
            "occurredAt": now,
            "referralId": rid,
            "refundsExternalId": refunds,
        }
        assert (await gql(client, record, {"i": i}, token=writer))["data"]["recordRevenue"] == {
            "errors": []
        }
    before = [
        (r.advocate_id, r.amount_minor, r.state) for r in await _rewards(session, referral.id)
    ]
    assert before == [(a.id, 1000, "pending"), (a.id, 3000, "voided")]
    await gql(client, REATTRIBUTE, {"r": rid, "l": _id("ReferralLink", b_link.id)}, token=admin)
    # B earns the share of the charge that still stands, not of the refunded one.
    after = [
        (r.advocate_id, r.amount_minor, r.state, r.round)
        for r in await _rewards(session, referral.id)
    ]
    assert after == [
        (a.id, 1000, "voided", 0),
        (a.id, 3000, "voided", 0),
        (b.id, 1000, "pending", 1),
    ]


async def test_claw_back_setting_holds_a_paid_reward_whose_window_closed(session, codec):
    program, a, a_link = await make_world(
        session, codec, settings={"reattribution_fulfilled": "claw_back"}
    )
    await make_reward_rule(
        session, program=program, name="won", amount_minor=5000, clawback_days=30
    )
    b = await make_advocate(session)
    b_link = await make_link(session, codec, advocate=b, program=program)
    referral = await make_referral(session, program=program, advocate=a, link=a_link)
    t = utcnow() - timedelta(days=40)
    await _win(session, referral.id, t)
    (reward,) = await _rewards(session, referral.id)
    await rewards.approve_reward(session, reward.id, actor="ops", reason=None, now=t)
    await reward_fulfilment.fulfil_reward(session, reward.id, actor="ops", now=t)
    await chain.reattribute(
        session,
        referral.id,
        link_id=b_link.id,
        evidence="manual",
        actor="ops",
        reason="CRM",
        now=utcnow(),
    )
    assert [
        (r.advocate_id, r.state, r.review_reason) for r in await _rewards(session, referral.id)
    ] == [(a.id, "fulfilled", "re-attributed to another advocate"), (b.id, "pending", None)]
