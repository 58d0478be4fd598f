"""``leadscore reps ...``: load the sales roster into the routing store and list it with loads."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import click

from leadscore.errors import DataValidationError

_REJECTS_SHOWN = 20

_DB_HELP = (
    "SQLAlchemy URL of the routing database (sqlite:///FILE or postgresql+psycopg://...) "
    "[default: the db_url setting, else sqlite:///WORK_DIR/routing.db]."
)
_CONFIG_HELP = "Settings TOML file [default: ./leadscore.toml when present, else built-in settings]."


@click.group()
def reps() -> None:
    """Manage the sales roster that leads are routed to."""


@reps.command("load")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help=_CONFIG_HELP)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Import mapping TOML for header renames and value maps, as for 'leadscore data import' "
    "[default: none, headers are matched to canonical column names and their aliases only].",
)
@click.option("--sheet", default=None, help="Worksheet to read from an XLSX file [default: the first].")
@click.option(
    "--deactivate-missing",
    is_flag=True,
    help="Treat FILE as the whole roster: reps stored but absent from FILE stop taking new leads.",
)
def load(
    file: Path,
    db_url: str | None,
    config_file: Path | None,
    mapping_file: Path | None,
    sheet: str | None,
    deactivate_missing: bool,
) -> None:
    """Import a roster file (CSV, XLSX or Parquet, Chinese or English headers) into the routing store.

    The file goes through the same header mapping and parsing as 'leadscore data import
    --table reps'. Nothing is written when any row is rejected.
    """
    import pandas as pd

    from data.importer import import_file, rejects_path
    from data.validate import coerce_canonical_dtypes
    from leadscore.settings import load_settings
    from serving.roster import parse_reps, upsert_reps
    from serving.routing import utc_now
    from serving.store import open_store

    settings = load_settings(config_file, db_url=db_url)
    with tempfile.TemporaryDirectory(prefix="leadscore-reps-") as folder:
        summary = import_file(file, "reps", Path(folder), mapping=mapping_file, sheet=sheet)
        click.echo(summary.format(), err=True)
        if summary.rejected:
            problems = _read_rejects(rejects_path(Path(folder), "reps"))
            raise DataValidationError(
                f"{summary.rejected} of {summary.read} roster rows in {file} were rejected, so nothing "
                f"was loaded; fix these rows and run again: {problems}"
            )
        frame = coerce_canonical_dtypes("reps", pd.read_parquet(Path(folder) / "reps.parquet"))
    roster = parse_reps({str(key): value for key, value in row.items()} for row in frame.to_dict("records"))
    store = open_store(settings.resolved_db_url())
    try:
        update = upsert_reps(store, roster, now=utc_now(), deactivate_missing=deactivate_missing)
    finally:
        store.dispose()
    click.echo(
        f"Loaded {len(roster)} reps: {len(update.inserted)} new, {len(update.updated)} updated, "
        f"{len(update.deactivated)} deactivated"
        + (f" ({', '.join(update.deactivated)})" if update.deactivated else "")
    )


def _read_rejects(path: Path) -> str:
    if not path.exists():
        return "(no rejects file written)"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    listed = [f"row {row['row']}, {row['column'] or 'row'}: {row['reason']}" for row in rows[:_REJECTS_SHOWN]]
    more = f"; ... and {len(rows) - _REJECTS_SHOWN} more" if len(rows) > _REJECTS_SHOWN else ""
    return "; ".join(listed) + more


@reps.command("list")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help=_CONFIG_HELP)
@click.option("--active-only", is_flag=True, help="Leave out reps that take no new leads.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json (one array) for scripts.",
)
def list_command(db_url: str | None, config_file: Path | None, active_only: bool, output_format: str) -> None:
    """Print the roster with each rep's open leads and capacity."""
    from leadscore.settings import load_settings
    from serving.roster import list_reps
    from serving.store import open_store

    settings = load_settings(config_file, db_url=db_url)
    store = open_store(settings.resolved_db_url())
    try:
        roster = list_reps(store, include_inactive=not active_only)
    finally:
        store.dispose()

    if output_format == "json":
        payload = [
            {
                "rep_id": item.rep.rep_id,
                "name": item.rep.name,
                "tier": item.rep.tier,
                "capacity": item.rep.capacity,
                "open_leads": item.open_leads,
                "regions": list(item.rep.regions),
                "skills": list(item.rep.skills),
                "active": item.rep.active,
                "manager_id": item.rep.manager_id,
                "hired_at": item.rep.hired_at.isoformat() if item.rep.hired_at else None,
            }
            for item in roster
        ]
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return

    if not roster:
        click.echo("No reps stored; load a roster with 'leadscore reps load FILE'.")
        return
    click.echo(
        f"{'rep_id':<12} {'tier':<9} {'open/cap':>9} {'active':<6} {'manager':<10} regions | skills | name"
    )
    for item in roster:
        rep = item.rep
        click.echo(
            f"{rep.rep_id:<12} {rep.tier:<9} {f'{item.open_leads}/{rep.capacity}':>9} "
            f"{'yes' if rep.active else 'no':<6} {rep.manager_id or '-':<10} "
            f"{', '.join(rep.regions) or '-'} | {', '.join(rep.skills) or '-'} | {rep.name}"
        )
