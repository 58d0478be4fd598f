"""The channels report page: conversion and predicted versus realised value per lead source."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data.folder import CanonicalTables
from features.spine import latest_event_time
from leadscore.i18n import Locale
from serving.reports.channels import LEVELS, ChannelsResult, compute_channels
from serving.reports.charts import ChartWriter
from serving.reports.fonts import ChartFonts
from serving.reports.formatting import format_amount, format_count, format_percent
from serving.reports.messages import data_note_items, text
from serving.reports.provenance import ReportContext, context_for_tables
from serving.reports.render import Chart, ReportDocument, Section, Table, write_csv, write_documents
from serving.reports.scores import ScoreTable, read_scores
from serving.reports.stage_history import build_stage_history

logger = logging.getLogger(__name__)

KIND = "channels"
# Campaign and keyword tables show the rows with most leads; the CSV files keep every row.
MAX_TABLE_ROWS = 30


def _label(value: object, locale: Locale) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return text("report.not_set", locale)
    return str(value)


def _currency(result: ChannelsResult) -> str:
    """Return "(CNY)" when every order has the same currency, else an empty string."""
    currencies = result.attribution.currencies
    return f"({currencies[0]})" if len(currencies) == 1 else ""


def _table(result: ChannelsResult, level: str, locale: Locale, *, limit: int | None) -> Table:
    frame = result.levels[level]
    keys = LEVELS[level]
    scored = result.scores is not None
    currency = _currency(result)

    header = [text(f"report.column.{key}", locale) for key in keys]
    header += [
        text("report.column.leads", locale),
        text("report.column.won", locale),
        text("report.column.open", locale),
        text("report.column.conversion", locale),
    ]
    if scored:
        header += [
            text("report.column.scored", locale),
            text("report.column.mean_p_convert", locale),
            text("report.column.mean_expected_value", locale),
        ]
    header += [
        text("report.column.won_revenue", locale, currency=currency),
        text("report.column.revenue_share", locale),
        text("report.column.realised_value_per_lead", locale),
    ]
    shown = frame if limit is None else frame.head(limit)

    rows = []
    for row in shown.itertuples(index=False):
        cells = [_label(getattr(row, key), locale) for key in keys]
        cells += [
            format_count(row.leads),
            format_count(row.won),
            format_count(row.open),
            format_percent(row.conversion),
        ]
        if scored:
            cells += [
                format_count(row.scored),
                format_percent(row.mean_p_convert),
                format_amount(row.mean_expected_value),
            ]
        cells += [
            format_amount(row.won_revenue),
            format_percent(row.revenue_share),
            format_amount(row.realised_value_per_lead),
        ]
        rows.append(tuple(cells))

    note = ""
    if len(shown) < len(frame):
        note = text(
            "report.channels.table.truncated",
            locale,
            shown=len(shown),
            total=len(frame),
            file=f"{KIND}.{level}.csv",
        )
    numeric = (False,) * len(keys) + (True,) * (len(header) - len(keys))
    return Table(header=tuple(header), rows=rows, numeric=numeric, note=note)


def _channel_charts(result: ChannelsResult, locale: Locale, charts: ChartWriter) -> list[Chart]:
    frame = result.levels["channel"]
    names = [_label(value, locale) for value in frame["channel"]]
    drawn = [
        charts.bar(
            "conversion",
            text("report.channels.chart.conversion", locale),
            names,
            {text("report.column.conversion", locale): frame["conversion"].tolist()},
            value_format="percent",
            horizontal=True,
        ),
    ]
    if result.attribution.orders:
        drawn.append(
            charts.bar(
                "revenue",
                text("report.channels.chart.revenue", locale, currency=_currency(result)),
                names,
                {text("report.column.won_revenue", locale, currency=""): frame["won_revenue"].tolist()},
                value_format="number",
                horizontal=True,
            )
        )
    if result.scores is not None:
        drawn.append(
            charts.bar(
                "value",
                text("report.channels.chart.value", locale),
                names,
                {
                    text("report.column.mean_expected_value", locale): frame["mean_expected_value"].tolist(),
                    text("report.column.realised_value_per_lead", locale): frame[
                        "realised_value_per_lead"
                    ].tolist(),
                },
                value_format="number",
                horizontal=True,
            )
        )
    return drawn


def _revenue_line(result: ChannelsResult, locale: Locale) -> str:
    attribution = result.attribution
    if not attribution.orders:
        return text("report.channels.summary.no_orders", locale)
    return text(
        "report.channels.summary.revenue",
        locale,
        total=format_amount(attribution.total_amount),
        orders=format_count(attribution.orders),
        attributed=format_amount(attribution.attributed_amount),
        share=format_percent(
            attribution.attributed_amount / attribution.total_amount if attribution.total_amount else None
        ),
        before_win=format_amount(attribution.before_win_amount),
        no_won_lead=format_amount(attribution.no_won_lead_amount),
    )


def _summary(result: ChannelsResult, locale: Locale) -> list[str]:
    channels = result.levels["channel"]
    leads = int(channels["leads"].sum())
    won = int(channels["won"].sum())
    attribution = result.attribution
    lines = [
        text(
            "report.channels.summary.scope",
            locale,
            leads=format_count(leads),
            channels=len(channels),
            campaigns=len(result.levels["campaign"]),
            keywords=len(result.levels["keyword"]),
            won=format_count(won),
            rate=format_percent(won / leads if leads else None),
        ),
        _revenue_line(result, locale),
    ]
    if attribution.attributed_amount > 0:
        top = channels.sort_values("won_revenue", ascending=False).iloc[0]
        lines.append(
            text(
                "report.channels.summary.top",
                locale,
                channel=_label(top["channel"], locale),
                amount=format_amount(top["won_revenue"]),
                share=format_percent(top["revenue_share"]),
            )
        )
    if result.scores is None:
        lines.append(text("report.channels.summary.no_scores", locale))
    else:
        lines.append(
            text(
                "report.channels.summary.scores",
                locale,
                file=result.scores.path.name,
                scored=format_count(int(channels["scored"].sum())),
                leads=format_count(leads),
            )
        )
    return lines


def _warnings(result: ChannelsResult, locale: Locale) -> list[str]:
    warnings = []
    if len(result.attribution.currencies) > 1:
        warnings.append(
            text(
                "report.channels.warning.currencies",
                locale,
                currencies=", ".join(result.attribution.currencies),
            )
        )
    if result.attribution.won_without_customer:
        warnings.append(
            text(
                "report.channels.warning.won_without_customer",
                locale,
                count=format_count(result.attribution.won_without_customer),
            )
        )
    return warnings


def build_channels_document(
    result: ChannelsResult,
    *,
    context: ReportContext,
    notes: dict[str, int],
    locale: Locale,
    charts: ChartWriter,
) -> ReportDocument:
    """Build the channels report in ``locale``, writing its charts through ``charts``."""
    sections = [
        Section(
            text("report.channels.section.channel", locale),
            paragraphs=[
                text("report.channels.attribution.definition", locale),
                text("report.channels.value.definition", locale),
            ],
            charts=_channel_charts(result, locale, charts),
            tables=[_table(result, "channel", locale, limit=None)],
        ),
        Section(
            text("report.channels.section.campaign", locale),
            tables=[_table(result, "campaign", locale, limit=MAX_TABLE_ROWS)],
        ),
        Section(
            text("report.channels.section.keyword", locale),
            tables=[_table(result, "keyword", locale, limit=MAX_TABLE_ROWS)],
        ),
    ]
    all_notes = {**notes, **result.attribution.notes}
    if result.scores is not None:
        all_notes.update(result.scores.notes)
    note_items = data_note_items(all_notes, locale)
    if note_items:
        sections.append(Section(text("report.section.data_notes", locale), items=note_items))
    scores_value = (
        f"{result.scores.path} ({format_count(result.scores.rows_read)})"
        if result.scores is not None
        else text("report.source.scores_none", locale)
    )
    sources = context.sources(locale, [(text("report.source.scores", locale), scores_value)])
    return ReportDocument(
        kind=KIND,
        locale=locale,
        title=text("report.channels.title", locale),
        summary=_summary(result, locale),
        sources=sources,
        sections=sections,
        warnings=_warnings(result, locale),
    )


def write_channels_report(
    tables: CanonicalTables,
    *,
    data_dir: Path | None,
    out_dir: Path,
    locales: Sequence[Locale],
    timezone: str,
    scores_file: Path | None,
    fonts: ChartFonts,
) -> list[Path]:
    """Compute the channel numbers and write the HTML pages, PNG charts and CSV tables to ``out_dir``."""
    history = build_stage_history(tables.stage_changes, tables.leads, timezone=timezone)
    scores: ScoreTable | None = None
    if scores_file is not None:
        scores = read_scores(scores_file, history.leads.index)
    result = compute_channels(history, tables.leads, tables.orders, scores)
    paths = [write_csv(frame, out_dir / f"{KIND}.{level}.csv") for level, frame in result.levels.items()]
    context = context_for_tables(
        tables,
        data_dir=data_dir,
        as_of=latest_event_time(tables),
        timezone=timezone,
        csv_files=tuple(path.name for path in paths),
    )

    def build(locale: Locale) -> ReportDocument:
        charts = ChartWriter(out_dir, KIND, locale, fonts)
        return build_channels_document(
            result, context=context, notes=history.notes, locale=locale, charts=charts
        )

    return paths + write_documents(KIND, locales, out_dir, build)
