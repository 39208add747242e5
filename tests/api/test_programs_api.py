"""Programs, their offer and reward rules through GraphQL: validation first, then one write."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.factories import make_api_key, make_program, make_reward_rule
from vouch.api.ids import encode_id
from vouch.catalog.programs import RuleSpec, set_reward_rules
from vouch.core.sessions import session_factory
from vouch.models import Program, RewardRule
from vouch.models.enums import RewardSide, RewardTrigger

CREATE = """
mutation($input: CreateProgramInput!) {
  createProgram(input: $input) {
    program { id slug name status currency attributionWindowDays offerKind offerValue offerTitle rulesVersion }
    errors { message field code }
  }
}"""

SET_RULES = """
mutation($id: ID!, $rules: [RewardRuleInput!]!) {
  setRewardRules(programId: $id, rules: $rules) {
    changed
    program { rulesVersion rewardRules { name side trigger calc kind amountMinor currency percentBps } }
    errors { message field code }
  }
}"""


async def _count(session, model) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)))


async def test_create_program_with_offer(client, session):
    key = await make_api_key(session, scopes=["admin"])
    body = await gql(
        client,
        CREATE,
        {
            "input": {
                "slug": "friends-of-acme",
                "name": "Friends of Acme",
                "currency": "eur",
                "attributionWindowDays": 60,
                "offer": {"kind": "AMOUNT_OFF", "value": 2500, "title": "EUR 25 off"},
            }
        },
        token=key,
    )
    payload = body["data"]["createProgram"]
    assert payload["errors"] == []
    assert payload["program"] == {
        "id": payload["program"]["id"],
        "slug": "friends-of-acme",
        "name": "Friends of Acme",
        "status": "ACTIVE",
        "currency": "EUR",
        "attributionWindowDays": 60,
        "offerKind": "AMOUNT_OFF",
        "offerValue": 2500,
        "offerTitle": "EUR 25 off",
        "rulesVersion": 1,
    }
    stored = await session.scalar(select(Program).where(Program.slug == "friends-of-acme"))
    assert stored is not None
    assert (stored.currency, stored.offer_kind, stored.offer_value) == ("EUR", "amount_off", 2500)


async def test_create_program_rejects_bad_input_and_writes_nothing(client, session):
    key = await make_api_key(session, scopes=["admin"])
    await make_program(session, slug="taken")
    cases = [
        ({"slug": "taken", "name": "X"}, "slug", "CONFLICT"),
        ({"slug": "Bad Slug!", "name": "X"}, "slug", "INVALID"),
        ({"slug": "ok-1", "name": "X", "currency": "XYZ"}, "currency", "INVALID"),
        (
            {"slug": "ok-2", "name": "X", "attributionWindowDays": 0},
            "attributionWindowDays",
            "INVALID",
        ),
        (
            {"slug": "ok-3", "name": "X", "offer": {"kind": "PERCENT_OFF", "value": 150}},
            "offer.value",
            "INVALID",
        ),
        ({"slug": "ok-4", "name": "X", "offer": {"value": -5}}, "offer.value", "INVALID"),
        ({"slug": "ok-5", "name": "x" * 201}, "name", "INVALID"),
        ({"slug": "ok-6", "name": "X", "status": "ARCHIVED"}, "status", "INVALID"),
    ]
    before = await _count(session, Program)
    for values, field, code in cases:
        payload = (await gql(client, CREATE, {"input": values}, token=key))["data"]["createProgram"]
        assert payload["program"] is None, values
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)], values
    assert await _count(session, Program) == before


async def test_unknown_enum_is_a_validation_error(client, session):
    key = await make_api_key(session, scopes=["admin"])
    body = await gql(
        client,
        CREATE,
        {"input": {"slug": "x", "name": "X", "attributionModel": "MIDDLE_TOUCH"}},
        token=key,
        expect_errors=True,
    )
    assert body["data"] is None
    assert "MIDDLE_TOUCH" in body["errors"][0]["message"]
    assert await _count(session, Program) == 0


async def test_create_program_needs_admin(client, session):
    key = await make_api_key(session, scopes=["write"])
    body = await gql(
        client, CREATE, {"input": {"slug": "x", "name": "X"}}, token=key, expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "admin" in body["errors"][0]["message"]
    assert await _count(session, Program) == 0


async def test_update_program_bumps_rules_version_only_on_attribution_change(client, session):
    program = await make_program(session, attribution_window_days=30)
    key = await make_api_key(session, scopes=["admin"])
    q = """mutation($id: ID!, $input: ProgramSettingsInput!) {
      updateProgram(id: $id, input: $input) {
        program { name attributionWindowDays rulesVersion offerTitle } errors { field code } } }"""
    pid = encode_id("Program", program.id)
    renamed = (
        await gql(
            client,
            q,
            {"id": pid, "input": {"name": "Renamed", "offer": {"title": "20% off"}}},
            token=key,
        )
    )["data"]["updateProgram"]
    assert renamed == {
        "program": {
            "name": "Renamed",
            "attributionWindowDays": 30,
            "rulesVersion": 1,
            "offerTitle": "20% off",
        },
        "errors": [],
    }
    widened = (
        await gql(client, q, {"id": pid, "input": {"attributionWindowDays": 90}}, token=key)
    )["data"]["updateProgram"]
    assert widened["program"]["rulesVersion"] == 2
    bad = (await gql(client, q, {"id": pid, "input": {"attributionWindowDays": 400}}, token=key))[
        "data"
    ]["updateProgram"]
    assert bad == {
        "program": None,
        "errors": [{"field": "attributionWindowDays", "code": "INVALID"}],
    }
    await session.refresh(program)
    assert (program.attribution_window_days, program.rules_version) == (90, 2)
    missing = (
        await gql(
            client, q, {"id": encode_id("Program", 999999), "input": {"name": "N"}}, token=key
        )
    )["data"]["updateProgram"]
    assert missing["errors"] == [{"field": "id", "code": "NOT_FOUND"}]


async def test_pause_and_activate(client, session):
    program = await make_program(session)
    key = await make_api_key(session, scopes=["admin"])
    pid = encode_id("Program", program.id)
    pause = "mutation($id: ID!){ pauseProgram(id: $id){ program { status } errors { code } } }"
    activate = (
        "mutation($id: ID!){ activateProgram(id: $id){ program { status } errors { code } } }"
    )
    assert (await gql(client, pause, {"id": pid}, token=key))["data"]["pauseProgram"] == {
        "program": {"status": "PAUSED"},
        "errors": [],
    }
    assert (await gql(client, activate, {"id": pid}, token=key))["data"]["activateProgram"] == {
        "program": {"status": "ACTIVE"},
        "errors": [],
    }
    archived = await make_program(session, status="archived")
    refused = await gql(client, activate, {"id": encode_id("Program", archived.id)}, token=key)
    assert refused["data"]["activateProgram"] == {
        "program": None,
        "errors": [{"code": "INVALID_TRANSITION"}],
    }
    await session.refresh(archived)
    assert archived.status == "archived"


async def test_set_reward_rules_replaces_and_bumps_version(client, session):
    program = await make_program(session, currency="USD")
    old = await make_reward_rule(session, program=program, name="legacy")
    key = await make_api_key(session, scopes=["admin"])
    rules = [
        {"name": "advocate credit", "side": "REFERRER", "trigger": "WON", "amountMinor": 5000},
        {
            "name": "friend discount",
            "side": "REFERRED",
            "trigger": "SIGNUP",
            "kind": "DISCOUNT_CODE",
            "amountMinor": 1500,
            "currency": "EUR",
        },
        {
            "name": "rev share",
            "side": "REFERRER",
            "trigger": "REVENUE",
            "calc": "PERCENT",
            "percentBps": 1000,
        },
    ]
    pid = encode_id("Program", program.id)
    first = (await gql(client, SET_RULES, {"id": pid, "rules": rules}, token=key))["data"][
        "setRewardRules"
    ]
    assert first["errors"] == []
    assert first["changed"] is True
    assert first["program"]["rulesVersion"] == 2
    assert first["program"]["rewardRules"] == [
        {
            "name": "advocate credit",
            "side": "REFERRER",
            "trigger": "WON",
            "calc": "FIXED",
            "kind": "CREDIT",
            "amountMinor": 5000,
            "currency": "USD",
            "percentBps": 0,
        },
        {
            "name": "friend discount",
            "side": "REFERRED",
            "trigger": "SIGNUP",
            "calc": "FIXED",
            "kind": "DISCOUNT_CODE",
            "amountMinor": 1500,
            "currency": "EUR",
            "percentBps": 0,
        },
        {
            "name": "rev share",
            "side": "REFERRER",
            "trigger": "REVENUE",
            "calc": "PERCENT",
            "kind": "CREDIT",
            "amountMinor": 0,
            "currency": "USD",
            "percentBps": 1000,
        },
    ]
    await session.refresh(old)
    assert old.active is False  # dropped rules are kept (rewards may point at them) but inactive
    again = (await gql(client, SET_RULES, {"id": pid, "rules": rules}, token=key))["data"][
        "setRewardRules"
    ]
    assert (again["changed"], again["program"]["rulesVersion"]) == (False, 2)


async def test_set_reward_rules_validates_every_rule_and_writes_nothing(client, session):
    program = await make_program(session)
    key = await make_api_key(session, scopes=["admin"])
    pid = encode_id("Program", program.id)
    base = {"name": "r", "side": "REFERRER", "trigger": "WON", "amountMinor": 100}
    cases = [
        ({**base, "amountMinor": -1}, "rules.0.amountMinor"),
        ({**base, "currency": "ZZZ"}, "rules.0.currency"),
        ({**base, "trigger": "REVENUE", "calc": "PERCENT", "percentBps": 0}, "rules.0.percentBps"),
        (
            {**base, "trigger": "REVENUE", "calc": "PERCENT", "percentBps": 10001},
            "rules.0.percentBps",
        ),
        ({**base, "calc": "PERCENT", "percentBps": 500}, "rules.0.trigger"),
        ({**base, "amountMinor": 0}, "rules.0.amountMinor"),
        ({**base, "capCount": 0}, "rules.0.capCount"),
        ({**base, "name": " "}, "rules.0.name"),
    ]
    for rule, field in cases:
        payload = (await gql(client, SET_RULES, {"id": pid, "rules": [rule]}, token=key))["data"][
            "setRewardRules"
        ]
        assert payload["program"] is None, rule
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, "INVALID")], rule
    dup = (await gql(client, SET_RULES, {"id": pid, "rules": [base, base]}, token=key))["data"][
        "setRewardRules"
    ]
    assert dup["errors"][0]["field"] == "rules.1.name"
    unknown_trigger = await gql(
        client,
        SET_RULES,
        {"id": pid, "rules": [{**base, "trigger": "CLICK"}]},
        token=key,
        expect_errors=True,
    )
    assert unknown_trigger["data"] is None
    assert await _count(session, RewardRule) == 0
    await session.refresh(program)
    assert program.rules_version == 1


async def test_concurrent_identical_rule_sets_apply_once(committing_engine):
    factory = session_factory(committing_engine)
    async with factory() as s:
        program = Program(slug="race-rules", name="Race")
        s.add(program)
        await s.commit()
    spec = RuleSpec(
        name="credit", side=RewardSide.REFERRER, trigger=RewardTrigger.WON, amount_minor=500
    )

    async def one() -> bool:
        async with factory() as s:
            _, changed = await set_reward_rules(s, program.id, [spec])
            await s.commit()
            return changed

    changed = await asyncio.gather(*(one() for _ in range(20)))
    assert changed.count(True) == 1
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(RewardRule)) == 1
        assert await s.scalar(select(Program.rules_version).where(Program.id == program.id)) == 2
