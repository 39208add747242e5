"""``vouch import advocates|signals FILE``: bulk loads from CSV or JSON, with a progress bar and
a summary (or ``--json``). The whole file is one transaction: a bad row rejects the file and
writes nothing, unless ``--skip-invalid``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.signals import ImportRejected, import_signals, read_rows
from vouch.catalog.advocates import MAX_IMPORT_ROWS as ADVOCATE_BATCH
from vouch.catalog.advocates import advocate_rows, import_advocates
from vouch.cli.runner import handle_errors, load_settings, run_with_session
from vouch.core.clock import utcnow
from vouch.core.errors import ValidationFailed

SIGNAL_BATCH = 2_000
# An operator's file on disk, imported in batches: bounded, but far above an API call's limits.
CLI_MAX_BYTES = 1_000_000_000
CLI_MAX_ROWS = 5_000_000
T = TypeVar("T")


def _read(path: Path, fmt: str | None) -> tuple[str, str]:
    chosen = fmt or path.suffix.lower().lstrip(".")
    if chosen not in ("csv", "json"):
        raise ValidationFailed("give --format csv or json (or a .csv/.json file)")
    try:
        return chosen, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"cannot read {path}: {exc}") from None


def _batches(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _progress(total: int, label: str, quiet: bool) -> Any:
    return click.progressbar(
        length=total, label=label, file=sys.stderr, hidden=quiet or not sys.stderr.isatty()
    )


def _finish(summary: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], str]) -> None:
    click.echo(json.dumps(summary) if as_json else text(summary))
    if summary.get("errors") and not summary.get("imported", True):
        sys.exit(1)


@click.group("import")
def import_group() -> None:
    """Bulk imports from CSV or JSON files."""


@import_group.command("advocates")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None)
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows, report the others.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def import_advocates_cmd(file: Path, fmt: str | None, skip_invalid: bool, as_json: bool) -> None:
    """Upsert advocates by external_id (columns: external_id, email, first_name, last_name,
    account_id, account_name, account_domain, persona, segment, is_icp, consent_referral,
    consent_marketing, opted_in_extra_asks)."""
    settings = load_settings()
    rows = advocate_rows(*_read(file, fmt))

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = updated = 0
        errors: list[dict[str, Any]] = []
        with _progress(len(rows), "advocates", as_json) as bar:
            for offset, batch in enumerate(_batches(rows, ADVOCATE_BATCH)):
                result = await import_advocates(
                    session,
                    batch,
                    secret=settings.resolved_secret(),
                    skip_invalid=skip_invalid,
                    load=False,
                )
                created, updated = created + result.created, updated + result.updated
                errors += [
                    {"row": offset * ADVOCATE_BATCH + e.index + 1, "message": e.error.message}
                    for e in result.errors
                ]
                bar.update(len(batch))
        if errors and not skip_invalid:
            await session.rollback()
            return {"imported": False, "created": 0, "updated": 0, "errors": errors}
        return {"imported": True, "created": created, "updated": updated, "errors": errors}

    _finish(
        run_with_session(settings, work),
        as_json,
        lambda s: (
            f"{s['created']} created, {s['updated']} updated, {len(s['errors'])} invalid"
            if s["imported"]
            else f"nothing imported: {len(s['errors'])} invalid row(s), first: "
            f"row {s['errors'][0]['row']}: {s['errors'][0]['message']}"
        ),
    )


@import_group.command("signals")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None)
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows, report the others.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def import_signals_cmd(file: Path, fmt: str | None, skip_invalid: bool, as_json: bool) -> None:
    """Record signals naming advocates by their CRM id (columns: advocate_external_id, kind,
    occurred_at, value, source, external_id). Re-importing a file is a no-op."""
    settings = load_settings()
    rows = read_rows(*_read(file, fmt), max_bytes=CLI_MAX_BYTES, max_rows=CLI_MAX_ROWS)

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = duplicates = 0
        errors: list[dict[str, Any]] = []
        now = utcnow()
        with _progress(len(rows), "signals", as_json) as bar:
            for offset, batch in enumerate(_batches(rows, SIGNAL_BATCH)):
                try:
                    result = await import_signals(
                        session, batch, now=now, skip_invalid=skip_invalid
                    )
                except ImportRejected as exc:
                    await session.rollback()
                    rows_bad = [
                        {
                            "row": offset * SIGNAL_BATCH + e.row,
                            "field": e.field,
                            "message": e.message,
                        }
                        for e in exc.errors
                    ]
                    return {"imported": False, "created": 0, "duplicates": 0, "errors": rows_bad}
                created, duplicates = created + result.created, duplicates + result.duplicates
                errors += [
                    {"row": offset * SIGNAL_BATCH + e.row, "field": e.field, "message": e.message}
                    for e in result.errors
                ]
                bar.update(len(batch))
        return {"imported": True, "created": created, "duplicates": duplicates, "errors": errors}

    _finish(
        run_with_session(settings, work),
        as_json,
        lambda s: (
            f"{s['created']} recorded, {s['duplicates']} already known, {len(s['errors'])} invalid"
            if s["imported"]
            else f"nothing imported: {len(s['errors'])} invalid row(s), first: "
            f"row {s['errors'][0]['row']} {s['errors'][0]['field']}: {s['errors'][0]['message']}"
        ),
    )
