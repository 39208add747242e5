"""The mutation edge: ``@transaction`` makes one business action one transaction.

A resolver's writes are committed when it returns; a domain error rolls every write back and
becomes the payload's errors; anything else rolls back and propagates."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import make_advocate
from vouch.api.errors import user_errors
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import NotAuthorized
from vouch.core.errors import DomainError, ValidationFailed
from vouch.models import Advocate


def _failed(exc: DomainError) -> dict[str, Any]:
    return {"written": None, "errors": user_errors(exc)}


@transaction(_failed)
async def _write(*, info: Any, external_id: str, fail: BaseException | None) -> dict[str, Any]:
    """A mutation body: a write, then perhaps a failure."""
    advocate = await make_advocate(info.context.session, external_id=external_id)
    if fail is not None:
        raise fail
    return {"written": advocate.external_id, "errors": []}


async def _stored(sessionmaker: Any, external_id: str) -> int:
    # another session on the test's connection: it sees every flushed row not rolled back
    async with sessionmaker() as other:
        found = await other.scalar(
            select(func.count()).select_from(Advocate).where(Advocate.external_id == external_id)
        )
        return int(found or 0)


async def test_a_returning_resolver_is_committed(session, sessionmaker):
    info = SimpleNamespace(context=SimpleNamespace(session=session, principal=None))
    assert await _write(info=info, external_id="tx-ok", fail=None) == {
        "written": "tx-ok",
        "errors": [],
    }
    assert await _stored(sessionmaker, "tx-ok") == 1


async def test_a_domain_error_rolls_back_and_is_data(session, sessionmaker):
    info = SimpleNamespace(context=SimpleNamespace(session=session, principal=None))
    failure: DomainError = ValidationFailed("bad input", field="x")
    payload = await _write(info=info, external_id="tx-domain", fail=failure)
    assert payload["written"] is None
    assert [(e.field, e.code.value, e.message) for e in payload["errors"]] == [
        ("x", "INVALID", "bad input")
    ]
    # a later action's commit must not carry the failed one's write along
    await _write(info=info, external_id="tx-next", fail=None)
    assert await _stored(sessionmaker, "tx-next") == 1
    assert await _stored(sessionmaker, "tx-domain") == 0


@pytest.mark.parametrize("failure", [NotAuthorized(), RuntimeError("a bug")])
async def test_anything_else_rolls_back_and_propagates(session, sessionmaker, failure):
    info = SimpleNamespace(context=SimpleNamespace(session=session, principal=None))
    with pytest.raises(type(failure)):
        await _write(info=info, external_id="tx-raise", fail=failure)
    assert await _stored(sessionmaker, "tx-raise") == 0
    # the session is usable again: the next action commits normally
    await _write(info=info, external_id="tx-after", fail=None)
    assert await _stored(sessionmaker, "tx-after") == 1
    assert await _stored(sessionmaker, "tx-raise") == 0
