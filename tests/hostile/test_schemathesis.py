"""Schemathesis against a live ``vouch serve`` (private PostgreSQL, admin API key): thousands
of generated GraphQL queries and mutations over every root field of the committed schema.
No 5xx, no hang (each request has a 10 s client timeout; the whole run is bounded)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.faults.harness import ROOT, PrivatePostgres, VouchProcess

EXAMPLES = 2500
# JSON inputs (settings blobs, metadata): strings, numbers, booleans and null.
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(
        st.text(max_size=30).map(schemathesis.graphql.nodes.String),
        st.integers(-(10**6), 10**6).map(schemathesis.graphql.nodes.Int),
        st.booleans().map(schemathesis.graphql.nodes.Boolean),
        st.just(schemathesis.graphql.nodes.Null),
    ),
)
SCHEMA = schemathesis.graphql.from_path(str(ROOT / "api" / "schema.graphql"))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, str]]:
    import shutil
    import uuid

    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    pg = PrivatePostgres(path / "pg")
    vouch = VouchProcess(
        database_url=pg.url, data_dir=path / "data", extra_env={"VOUCH_WEBHOOK_WORKER": "false"}
    )
    try:
        vouch.cli("migrate")
        vouch.cli("demo", "--json")
        key = vouch.admin_key()
        vouch.start()
        yield f"{vouch.base}/graphql", key
    finally:
        vouch.stop()
        pg.server.cleanup()
        shutil.rmtree(path, ignore_errors=True)


def test_schema_covers_queries_and_mutations():
    names = {op.label for op in OPERATIONS}
    assert len(OPERATIONS) > 50
    assert any(name.startswith("Mutation.") for name in names)
    assert any(name.startswith("Query.") for name in names)


def test_generated_graphql_requests_never_get_a_5xx(live):
    url, key = live
    http = requests.Session()
    http.headers["authorization"] = f"Bearer {key}"
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
        case = data.draw(operation.as_strategy(), label="case")
        response = case.call(base_url=url, session=http, timeout=10)
        STATUSES[response.status_code] += 1
        assert response.status_code < 500, (operation.label, case.body, response.text[:500])

    run()
    elapsed = time.monotonic() - started
    print(  # noqa: T201 - the measured figures
        f"\nschemathesis: {sum(STATUSES.values())} requests over {len(OPERATIONS)} root fields "
        f"in {elapsed:.1f} s; statuses {dict(STATUSES)}"
    )
    assert sum(STATUSES.values()) >= 2000
    assert set(STATUSES) <= {200, 400, 413}
