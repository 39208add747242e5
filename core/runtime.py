"""Where the database is: ``DATABASE_URL``, or the embedded server in the data directory."""

from __future__ import annotations

from vouch.core.embedded import start_embedded
from vouch.core.settings import Settings, get_settings


def resolve_database_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir)
