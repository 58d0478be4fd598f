"""Reports a sales manager reads: funnel, lead sources (channels), reps and the model card.

Each report is an HTML page per locale (en, zh-CN) with PNG charts and CSV tables written next
to it. The ``*_report`` modules hold one ``write_<kind>_report`` function each, and the CLI
(``leadscore report``) and ``write_all_reports`` call them. The numbers are computed in
``funnel``, ``channels`` and ``reps`` with vectorized pandas and do not depend on the locale.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from data.schema import DEFAULT_TIMEZONE

logger = logging.getLogger(__name__)

CHAMPION_MODEL_URI = "models:/lead-scorer@champion"


def write_all_reports(
    *,
    data_dir: Path,
    out_dir: Path,
    locales: Sequence[str],
    tracking_uri: str | None = None,
    routing_db_url: str | None = None,
    scores_file: Path | None = None,
    model_uri: str = CHAMPION_MODEL_URI,
    timezone: str = DEFAULT_TIMEZONE,
    font_file: Path | None = None,
) -> list[Path]:
    """Write the funnel, channels and reps reports, and the model card when ``tracking_uri`` is given.

    With ``routing_db_url`` the reps report counts the routing database's assignments (and
    ignores ``scores_file``, whose values the database already stores). Returns every file
    written: pages, charts and CSV tables.
    """
    from data.folder import read_data_dir
    from leadscore.i18n import parse_locale
    from serving.reports.channels_report import write_channels_report
    from serving.reports.fonts import discover_chart_fonts
    from serving.reports.funnel import FunnelOptions
    from serving.reports.funnel_report import write_funnel_report
    from serving.reports.model_card_report import write_model_report
    from serving.reports.model_card_source import load_card_from_mlflow
    from serving.reports.reps import RepsOptions
    from serving.reports.reps_report import write_reps_report

    chosen = [parse_locale(locale) for locale in locales]
    fonts = discover_chart_fonts(font_file)
    tables = read_data_dir(data_dir)
    paths = write_funnel_report(
        tables,
        data_dir=data_dir,
        out_dir=out_dir,
        locales=chosen,
        options=FunnelOptions(timezone=timezone),
        fonts=fonts,
    )
    paths += write_channels_report(
        tables,
        data_dir=data_dir,
        out_dir=out_dir,
        locales=chosen,
        timezone=timezone,
        scores_file=scores_file,
        fonts=fonts,
    )
    paths += write_reps_report(
        tables,
        data_dir=data_dir,
        out_dir=out_dir,
        locales=chosen,
        options=RepsOptions(timezone=timezone),
        scores_file=scores_file if routing_db_url is None else None,
        db_url=routing_db_url,
        fonts=fonts,
    )
    if tracking_uri is not None:
        with tempfile.TemporaryDirectory(prefix="leadscore-report-") as scratch:
            loaded = load_card_from_mlflow(tracking_uri, model_uri, Path(scratch))
            paths += write_model_report(
                loaded, out_dir=out_dir, locales=chosen, timezone=timezone, fonts=fonts
            )
    logger.info("wrote %d report files to %s", len(paths), out_dir)
    return paths
