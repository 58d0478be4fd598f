"""The reps report page: leads, expected value, SLA and conversion per rep and tier (routing fairness)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.exc import DBAPIError

from data.folder import CanonicalTables
from features.spine import latest_event_time
from leadscore.errors import ConfigError, InputFileError
from leadscore.i18n import Locale
from serving.reports.charts import ChartWriter
from serving.reports.fonts import ChartFonts
from serving.reports.formatting import MISSING, format_amount, format_count, format_decimal, format_percent
from serving.reports.messages import data_note_items, text, tier_name
from serving.reports.provenance import ReportContext, context_for_tables
from serving.reports.render import Chart, ReportDocument, Section, Table, write_csv, write_documents
from serving.reports.reps import Receipts, RepsOptions, RepsResult, receipts_from_data_folder, summarize_reps
from serving.reports.scores import ScoreTable, read_scores
from serving.reports.stage_history import build_stage_history

logger = logging.getLogger(__name__)

KIND = "reps"


def _summary(result: RepsResult, options: RepsOptions, locale: Locale) -> list[str]:
    receipts = result.receipts
    frame = receipts.frame
    tiers = result.by_tier
    won = int(frame["won"].sum())
    lines = [
        text(
            "report.reps.summary.scope",
            locale,
            receipts=format_count(len(frame)),
            reps=format_count(int((result.by_rep["leads"] > 0).sum())),
            roster=format_count(len(receipts.roster)),
            source=text(f"report.reps.source.{receipts.source}", locale),
            won=format_count(won),
            rate=format_percent(won / len(frame) if len(frame) else None),
        )
    ]
    for row in tiers.itertuples():
        if row.leads == 0 and row.reps == 0:
            continue
        lines.append(
            text(
                "report.reps.summary.tier",
                locale,
                tier=tier_name(str(row.tier), locale),
                lead_share=format_percent(row.lead_share),
                capacity_share=format_percent(row.capacity_share),
                value=format_amount(row.mean_expected_value),
                conversion=format_percent(row.conversion),
            )
        )
    if not receipts.sla_measured:
        lines.append(text("report.reps.summary.sla_not_measured", locale))
    elif len(frame):
        met = int(tiers["sla_met"].sum())
        judged = met + int(tiers["sla_breached"].sum())
        lines.append(
            text(
                "report.reps.summary.sla",
                locale,
                hours=format_decimal(options.sla_hours, 0),
                met=format_count(met),
                judged=format_count(judged),
                rate=format_percent(met / judged if judged else None),
                pending=format_count(int(tiers["sla_pending"].sum())),
            )
        )
    return lines


def _tier_charts(result: RepsResult, locale: Locale, charts: ChartWriter) -> list[Chart]:
    tiers = result.by_tier
    names = [tier_name(str(tier), locale) for tier in tiers["tier"]]
    share_chart = charts.bar(
        "tier_shares",
        text("report.reps.chart.tier_shares", locale),
        names,
        {
            text("report.column.lead_share", locale): tiers["lead_share"].tolist(),
            text("report.column.capacity_share", locale): tiers["capacity_share"].tolist(),
            text("report.column.expected_value_share", locale): tiers["expected_value_share"].tolist(),
        },
        value_format="percent",
    )
    rate_chart = charts.bar(
        "tier_rates",
        text("report.reps.chart.tier_rates", locale),
        names,
        {
            text("report.column.sla_compliance", locale): tiers["sla_compliance"].tolist(),
            text("report.column.conversion", locale): tiers["conversion"].tolist(),
        },
        value_format="percent",
    )
    return [share_chart, rate_chart]


def _tier_section(result: RepsResult, locale: Locale, charts: ChartWriter) -> Section:
    tiers = result.by_tier
    names = [tier_name(str(tier), locale) for tier in tiers["tier"]]
    header = tuple(
        text(f"report.column.{column}", locale)
        for column in (
            "tier",
            "reps",
            "capacity",
            "leads",
            "lead_share",
            "capacity_share",
            "spread",
            "expected_value",
            "mean_expected_value",
            "sla_compliance",
            "conversion",
        )
    )
    rows = [
        (
            name,
            format_count(row.reps),
            format_count(row.capacity),
            format_count(row.leads),
            format_percent(row.lead_share),
            format_percent(row.capacity_share),
            format_decimal(row.leads_per_capacity_spread, 2),
            format_amount(row.expected_value),
            format_amount(row.mean_expected_value),
            format_percent(row.sla_compliance),
            format_percent(row.conversion),
        )
        for name, row in zip(names, tiers.itertuples(), strict=True)
    ]
    table = Table(header=header, rows=rows, numeric=(False,) + (True,) * (len(header) - 1))
    return Section(
        text("report.reps.section.tier", locale),
        paragraphs=[text("report.reps.tier.definition", locale)],
        charts=_tier_charts(result, locale, charts) if len(result.receipts.frame) else [],
        tables=[table],
    )


def _rep_charts(result: RepsResult, locale: Locale, charts: ChartWriter) -> list[Chart]:
    by_rep = result.by_rep
    load: dict[str, tuple[list[float], list[float]]] = {}
    sla: dict[str, tuple[list[float], list[float]]] = {}
    for tier, group in by_rep.groupby("tier", sort=False):
        name = tier_name(str(tier), locale)
        load[name] = (group["capacity"].tolist(), group["leads"].tolist())
        sla[name] = (group["leads"].tolist(), group["sla_compliance"].tolist())
    return [
        charts.scatter(
            "rep_load",
            text("report.reps.chart.rep_load", locale),
            load,
            x_format="number",
            y_format="number",
            x_label=text("report.column.capacity", locale),
            y_label=text("report.column.leads", locale),
        ),
        charts.scatter(
            "rep_sla",
            text("report.reps.chart.rep_sla", locale),
            sla,
            x_format="number",
            y_format="percent",
            x_label=text("report.column.leads", locale),
            y_label=text("report.column.sla_compliance", locale),
        ),
    ]


def _active_text(active: object, locale: Locale) -> str:
    if active is True or active is np.True_:
        return text("report.yes", locale)
    if active is False or active is np.False_:
        return text("report.no", locale)
    return MISSING


def _rep_section(result: RepsResult, locale: Locale, charts: ChartWriter) -> Section:
    columns = (
        "rep_id",
        "tier",
        "capacity",
        "active",
        "leads",
        "leads_per_capacity",
        "expected_value",
        "mean_expected_value",
        "sla_met",
        "sla_breached",
        "sla_pending",
        "sla_compliance",
        "won",
        "conversion",
    )
    rows = [
        (
            str(row.rep_id),
            tier_name(str(row.tier), locale),
            format_count(row.capacity),
            _active_text(row.active, locale),
            format_count(row.leads),
            format_decimal(row.leads_per_capacity, 2),
            format_amount(row.expected_value),
            format_amount(row.mean_expected_value),
            format_count(row.sla_met),
            format_count(row.sla_breached),
            format_count(row.sla_pending),
            format_percent(row.sla_compliance),
            format_count(row.won),
            format_percent(row.conversion),
        )
        for row in result.by_rep.itertuples()
    ]
    header = tuple(text(f"report.column.{column}", locale) for column in columns)
    numeric = (False, False, True, False) + (True,) * (len(columns) - 4)
    return Section(
        text("report.reps.section.rep", locale),
        paragraphs=[text("report.reps.rep.definition", locale)],
        charts=_rep_charts(result, locale, charts) if len(result.receipts.frame) else [],
        tables=[Table(header=header, rows=rows, numeric=numeric)],
    )


def _warnings(result: RepsResult, scores: ScoreTable | None, locale: Locale) -> list[str]:
    warnings = []
    if result.receipts.frame.empty:
        warnings.append(text("report.reps.warning.no_receipts", locale))
    if result.receipts.source == "data_folder" and scores is None:
        warnings.append(text("report.reps.warning.no_scores", locale))
    return warnings


def build_reps_document(
    result: RepsResult,
    *,
    context: ReportContext,
    notes: dict[str, int],
    options: RepsOptions,
    scores: ScoreTable | None,
    db_label: str | None,
    locale: Locale,
    charts: ChartWriter,
) -> ReportDocument:
    """Build the reps report in ``locale``, writing its charts through ``charts``."""
    sections = [_tier_section(result, locale, charts), _rep_section(result, locale, charts)]
    sections[0].paragraphs.append(text(f"report.reps.sla.definition.{result.receipts.source}", locale))

    all_notes = {**notes, **result.receipts.notes}
    if scores is not None:
        all_notes.update(scores.notes)
    note_items = data_note_items(all_notes, locale)
    if note_items:
        sections.append(Section(text("report.section.data_notes", locale), items=note_items))

    options_used = [
        (
            text("report.source.sla_source", locale),
            db_label if db_label is not None else text("report.reps.source.data_folder", locale),
        )
    ]
    if db_label is None:
        # With the routing database every assignment carries its own deadline (sla_due_at).
        options_used.append((text("report.source.sla_hours", locale), format_decimal(options.sla_hours, 0)))
    if scores is not None:
        options_used.append(
            (text("report.source.scores", locale), f"{scores.path} ({format_count(scores.rows_read)})")
        )
    sources = context.sources(locale, options_used)
    return ReportDocument(
        kind=KIND,
        locale=locale,
        title=text("report.reps.title", locale),
        summary=_summary(result, options, locale),
        sources=sources,
        sections=sections,
        warnings=_warnings(result, scores, locale),
    )


def write_reps_report(
    tables: CanonicalTables,
    *,
    data_dir: Path | None,
    out_dir: Path,
    locales: Sequence[Locale],
    options: RepsOptions,
    scores_file: Path | None,
    db_url: str | None,
    fonts: ChartFonts,
    now: pd.Timestamp | None = None,
) -> list[Path]:
    """Compute the reps numbers and write the HTML pages, PNG charts and CSV tables to ``out_dir``.

    With ``db_url`` the receipts are the assignments of the routing database, measured at
    ``now`` (default: the current time). Without it they are the lead owners of the data
    folder, measured at the data end.
    """
    if db_url is not None and scores_file is not None:
        raise ConfigError(
            "--scores and --db cannot be combined: with --db the expected value received is the one "
            "stored when each lead was routed; drop --scores"
        )
    history = build_stage_history(tables.stage_changes, tables.leads, timezone=options.timezone)
    scores: ScoreTable | None = None
    if scores_file is not None:
        scores = read_scores(scores_file, history.leads.index)
    db_label: str | None = None
    receipts: Receipts
    if db_url is not None:
        from serving.reports.reps_db import receipts_from_routing_db
        from serving.store import normalize_url, open_store

        parsed = normalize_url(db_url)
        db_label = parsed.render_as_string(hide_password=True)
        database = parsed.database
        is_file = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
        # Opening a missing SQLite file would create an empty database instead of failing.
        if is_file and not Path(str(database)).expanduser().is_file():
            raise InputFileError(
                f"routing database {database} not found; pass the --db URL that 'leadscore serve' uses"
            )
        store = open_store(db_url, create=False)
        try:
            receipts = receipts_from_routing_db(
                store, history, now=now if now is not None else pd.Timestamp.now(tz="UTC")
            )
        except DBAPIError as error:
            raise InputFileError(
                f"cannot read the routing tables from {db_label} "
                f"({type(error.orig).__name__}: {error.orig}); pass the --db URL that 'leadscore serve' uses"
            ) from None
        finally:
            store.dispose()
        as_of = receipts.as_of
    else:
        as_of = latest_event_time(tables)
        receipts = receipts_from_data_folder(
            tables.leads,
            tables.activities,
            tables.reps,
            history,
            scores=scores,
            options=options,
            as_of=as_of,
        )
    result = summarize_reps(receipts)
    paths = [
        write_csv(result.by_rep, out_dir / f"{KIND}.by_rep.csv"),
        write_csv(result.by_tier, out_dir / f"{KIND}.by_tier.csv"),
    ]
    context = context_for_tables(
        tables,
        data_dir=data_dir,
        as_of=as_of,
        timezone=options.timezone,
        csv_files=tuple(path.name for path in paths),
    )

    def build(locale: Locale) -> ReportDocument:
        charts = ChartWriter(out_dir, KIND, locale, fonts)
        return build_reps_document(
            result,
            context=context,
            notes=history.notes,
            options=options,
            scores=scores,
            db_label=db_label,
            locale=locale,
            charts=charts,
        )

    return paths + write_documents(KIND, locales, out_dir, build)
