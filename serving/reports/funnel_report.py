"""The funnel report page: stage reach, stage-pair conversion by month, dwell times, stall points."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from data.folder import CanonicalTables
from data.stages import FUNNEL
from features.spine import latest_event_time
from leadscore.i18n import Locale
from serving.reports.charts import ChartWriter
from serving.reports.fonts import ChartFonts
from serving.reports.formatting import format_count, format_decimal, format_percent, format_time
from serving.reports.funnel import (
    ALL_MONTHS,
    DWELL_STAGES,
    FUNNEL_PAIRS,
    FunnelOptions,
    FunnelResult,
    compute_funnel,
    stall_points,
)
from serving.reports.messages import data_note_items, stage_name, text
from serving.reports.provenance import ReportContext, context_for_tables
from serving.reports.render import ReportDocument, Section, Table, write_csv, write_documents
from serving.reports.stage_history import build_stage_history

logger = logging.getLogger(__name__)

KIND = "funnel"
MIN_DECIDED_PER_MONTH = 20
"""Fewest decided leads (advanced, lost or stalled) behind a monthly rate that the report shows."""


def _pair_name(source: str, target: str, locale: Locale) -> str:
    return f"{stage_name(source, locale)} → {stage_name(target, locale)}"


def _summary(result: FunnelResult, context: ReportContext, locale: Locale) -> list[str]:
    reach = result.overall(result.reach).set_index("stage")["leads"]
    months = result.months()
    leads = int(reach[FUNNEL[0].code])
    won = int(reach[FUNNEL[-1].code])
    lines = [
        text(
            "report.funnel.summary.scope",
            locale,
            leads=format_count(leads),
            months=len(months),
            first_month=months[0] if months else "—",
            last_month=months[-1] if months else "—",
            timezone=result.options.timezone,
            as_of=format_time(result.as_of, context.timezone),
        ),
        text(
            "report.funnel.summary.won",
            locale,
            won=format_count(won),
            rate=format_percent(won / leads if leads else None),
        ),
    ]
    points = stall_points(result)
    if points.weakest_pair is not None:
        source, target, rate = points.weakest_pair
        lines.append(
            text(
                "report.funnel.summary.weakest",
                locale,
                pair=_pair_name(source, target, locale),
                rate=format_percent(rate),
            )
        )
    if points.most_stalled is not None:
        stage, count = points.most_stalled
        lines.append(
            text(
                "report.funnel.summary.most_stalled",
                locale,
                count=format_count(count),
                stage=stage_name(stage, locale),
                days=format_decimal(result.options.stall_days, 0),
            )
        )
    if points.slowest_stage is not None:
        stage, days = points.slowest_stage
        lines.append(
            text(
                "report.funnel.summary.slowest",
                locale,
                stage=stage_name(stage, locale),
                days=format_decimal(days),
            )
        )
    return lines


def _reach_section(result: FunnelResult, locale: Locale, charts: ChartWriter) -> Section:
    reach = result.overall(result.reach)
    total = int(reach["leads"].iloc[0]) if len(reach) else 0
    names = [stage_name(stage, locale) for stage in reach["stage"]]
    chart = charts.bar(
        "reach",
        text("report.funnel.chart.reach", locale),
        names,
        {text("report.column.leads", locale): reach["leads"].tolist()},
        value_format="number",
        horizontal=True,
    )
    rows = [
        (name, format_count(count), format_percent(count / total if total else None))
        for name, count in zip(names, reach["leads"], strict=True)
    ]
    table = Table(
        header=(
            text("report.column.stage", locale),
            text("report.column.leads", locale),
            text("report.column.share_of_leads", locale),
        ),
        rows=rows,
        numeric=(False, True, True),
    )
    return Section(
        text("report.funnel.section.reach", locale),
        paragraphs=[text("report.funnel.reach.definition", locale)],
        charts=[chart],
        tables=[table],
    )


def _pairs_section(result: FunnelResult, locale: Locale, charts: ChartWriter) -> Section:
    pairs = result.overall(result.pairs)
    names = [_pair_name(str(row.from_stage), str(row.to_stage), locale) for row in pairs.itertuples()]
    chart = charts.bar(
        "conversion",
        text("report.funnel.chart.conversion", locale),
        names,
        {text("report.column.conversion", locale): pairs["conversion"].tolist()},
        value_format="percent",
        horizontal=True,
    )
    columns = ("reached", "advanced", "lost", "stalled", "open", "inferred")
    rows = [
        (
            name,
            *(format_count(getattr(row, column)) for column in columns),
            format_percent(row.conversion),
        )
        for name, row in zip(names, pairs.itertuples(), strict=True)
    ]
    table = Table(
        header=(
            text("report.column.stage_pair", locale),
            *(text(f"report.column.{column}", locale) for column in columns),
            text("report.column.conversion", locale),
        ),
        rows=rows,
        numeric=(False, *([True] * (len(columns) + 1))),
    )
    return Section(
        text("report.funnel.section.pairs", locale),
        paragraphs=[
            text("report.funnel.pairs.definition", locale, days=format_decimal(result.options.stall_days, 0)),
            text("report.funnel.pairs.inferred", locale),
        ],
        charts=[chart],
        tables=[table],
    )


def _monthly_section(result: FunnelResult, locale: Locale, charts: ChartWriter) -> Section:
    months = result.months()
    pairs = result.pairs.loc[result.pairs["month"] != ALL_MONTHS]
    conversion = pairs.pivot(index="month", columns="from_stage", values="conversion").reindex(months)
    decided = (
        pairs.assign(decided=pairs["reached"] - pairs["open"])
        .pivot(index="month", columns="from_stage", values="decided")
        .reindex(months)
    )
    conversion = conversion.where(decided >= MIN_DECIDED_PER_MONTH)
    leads = result.reach.loc[result.reach["stage"] == FUNNEL[0].code].set_index("month")["leads"]
    series = {
        _pair_name(source.code, target.code, locale): conversion[source.code].tolist()
        for source, target in FUNNEL_PAIRS
    }
    chart = charts.line(
        "conversion_by_month",
        text("report.funnel.chart.conversion_by_month", locale),
        months,
        series,
        value_format="percent",
    )
    rows = [
        (
            month,
            format_count(leads.get(month)),
            *(format_percent(conversion.at[month, source.code]) for source, _ in FUNNEL_PAIRS),
        )
        for month in months
    ]
    table = Table(
        header=(
            text("report.column.month", locale),
            text("report.column.leads", locale),
            *series.keys(),
        ),
        rows=rows,
        numeric=(False, *([True] * (len(series) + 1))),
        note=text("report.funnel.monthly.note", locale, minimum=MIN_DECIDED_PER_MONTH),
    )
    return Section(text("report.funnel.section.monthly", locale), charts=[chart], tables=[table])


def _dwell_section(result: FunnelResult, locale: Locale, charts: ChartWriter) -> Section:
    overall = result.overall(result.dwell)
    names = [stage_name(stage, locale) for stage in overall["stage"]]
    chart = charts.bar(
        "dwell",
        text("report.funnel.chart.dwell", locale),
        names,
        {text("report.column.median_days", locale): overall["median_days"].tolist()},
        value_format="days",
        horizontal=True,
    )
    overall_table = Table(
        header=(
            text("report.column.stage", locale),
            text("report.column.left", locale),
            text("report.column.in_stage", locale),
            text("report.column.median_days", locale),
        ),
        rows=[
            (name, format_count(row.left), format_count(row.in_stage), format_decimal(row.median_days))
            for name, row in zip(names, overall.itertuples(), strict=True)
        ],
        numeric=(False, True, True, True),
    )
    monthly = result.dwell.loc[result.dwell["month"] != ALL_MONTHS]
    medians = monthly.pivot(index="month", columns="stage", values="median_days").reindex(result.months())
    monthly_table = Table(
        header=(
            text("report.column.month", locale),
            *(stage_name(stage.code, locale) for stage in DWELL_STAGES),
        ),
        rows=[
            (month, *(format_decimal(medians.at[month, stage.code]) for stage in DWELL_STAGES))
            for month in medians.index
        ],
        numeric=(False, *([True] * len(DWELL_STAGES))),
        caption=text("report.funnel.dwell.monthly_caption", locale),
    )
    return Section(
        text("report.funnel.section.dwell", locale),
        paragraphs=[text("report.funnel.dwell.definition", locale)],
        charts=[chart],
        tables=[overall_table, monthly_table],
    )


def build_funnel_document(
    result: FunnelResult,
    *,
    context: ReportContext,
    notes: dict[str, int],
    locale: Locale,
    charts: ChartWriter,
) -> ReportDocument:
    """Build the funnel report in ``locale``, writing its charts through ``charts``."""
    sections = [
        _reach_section(result, locale, charts),
        _pairs_section(result, locale, charts),
        _monthly_section(result, locale, charts),
        _dwell_section(result, locale, charts),
    ]
    note_items = data_note_items(notes, locale)
    if note_items:
        sections.append(Section(text("report.section.data_notes", locale), items=note_items))
    stall_days = (text("report.source.stall_days", locale), format_decimal(result.options.stall_days, 0))
    sources = context.sources(locale, [stall_days])
    return ReportDocument(
        kind=KIND,
        locale=locale,
        title=text("report.funnel.title", locale),
        summary=_summary(result, context, locale),
        sources=sources,
        sections=sections,
    )


def write_funnel_csv(result: FunnelResult, out_dir: Path) -> list[Path]:
    """Write the computed frames (locale-independent) next to the HTML, for checking and reuse."""
    return [
        write_csv(result.reach, out_dir / f"{KIND}.reach.csv"),
        write_csv(result.pairs, out_dir / f"{KIND}.pairs.csv"),
        write_csv(result.dwell, out_dir / f"{KIND}.dwell.csv"),
    ]


def write_funnel_report(
    tables: CanonicalTables,
    *,
    data_dir: Path | None,
    out_dir: Path,
    locales: Sequence[Locale],
    options: FunnelOptions,
    fonts: ChartFonts,
) -> list[Path]:
    """Compute the funnel of ``tables`` and write its HTML pages, PNG charts and CSV tables to ``out_dir``."""
    history = build_stage_history(tables.stage_changes, tables.leads, timezone=options.timezone)
    as_of = latest_event_time(tables)
    result = compute_funnel(history, as_of=as_of, options=options)
    paths = write_funnel_csv(result, out_dir)
    context = context_for_tables(
        tables,
        data_dir=data_dir,
        as_of=as_of,
        timezone=options.timezone,
        csv_files=tuple(path.name for path in paths),
    )

    def build(locale: Locale) -> ReportDocument:
        charts = ChartWriter(out_dir, KIND, locale, fonts)
        return build_funnel_document(
            result, context=context, notes=history.notes, locale=locale, charts=charts
        )

    return paths + write_documents(KIND, locales, out_dir, build)
