"""Benchmark the chunked feature pipeline against a bare pandas groupby over the same events.

Usage::

    leadscore data generate --leads 100000 --seed 7 --out /tmp/syn100k
    python experiments/bench_features.py --data /tmp/syn100k [--leads-per-chunk 100000]

Four phases, each in a fresh child process so that its peak resident memory (ru_maxrss)
and CPU time (user + system) are its own. CPU time is the figure to compare when other jobs
share the machine, because wall time then depends on their load:

* ``pipeline/scoring``: ``build_features_chunked`` with ``--as-of`` (one cutoff per open lead).
* ``floor/scoring``: pandas reads all activities and counts them per lead, window, type and
  direction with one groupby: only the 33 window counts, no other feature.
* ``pipeline/training`` and ``floor/training``: the same for the training spine (several
  cutoffs per lead). The floor merges the spine with activities on lead_id, keeps
  occurred_at < cutoff and groups by (lead_id, cutoff).

The floor is the speed a hand-written pandas job reaches for a subset of the features. It
loads every activity at once and has no memory bound. The pipeline's window counts are
checked against the floor's on every row. Ratios compare phases of one run on one machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.schema import ACTIVITY_TYPES, DIRECTIONS
from features.catalog import window_feature_name
from features.chunked import build_features_chunked
from features.config import FeatureConfig

GROUPS: tuple[str, ...] = (*DIRECTIONS, *ACTIVITY_TYPES)


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(
    data_dir: Path, as_of: pd.Timestamp | None, leads_per_chunk: int, out: Path
) -> dict[str, Any]:
    """Build features chunk by chunk, write their window counts to ``out``, and time it."""
    config = FeatureConfig()
    keep = ["lead_id", "cutoff", *_count_columns(config)]
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    rows = 0
    feature_count = 0
    writer: pq.ParquetWriter | None = None
    for frame in build_features_chunked(data_dir, config, as_of=as_of, leads_per_chunk=leads_per_chunk):
        rows += len(frame)
        feature_count = frame.shape[1]
        table = pa.Table.from_pandas(frame[keep], preserve_index=False)
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table.cast(writer.schema))
    if writer is not None:
        writer.close()
    return _measured(rows, feature_count, started, cpu_started)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measured(rows: int, columns: int, started: float, cpu_started: float) -> dict[str, Any]:
    return {
        "rows": rows,
        "columns": columns,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "peak_mib": _peak_rss_mib(),
    }


def run_floor(data_dir: Path, spine_path: Path, out: Path) -> dict[str, Any]:
    """Count activities per (lead, cutoff), window, type and direction with plain pandas."""
    config = FeatureConfig()
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    spine = pd.read_parquet(spine_path, columns=["lead_id", "cutoff"])
    activities = pd.read_parquet(
        data_dir / "activities.parquet", columns=["lead_id", "occurred_at", "type", "direction"]
    )
    joined = spine.merge(activities, on="lead_id", how="inner")
    joined = joined[joined["occurred_at"] < joined["cutoff"]]
    age = joined["cutoff"] - joined["occurred_at"]
    pieces: list[pd.Series | pd.DataFrame] = []
    for days in config.windows_days:
        recent = joined[age <= pd.Timedelta(days=days)]
        total = recent.groupby(["lead_id", "cutoff"]).size().rename(window_feature_name(None, days))
        by_direction = recent.groupby(["lead_id", "cutoff", "direction"]).size().unstack(fill_value=0)
        by_type = recent.groupby(["lead_id", "cutoff", "type"]).size().unstack(fill_value=0)
        by_group = pd.concat([by_direction, by_type], axis=1)
        by_group.columns = [window_feature_name(str(group), days) for group in by_group.columns]
        pieces.extend([total, by_group])
    counts = pd.concat(pieces, axis=1)
    result = spine.merge(counts.reset_index(), on=["lead_id", "cutoff"], how="left")
    measured = _measured(len(result), counts.shape[1], started, cpu_started)
    result.to_parquet(out, index=False)
    return measured


def _count_columns(config: FeatureConfig) -> list[str]:
    return [window_feature_name(group, days) for days in config.windows_days for group in (None, *GROUPS)]


def _in_child(function: Any, *arguments: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(function, arguments)
    return result


def _check_counts(pipeline_path: Path, floor_path: Path) -> int:
    """Compare every window count of the two outputs; return the number of rows compared."""
    pipeline = pd.read_parquet(pipeline_path)
    floor = pd.read_parquet(floor_path)
    merged = pipeline.merge(
        floor, on=["lead_id", "cutoff"], how="outer", suffixes=("", "_floor"), indicator=True
    )
    if not (merged["_merge"] == "both").all():
        raise AssertionError("pipeline and floor produced different (lead_id, cutoff) rows")
    for column in _count_columns(FeatureConfig()):
        floor_values = merged.get(column + "_floor", pd.Series(0, index=merged.index)).fillna(0).to_numpy()
        if not np.array_equal(merged[column].to_numpy(), floor_values.astype(np.float64)):
            raise AssertionError(f"window count {column} differs between pipeline and floor")
    return len(merged)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="Data folder made by 'leadscore data generate'."
    )
    parser.add_argument(
        "--as-of", default="2025-01-01T00:00:00+08:00", help="Scoring time (ISO 8601 with offset)."
    )
    parser.add_argument("--leads-per-chunk", type=int, default=100_000, help="Leads per pipeline chunk.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-features"), help="Folder for outputs.")
    arguments = parser.parse_args()
    arguments.work.mkdir(parents=True, exist_ok=True)
    as_of = pd.Timestamp(arguments.as_of).tz_convert("UTC")

    leads = len(pd.read_parquet(arguments.data / "leads.parquet", columns=["lead_id"]))
    activities = pd.read_parquet(arguments.data / "activities.parquet", columns=["lead_id"]).shape[0]
    print(f"data: {arguments.data} ({leads:,} leads, {activities:,} activities)")
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print()
    print("| phase | rows | columns | wall s | CPU s | rows per CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results: dict[str, dict[str, Any]] = {}
    for mode, moment in (("scoring", as_of), ("training", None)):
        pipeline_out = arguments.work / f"pipeline-{mode}.parquet"
        floor_out = arguments.work / f"floor-{mode}.parquet"
        pipeline = _in_child(run_pipeline, arguments.data, moment, arguments.leads_per_chunk, pipeline_out)
        floor = _in_child(run_floor, arguments.data, pipeline_out, floor_out)
        checked = _check_counts(pipeline_out, floor_out)
        results[mode] = {"pipeline": pipeline, "floor": floor, "checked": checked}
        for name, result in (("pipeline", pipeline), ("floor", floor)):
            rate = result["rows"] / result["cpu_seconds"]
            print(
                f"| {name}/{mode} | {result['rows']:,} | {result['columns']} | {result['seconds']:.1f} "
                f"| {result['cpu_seconds']:.1f} | {rate:,.0f} | {result['peak_mib']:,.0f} |"
            )
    print()
    for mode, result in results.items():
        ratio = result["pipeline"]["cpu_seconds"] / result["floor"]["cpu_seconds"]
        memory = result["pipeline"]["peak_mib"] / result["floor"]["peak_mib"]
        print(
            f"{mode}: pipeline CPU time / floor CPU time = {ratio:.2f}, peak memory ratio = {memory:.2f}; "
            f"window counts equal on all {result['checked']:,} rows"
        )


if __name__ == "__main__":
    main()
