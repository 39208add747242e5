"""GraphQL: evaluate/send/transition asks, next-best-ask for widgets, reservations, actions,
standing and leaderboard, KPIs; and the loader factories batch."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests.advocacy.conftest import make_opportunity, make_scored, make_signal
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_program
from vouch.advocacy.ask_policy import pick_next
from vouch.api.ids import encode_id
from vouch.api.loaders import Loaders
from vouch.core.clock import utcnow
from vouch.models import AdvocacyAction, Ask

ASK_FIELDS = "id type moment team status sentAt fallbackOfId opportunityId reservedUntil outcome"
EVALUATE = f"""mutation($a: ID!, $p: ID!) {{ evaluateAsks(advocateId: $a, programId: $p) {{
  queued {{ type }} sent {{ {ASK_FIELDS} }} guards {{ code until }} errors {{ field code message }} }} }}"""
TRANSITION = """mutation($id: ID!, $to: AskTransition!, $reason: String, $url: String) {
  transitionAsk(id: $id, to: $to, reason: $reason, url: $url) {
    ask { status } fallback { type status } action { kind url } pointsAwarded
    errors { field code message } } }"""
NEXT = """query($a: ID!) { nextBestAsk(advocateId: $a) { reason ask { type status } guards { code } } }"""


async def scene(session, tier=2):
    program = await make_program(session)
    person = await make_advocate(session, persona="champion")
    await make_scored(session, person.id, program.id, tier)
    await make_signal(session, person.id, "review_rating", 5, at=utcnow() - timedelta(days=1))
    return program, person


def ids(program, person):
    return {"a": encode_id("Advocate", person.id), "p": encode_id("Program", program.id)}


async def test_evaluate_then_decline_with_fallback(client, session):
    program, person = await scene(session, tier=1)
    key = await make_api_key(session, scopes=["write"])
    body = (await gql(client, EVALUATE, ids(program, person), token=key))["data"]["evaluateAsks"]
    assert body["errors"] == []
    assert body["guards"] == []
    assert (body["sent"]["type"], body["sent"]["moment"], body["sent"]["status"]) == (
        "TESTIMONIAL",
        "five_star_rating",
        "SENT",
    )
    again = (await gql(client, EVALUATE, ids(program, person), token=key))["data"]["evaluateAsks"]
    assert (again["sent"], [g["code"] for g in again["guards"]]) == (None, ["frequency_cap"])
    declined = (
        await gql(
            client,
            TRANSITION,
            {"id": body["sent"]["id"], "to": "DECLINE", "reason": "busy"},
            token=key,
        )
    )["data"]["transitionAsk"]
    assert declined == {
        "ask": {"status": "DECLINED"},
        "fallback": {"type": "ANONYMOUS_QUOTE", "status": "SENT"},
        "action": None,
        "pointsAwarded": 0,
        "errors": [],
    }
    bad = (await gql(client, TRANSITION, {"id": body["sent"]["id"], "to": "PUBLISH"}, token=key))[
        "data"
    ]["transitionAsk"]
    assert bad["errors"] == [
        {
            "field": "to",
            "code": "INVALID_TRANSITION",
            "message": "an ask that is declined cannot become published",
        }
    ]
    assert await session.scalar(select(func.count()).select_from(AdvocacyAction)) == 0


async def test_publish_records_action_and_points(client, session):
    program, person = await scene(session, tier=2)
    key = await make_api_key(session, scopes=["write"])
    sent = (await gql(client, EVALUATE, ids(program, person), token=key))["data"]["evaluateAsks"][
        "sent"
    ]
    published = (
        await gql(
            client,
            TRANSITION,
            {"id": sent["id"], "to": "PUBLISH", "url": "https://g2.com/x"},
            token=key,
        )
    )["data"]["transitionAsk"]
    assert (published["ask"], published["action"], published["pointsAwarded"]) == (
        {"status": "PUBLISHED"},
        {"kind": "review", "url": "https://g2.com/x"},
        50,
    )
    bad_url = (
        await gql(
            client, TRANSITION, {"id": sent["id"], "to": "ACCEPT", "url": "javascript:x"}, token=key
        )
    )["data"]["transitionAsk"]
    assert bad_url["errors"][0]["field"] == "url"


async def test_ask_mutations_reject_bad_input(client, session):
    program, person = await scene(session)
    key = await make_api_key(session, scopes=["write"])
    unknown = (
        await gql(
            client,
            EVALUATE,
            {"a": encode_id("Advocate", 999_999), "p": encode_id("Program", program.id)},
            token=key,
        )
    )["data"]["evaluateAsks"]
    assert unknown["errors"] == [
        {"field": "advocateId", "code": "NOT_FOUND", "message": "no such advocate"}
    ]
    wrong_type = (
        await gql(
            client,
            EVALUATE,
            {"a": encode_id("Program", program.id), "p": encode_id("Program", program.id)},
            token=key,
        )
    )["data"]["evaluateAsks"]
    assert wrong_type["errors"][0]["message"] == "not a valid Advocate id"
    create = """mutation($a: ID!, $p: ID!, $t: AskType!, $team: Team!) { createAsk(advocateId: $a, programId: $p, type: $t, team: $team) { ask { id status team } errors { field code } } }"""
    # an unknown team is not in the Team enum: refused before anything runs
    bad_team = await gql(
        client,
        create,
        {**ids(program, person), "t": "REVIEW", "team": "LEGAL"},
        token=key,
        expect_errors=True,
    )
    assert bad_team["data"] is None
    assert "Team" in bad_team["errors"][0]["message"]
    reference = (
        await gql(
            client,
            create,
            {**ids(program, person), "t": "REFERENCE_CALL", "team": "SALES"},
            token=key,
        )
    )["data"]["createAsk"]
    assert reference == {"ask": None, "errors": [{"field": "type", "code": "INVALID"}]}
    made = (
        await gql(
            client, create, {**ids(program, person), "t": "REVIEW", "team": "SALES"}, token=key
        )
    )["data"]["createAsk"]
    assert made["ask"]["status"] == "QUEUED"
    send = "mutation($id: ID!) { sendAsk(id: $id) { ask { status } errors { field code } } }"
    assert (await gql(client, send, {"id": made["ask"]["id"]}, token=key))["data"]["sendAsk"] == {
        "ask": {"status": "SENT"},
        "errors": [],
    }
    second = (
        await gql(
            client,
            create,
            {**ids(program, person), "t": "SURVEY", "team": "CUSTOMER_SUCCESS"},
            token=key,
        )
    )["data"]["createAsk"]
    capped = (await gql(client, send, {"id": second["ask"]["id"]}, token=key))["data"]["sendAsk"]
    assert capped == {"ask": None, "errors": [{"field": "id", "code": "CAPPED"}]}
    statuses = (await session.scalars(select(Ask.status).order_by(Ask.id))).all()
    assert statuses == ["sent", "queued"]
    reader = await make_api_key(session, scopes=["read"], name="reader")
    denied = await gql(client, send, {"id": second["ask"]["id"]}, token=reader, expect_errors=True)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_asks_list_and_next_best_ask_for_widgets(client, session, app):
    program, person = await scene(session)
    other = await make_advocate(session)
    key = await make_api_key(session, scopes=["write"])
    await gql(client, EVALUATE, ids(program, person), token=key)
    listing = await gql(
        client,
        "query($f: AskFilterInput) { asks(filter: $f) { totalCount nodes { type status team } } }",
        {"f": {"advocateId": encode_id("Advocate", person.id), "status": "SENT"}},
        token=key,
    )
    assert listing["data"]["asks"] == {
        "totalCount": 1,
        "nodes": [{"type": "REVIEW", "status": "SENT", "team": "MARKETING"}],
    }
    bad_filter = await gql(
        client,
        'query { asks(filter: {status: "lost"}) { totalCount } }',
        token=key,
        expect_errors=True,
    )
    assert bad_filter["errors"][0]["message"].startswith(
        "Enum 'AskStatus' cannot represent non-enum value"
    )
    widget = app.state.widget_tokens.mint(person.id)
    own = await gql(client, NEXT, {"a": encode_id("Advocate", person.id)}, token=widget)
    assert own["data"]["nextBestAsk"] == {
        "reason": "awaiting_response",
        "ask": {"type": "REVIEW", "status": "SENT"},
        "guards": [],
    }
    denied = await gql(
        client, NEXT, {"a": encode_id("Advocate", other.id)}, token=widget, expect_errors=True
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listing_denied = await gql(client, "{ asks { totalCount } }", token=widget, expect_errors=True)
    assert listing_denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_reservations_and_influenced_revenue(client, session):
    program, person = await scene(session, tier=1)
    deal = await make_opportunity(session, program_id=program.id, amount_minor=750_000)
    other_deal = await make_opportunity(session, program_id=program.id)
    key = await make_api_key(session, scopes=["write"])
    reserve = f"""mutation($a: ID!, $o: ID!, $h: Int!) {{ reserveReference(advocateId: $a, opportunityId: $o, holdDays: $h) {{ ask {{ {ASK_FIELDS} }} errors {{ field code message }} }} }}"""
    args = {"a": encode_id("Advocate", person.id), "o": encode_id("Opportunity", deal.id), "h": 7}
    made = (await gql(client, reserve, args, token=key))["data"]["reserveReference"]
    assert (made["ask"]["type"], made["ask"]["team"], made["ask"]["opportunityId"]) == (
        "REFERENCE_CALL",
        "SALES",
        encode_id("Opportunity", deal.id),
    )
    double = (
        await gql(
            client, reserve, {**args, "o": encode_id("Opportunity", other_deal.id)}, token=key
        )
    )["data"]["reserveReference"]
    assert (double["ask"], double["errors"][0]["code"], double["errors"][0]["field"]) == (
        None,
        "CONFLICT",
        "advocateId",
    )
    bad_hold = (await gql(client, reserve, {**args, "h": 365}, token=key))["data"][
        "reserveReference"
    ]
    assert bad_hold["errors"] == [
        {"field": "holdDays", "code": "INVALID", "message": "holdDays must be between 1 and 90"}
    ]
    complete = """mutation($id: ID!, $o: String!) { completeReservation(id: $id, outcome: $o, notes: "went well") { ask { status outcome } action { kind } pointsAwarded errors { field code } } }"""
    bad_outcome = (await gql(client, complete, {"id": made["ask"]["id"], "o": "meh"}, token=key))[
        "data"
    ]["completeReservation"]
    assert bad_outcome["errors"] == [{"field": "outcome", "code": "INVALID"}]
    done = (await gql(client, complete, {"id": made["ask"]["id"], "o": "completed"}, token=key))[
        "data"
    ]["completeReservation"]
    assert done == {
        "ask": {"status": "PUBLISHED", "outcome": "completed: went well"},
        "action": {"kind": "reference"},
        "pointsAwarded": 150,
        "errors": [],
    }
    kpis = await gql(
        client,
        "query($p: ID!) { advocacyKpis(programId: $p) { conversionByType { key asked published publishRate } influencedOpportunities influencedOpenPipeline { currency amountMinor } advocatePool activatedAdvocates activationRate } }",
        {"p": encode_id("Program", program.id)},
        token=key,
    )
    assert kpis["data"]["advocacyKpis"] == {
        "conversionByType": [
            {"key": "reference_call", "asked": 1, "published": 1, "publishRate": 1.0}
        ],
        "influencedOpportunities": 1,
        "influencedOpenPipeline": [{"currency": "USD", "amountMinor": 750_000}],
        "advocatePool": 1,
        "activatedAdvocates": 1,
        "activationRate": 1.0,
    }
    bad_window = await gql(
        client,
        'query($p: ID!) { advocacyKpis(programId: $p, since: "2026-02-01T00:00:00Z", until: "2026-01-01T00:00:00Z") { published } }',
        {"p": encode_id("Program", program.id)},
        token=key,
        expect_errors=True,
    )
    assert bad_window["errors"][0]["message"] == "since must be before until"


async def test_record_action_standing_and_leaderboard_for_widgets(client, session, app):
    program = await make_program(session)
    ada = await make_advocate(session, first_name="Ada", last_name="Lovelace")
    bob = await make_advocate(session, first_name="Bob", last_name="Babbage")
    key = await make_api_key(session, scopes=["write"])
    record = """mutation($a: ID!, $p: ID, $k: String!, $x: String, $at: DateTime!) { recordAction(advocateId: $a, programId: $p, kind: $k, externalId: $x, occurredAt: $at) { created pointsAwarded action { kind } errors { field code } } }"""
    now = utcnow().isoformat()
    pid = encode_id("Program", program.id)
    first = (
        await gql(
            client,
            record,
            {
                "a": encode_id("Advocate", ada.id),
                "p": pid,
                "k": "case_study",
                "x": "cs-1",
                "at": now,
            },
            token=key,
        )
    )["data"]["recordAction"]
    again = (
        await gql(
            client,
            record,
            {
                "a": encode_id("Advocate", ada.id),
                "p": pid,
                "k": "case_study",
                "x": "cs-1",
                "at": now,
            },
            token=key,
        )
    )["data"]["recordAction"]
    assert (first["created"], first["pointsAwarded"], again["created"], again["pointsAwarded"]) == (
        True,
        250,
        False,
        0,
    )
    await gql(
        client,
        record,
        {"a": encode_id("Advocate", bob.id), "p": pid, "k": "review", "x": "rv-1", "at": now},
        token=key,
    )
    bad = (
        await gql(
            client,
            record,
            {"a": encode_id("Advocate", bob.id), "p": pid, "k": "dance", "x": None, "at": now},
            token=key,
        )
    )["data"]["recordAction"]
    assert bad == {
        "created": False,
        "pointsAwarded": 0,
        "action": None,
        "errors": [{"field": "kind", "code": "INVALID"}],
    }
    widget = app.state.widget_tokens.mint(bob.id)
    standing = await gql(
        client,
        "query($a: ID!, $p: ID) { advocateStanding(advocateId: $a, programId: $p) { points level { name nextAt } badges { code name } } }",
        {"a": encode_id("Advocate", bob.id), "p": pid},
        token=widget,
    )
    assert standing["data"]["advocateStanding"] == {
        "points": 50,
        "level": {"name": "Member", "nextAt": 100},
        "badges": [
            {"code": "first_action", "name": "First step"},
            {"code": "first_review", "name": "Reviewer"},
        ],
    }
    board_q = "query($p: ID!) { leaderboard(programId: $p, period: ALL_TIME) { rank advocateId displayName points isYou } }"
    board = (await gql(client, board_q, {"p": pid}, token=widget))["data"]["leaderboard"]
    assert board == [
        {"rank": 1, "advocateId": None, "displayName": "Ada L.", "points": 250, "isYou": False},
        {
            "rank": 2,
            "advocateId": encode_id("Advocate", bob.id),
            "displayName": "Bob B.",
            "points": 50,
            "isYou": True,
        },
    ]
    full = (await gql(client, board_q, {"p": pid}, token=key))["data"]["leaderboard"]
    assert full[0]["advocateId"] == encode_id("Advocate", ada.id)


async def test_loader_factories_batch_in_one_statement_each(session, count_queries):
    program = await make_program(session)
    people = [await make_advocate(session) for _ in range(5)]
    for person in people:
        await make_scored(session, person.id, program.id, 2)
        await make_signal(session, person.id, "renewal")
        session.add(
            Ask(
                advocate_id=person.id,
                program_id=program.id,
                type="review",
                moment="manual",
                status="queued",
                queued_at=utcnow(),
            )
        )
    await session.flush()
    loaders = Loaders(session)  # what Context.loaders is for a request
    keys = [p.id for p in people]
    count_queries.reset()
    signals = await loaders.signals_of_advocate.load_many(keys)
    asks = await loaders.asks_of_advocate.load_many(keys)
    nxt = [pick_next(o) for o in await loaders.open_asks_of_advocate.load_many(keys)]
    points = await loaders.points_of_advocate.load_many(keys)
    badges = await loaders.badges_of_advocate.load_many(keys)
    scores = await loaders.score.load_many([(k, program.id) for k in keys])
    assert count_queries.count == 6
    assert [len(s) for s in signals] == [1] * 5
    assert [len(a) for a in asks] == [1] * 5
    assert [n.type if n else None for n in nxt] == ["review"] * 5
    assert (points, badges) == ([0] * 5, [[]] * 5)
    assert [s.tier if s else None for s in scores] == [2] * 5


async def test_ask_list_costs_the_same_for_any_page_size(client, session, count_queries):
    program = await make_program(session)
    person = await make_advocate(session)
    for _ in range(30):
        session.add(
            Ask(
                advocate_id=person.id,
                program_id=program.id,
                type="review",
                moment="manual",
                status="queued",
                queued_at=utcnow(),
            )
        )
    await session.flush()
    key = await make_api_key(session, scopes=["read"])
    query = "query($n: Int) { asks(first: $n) { totalCount nodes { id type status } } }"
    await gql(client, query, {"n": 1}, token=key)  # warm up: the key's last_used_at write
    counts = []
    for n in (3, 30):
        count_queries.reset()
        body = await gql(client, query, {"n": n}, token=key)
        assert len(body["data"]["asks"]["nodes"]) == n
        counts.append(count_queries.count)
    assert counts == [2, 2]  # count, page (the API key is cached after the first call)
