"""``leadscore reps ...``: load the sales roster into the routing store and list it with loads."""

from __future__ import annotations

import csv
import json
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import click

from leadscore.errors import DataValidationError
from leadscore.i18n import Locale, errors_in_locale, parse_locale, register_messages, translate

if TYPE_CHECKING:
    from serving.store import RoutingStore

_REJECTS_SHOWN = 20

# Texts of 'leadscore reps load'. The summary and the reject reasons come from the importer.
_MESSAGES: dict[str, dict[str, str]] = {
    "reps.load.rejected": {
        "en": "{rejected} of {read} roster rows in {file} were rejected, so nothing was loaded; fix these "
        "rows and run again: {problems}",
        "zh-CN": "{file} 的 {read} 行销售名单中有 {rejected} 行被拒绝，因此没有导入任何销售；请修正这些行"
        "后重新运行：{problems}",
    },
    "reps.load.reject": {"en": "row {row}, {column}: {reason}", "zh-CN": "第 {row} 行，{column}：{reason}"},
    "reps.load.whole_row": {"en": "row", "zh-CN": "整行"},
    "reps.load.separator": {"en": "; ", "zh-CN": "；"},
    "reps.load.more": {"en": "; ... and {count} more", "zh-CN": "；……另有 {count} 处"},
    "reps.load.no_rejects_file": {"en": "(no rejects file written)", "zh-CN": "（没有写出被拒绝的行文件）"},
    "reps.load.loaded": {
        "en": "Loaded {count} reps: {inserted} new, {updated} updated, {deactivated} deactivated{ids}",
        "zh-CN": "已导入 {count} 名销售：新增 {inserted} 名，更新 {updated} 名，停用 {deactivated} 名{ids}",
    },
    "reps.load.deactivated_ids": {"en": " ({ids})", "zh-CN": "（{ids}）"},
    "reps.load.queue_assigned": {
        "en": "Assigned {assigned} of {queued} queued leads to reps with room; the rest stay queued",
        "zh-CN": "排队的 {queued} 条线索中有 {assigned} 条已分配给有空余容量的销售；其余继续排队",
    },
}

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
@click.option(
    "--locale",
    type=click.Choice(["en", "zh-CN"]),
    default=None,
    help="Language of the import summary, the rejected rows, the result line and error messages "
    "[default: the locale setting (LEADSCORE_LOCALE or leadscore.toml), else en].",
)
def load(
    file: Path,
    db_url: str | None,
    config_file: Path | None,
    mapping_file: Path | None,
    sheet: str | None,
    deactivate_missing: bool,
    locale: str | None,
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
    chosen_locale = parse_locale(locale or settings.locale)
    with tempfile.TemporaryDirectory(prefix="leadscore-reps-") as folder, errors_in_locale(chosen_locale):
        summary = import_file(
            file, "reps", Path(folder), mapping=mapping_file, sheet=sheet, locale=chosen_locale
        )
        click.echo(summary.format(), err=True)
        if summary.rejected:
            problems = _read_rejects(rejects_path(Path(folder), "reps"), chosen_locale)
            raise DataValidationError(
                _text(
                    "rejected",
                    chosen_locale,
                    rejected=summary.rejected,
                    read=summary.read,
                    file=file,
                    problems=problems,
                )
            )
        frame = coerce_canonical_dtypes("reps", pd.read_parquet(Path(folder) / "reps.parquet"))
    roster = parse_reps({str(key): value for key, value in row.items()} for row in frame.to_dict("records"))
    store = open_store(settings.resolved_db_url())
    try:
        update = upsert_reps(store, roster, now=utc_now(), deactivate_missing=deactivate_missing)
        assigned, queued = _assign_queued(store, settings.policy_file)
    finally:
        store.dispose()
    ids = (
        _text("deactivated_ids", chosen_locale, ids=", ".join(update.deactivated))
        if update.deactivated
        else ""
    )
    click.echo(
        _text(
            "loaded",
            chosen_locale,
            count=len(roster),
            inserted=len(update.inserted),
            updated=len(update.updated),
            deactivated=len(update.deactivated),
            ids=ids,
        )
    )
    if queued:
        click.echo(_text("queue_assigned", chosen_locale, assigned=assigned, queued=queued))


def _assign_queued(store: RoutingStore, policy_file: Path | None) -> tuple[int, int]:
    """Assign queued leads to reps that now have room; return (leads assigned, leads that were queued)."""
    from serving.policy_config import load_policy
    from serving.routing import assign_queued, utc_now
    from serving.store import count_queued

    queued = count_queued(store)
    if not queued:
        return 0, 0
    assigned = assign_queued(store, load_policy(policy_file), now=utc_now(), limit=None)
    return len(assigned), queued


@reps.command("assign-queued")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help=_CONFIG_HELP)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Routing policy TOML file [default: the policy_file setting, else the shipped policy].",
)
@click.option(
    "--locale",
    type=click.Choice(["en", "zh-CN"]),
    default=None,
    help="Language of the result line [default: the locale setting, else en].",
)
def assign_queued_command(
    db_url: str | None, config_file: Path | None, policy_file: Path | None, locale: str | None
) -> None:
    """Assign leads that wait in a queue to reps that now have room, oldest first.

    The service does this after a roster update and after a won or lost lead frees a rep.
    Run it from cron, or after changing capacities in the database by other means.
    """
    from leadscore.settings import load_settings
    from serving.store import open_store

    settings = load_settings(config_file, db_url=db_url, policy_file=policy_file)
    chosen_locale = parse_locale(locale or settings.locale)
    store = open_store(settings.resolved_db_url())
    try:
        assigned, queued = _assign_queued(store, settings.policy_file)
    finally:
        store.dispose()
    click.echo(_text("queue_assigned", chosen_locale, assigned=assigned, queued=queued))


@cache
def _register_messages() -> None:
    register_messages(_MESSAGES)


def _text(name: str, locale: Locale, /, **params: object) -> str:
    """Render the text ``reps.load.<name>`` in ``locale``."""
    _register_messages()
    return translate(f"reps.load.{name}", locale, **params)


def _read_rejects(path: Path, locale: Locale) -> str:
    """List the first rejected rows of the rejects file at ``path``, whose reasons are in ``locale``."""
    if not path.exists():
        return _text("no_rejects_file", locale)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    listed = [
        _text(
            "reject",
            locale,
            row=row["row"],
            column=row["column"] or _text("whole_row", locale),
            reason=row["reason"],
        )
        for row in rows[:_REJECTS_SHOWN]
    ]
    more = _text("more", locale, count=len(rows) - _REJECTS_SHOWN) if len(rows) > _REJECTS_SHOWN else ""
    return _text("separator", locale).join(listed) + more


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
