"""The model card of a trained scorer as a report page, laid out like the other reports.

The facts come from ``training.model_card.ModelCard``; known limits are rendered with the
card's own texts (``KnownLimit.text``). Metric charts are drawn here. Plots of the training
run, when available, are copied next to the HTML as they are (their labels are English).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from leadscore.i18n import Locale
from serving.reports.charts import ChartWriter
from serving.reports.fonts import ChartFonts
from serving.reports.formatting import format_count, format_decimal, format_percent
from serving.reports.messages import text
from serving.reports.model_card_source import LoadedCard
from serving.reports.provenance import ReportContext
from serving.reports.render import Chart, ReportDocument, Section, Table, write_documents
from training.model_card import ModelCard

logger = logging.getLogger(__name__)

KIND = "model"
# Metrics where a lower value is better; every other metric of the card is better when higher.
LOWER_IS_BETTER = ("ece", "brier", "mae", "rmse", "log_loss", "logloss")
# Plot file names that training writes, in the order the report shows them.
PLOT_ORDER = (
    "roc_curve",
    "pr_curve",
    "calibration_curve",
    "gain_chart",
    "decile_table",
    "feature_importance",
    "shap_summary",
)


def _lower_is_better(metric: str) -> bool:
    return any(part in metric for part in LOWER_IS_BETTER)


def _time(value: object, timezone: str) -> str:
    try:
        return pd.Timestamp(str(value)).tz_convert(timezone).strftime("%Y-%m-%d %H:%M UTC%z")
    except (ValueError, TypeError):
        return str(value)


def _summary(card: ModelCard, context: ReportContext, locale: Locale) -> list[str]:
    lines = [
        text(
            "report.model.summary.trained",
            locale,
            created_at=_time(card.created_at, context.timezone),
            start=_time(card.data_window.get("start"), context.timezone),
            end=_time(card.data_window.get("end"), context.timezone),
            features=len(card.features),
        )
    ]
    model = card.metrics.get("model", {})
    baselines = {name: values for name, values in card.metrics.items() if name != "model"}
    if "conversion_auc" in model:
        best_name, best_value = None, None
        for name, values in baselines.items():
            value = values.get("conversion_auc")
            if value is not None and (best_value is None or value > best_value):
                best_name, best_value = name, value
        lines.append(
            text(
                "report.model.summary.auc",
                locale,
                auc=format_decimal(model["conversion_auc"], 3),
                baseline=best_name or "—",
                baseline_auc=format_decimal(best_value, 3),
            )
        )
    lines.append(text("report.model.summary.limits", locale, count=len(card.known_limits)))
    return lines


def _data_section(card: ModelCard, context: ReportContext, locale: Locale) -> Section:
    window = card.data_window
    paragraphs = [
        text(
            "report.model.data.window",
            locale,
            start=_time(window.get("start"), context.timezone),
            end=_time(window.get("end"), context.timezone),
            cutoff_start=_time(window.get("cutoff_start", "—"), context.timezone),
            cutoff_end=_time(window.get("cutoff_end", "—"), context.timezone),
        ),
        text(
            "report.model.data.horizons",
            locale,
            horizon=card.horizons.get("horizon_days", "—"),
            ltv_horizon=card.horizons.get("ltv_horizon_days", "—"),
        ),
        text("report.model.data.positive_rate", locale, rate=format_percent(card.test_positive_rate)),
    ]
    if card.fold_boundaries:
        boundaries = ", ".join(
            f"{name} {_time(start, context.timezone)}" for name, start in card.fold_boundaries.items()
        )
        paragraphs.append(text("report.model.data.boundaries", locale, boundaries=boundaries))
    tables = [
        Table(
            header=(text("report.column.table", locale), text("report.column.rows", locale)),
            rows=[(name, format_count(count)) for name, count in card.table_rows.items()],
            numeric=(False, True),
        ),
        Table(
            header=(text("report.column.fold", locale), text("report.column.rows", locale)),
            rows=[(name, format_count(count)) for name, count in card.fold_rows.items()],
            numeric=(False, True),
            note=text("report.model.data.folds_note", locale),
        ),
    ]
    return Section(text("report.model.section.data", locale), paragraphs=paragraphs, tables=tables)


def _metric_charts(card: ModelCard, locale: Locale, charts: ChartWriter) -> list[Chart]:
    names = sorted({name for values in card.metrics.values() for name in values})
    higher = [name for name in names if not _lower_is_better(name)]
    lower = [name for name in names if _lower_is_better(name)]
    drawn = []
    for chart_name, metrics in (("metrics_higher", higher), ("metrics_lower", lower)):
        if not metrics:
            continue
        series = {
            label: [float(values.get(metric, float("nan"))) for metric in metrics]
            for label, values in card.metrics.items()
        }
        drawn.append(
            charts.bar(
                chart_name,
                text(f"report.model.chart.{chart_name}", locale),
                metrics,
                series,
                value_format="score",
            )
        )
    return drawn


def _metrics_section(card: ModelCard, locale: Locale, charts: ChartWriter) -> Section:
    names = sorted({name for values in card.metrics.values() for name in values})
    labels = list(card.metrics)
    table = Table(
        header=(text("report.column.metric", locale), *labels),
        rows=[
            (name, *(format_decimal(card.metrics[label].get(name), 4) for label in labels)) for name in names
        ],
        numeric=(False, *([True] * len(labels))),
    )
    return Section(
        text("report.model.section.metrics", locale),
        paragraphs=[text("report.model.metrics.definition", locale)],
        charts=_metric_charts(card, locale, charts) if names else [],
        tables=[table],
    )


def _calibration_section(card: ModelCard, locale: Locale) -> Section:
    calibration = card.calibration
    paragraphs = [
        text(
            "report.model.calibration.summary",
            locale,
            method=calibration.get("method", "—"),
            ece_before=format_decimal(calibration.get("ece_before"), 4),
            ece_after=format_decimal(calibration.get("ece_after"), 4),
        )
    ]
    if calibration.get("prior_weight"):
        paragraphs.append(
            text(
                "report.model.calibration.prior",
                locale,
                weight=format_decimal(calibration["prior_weight"], 3),
            )
        )
    return Section(text("report.model.section.calibration", locale), paragraphs=paragraphs)


def _leakage_section(card: ModelCard, locale: Locale) -> Section:
    excluded = card.leakage.get("excluded", [])
    checked = card.leakage.get("checked", 0)
    if not excluded:
        return Section(
            text("report.model.section.leakage", locale),
            paragraphs=[text("report.model.leakage.none", locale, checked=checked)],
        )
    table = Table(
        header=(text("report.column.feature", locale), text("report.column.reason", locale)),
        rows=[(str(item.get("feature")), str(item.get("reason"))) for item in excluded],
        numeric=(False, False),
    )
    return Section(
        text("report.model.section.leakage", locale),
        paragraphs=[text("report.model.leakage.excluded", locale, checked=checked, count=len(excluded))],
        tables=[table],
    )


def _ltv_section(card: ModelCard, locale: Locale) -> Section:
    ltv = card.ltv
    if ltv.get("kind"):
        selection = ", ".join(
            f"{name} {format_decimal(score, 4)}" for name, score in (ltv.get("selection") or {}).items()
        )
        paragraph = text("report.model.ltv.summary", locale, kind=ltv["kind"], selection=selection or "—")
    else:
        paragraph = text("report.model.ltv.absent", locale, note=ltv.get("note") or "—")
    return Section(text("report.model.section.ltv", locale), paragraphs=[paragraph])


def _plot_caption(file_name: str, locale: Locale) -> str:
    stem = Path(file_name).stem.removeprefix(f"{KIND}.plot.")
    if stem in PLOT_ORDER:
        return text(f"report.model.plot.{stem}", locale)
    return text("report.model.plot.other", locale, name=stem)


def _plot_section(plots: Sequence[str], locale: Locale) -> Section:
    charts = [Chart(file=name, caption=_plot_caption(name, locale)) for name in plots]
    return Section(
        text("report.model.section.plots", locale),
        paragraphs=[text("report.model.plots.note", locale)],
        charts=charts,
    )


def build_model_document(
    loaded: LoadedCard,
    *,
    context: ReportContext,
    plots: Sequence[str],
    locale: Locale,
    charts: ChartWriter,
) -> ReportDocument:
    """Build the model card report in ``locale``; ``plots`` are file names already next to the HTML."""
    card = loaded.card
    sections = [
        _data_section(card, context, locale),
        _metrics_section(card, locale, charts),
        _calibration_section(card, locale),
        _leakage_section(card, locale),
        _ltv_section(card, locale),
        Section(
            text("report.model.section.features", locale),
            paragraphs=[
                text("report.model.features.summary", locale, count=len(card.features)),
                ", ".join(card.features),
            ],
        ),
        Section(
            text("report.model.section.limits", locale),
            items=[limit.text(locale) for limit in card.known_limits],
        ),
    ]
    if plots:
        sections.append(_plot_section(plots, locale))
    warnings = [text("report.model.warning.insufficient", locale)] if card.insufficient_data else []
    sources = context.sources(locale)
    sources.insert(0, (text("report.source.card", locale), loaded.source))
    return ReportDocument(
        kind=KIND,
        locale=locale,
        title=text("report.model.title", locale, name=card.name, version=card.bundle_version),
        summary=_summary(card, context, locale),
        sources=sources,
        sections=sections,
        warnings=warnings,
    )


def _copy_plots(plots: Sequence[Path], out_dir: Path) -> list[str]:
    rank = {name: position for position, name in enumerate(PLOT_ORDER)}
    ordered = sorted(plots, key=lambda path: (rank.get(path.stem, len(rank)), path.name))
    names = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in ordered:
        name = f"{KIND}.plot.{path.stem}.png"
        shutil.copyfile(path, out_dir / name)
        names.append(name)
    return names


def write_model_report(
    loaded: LoadedCard,
    *,
    out_dir: Path,
    locales: Sequence[Locale],
    timezone: str,
    fonts: ChartFonts,
) -> list[Path]:
    """Write the model card report pages, their metric charts and the training plots to ``out_dir``."""
    card = loaded.card
    window = card.data_window
    context = ReportContext(
        data_dir=None,
        row_counts={},
        created_first=pd.Timestamp(window["start"]) if window.get("start") else None,
        created_last=pd.Timestamp(window["end"]) if window.get("end") else None,
        as_of=pd.Timestamp(window["observed_until"]) if window.get("observed_until") else None,
        generated_at=pd.Timestamp.now(tz="UTC"),
        timezone=timezone,
    )
    plots = _copy_plots(loaded.plots, out_dir)

    def build(locale: Locale) -> ReportDocument:
        charts = ChartWriter(out_dir, KIND, locale, fonts)
        return build_model_document(loaded, context=context, plots=plots, locale=locale, charts=charts)

    # The pages link the copied plots as charts, so write_documents returns their paths too.
    return write_documents(KIND, locales, out_dir, build)
