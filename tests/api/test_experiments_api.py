"""GraphQL: holdout experiments end to end on PostgreSQL: assignment, withholding, lifecycle,
errors and the report's numbers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests.advocacy.conftest import make_scored, make_signal
from tests.api.builders import make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.advocacy.experiments import assign, assignment_key
from vouch.api.ids import encode_id
from vouch.core.clock import utcnow
from vouch.models import Ask, Experiment, ExperimentAssignment, RevenueEvent, Reward
from vouch.models.enums import RewardSide

CREATE = """mutation($input: CreateExperimentInput!) { createExperiment(input: $input) {
  experiment { id name status holdoutBps withholds withholdAsks withholdWidgetPrompt }
  errors { field code message } } }"""
STATUS = """mutation($id: ID!) {
  pause: pauseExperiment(id: $id) { experiment { status } errors { code } } }"""
END = """mutation($id: ID!) { endExperiment(id: $id) { experiment { status endedAt }
  errors { code field message } } }"""
RESUME = """mutation($id: ID!) { resumeExperiment(id: $id) { experiment { status }
  errors { code field message } } }"""
EVALUATE = """mutation($a: ID!, $p: ID!) { evaluateAsks(advocateId: $a, programId: $p) {
  queued { type } sent { type } guards { code message } errors { code } } }"""
ME = "{ me { referralPrompt { show reason experimentId } } }"
# the widget's own load: links with the figures, read in one statement (advocacy/widget.py)
ME_WIDGET = "{ me { links { code } rewards { id } referralPrompt { show reason experimentId } } }"
REPORT = """query($id: ID!) { experimentReport(id: $id) {
  method currency plannedHoldoutShare observedHoldoutShare sampleRatioMismatch
  strata { tier treatment holdout }
  outcomes { name nTreatment nHoldout meanTreatment meanHoldout absoluteLift absoluteLow
    absoluteHigh requiredHoldout sampleReached verdict }
  rewardCostMinor attributedRevenueMinor incrementalRevenuePerTreatedMinor
  incrementalRevenueMinor attributedRoi incrementalRoi verdict } }"""


async def _program_with_tiers(session, per_tier: dict[int, int]):
    program = await make_program(session)
    people = []
    for tier, count in per_tier.items():
        for _ in range(count):
            person = await make_advocate(session)
            await make_scored(session, person.id, program.id, tier)
            people.append((person, tier))
    return program, people


async def _create(client, key, program, **extra):
    variables = {"input": {"programId": encode_id("Program", program.id), "name": "Q1"} | extra}
    return (await gql(client, CREATE, variables, token=key))["data"]["createExperiment"]


async def _assignments(session, experiment_id):
    rows = await session.execute(
        select(ExperimentAssignment.advocate_id, ExperimentAssignment.arm)
        .where(ExperimentAssignment.experiment_id == experiment_id)
        .order_by(ExperimentAssignment.advocate_id)
    )
    return dict(rows.all())


async def test_assignment_is_stratified_by_tier_recorded_once_and_extended_to_newcomers(
    client, session
):
    program, people = await _program_with_tiers(session, {1: 8, 2: 20, 3: 12})
    erased = await make_advocate(session, erased_at=utcnow())
    await make_scored(session, erased.id, program.id, 2)
    untiered = await make_advocate(session)
    await make_scored(session, untiered.id, program.id, None)
    key = await make_api_key(session, scopes=["admin"])

    created = await _create(client, key, program, holdoutBps=2500)
    assert created["errors"] == []
    assert created["experiment"]["status"] == "RUNNING"
    assert created["experiment"]["withholds"] == "automated asks and the widget's referral prompt"
    experiment_id = await session.scalar(select(Experiment.id).where(Experiment.name == "Q1"))
    first = await _assignments(session, experiment_id)
    # Exactly the pure assignment over the eligible advocates: the erased and the untiered
    # are not assigned; each tier is split 25% to within one advocate.
    expected = assign(
        2500, {}, [(p.id, tier, assignment_key(experiment_id, p.id)) for p, tier in people]
    )
    assert first == {pk: group for pk, _, group in expected}
    held = dict.fromkeys((1, 2, 3), 0)
    for p, tier in people:
        held[tier] += first[p.id] == "holdout"
    assert held == {1: 2, 2: 5, 3: 3}

    # Someone who becomes eligible later is assigned on their first ask evaluation, counting
    # their tier's earlier assignments; nobody else's group moves.
    newcomers = []
    for _ in range(4):
        person = await make_advocate(session)
        await make_scored(session, person.id, program.id, 2)
        newcomers.append(person)
    for person in newcomers:
        ids = {"a": encode_id("Advocate", person.id), "p": encode_id("Program", program.id)}
        await gql(client, EVALUATE, ids, token=key)
        await gql(client, EVALUATE, ids, token=key)  # a second evaluation changes nothing
    after = await _assignments(session, experiment_id)
    assert {pk: g for pk, g in after.items() if pk in first} == first
    assert sum(after[p.id] == "holdout" for p in newcomers) == 1  # 6 of 24 in tier 2
    assert len(after) == len(first) + 4


async def test_holdout_gets_no_automated_asks_and_its_widget_hides_the_prompt(client, session, app):
    program, people = await _program_with_tiers(session, {2: 4})
    for person, _ in people:
        await make_signal(session, person.id, "review_rating", 5, at=utcnow() - timedelta(days=1))
    key = await make_api_key(session, scopes=["admin"])
    created = await _create(client, key, program, holdoutBps=5000)
    experiment_id = await session.scalar(select(Experiment.id).where(Experiment.name == "Q1"))
    groups = await _assignments(session, experiment_id)
    held = next(p for p, _ in people if groups[p.id] == "holdout")
    treated = next(p for p, _ in people if groups[p.id] == "treatment")

    def ids(person):
        return {"a": encode_id("Advocate", person.id), "p": encode_id("Program", program.id)}

    out = (await gql(client, EVALUATE, ids(held), token=key))["data"]["evaluateAsks"]
    assert out["sent"] is None
    assert out["queued"] == []
    assert out["guards"] == [
        {
            "code": "experiment_holdout",
            "message": "held out of the experiment 'Q1': no automated asks",
        }
    ]
    assert await session.scalar(select(func.count()).where(Ask.advocate_id == held.id)) == 0
    sent = (await gql(client, EVALUATE, ids(treated), token=key))["data"]["evaluateAsks"]
    assert sent["sent"] == {"type": "REVIEW"}

    prompt = (await gql(client, ME, token=app.state.widget_tokens.mint(held.id)))["data"]["me"]
    widget = await gql(client, ME_WIDGET, token=app.state.widget_tokens.mint(held.id))
    assert widget["data"]["me"]["referralPrompt"] == prompt["referralPrompt"]
    assert prompt["referralPrompt"] == {
        "show": False,
        "reason": "experiment_holdout: this advocate is in the holdout of the experiment 'Q1', "
        "which withholds the referral prompt",
        "experimentId": created["experiment"]["id"],
    }
    shown = (await gql(client, ME, token=app.state.widget_tokens.mint(treated.id)))["data"]["me"]
    widget = await gql(client, ME_WIDGET, token=app.state.widget_tokens.mint(treated.id))
    assert widget["data"]["me"]["referralPrompt"] == shown["referralPrompt"]
    assert shown["referralPrompt"] == {"show": True, "reason": None, "experimentId": None}

    # Once the experiment ends, nothing is withheld any more.
    ended = (await gql(client, END, {"id": created["experiment"]["id"]}, token=key))["data"]
    assert ended["endExperiment"]["experiment"]["status"] == "ENDED"
    after = (await gql(client, EVALUATE, ids(held), token=key))["data"]["evaluateAsks"]
    assert after["sent"] == {"type": "REVIEW"}
    again = (await gql(client, ME, token=app.state.widget_tokens.mint(held.id)))["data"]["me"]
    assert again["referralPrompt"]["show"] is True


async def test_lifecycle_and_bad_input_are_answered_as_errors(client, session):
    program, _ = await _program_with_tiers(session, {1: 2})
    admin = await make_api_key(session, scopes=["admin"])
    bad = await _create(client, admin, program, holdoutBps=9000)
    assert bad == {
        "experiment": None,
        "errors": [
            {
                "field": "holdoutBps",
                "code": "INVALID",
                "message": "holdoutBps must be between 100 (1%) and 5000 (50%)",
            }
        ],
    }
    none = await _create(client, admin, program, withholdAsks=False, withholdWidgetPrompt=False)
    assert none["errors"][0]["field"] == "withholdAsks"
    assert await session.scalar(select(func.count()).select_from(Experiment)) == 0

    created = await _create(client, admin, program)
    exp_id = created["experiment"]["id"]
    second = await _create(client, admin, program)
    assert second["errors"] == [
        {
            "field": "programId",
            "code": "CONFLICT",
            "message": "the program already has an experiment that has not ended; end it first",
        }
    ]
    assert await session.scalar(select(func.count()).select_from(Experiment)) == 1

    paused = (await gql(client, STATUS, {"id": exp_id}, token=admin))["data"]["pause"]
    assert paused == {"experiment": {"status": "PAUSED"}, "errors": []}
    resumed = (await gql(client, RESUME, {"id": exp_id}, token=admin))["data"]
    assert resumed["resumeExperiment"]["experiment"]["status"] == "RUNNING"
    await gql(client, END, {"id": exp_id}, token=admin)
    again = (await gql(client, RESUME, {"id": exp_id}, token=admin))["data"]["resumeExperiment"]
    assert again == {
        "experiment": None,
        "errors": [
            {
                "code": "INVALID_TRANSITION",
                "field": "id",
                "message": "an ended experiment cannot become running",
            }
        ],
    }
    writer = await make_api_key(session, scopes=["write"])
    denied = await gql(
        client,
        CREATE,
        {"input": {"programId": encode_id("Program", program.id), "name": "x"}},
        token=writer,
        expect_errors=True,
    )
    assert denied["data"] is None
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await session.scalar(select(func.count()).select_from(Experiment)) == 1


async def test_report_compares_per_advocate_outcomes_with_exact_numbers(client, session, codec):
    program, people = await _program_with_tiers(session, {2: 8})
    key = await make_api_key(session, scopes=["admin"])
    created = await _create(client, key, program, holdoutBps=2500)
    experiment_id = await session.scalar(select(Experiment.id).where(Experiment.name == "Q1"))
    groups = await _assignments(session, experiment_id)
    treated = [p for p, _ in people if groups[p.id] == "treatment"]
    held = [p for p, _ in people if groups[p.id] == "holdout"]
    assert (len(treated), len(held)) == (6, 2)
    started = await session.scalar(
        select(Experiment.started_at).where(Experiment.id == experiment_id)
    )
    now = started + timedelta(milliseconds=1)
    # Treated: two advocates refer one friend each who pays 100.00 and 50.00; one reward of
    # 20.00 each. Held out: one advocate refers one who pays 30.00.
    payers = [(treated[0], 10_000), (treated[1], 5_000), (held[0], 3_000)]
    for n, (person, amount) in enumerate(payers):
        link = await make_link(session, codec, advocate=person, program=program)
        referral = await make_referral(session, link=link, status="won", created_at=now)
        session.add(
            RevenueEvent(
                external_id=f"charge-{n}",
                source="billing",
                referral_id=referral.id,
                program_id=program.id,
                kind="one_time",
                amount_minor=amount,
                currency="USD",
                occurred_at=now,
            )
        )
        if person in treated:
            from tests.factories import make_reward_rule

            rule = await make_reward_rule(session, program=program)
            session.add(
                Reward(
                    program_id=program.id,
                    rule_id=rule.id,
                    referral_id=referral.id,
                    advocate_id=person.id,
                    side=RewardSide.REFERRER,
                    kind="credit",
                    amount_minor=2_000,
                    currency="USD",
                    state="approved",
                    created_at=now,
                )
            )
    await session.flush()
    report = (await gql(client, REPORT, {"id": created["experiment"]["id"]}, token=key))["data"][
        "experimentReport"
    ]
    assert report["method"] == "welch"
    assert report["currency"] == "USD"
    assert report["plannedHoldoutShare"] == 0.25
    assert report["observedHoldoutShare"] == 0.25
    assert report["sampleRatioMismatch"] is False
    assert report["strata"] == [{"tier": 2, "treatment": 6, "holdout": 2}]
    revenue = next(o for o in report["outcomes"] if o["name"] == "revenue_minor")
    assert revenue["nTreatment"] == 6
    assert revenue["nHoldout"] == 2
    assert revenue["meanTreatment"] == 2_500.0
    assert revenue["meanHoldout"] == 1_500.0
    assert revenue["absoluteLift"] == 1_000.0
    assert revenue["absoluteLow"] < 0 < revenue["absoluteHigh"]
    assert revenue["sampleReached"] is False
    assert revenue["verdict"] == "INSUFFICIENT_SAMPLE"
    referrals = next(o for o in report["outcomes"] if o["name"] == "referrals")
    assert (referrals["meanTreatment"], referrals["meanHoldout"]) == (2 / 6, 0.5)
    assert report["rewardCostMinor"] == 4_000
    assert report["attributedRevenueMinor"] == 15_000
    assert report["incrementalRevenuePerTreatedMinor"] == 1_000
    assert report["incrementalRevenueMinor"] == 6_000
    assert report["attributedRoi"] == 2.75
    assert report["incrementalRoi"] == 0.5
    assert report["verdict"] == "INSUFFICIENT_SAMPLE"
