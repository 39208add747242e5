"""`pip install .` gives a working Vouch: the wheel, installed (not editable) into a fresh
virtualenv and run from a directory outside the checkout, migrates, seeds the demo and serves a
landing page, the console and GraphQL. Everything it needs must be in the wheel: templates,
static files, locales and migrations as package data, every dependency declared."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        cwd=out,
    )
    (built,) = out.glob("vouch-*.whl")
    return built


def test_wheel_carries_one_import_root_and_its_assets(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("vouch-")}
    assert top == {"vouch"}, top
    for needed in (
        "vouch/api/schema.graphql",
        "vouch/site/templates/offer.html",
        "vouch/site/templates/console/overview.html",
        "vouch/site/static/widget.js",
        "vouch/site/locales/en.json",
        "vouch/migrations/env.py",
        "vouch/migrations/script.py.mako",
    ):
        assert needed in names, needed
    # every module of the checkout is in the wheel (a subpackage missing from pyproject's list
    # would silently drop out)
    source = {
        f"vouch/{p.relative_to(ROOT / 'vouch').as_posix()}"
        for p in (ROOT / "vouch").glob("**/*.py")
        if "__pycache__" not in p.parts
    }
    assert source <= set(names), sorted(source - set(names))[:10]
    versions = [n for n in names if n.startswith("vouch/migrations/versions/")]
    assert len(versions) == len(list((ROOT / "alembic" / "versions").glob("*.py")))


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A scratch folder other users can traverse: the embedded PostgreSQL runs as its own system
    user when Vouch runs as root, and must reach the binaries inside the new virtualenv (pytest's
    own tmp_path lives under a folder only its owner may enter)."""
    path = Path(tempfile.mkdtemp(prefix="vouch-wheel-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_installed_wheel_serves_the_demo_outside_the_checkout(wheel: Path, open_tmp: Path) -> None:
    tmp_path = open_tmp
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)])

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VOUCH_"))}
    env.pop("PYTHONPATH", None)
    env["VOUCH_DATA_DIR"] = str(tmp_path / "data")
    port = _free_port()
    env["VOUCH_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    vouch = str(env_dir / "bin" / "vouch")

    # the installed package, not the checkout, is what runs
    where = _run([str(python), "-c", "import vouch; print(vouch.__file__)"], cwd=outside, env=env)
    assert str(env_dir) in where.stdout

    demo = _run([vouch, "demo", "--json"], cwd=outside, env=env, timeout=180)
    seeded = json.loads(demo.stdout)
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [vouch, "serve", "--port", str(port)],
        cwd=outside,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)

        landing = httpx.get(seeded["share_link"], timeout=10)
        assert landing.status_code == 200
        assert "<form" in landing.text
        css = httpx.get(f"{base}/static/site.css", timeout=10)
        assert css.status_code == 200
        console = httpx.get(f"{base}/console", timeout=10, follow_redirects=True)
        assert console.status_code == 200
        assert "<form" in console.text
        answer = httpx.post(
            f"{base}/graphql",
            json={"query": "{ programs { totalCount } }"},
            headers={"authorization": f"Bearer {seeded['api_key']}"},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.json()["data"]["programs"]["totalCount"] >= 1
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # A clean stop is tests/cli/test_embedded.py's subject; here a stop that hangs
            # (seen once under CI load, being investigated) must not leave the server behind.
            serve.kill()
            serve.wait(timeout=30)
        log.close()
