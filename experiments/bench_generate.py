"""Benchmark of ``leadscore data generate``: wall time and peak memory against the number of leads.

Each measurement runs in a fresh Python subprocess, so peak resident memory (``ru_maxrss``
of that process) belongs to one run only. The subprocess records its resident memory after
importing the generator (the import floor) and then generates the history. Then it times a
baseline in the same process: pyarrow writes as many rows of random numbers as the five
tables hold together to one Parquet file, chunk by chunk. The ratio of generator time to
baseline time compares across machines. Peak memory minus the import floor shows whether
memory grows with the number of leads at a fixed chunk size.

Run from the repository root:
    .venv/bin/python -m experiments.bench_generate --out experiments/results/generate.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUNS: tuple[tuple[int, int], ...] = (
    (10_000, 10_000),
    (100_000, 10_000),
    (1_000_000, 10_000),
    (1_000_000, 50_000),
)
BASELINE_COLUMNS = 7

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from data.synthetic import GeneratorConfig, generate_history

leads, chunk_size, seed, columns = (int(sys.argv[position]) for position in (1, 2, 3, 5))
out = Path(sys.argv[4])
floor = psutil.Process().memory_info().rss
started = time.perf_counter()
summary = generate_history(GeneratorConfig(leads=leads, seed=seed, chunk_size=chunk_size), out / "history")
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

rows = summary.leads + summary.activities + summary.stage_changes + summary.orders
rows_per_chunk = max(1, rows * chunk_size // max(leads, 1))
generator = np.random.default_rng(seed)
schema = pa.schema([pa.field(f"c{i}", pa.float64()) for i in range(columns)])
started = time.perf_counter()
with pq.ParquetWriter(out / "baseline.parquet", schema) as writer:
    written = 0
    while written < rows:
        size = min(rows_per_chunk, rows - written)
        block = generator.random((columns, size))
        writer.write_table(pa.Table.from_arrays(list(block), schema=schema))
        written += size
baseline_seconds = time.perf_counter() - started
print(json.dumps({
    "leads": leads, "chunk_size": chunk_size, "rows": rows, "activities": summary.activities,
    "seconds": seconds, "baseline_seconds": baseline_seconds, "peak_bytes": peak, "floor_bytes": floor,
    "conversion_rate": summary.conversion_rate, "activities_per_lead": summary.activities_per_lead,
}))
"""


@dataclass
class Measurement:
    """One subprocess run: sizes, times and memory."""

    leads: int
    chunk_size: int
    rows: int
    activities: int
    seconds: float
    baseline_seconds: float
    peak_bytes: int
    floor_bytes: int
    conversion_rate: float
    activities_per_lead: float


def measure(leads: int, chunk_size: int, seed: int, scratch: Path) -> Measurement:
    """Run one generation in a subprocess and return its measurement."""
    out = scratch / f"run-{leads}-{chunk_size}"
    out.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(leads),
            str(chunk_size),
            str(seed),
            str(out),
            str(BASELINE_COLUMNS),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    return Measurement(**json.loads(completed.stdout.strip().splitlines()[-1]))


def _mebibytes(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def render(measurements: list[Measurement], command: str) -> str:
    """Return the results page as Markdown."""
    import numpy
    import pandas
    import pyarrow

    lines = [
        "# Synthetic history generation: time and peak memory",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}. "
        "Other processes shared the machine, so absolute times are indicative; the ratio to the "
        "baseline, measured in the same process right after, is the comparable number.",
        "",
        "Each row is one fresh subprocess. *Peak RSS* is the process's maximum resident memory;",
        "*import floor* its resident memory after importing the generator; *baseline* writes the",
        f"same number of rows of {BASELINE_COLUMNS} random float columns to Parquet, in chunks of",
        "the same size.",
        "",
        "| leads | chunk size | rows written | activities / lead | won by end | generate s | leads / s "
        "| baseline s | ratio | peak RSS MiB | import floor MiB | peak - floor MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in measurements:
        lines.append(
            f"| {item.leads:,} | {item.chunk_size:,} | {item.rows:,} | {item.activities_per_lead:.1f} "
            f"| {100 * item.conversion_rate:.1f} % | {item.seconds:.1f} | {item.leads / item.seconds:,.0f} "
            f"| {item.baseline_seconds:.1f} | {item.seconds / item.baseline_seconds:.1f} "
            f"| {_mebibytes(item.peak_bytes)} | {_mebibytes(item.floor_bytes)} "
            f"| {_mebibytes(item.peak_bytes - item.floor_bytes)} |"
        )
    lines += ["", *_findings(measurements), ""]
    return "\n".join(lines)


def _findings(measurements: list[Measurement]) -> list[str]:
    by_chunk: dict[int, list[Measurement]] = {}
    for item in measurements:
        by_chunk.setdefault(item.chunk_size, []).append(item)
    findings = ["## Findings", ""]
    for chunk_size, items in sorted(by_chunk.items()):
        ordered = sorted(items, key=lambda item: item.leads)
        for smaller, larger in itertools.pairwise(ordered):
            above_floor = [run.peak_bytes - run.floor_bytes for run in (smaller, larger)]
            findings.append(
                f"- Chunks of {chunk_size:,}: from {smaller.leads:,} to {larger.leads:,} leads "
                f"({larger.leads // smaller.leads}x), peak memory above the import floor goes from "
                f"{_mebibytes(above_floor[0])} to {_mebibytes(above_floor[1])} MiB and time from "
                f"{smaller.seconds:.1f} to {larger.seconds:.1f} s."
            )
    largest_run = max(measurements, key=lambda item: (item.leads, item.chunk_size))
    findings.append(
        f"- {largest_run.leads:,} leads in chunks of {largest_run.chunk_size:,}: "
        f"{largest_run.seconds:.0f} s, {largest_run.rows:,} rows, "
        f"peak RSS {_mebibytes(largest_run.peak_bytes)} MiB."
    )
    findings.append(
        "- Peak memory is set mainly by the chunk size: one chunk's arrays are held at a time and "
        "each table is appended to its Parquet file per chunk. The smaller growth with the number "
        "of leads was not broken down; likely sources are the allocator, the row-group metadata "
        "that each Parquet writer keeps until it closes, and the team (one rep per 250 leads)."
    )
    findings.append(
        "- The machine was shared with other jobs during the run, so single timings can be off by a "
        "factor of two or more; compare ratios and rerun before drawing conclusions from time alone."
    )
    return findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("experiments/results/generate.md"), help="Markdown file."
    )
    parser.add_argument("--seed", type=int, default=1, help="Generator seed.")
    parser.add_argument(
        "--runs",
        default=",".join(f"{leads}:{chunk}" for leads, chunk in DEFAULT_RUNS),
        help="Comma-separated LEADS:CHUNK_SIZE pairs to measure.",
    )
    arguments = parser.parse_args()
    runs = [tuple(int(part) for part in item.split(":")) for item in arguments.runs.split(",")]
    measurements = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        for leads, chunk_size in runs:
            started = time.perf_counter()
            measurements.append(measure(leads, chunk_size, arguments.seed, Path(scratch)))
            print(
                f"{leads:,} leads, chunks of {chunk_size:,}: {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
    command = "python -m experiments.bench_generate " + " ".join(sys.argv[1:])
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(render(measurements, command.strip()), "utf-8")
    print(f"wrote {arguments.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
