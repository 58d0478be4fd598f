"""``leadscore features ...``: build point-in-time feature frames from a data folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import click
import pandas as pd

logger = logging.getLogger(__name__)


@click.group()
def features() -> None:
    """Build lead and customer-lifetime-value features as of cutoffs."""


@features.command("build")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Data folder of canonical Parquet tables.",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Output file: Parquet, or CSV when the name ends with .csv.",
)
@click.option(
    "--as-of",
    "as_of_text",
    default=None,
    help="ISO 8601 time: build features of every lead open then; without an offset it is read in "
    "--timezone [default: none, build the training spine with labels].",
)
@click.option(
    "--horizon-days",
    type=click.IntRange(min=1),
    default=None,
    help="Conversion label window, in days [default: the horizon_days setting, 90].",
)
@click.option(
    "--ltv-horizon-days",
    type=click.IntRange(min=1),
    default=None,
    help="Net revenue label window, in days [default: the ltv_horizon_days setting, 365].",
)
@click.option(
    "--timezone",
    default=None,
    help="IANA timezone of naive times [default: the timezone setting, Asia/Shanghai].",
)
@click.option(
    "--include-post-contact",
    is_flag=True,
    help="Also use custom attributes declared post_contact (known only after sales contact).",
)
@click.option(
    "--leads-per-chunk",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Leads processed together per chunk; lower it to use less memory.",
)
def build(
    data_dir: Path,
    out_path: Path,
    as_of_text: str | None,
    horizon_days: int | None,
    ltv_horizon_days: int | None,
    timezone: str | None,
    include_post_contact: bool,
    leads_per_chunk: int,
) -> None:
    """Write the feature frame of a data folder to a Parquet or CSV file."""
    from features.chunked import build_features_chunked
    from features.config import FeatureConfig
    from leadscore.settings import load_settings

    settings = load_settings(horizon_days=horizon_days, ltv_horizon_days=ltv_horizon_days, timezone=timezone)
    config = FeatureConfig(
        horizon_days=settings.horizon_days,
        ltv_horizon_days=settings.ltv_horizon_days,
        include_post_contact=include_post_contact,
        timezone=settings.timezone,
    )
    as_of = parse_as_of(as_of_text, settings.timezone) if as_of_text is not None else None
    started = time.perf_counter()
    frames = build_features_chunked(data_dir, config, as_of=as_of, leads_per_chunk=leads_per_chunk)
    rows = write_frames(frames, out_path)
    elapsed = time.perf_counter() - started
    mode = f"open leads as of {as_of.isoformat()}" if as_of is not None else "training spine with labels"
    click.echo(f"wrote {rows} rows ({mode}) to {out_path} in {elapsed:.1f} s", err=True)


def parse_as_of(text: str, timezone: str) -> pd.Timestamp:
    """Return an ISO 8601 time as a UTC timestamp; text without an offset is read in ``timezone``."""
    from leadscore.cli.times import parse_option_time

    return parse_option_time(text, timezone, option="--as-of")


def write_frames(frames: Iterable[pd.DataFrame], path: Path) -> int:
    """Write frames one after another to Parquet (or CSV for a .csv name); return the row count.

    The file appears only when complete: rows go to a temporary file that is then renamed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    as_csv = path.suffix.lower() == ".csv"
    rows = 0
    first = True
    writer: pq.ParquetWriter | None = None
    try:
        for frame in frames:
            if as_csv:
                frame.to_csv(temporary, mode="w" if first else "a", header=first, index=False)
            else:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(temporary, table.schema)
                writer.write_table(table.cast(writer.schema))
            rows += len(frame)
            first = False
        if writer is not None:
            writer.close()
            writer = None
        temporary.replace(path)
    finally:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
    logger.info("wrote %d feature rows to %s", rows, path)
    return rows
