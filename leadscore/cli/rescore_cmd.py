"""``leadscore rescore``: score every open lead of a data folder as of a time, resumable, local or on Dask."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from leadscore.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


def parse_as_of(text: str, timezone: str) -> pd.Timestamp:
    """Parse ``--as-of``: ISO 8601, read in ``timezone`` when it has no offset; returns a UTC pd.Timestamp."""
    from leadscore.cli.times import parse_option_time

    return parse_option_time(text, timezone, option="--as-of")


@click.command()
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Data folder of canonical Parquet tables.",
)
@click.option(
    "--as-of",
    "as_of_text",
    required=True,
    help="Scoring time, ISO 8601; without an offset it is read in the timezone setting "
    "(Asia/Shanghai unless set). Leads open at that time are scored from events before it.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Scores file, .parquet or .csv, outside --data. For out/scores.parquet, scores.rejects.parquet, "
    "scores.parquet.drift.json, scores.parquet.drift.md, scores.parquet.drift.zh-CN.md and "
    "scores.parquet.summary.json go beside it. Two runs cannot write the same --out at once.",
)
@click.option(
    "--route", is_flag=True, help="Route unassigned leads (no owner_rep_id) through the routing store."
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Score chunks in this process or on a Dask cluster.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address PROTOCOL://HOST:PORT such as tcp://10.0.0.5:8786 "
    "[default: start a LocalCluster on 127.0.0.1].",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes of the LocalCluster started when --scheduler is not given.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Leads per chunk (about; chunks are hash buckets of lead_id). Sets memory and checkpoint size.",
)
@click.option(
    "--model",
    "model_uri",
    default=None,
    help="models:/lead-scorer@ALIAS, models:/lead-scorer/VERSION, or a bundle or MLflow model folder "
    "[default: models:/lead-scorer@champion].",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking and registry URI for models:/ URIs, such as sqlite:///FILE or "
    "postgresql+psycopg://USER@HOST/DB [default: the tracking_uri setting, else "
    "sqlite:///WORK_DIR/mlflow.db].",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder whose rescore/ subfolder keeps run folders (checkpoints) "
    "[default: the work_dir setting, else .leadscore].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings TOML file [default: ./leadscore.toml when present, else built-in settings].",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    help="Routing database URL for --route [default: the db_url setting, else sqlite:///WORK_DIR/routing.db].",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Routing policy TOML file for --route [default: the policy_file setting, else the shipped policy].",
)
@click.option(
    "--locale",
    type=click.Choice(["en", "zh-CN"]),
    default=None,
    help="Language of reason and reject texts [default: the locale setting, en].",
)
@click.option(
    "--top-reasons",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Reasons per direction per lead; 0 skips SHAP reasons, which is several times faster.",
)
@click.option(
    "--excel", is_flag=True, help="Write the CSV in UTF-8 with a byte order mark so Excel reads Chinese."
)
@click.option(
    "--header-locale",
    type=click.Choice(["en", "zh-CN"]),
    default="en",
    show_default=True,
    help="Language of the column headers of the scores and rejects files.",
)
@click.option(
    "--drift-threshold",
    type=click.FloatRange(min=0.0, min_open=True),
    default=0.2,
    show_default=True,
    help="Population stability index (PSI, unitless) above which a score or feature is reported as drifted.",
)
@click.option(
    "--keep-checkpoints",
    is_flag=True,
    help="Keep the run folder's partitions and chunk files after success [default: off, delete them].",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "log", "off"]),
    default="auto",
    show_default=True,
    help="Progress display: auto shows a bar on a terminal and otherwise a log line at most every "
    "10 seconds; bar, log or off force one.",
)
def rescore(
    data_dir: Path,
    as_of_text: str,
    out: Path,
    route: bool,
    engine: str,
    scheduler: str | None,
    dask_workers: int,
    chunk_size: int,
    model_uri: str | None,
    tracking_uri: str | None,
    work_dir: Path | None,
    config_file: Path | None,
    db_url: str | None,
    policy_file: Path | None,
    locale: str | None,
    top_reasons: int,
    excel: bool,
    header_locale: str,
    drift_threshold: float,
    keep_checkpoints: bool,
    progress: str,
) -> None:
    """Score every open lead as of a time into Parquet or CSV, with rejects and a drift report.

    Progress is checkpointed per chunk in a run folder keyed by the arguments: after a crash
    or kill, run the same command again and it continues without losing or repeating a lead.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from leadscore.settings import load_settings
    from serving.rescore import RescoreOptions
    from serving.rescore import rescore as run_rescore

    if scheduler is not None and engine != "dask":
        raise ConfigError("--scheduler is for the Dask engine; add --engine dask")
    settings = load_settings(
        config_file, work_dir=work_dir, tracking_uri=tracking_uri, db_url=db_url, policy_file=policy_file
    )
    options = RescoreOptions(
        data_dir=data_dir,
        as_of=parse_as_of(as_of_text, settings.timezone),
        out=out,
        model_uri=model_uri,
        tracking_uri=settings.resolved_tracking_uri(),
        work_dir=settings.work_dir,
        engine=engine,  # type: ignore[arg-type]
        scheduler=scheduler,
        dask_workers=dask_workers,
        chunk_size=chunk_size,
        locale=locale or settings.locale,  # type: ignore[arg-type]
        top_reasons=top_reasons,
        route=route,
        db_url=settings.resolved_db_url() if route else None,
        policy_file=settings.policy_file,
        excel=excel,
        header_locale=header_locale,  # type: ignore[arg-type]
        drift_threshold=drift_threshold,
        keep_checkpoints=keep_checkpoints,
        progress=progress,  # type: ignore[arg-type]
    )
    with logging_redirect_tqdm():
        summary = run_rescore(options)

    if summary.replayed:
        click.echo(f"run {summary.run_key[:20]} was already complete; outputs unchanged")
    click.echo(
        f"{summary.leads_read:,} leads read: {summary.scored:,} scored, {summary.rejected:,} not scored "
        f"in {summary.chunks} chunk(s) ({summary.chunks_resumed} resumed) with model {summary.model_version}"
    )
    for reason, count in summary.rejects.items():
        click.echo(f"  not scored, {reason}: {count:,}")
    if summary.routing is not None:
        click.echo(
            "routing: " + ", ".join(f"{status} {count:,}" for status, count in summary.routing.items())
        )
    threshold = summary.drift_threshold
    if summary.drifted:
        click.echo(f"drift: {len(summary.drifted)} above PSI {threshold:g}: {', '.join(summary.drifted)}")
    else:
        click.echo(f"drift: nothing above PSI {threshold:g} (max {summary.max_psi})")
    click.echo(
        f"wrote {summary.outputs['scores']} and the files beside it; summary in {summary.outputs['summary']}"
    )
