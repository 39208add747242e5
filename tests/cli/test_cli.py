"""The CLI answers bad input with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VOUCH = [sys.executable, "-m", "vouch.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VOUCH_"))}
    full_env.update(env)
    return subprocess.run(
        VOUCH + args,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["apikey", "create", "--name", "x", "--scope", "root"], {}, "unknown scope 'root'"),
        (["migrate"], {"DATABASE_URL": "mysql://root@localhost/x"}, "must be a PostgreSQL URL"),
        (
            ["migrate"],
            {"DATABASE_URL": "postgresql://vouch@127.0.0.1:1/vouch"},
            "cannot use the database",
        ),
        (
            ["serve"],
            {"VOUCH_ENV": "production", "DATABASE_URL": "postgresql://vouch@127.0.0.1:1/vouch"},
            "cannot use the database",
        ),
    ],
)
def test_bad_input_is_one_clear_line(args, env, expected, tmp_path):
    result = run(args, VOUCH_DATA_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unwritable_data_dir(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/vouch-cannot-write-here"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = str(ro / "data")
    result = run(["migrate"], VOUCH_DATA_DIR=target)
    assert result.returncode != 0
    assert "VOUCH_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_for_every_command():
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["migrate", "--help"],
        ["apikey", "create", "--help"],
        ["demo", "--help"],
    ):
        result = run(args)
        assert result.returncode == 0
        assert "Usage:" in result.stdout


def test_apikey_create_against_a_real_database(database_url):
    result = run(
        ["apikey", "create", "--name", "ci", "--scope", "read", "--json"], DATABASE_URL=database_url
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["scopes"] == ["read"]
    assert payload["key"].startswith("vk_")


async def test_erase_and_rollup_commands(database_url, committing_engine):
    import asyncio

    from sqlalchemy import select

    from tests.factories import make_advocate
    from vouch.core.ids import encode_id
    from vouch.core.sessions import session_factory
    from vouch.models import Advocate

    factory = session_factory(committing_engine)
    async with factory() as s:
        advocate = await make_advocate(s, external_id="crm-erase-me", email="erase.me@example.com")
        await s.commit()
        advocate_id = advocate.id

    erased = await asyncio.to_thread(
        run, ["erase", "advocate", "crm-erase-me", "--json"], DATABASE_URL=database_url
    )
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout) == {
        "erased": "advocate",
        "advocate_id": encode_id("Advocate", advocate_id),
    }
    async with factory() as s:
        row = (await s.scalars(select(Advocate).where(Advocate.id == advocate_id))).one()
        assert (row.email, row.first_name, row.erased_at is not None) == (None, None, True)

    missing = await asyncio.to_thread(
        run, ["erase", "advocate", "nobody"], DATABASE_URL=database_url
    )
    assert missing.returncode == 1
    assert "no advocate with external id 'nobody'" in missing.stderr
    bad_email = await asyncio.to_thread(
        run, ["erase", "person", "not-an-email"], DATABASE_URL=database_url
    )
    assert bad_email.returncode == 1
    assert "not a valid email address" in bad_email.stderr

    rebuilt = await asyncio.to_thread(
        run, ["rollups", "rebuild", "--json"], DATABASE_URL=database_url
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert set(json.loads(rebuilt.stdout)) == {"rows", "seconds"}


def test_port_in_use_is_one_clear_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["serve", "--port", str(port)], VOUCH_DATA_DIR=str(tmp_path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: port {port} on 127.0.0.1 is already in use; pick another with --port"
    )


async def test_import_files_all_or_nothing(database_url, committing_engine, tmp_path):
    import asyncio

    from sqlalchemy import func, select

    from vouch.core.sessions import session_factory
    from vouch.models import Advocate, Signal

    good = tmp_path / "advocates.csv"
    good.write_text(
        "external_id,email,first_name,is_icp\n"
        "crm-1,one@example.com,One,true\n"
        "crm-2,two@example.com,Two,no\n"
    )
    done = await asyncio.to_thread(
        run, ["import", "advocates", str(good), "--json"], DATABASE_URL=database_url
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"imported": True, "created": 2, "updated": 0, "errors": []}

    bad = tmp_path / "advocates.json"
    bad.write_text(
        json.dumps(
            [
                {"external_id": "crm-3", "email": "three@example.com"},
                {"external_id": "crm-4", "email": "not-an-email"},
            ]
        )
    )
    refused = await asyncio.to_thread(
        run, ["import", "advocates", str(bad)], DATABASE_URL=database_url
    )
    assert refused.returncode == 1
    assert refused.stdout.startswith("nothing imported: 1 invalid row(s), first: row 2:")

    signals = tmp_path / "signals.csv"
    signals.write_text(
        "advocate_external_id,kind,occurred_at,value,external_id\n"
        "crm-1,nps,2026-11-01T10:00:00+00:00,10,r-1\n"
        "crm-2,csat,2026-11-02T10:00:00+00:00,5,r-2\n"
    )
    first = await asyncio.to_thread(
        run, ["import", "signals", str(signals), "--json"], DATABASE_URL=database_url
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] == 2
    again = await asyncio.to_thread(
        run, ["import", "signals", str(signals), "--json"], DATABASE_URL=database_url
    )
    assert (json.loads(again.stdout)["created"], json.loads(again.stdout)["duplicates"]) == (0, 2)

    factory = session_factory(committing_engine)
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(Advocate)) == 2
        assert await s.scalar(select(func.count()).select_from(Signal)) == 2
