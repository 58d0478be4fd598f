"""``leadscore report funnel|channels|reps|model``: HTML reports with PNG charts, in en and zh-CN.

Each command writes ``<report>.<locale>.html`` pages, their PNG charts and CSV tables of the
numbers into ``--out``, and prints the paths it wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from leadscore.i18n import Locale
    from leadscore.settings import Settings
    from serving.reports.fonts import ChartFonts

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _output_options(function: F) -> F:
    """Add the options every report command shares: output folder, locale, time zone, font, config."""
    options = [
        click.option(
            "--out",
            "out_dir",
            required=True,
            type=click.Path(path_type=Path, file_okay=False),
            help="Folder for the HTML pages, PNG charts and CSV tables (created if missing).",
        ),
        click.option(
            "--locale",
            "locale_choice",
            default="all",
            show_default=True,
            help="Language of the report: en, zh-CN, or all for one page per language.",
        ),
        click.option(
            "--timezone",
            default=None,
            help="IANA time zone of months and times in the report [default: the timezone setting, "
            "Asia/Shanghai].",
        ),
        click.option(
            "--font",
            "font_file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            default=None,
            help="TrueType/OpenType font with Chinese glyphs for chart labels [default: the first one "
            "installed, e.g. Noto Sans CJK SC].",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Settings TOML file [default: ./leadscore.toml when present, else built-in settings].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


_DATA_OPTION = click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Data folder of canonical Parquet tables.",
)
_SCORES_OPTION = click.option(
    "--scores",
    "scores_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Score file (Parquet or CSV with lead_id, p_convert, ltv, expected_value) from batch "
    "rescoring [default: none, predicted values are left empty].",
)


def _locales(choice: str) -> list[Locale]:
    from leadscore.i18n import SUPPORTED_LOCALES, parse_locale

    if choice.lower() == "all":
        return [parse_locale(locale) for locale in SUPPORTED_LOCALES]
    return [parse_locale(choice)]


def _prepare(
    config_file: Path | None, timezone: str | None, font_file: Path | None
) -> tuple[Settings, ChartFonts]:
    from leadscore.settings import load_settings
    from serving.reports.fonts import discover_chart_fonts

    settings = load_settings(config_file, timezone=timezone)
    return settings, discover_chart_fonts(font_file)


def _echo_paths(paths: list[Path]) -> None:
    pages = [path for path in paths if path.suffix == ".html"]
    for path in pages:
        click.echo(f"report: {path}")
    click.echo(f"wrote {len(paths)} files ({len(pages)} pages) to {paths[0].parent if paths else '-'}")


@click.group()
def report() -> None:
    """Write HTML reports with PNG charts for sales managers, in English and Chinese."""


@report.command("funnel")
@_DATA_OPTION
@_output_options
@click.option(
    "--stall-days",
    type=click.FloatRange(min=0.0, min_open=True),
    default=30.0,
    show_default=True,
    help="Days without a stage change after which an open lead counts as stalled.",
)
def funnel(
    data_dir: Path,
    out_dir: Path,
    locale_choice: str,
    timezone: str | None,
    font_file: Path | None,
    config_file: Path | None,
    stall_days: float,
) -> None:
    """Report conversion between stages and time in each stage, per month of lead creation."""
    from data.folder import read_data_dir
    from serving.reports.funnel import FunnelOptions
    from serving.reports.funnel_report import write_funnel_report

    locales = _locales(locale_choice)
    settings, fonts = _prepare(config_file, timezone, font_file)
    tables = read_data_dir(data_dir)
    paths = write_funnel_report(
        tables,
        data_dir=data_dir,
        out_dir=out_dir,
        locales=locales,
        options=FunnelOptions(timezone=settings.timezone, stall_days=stall_days),
        fonts=fonts,
    )
    _echo_paths(paths)


@report.command("channels")
@_DATA_OPTION
@_output_options
@_SCORES_OPTION
def channels(
    data_dir: Path,
    out_dir: Path,
    locale_choice: str,
    timezone: str | None,
    font_file: Path | None,
    config_file: Path | None,
    scores_file: Path | None,
) -> None:
    """Report leads, conversion, predicted and realised value per channel, campaign and keyword."""
    from data.folder import read_data_dir
    from serving.reports.channels_report import write_channels_report

    locales = _locales(locale_choice)
    settings, fonts = _prepare(config_file, timezone, font_file)
    tables = read_data_dir(data_dir)
    paths = write_channels_report(
        tables,
        data_dir=data_dir,
        out_dir=out_dir,
        locales=locales,
        timezone=settings.timezone,
        scores_file=scores_file,
        fonts=fonts,
    )
    _echo_paths(paths)


@report.command("reps")
@_DATA_OPTION
@_output_options
@_SCORES_OPTION
@click.option(
    "--db",
    "db_url",
    default=None,
    help="SQLAlchemy URL of the routing database (sqlite:///FILE or postgresql+psycopg://...): count "
    "its assignments and SLA deadlines [default: none, use the data folder's lead owners].",
)
@click.option(
    "--sla-hours",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="First-contact deadline after lead creation, in hours, for the data-folder SLA "
    "[default: the routing policy's sla.default_hours, 48].",
)
def reps(
    data_dir: Path,
    out_dir: Path,
    locale_choice: str,
    timezone: str | None,
    font_file: Path | None,
    config_file: Path | None,
    scores_file: Path | None,
    db_url: str | None,
    sla_hours: float | None,
) -> None:
    """Report leads and expected value received, first-contact SLA and conversion per rep and tier."""
    from data.folder import read_data_dir
    from serving.reports.reps import RepsOptions
    from serving.reports.reps_report import write_reps_report

    locales = _locales(locale_choice)
    settings, fonts = _prepare(config_file, timezone, font_file)
    options = RepsOptions(timezone=settings.timezone)
    if sla_hours is not None:
        options = RepsOptions(timezone=settings.timezone, sla_hours=sla_hours)
    tables = read_data_dir(data_dir)
    paths = write_reps_report(
        tables,
        data_dir=data_dir,
        out_dir=out_dir,
        locales=locales,
        options=options,
        scores_file=scores_file,
        db_url=db_url,
        fonts=fonts,
    )
    _echo_paths(paths)


@report.command("model")
@_output_options
@click.option(
    "--card",
    "card_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="model_card.json written by 'leadscore train' [default: none, load the card from MLflow].",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking and registry URI [default: the tracking_uri setting, else "
    "sqlite:///WORK_DIR/mlflow.db].",
)
@click.option(
    "--model-uri",
    default="models:/lead-scorer@champion",
    show_default=True,
    help="Registry URI of the model whose card to render: models:/lead-scorer@ALIAS or "
    "models:/lead-scorer/VERSION.",
)
def model(
    out_dir: Path,
    locale_choice: str,
    timezone: str | None,
    font_file: Path | None,
    config_file: Path | None,
    card_file: Path | None,
    tracking_uri: str | None,
    model_uri: str,
) -> None:
    """Render the model card of a trained scorer: data, test metrics, calibration and known limits."""
    import tempfile

    from leadscore.errors import ConfigError
    from serving.reports.model_card_report import write_model_report
    from serving.reports.model_card_source import load_card_file, load_card_from_mlflow

    if card_file is not None and tracking_uri is not None:
        raise ConfigError(
            "--card and --tracking-uri exclude each other: render a card file or a registry model"
        )
    locales = _locales(locale_choice)
    settings, fonts = _prepare(config_file, timezone, font_file)
    if card_file is not None:
        loaded = load_card_file(card_file)
        paths = write_model_report(
            loaded, out_dir=out_dir, locales=locales, timezone=settings.timezone, fonts=fonts
        )
    else:
        uri = tracking_uri or settings.resolved_tracking_uri()
        with tempfile.TemporaryDirectory(prefix="leadscore-report-") as scratch:
            loaded = load_card_from_mlflow(uri, model_uri, Path(scratch))
            paths = write_model_report(
                loaded, out_dir=out_dir, locales=locales, timezone=settings.timezone, fonts=fonts
            )
    _echo_paths(paths)
