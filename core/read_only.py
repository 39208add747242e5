"""Read-only requests: a GraphQL query's session refuses writes, and reads run on an autocommit
connection (no BEGIN/ROLLBACK round trips). ``SyncSession`` is the Session class every request
session uses, so the refusal cannot be skipped."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from vouch.core.engine import PGBOUNCER_ENGINES

READ_ONLY = "vouch.read_only"


class ReadOnlyRequestWrote(RuntimeError):
    """A read-only request (a GraphQL query) tried to write: a bug, refused before anything is
    sent, since without a transaction the write would not be undone with the request."""


# session.info key of the session's raw transaction (core.raw_select.RawTransaction), if any
RAW_TRANSACTION = "vouch.raw_transaction"


class SyncSession(Session):
    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        """The bind for ORM statements: while raw statements hold a transaction of their own
        (``core.raw_select.RawTransaction``), the ORM joins it on the same connection, so a
        request never holds two connections and its ORM and raw statements commit together."""
        raw = self.info.get(RAW_TRANSACTION)
        if raw is not None:
            return raw.routed()
        return super().get_bind(*args, **kwargs)


@event.listens_for(SyncSession, "do_orm_execute")
def _refuse_write_statements(state: ORMExecuteState) -> None:
    if state.session.info.get(READ_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise ReadOnlyRequestWrote(f"a read-only request tried to run {state.statement!s:.60}")


@event.listens_for(SyncSession, "before_flush")
def _refuse_flushes(session: Session, context: Any, instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyRequestWrote("a read-only request tried to flush changes")


# engine -> the same engine with AUTOCOMMIT (it shares the pool); weak, so a dropped engine's
# entry goes with it
_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def autocommit_reads(session: AsyncSession) -> bool:
    """Run this session's next statements on an autocommit connection: no BEGIN and no
    ROLLBACK round trip around a read-only request.

    Under READ COMMITTED every statement takes its own snapshot whether or not a transaction
    is open, so a read-only request sees exactly what it would see inside one. Only for
    requests that cannot write (GraphQL queries); a session that already holds a transaction,
    or is bound to a connection (tests), keeps its transaction. Either way the session refuses
    writes from here on. Returns whether it switched to autocommit."""
    sync = session.sync_session
    sync.info[READ_ONLY] = True  # from here on a write is a bug: see _refuse_write_statements
    bind = sync.bind
    if sync.in_transaction() or not isinstance(bind, Engine) or bind in PGBOUNCER_ENGINES:
        # Behind PgBouncer a statement outside a transaction may prepare on one server
        # connection and execute on another: reads keep their transaction there.
        return False
    autocommit = _AUTOCOMMIT.get(bind)
    if autocommit is None:
        autocommit = _AUTOCOMMIT[bind] = bind.execution_options(isolation_level="AUTOCOMMIT")
    sync.bind = autocommit
    return True
