"""Run alembic programmatically: ``vouch migrate``, app start-up checks and the test harness.

The migrations are package data of ``vouch.migrations`` (the repository's ``alembic/`` folder),
found through ``importlib.resources`` so that an installed wheel migrates as a checkout does. The
configuration is built here rather than read from ``alembic.ini``, which stays in the repository
for the ``alembic`` command during development and is not shipped.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``, in a checkout or an installed wheel."""
    return Path(str(files("vouch") / "migrations"))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option(
        "file_template",
        "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s",
    )
    config.set_main_option("path_separator", "os")
    config.set_main_option("timezone", "UTC")
    config.set_main_option("truncate_slug_length", "40")
    config.attributes["url"] = url
    return config


def head_revisions(url: str = "") -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
