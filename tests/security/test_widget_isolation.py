"""Issue 14 item 12: a widget token learned which fraud rule caught its referrals (flags,
moderation state and reason, the voiding reason in its rewards' ledger), and told unknown ids
(NOT_FOUND) from other advocates' ids (FORBIDDEN)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.builders import make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program, make_reward_rule
from vouch.api.ids import encode_id
from vouch.models import Reward, RewardEntry

FIELDS = "id status flags flagged moderation moderationReason"


async def _held(session, codec):
    program = await make_program(session)
    fraudster = await make_advocate(session)
    link = await make_link(session, codec, advocate=fraudster, program=program)
    held = await make_referral(
        session,
        link=link,
        flags=["velocity_ip", "velocity_link"],
        moderation="pending",
        moderation_reason=None,
    )
    rejected = await make_referral(
        session,
        link=link,
        status="rejected",
        flags=["velocity_link"],
        moderation="rejected",
        moderation_reason="velocity_link: 40 signups from one link in an hour",
    )
    now = datetime.now(UTC)
    rule = await make_reward_rule(session, program=program)
    reward = Reward(
        program_id=program.id,
        referral_id=rejected.id,
        advocate_id=fraudster.id,
        rule_id=rule.id,
        side="referrer",
        kind="credit",
        amount_minor=5000,
        currency="USD",
        state="voided",
        trigger_ref="",
        created_at=now,
    )
    session.add(reward)
    await session.flush()
    return program, fraudster, link, held, rejected, reward, now


async def test_widget_sees_neutral_moderation(client, session, codec, app):
    _, fraudster, _, held, rejected, *_ = await _held(session, codec)
    await session.commit()
    token = app.state.widget_tokens.mint(fraudster.id)
    body = await gql(client, f"{{ me {{ referrals {{ nodes {{ {FIELDS} }} }} }} }}", token=token)
    assert body["data"]["me"]["referrals"]["nodes"] == [
        {
            "id": encode_id("Referral", rejected.id),
            "status": "REJECTED",
            "flags": [],
            "flagged": False,
            "moderation": "REJECTED",
            "moderationReason": None,
        },
        {
            "id": encode_id("Referral", held.id),
            "status": "LEAD",
            "flags": [],
            "flagged": False,
            "moderation": "CLEAR",
            "moderationReason": None,
        },
    ]
    one = await gql(
        client,
        f"query($id: ID!) {{ referral(id: $id) {{ {FIELDS} }} }}",
        {"id": encode_id("Referral", held.id)},
        token=token,
    )
    assert one["data"]["referral"]["flags"] == []
    assert one["data"]["referral"]["moderation"] == "CLEAR"
    # an API key still sees the whole truth
    key = await make_api_key(session, scopes=["read"])
    await session.commit()
    full = await gql(
        client,
        f"query($id: ID!) {{ referral(id: $id) {{ {FIELDS} }} }}",
        {"id": encode_id("Referral", rejected.id)},
        token=key,
    )
    assert full["data"]["referral"] == {
        "id": encode_id("Referral", rejected.id),
        "status": "REJECTED",
        "flags": ["velocity_link"],
        "flagged": True,
        "moderation": "REJECTED",
        "moderationReason": "velocity_link: 40 signups from one link in an hour",
    }


async def test_widget_reward_ledger_hides_reasons_and_actors(client, session, codec, app):
    *_, reward, now = await _held(session, codec)
    session.add_all(
        [
            RewardEntry(
                reward_id=reward.id,
                state="pending",
                at=now,
                actor="system",
                reason="won (rule 'x', referral #1)",
                amount_minor=5000,
            ),
            RewardEntry(
                reward_id=reward.id,
                state="voided",
                at=now,
                actor="api_key:fraud-desk",
                reason="velocity_link: 40 signups from one link",
                amount_minor=5000,
            ),
        ]
    )
    await session.commit()
    token = app.state.widget_tokens.mint(reward.advocate_id)
    body = await gql(
        client, "{ me { rewards { state entries { state actor reason } } } }", token=token
    )
    assert body["data"]["me"]["rewards"] == [
        {
            "state": "voided",
            "entries": [
                {"state": "pending", "actor": "vouch", "reason": None},
                {"state": "voided", "actor": "vouch", "reason": None},
            ],
        }
    ]


async def test_unknown_and_other_advocates_ids_are_answered_alike(client, session, codec, app):
    program, fraudster, *_ = await _held(session, codec)
    other = await make_advocate(session, external_id="someone-else")
    other_link = await make_link(session, codec, advocate=other, program=program)
    other_referral = await make_referral(session, link=other_link)
    await session.commit()
    code = other_link.code or ""
    token = app.state.widget_tokens.mint(fraudster.id)
    pairs = [
        (
            "query($v: ID!) { referral(id: $v) { id } }",
            encode_id("Referral", other_referral.id),
            encode_id("Referral", other_referral.id + 1000),
        ),
        (
            "query($v: ID!) { referralLink(id: $v) { id } }",
            encode_id("ReferralLink", other_link.id),
            encode_id("ReferralLink", other_link.id + 1000),
        ),
        (
            "query($v: String!) { referralLink(code: $v) { id } }",
            code,
            code[:-1] + ("x" if code[-1] != "x" else "y"),
        ),
        (
            "query($v: String!) { advocate(externalId: $v) { id } }",
            "someone-else",
            "nobody-at-all",
        ),
        (
            "query($v: ID!) { advocate(id: $v) { id } }",
            encode_id("Advocate", other.id),
            encode_id("Advocate", other.id + 1000),
        ),
    ]
    for query, theirs, unknown in pairs:
        a = await gql(client, query, {"v": theirs}, token=token, expect_errors=True)
        b = await gql(client, query, {"v": unknown}, token=token, expect_errors=True)
        assert a["data"] is None, query
        assert b["data"] is None, query
        assert [(e["message"], e["extensions"]) for e in a["errors"]] == [
            (e["message"], e["extensions"]) for e in b["errors"]
        ], query
        assert a["errors"][0]["extensions"]["code"] == "FORBIDDEN", query
