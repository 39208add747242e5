"""Vouch: customer advocacy and referral programs on PostgreSQL.

One import root over the repository's folders: ``vouch.api`` is ``api/``, ``vouch.site`` is
``site/``, ``vouch.migrations`` is ``alembic/`` and so on. In a checkout the names are the
symbolic links in ``vouch/``; in a built wheel setuptools' ``package-dir`` mapping copies each
folder under ``vouch/`` (see ``pyproject.toml``), templates, static files, locales and
migrations included, found at run time through ``importlib.resources``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vouch")
except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"
