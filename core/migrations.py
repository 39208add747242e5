"""Run alembic programmatically: ``vouch migrate``, app start-up checks and the test harness."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["url"] = url
    return config


def head_revisions(url: str = "") -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
