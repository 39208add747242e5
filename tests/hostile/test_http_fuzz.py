"""Hypothesis against every non-GraphQL HTTP endpoint of a live ``vouch serve`` (private
PostgreSQL; GraphQL has its own schemathesis run): the REST API, the share-event endpoint,
inbound webhooks, the microsite's and the console's forms and pages. Generated JSON includes
lone surrogates, NUL, huge numbers and deep nesting; raw bodies include invalid UTF-8. No
answer is a 5xx and no line of the server's log is an unhandled error.

(``/openapi.json`` is not on main yet; when it is, schemathesis can drive the REST part.)"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.faults.harness import ROOT, PrivatePostgres, VouchProcess
from tests.faults.traffic import BROWSER

pytestmark = pytest.mark.slow
EXAMPLES = 150
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def live() -> Iterator[dict[str, Any]]:
    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    pg = PrivatePostgres(path / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=path / "data",
        extra_env={"VOUCH_WEBHOOK_WORKER": "false", "VOUCH_CLAIM_RATE_LIMIT": "1000000"},
    )
    try:
        vouch.cli("migrate")
        demo = json.loads(vouch.cli("demo", "--json"))
        vouch.start()
        client = httpx.Client(base_url=vouch.base, timeout=10, headers={"user-agent": BROWSER})
        code = demo["share_link"].rsplit("/", 1)[1]
        csrf_match = CSRF_RE.search(client.get(f"/r/{code}").text)
        assert csrf_match is not None
        redemption = pg.scalar("SELECT code FROM offer_redemptions ORDER BY id LIMIT 1;")
        yield {
            "client": client,
            "key": demo["api_key"],
            "code": code,
            "csrf": csrf_match.group(1),
            "redemption": redemption,
            "vouch": vouch,
        }
        client.close()
        assert "unhandled error" not in vouch.read_log()
    finally:
        vouch.stop()
        pg.server.cleanup()
        shutil.rmtree(path, ignore_errors=True)


def _check(response: httpx.Response) -> None:
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (response.request.url, response.text[:300])


# Text including what PostgreSQL or the JSON layer choke on: NUL, lone surrogates (escaped, so
# the JSON is still well-formed), very long strings.
NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "é" * 300, "1" * 400, " ", ""]),
    st.from_regex(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", fullmatch=True),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    NASTY,
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _object(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, JSONISH))


def _encode(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \\udXXX escapes: well-formed JSON text.
    return json.dumps(value, ensure_ascii=True).encode()


HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.just(b"[" * 3000 + b"]" * 3000),
    st.just(b'{"a":"\\ud800"}'),
)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    path=st.sampled_from(["/api/redemptions", "/api/conversions"]),
    data=_object(
        [
            "code",
            "redeemedBy",
            "orderRef",
            "redemptionCode",
            "kind",
            "externalRef",
            "amountMinor",
            "currency",
            "occurredAt",
        ]
    ),
    use_real_code=st.booleans(),
    raw=st.one_of(st.none(), BODIES),
    idem=HEADER_TEXT,
)
def test_rest_api(live, path, data, use_real_code, raw, idem):
    if use_real_code:
        data["code" if path.endswith("redemptions") else "redemptionCode"] = live["redemption"]
    body = raw if raw is not None else _encode(data)
    headers = {
        "authorization": f"Bearer {live['key']}",
        "idempotency-key": idem.strip() or "fuzz",
        "content-type": "application/json",
    }
    _check(live["client"].post(path, content=body, headers=headers))


@FUZZ
@given(
    data=_object(["kind", "channel", "token", "program"]),
    raw=st.one_of(st.none(), BODIES),
    content_type=st.sampled_from(["application/json", "text/plain", "application/json; x=1"]),
)
def test_share_events(live, data, raw, content_type):
    body = raw if raw is not None else _encode(data)
    _check(
        live["client"].post("/share/events", content=body, headers={"content-type": content_type})
    )


@FUZZ
@given(
    raw=st.one_of(BODIES, JSONISH.map(_encode)),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "webhook-id": HEADER_TEXT,
            "webhook-timestamp": st.one_of(st.integers().map(str), HEADER_TEXT),
            "webhook-signature": HEADER_TEXT,
        },
    ),
)
def test_inbound_webhooks(live, raw, headers):
    _check(live["client"].post("/webhooks/inbound", content=raw, headers=headers))


FORM_TEXT = st.one_of(st.text(max_size=60), st.sampled_from(["\x00", "a@b", "x" * 500, "é@é.é"]))


@FUZZ
@given(
    target=st.sampled_from(["claim", "code_entry", "login", "logout"]),
    fields=st.fixed_dictionaries(
        {},
        optional={
            "email": st.one_of(FORM_TEXT, st.emails()),
            "name": FORM_TEXT,
            "company": FORM_TEXT,
            "consent": st.sampled_from(["yes", "no", ""]),
            "code": FORM_TEXT,
            "api_key": FORM_TEXT,
        },
    ),
    valid_csrf=st.booleans(),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_forms(live, target, fields, valid_csrf, raw):
    path = {
        "claim": f"/r/{live['code']}/claim",
        "code_entry": "/claim",
        "login": "/console/login",
        "logout": "/console/logout",
    }[target]
    if target == "code_entry" and "code" not in fields:
        fields["code"] = live["code"]
    fields["csrf"] = live["csrf"] if valid_csrf else "forged"
    client: httpx.Client = live["client"]
    if raw is not None:
        response = client.post(
            path, content=raw, headers={"content-type": "application/x-www-form-urlencoded"}
        )
    else:
        response = client.post(path, data=fields)
    _check(response)


@FUZZ
@given(
    path=st.sampled_from(
        [
            "/r/{}",
            "/r/{}/",
            "/claimed",
            "/share",
            "/share/stats",
            "/reports/{}.csv",
            "/console",
            "/console/moderation",
            "/claim",
            "/healthz",
            "/readyz",
        ]
    ),
    segment=st.text(max_size=30).filter(lambda s: "/" not in s and "?" not in s and "#" not in s),
    params=st.dictionaries(
        st.sampled_from(["t", "token", "program", "ch", "utm_source", "from", "to", "period"]),
        FORM_TEXT,
        max_size=3,
    ),
)
def test_pages(live, path, segment, params):
    url = path.format(quote(segment, safe="") or "x")
    _check(live["client"].get(url, params=params))


def test_the_run_covered_both_outcomes(live):
    """Sanity: the fuzzers above ran and saw both accepted and refused requests."""
    assert sum(STATUSES.values()) >= 4 * EXAMPLES
    assert any(s < 300 for s in STATUSES)
    assert any(400 <= s < 500 for s in STATUSES)
