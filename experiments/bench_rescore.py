"""Benchmark batch rescoring: throughput against raw LightGBM predict, peak memory, the Dask engine.

Usage::

    python experiments/bench_rescore.py --work /tmp/bench-rescore --leads 100000 2000000 \\
        --out experiments/results/rescore-benchmark.md

Steps:

1. Generate a training history (``--train-leads``, 36 months) with ``data.synthetic`` and fit a
   scorer with ``training.train.fit_scorer`` (training steps 1 to 6, without MLflow); save the bundle.
2. For each ``--leads`` size, generate a history (18 months, the ``leadscore data generate``
   defaults) and rescore it as of its last day, each phase in a fresh child process so that its
   peak resident memory (ru_maxrss) is its own:

   * ``local``: ``serving.rescore.rescore`` on the local engine with 3 reasons per direction,
     from raw events to the Parquet output, including partitioning, drift and export;
   * ``local, no reasons``: the same with ``top_reasons=0`` (no SHAP), first size only;
   * ``dask``: the Dask engine on a 2-worker LocalCluster of processes, first size only;
   * ``baseline``: the feature matrix of the same open leads is built first (not timed), then
     only the conversion booster's ``predict`` on it is timed (best of 3). On its first
     ``SHAP_ROWS`` rows, ``predict(pred_contrib=True)`` is timed against ``predict`` too: the
     SHAP values behind the reasons cost that much more per row than the baseline.

The ratio compares open leads scored per second with rows predicted per second by the
baseline, both measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
TRAIN_SEED = 5
SCORE_SEED = 9
CHUNK_SIZE = 20_000


def _peak_rss_mib() -> float:
    """Return this process's peak resident memory (VmHWM) in MiB.

    ru_maxrss is not used: Linux carries it across fork and exec, so a child started by a
    large parent reports the parent's size. VmHWM belongs to the current address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


PROFILED = (
    "serving/rescore/chunks.py:partition_inputs",
    "serving/rescore/chunks.py:read_chunk_tables",
    "training/scorer.py:score_tables_with_matrix",
    "features/pipeline.py:build_features",
    "training/reasons.py:shap_contributions",
    "training/reasons.py:reasons_for_rows",
    "training/boosting.py:predict_booster",
    "serving/rescore/run.py:_finish",
)
SHAP_ROWS = 20_000
"""Rows on which ``pred_contrib`` is timed against ``predict`` (the cost per row does not depend on it)."""


def phase_profile(data_dir: Path, bundle_dir: Path, work: Path) -> dict[str, Any]:
    """Rescore under cProfile and return the cumulative seconds of the main steps."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result = phase_rescore(data_dir, bundle_dir, work / "profiled", "local", 3)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    steps: dict[str, float] = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        for name in PROFILED:
            path, function_name = name.split(":")
            if filename.endswith(path) and function == function_name:
                steps[name] = steps.get(name, 0.0) + cumulative
    return {**result, "steps": steps}


class ChildMemorySampler:
    """Samples the resident memory of this process's children (Dask workers) every 0.2 s."""

    def __init__(self) -> None:
        import threading

        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            for child in process.children(recursive=True):
                try:
                    self.peak_mib = max(self.peak_mib, child.memory_info().rss / 2**20)
                except psutil.Error:
                    continue
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def _generate(out_dir: Path, leads: int, seed: int, months: int) -> None:
    from data.synthetic.config import load_generator_config
    from data.synthetic.generate import generate_history

    if (out_dir / "leads.parquet").exists():
        return
    generate_history(load_generator_config(None, leads=leads, seed=seed, months=months), out_dir)


def _as_of(data_dir: Path) -> pd.Timestamp:
    """Return the day of the latest lead, from the Parquet statistics so no column is loaded."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(data_dir / "leads.parquet").metadata
    column = metadata.schema.to_arrow_schema().get_field_index("created_at")
    latest = max(
        metadata.row_group(group).column(column).statistics.max for group in range(metadata.num_row_groups)
    )
    return pd.Timestamp(latest).tz_convert("UTC").floor("D")


def train_bundle(work: Path, train_leads: int) -> Path:
    """Fit a scorer on a generated history and save its bundle; reuse it when it exists."""
    from data.folder import read_data_dir
    from features.config import FeatureConfig
    from training.train import TrainOptions, _Stopwatch, fit_scorer

    bundle_dir = work / "bundle"
    if (bundle_dir / "bundle.json").exists():
        return bundle_dir
    data_dir = work / f"train-{train_leads}"
    _generate(data_dir, train_leads, TRAIN_SEED, 36)
    options = TrainOptions(
        data_dir=data_dir, trials=0, seed=11, feature_config=FeatureConfig(ltv_horizon_days=365)
    )
    fitted = fit_scorer(options, read_data_dir(data_dir), pd.Timestamp.now(tz="UTC"), _Stopwatch())
    fitted.bundle.save(bundle_dir)
    return bundle_dir


# --- phases (each runs in its own child process) ------------------------------------------------------


def phase_rescore(
    data_dir: Path, bundle_dir: Path, work: Path, engine: str, top_reasons: int
) -> dict[str, Any]:
    import shutil

    from serving.rescore import RescoreOptions, rescore

    out = work / f"out-{data_dir.name}-{engine}-{top_reasons}" / "scores.parquet"
    runs = work / f"runs-{engine}-{top_reasons}"
    # A run left by an earlier benchmark would resume as finished and time nothing: start afresh.
    for leftover in (out.parent, runs):
        shutil.rmtree(leftover, ignore_errors=True)
    options = RescoreOptions(
        data_dir=data_dir,
        as_of=_as_of(data_dir),
        out=out,
        model_uri=str(bundle_dir),
        work_dir=runs,
        engine=engine,  # type: ignore[arg-type]
        dask_workers=2,
        chunk_size=CHUNK_SIZE,
        top_reasons=top_reasons,
        progress="log",
        progress_interval=60,
    )
    floor = _current_rss_mib()
    sampler = ChildMemorySampler()
    started = time.perf_counter()
    summary = rescore(options)
    seconds = time.perf_counter() - started
    children_peak = sampler.stop()
    return {
        "leads": summary.leads_read,
        "scored": summary.scored,
        "chunks": summary.chunks,
        "seconds": seconds,
        "peak_mib": _peak_rss_mib(),
        "children_peak_mib": children_peak,
        "floor_mib": floor,
        "drifted": len(summary.drifted),
    }


def phase_baseline(data_dir: Path, bundle_dir: Path) -> dict[str, Any]:
    import numpy as np

    from features.chunked import build_features_chunked
    from training.boosting import as_lightgbm_input
    from training.bundle import ScorerBundle

    bundle = ScorerBundle.load(bundle_dir)
    frames = build_features_chunked(
        data_dir, bundle.feature_config, as_of=_as_of(data_dir), leads_per_chunk=200_000
    )
    features = pd.concat(list(frames), ignore_index=True)
    model_matrix = as_lightgbm_input(bundle.feature_spec.transform(features).matrix)
    # The prebuilt matrix is what LightGBM predicts from internally: float64, category codes as numbers.
    columns = {
        name: column.cat.codes.astype(np.float64).where(column.cat.codes >= 0)
        if isinstance(column.dtype, pd.CategoricalDtype)
        else column.astype(np.float64)
        for name, column in model_matrix.items()
    }
    matrix = pd.DataFrame(columns).to_numpy(dtype=np.float64)
    booster = bundle.conversion.booster
    iteration = booster.best_iteration if booster.best_iteration > 0 else None
    head = slice(0, min(1000, len(matrix)))
    if not np.allclose(
        booster.predict(matrix[head], num_iteration=iteration),
        booster.predict(model_matrix.iloc[head], num_iteration=iteration),
    ):
        raise AssertionError("the float matrix predicts differently from the model matrix")
    sample = matrix[:SHAP_ROWS]
    boosters = [booster, *(bundle.ltv_model.boosters.values() if bundle.ltv_model is not None else ())]
    return {
        "rows": len(matrix),
        "seconds": _best_seconds(lambda: booster.predict(matrix, num_iteration=iteration), 3),
        "all_boosters_seconds": _best_seconds(lambda: _predict_each(boosters, matrix), 3),
        "all_boosters_trees": sum(_used_trees(each) for each in boosters),
        "read_seconds": _best_seconds(lambda: _read_raw_tables(data_dir), 3),
        "features": matrix.shape[1],
        "trees": booster.num_trees(),
        "threads": _booster_threads(booster),
        "shap_rows": len(sample),
        "shap_predict_seconds": _best_seconds(lambda: booster.predict(sample, num_iteration=iteration), 3),
        "shap_seconds": _best_seconds(
            lambda: booster.predict(sample, num_iteration=iteration, pred_contrib=True), 2
        ),
    }


def _used_trees(booster: Any) -> int:
    """Return the trees ``predict`` uses: those up to the best iteration when training stopped early."""
    per_iteration = booster.num_model_per_iteration()
    if booster.best_iteration > 0:
        return int(booster.best_iteration * per_iteration)
    return int(booster.num_trees())


def _predict_each(boosters: list[Any], matrix: Any) -> None:
    """Predict ``matrix`` with every booster, each at its best iteration: the model work of a score."""
    for booster in boosters:
        booster.predict(matrix, num_iteration=booster.best_iteration if booster.best_iteration > 0 else None)


def _read_raw_tables(data_dir: Path) -> None:
    """Read every table of the history folder with pyarrow, all columns: the least any rescoring reads."""
    import pyarrow.parquet as pq

    for path in sorted(data_dir.glob("*.parquet")):
        pq.read_table(path)


def _best_seconds(call: Any, repeats: int) -> float:
    """Return the shortest wall time of ``repeats`` calls."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return min(timings)


def _booster_threads(booster: Any) -> int:
    """Return the booster's num_threads parameter (0 means OpenMP's default, one per core)."""
    return int(booster.params.get("num_threads", 0) or 0)


def _in_child(phase: str, **arguments: Any) -> dict[str, Any]:
    """Run ``phase`` in a fresh interpreter and return its JSON result."""
    result_file = Path(arguments["work"]) / f"result-{phase}-{os.getpid()}-{time.monotonic_ns()}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--result", str(result_file)]
    for key, value in arguments.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    subprocess.run(command, cwd=REPOSITORY, env=environment, check=True)
    result: dict[str, Any] = json.loads(result_file.read_text("utf-8"))
    result_file.unlink()
    return result


# --- report -------------------------------------------------------------------------------------------


def _row(label: str, size: int, result: dict[str, Any], baseline: dict[str, Any]) -> str:
    scored_rate = result["scored"] / result["seconds"]
    baseline_rate = baseline["rows"] / baseline["seconds"]
    return (
        f"| {label} | {size:,} | {result['scored']:,} | {result['chunks']} | {result['seconds']:.1f} | "
        f"{result['leads'] / result['seconds']:,.0f} | {scored_rate:,.0f} | {baseline_rate:,.0f} | "
        f"{scored_rate / baseline_rate:.4f} | {result['peak_mib']:,.0f} | "
        f"{result['children_peak_mib']:,.0f} |"
    )


def _floor_sentence(baseline: dict[str, Any]) -> str:
    """Describe two costs that any rescoring from raw events pays, as multiples of the baseline."""
    model_work = baseline["all_boosters_seconds"] / baseline["seconds"]
    reading = baseline["read_seconds"] / baseline["seconds"]
    return (
        f"Floors (first size, same process as its baseline): predicting the same {baseline['rows']:,} rows "
        f"with every booster a score needs (conversion and LTV, {baseline['all_boosters_trees']} trees "
        f"against the baseline's {baseline['trees']}) took {baseline['all_boosters_seconds']:.3f} s, "
        f"{model_work:.1f} times the baseline's {baseline['seconds']:.3f} s; reading the raw Parquet "
        f"tables of the history with pyarrow (warm cache, all columns) took "
        f"{baseline['read_seconds']:.3f} s, {reading:.1f} times the baseline. With free features, "
        "no reasons and no output, rescoring "
        f"would still reach at most {1 / (model_work + reading):.2f} of the baseline."
    )


def render(
    command: str,
    rows: list[str],
    memory: list[tuple[int, float, float]],
    steps: list[tuple[str, float, float]],
    load: tuple[float, float, float],
    shap: dict[str, Any] | None = None,
) -> str:
    lines = [
        "# Batch rescoring: throughput and peak memory",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}. "
        f"Load average when the run started: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1, 5, 15 min), "
        "so other jobs shared the CPUs and absolute times are indicative only.",
        "",
        "Each row is one child process. *leads/s* counts every lead of the folder (open or not), "
        "*scored/s* the open leads scored; *baseline/s* is LightGBM `predict` of the conversion "
        "booster on the prebuilt feature matrix of the same open leads; *ratio* is scored/s over baseline/s. "
        "*Peak MiB* is the rescoring process's peak resident memory (VmHWM); *children MiB* the "
        "largest resident memory of one child process (a Dask worker), sampled every 0.2 s.",
        "",
        "| phase | leads | scored | chunks | seconds | leads/s | scored/s | baseline/s | ratio | peak MiB | "
        "children MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    if shap is not None:
        predict_rate = shap["shap_rows"] / shap["shap_predict_seconds"]
        contrib_rate = shap["shap_rows"] / shap["shap_seconds"]
        lines += [
            f"SHAP ceiling (first size, same process as its baseline): on the first {shap['shap_rows']:,} "
            f"rows of the baseline matrix, `predict(pred_contrib=True)` ran at {contrib_rate:,.0f} rows/s "
            f"and `predict` at {predict_rate:,.0f} rows/s, a ratio of {contrib_rate / predict_rate:.4f}. "
            f"The booster has {shap['trees']} trees and {shap['features']} features and asks for "
            f"{shap['threads'] or 'all'} threads.",
            "",
        ]
    if shap is not None:
        lines += [_floor_sentence(shap), ""]
    if len(memory) >= 2:
        (small, small_peak, small_floor), (large, large_peak, large_floor) = memory[0], memory[-1]
        change = 100.0 * (large_peak - small_peak) / small_peak
        lines += [
            f"Peak memory of the local engine: {small_peak:,.0f} MiB at {small:,} leads and "
            f"{large_peak:,.0f} MiB at {large:,} leads ({change:+.1f} %; target within ±20 %). "
            f"Resident memory after imports, before the run: {small_floor:,.0f} and {large_floor:,.0f} MiB.",
            "",
        ]
    if steps:
        total = steps[0][2]
        lines += [
            f"Where the time goes (local engine, 3 reasons, first size, under cProfile: {total:.1f} s "
            "in all. Steps overlap: for example score_tables_with_matrix contains the SHAP and reason "
            "steps):",
            "",
            "| step | seconds | share |",
            "|---|---:|---:|",
            *(f"| `{name}` | {seconds:.1f} | {100 * seconds / total:.0f} % |" for name, seconds, _ in steps),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="Folder for histories, the bundle and runs.")
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000], help="History sizes to rescore.")
    parser.add_argument("--train-leads", type=int, default=20_000, help="Leads of the training history.")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report to write.")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--top-reasons", type=int, default=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("features", "training", "distributed", "serving.rescore.chunk_scoring"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if arguments.phase is not None:
        run_phase(arguments)
    else:
        run_benchmark(arguments)


def run_phase(arguments: argparse.Namespace) -> None:
    """Run one phase in this child process and write its JSON result."""
    if arguments.phase == "rescore":
        result = phase_rescore(
            arguments.data, arguments.bundle, arguments.work, arguments.engine, arguments.top_reasons
        )
    elif arguments.phase == "profile":
        result = phase_profile(arguments.data, arguments.bundle, arguments.work)
    else:
        result = phase_baseline(arguments.data, arguments.bundle)
    arguments.result.write_text(json.dumps(result), "utf-8")


def run_benchmark(arguments: argparse.Namespace) -> None:
    """Train the bundle, run every phase for every size in child processes and write the report."""
    load = os.getloadavg()
    work: Path = arguments.work
    work.mkdir(parents=True, exist_ok=True)
    bundle_dir = train_bundle(work, arguments.train_leads)
    rows: list[str] = []
    memory: list[tuple[int, float, float]] = []
    steps: list[tuple[str, float, float]] = []
    shap: dict[str, Any] | None = None
    for position, size in enumerate(arguments.leads):
        data_dir = work / f"history-{size}"
        _generate(data_dir, size, SCORE_SEED, 18)
        common = {"work": work, "data": data_dir, "bundle": bundle_dir}
        baseline = _in_child("baseline", **common)
        local = _in_child("rescore", **common, engine="local", top_reasons=3)
        rows.append(_row("local, 3 reasons", size, local, baseline))
        memory.append((size, local["peak_mib"], local["floor_mib"]))
        if position == 0:
            shap = baseline
            plain = _in_child("rescore", **common, engine="local", top_reasons=0)
            rows.append(_row("local, no reasons", size, plain, baseline))
            dask = _in_child("rescore", **common, engine="dask", top_reasons=3)
            rows.append(_row("dask 2 workers, 3 reasons", size, dask, baseline))
            profile = _in_child("profile", **common)
            steps = [(name, seconds, profile["seconds"]) for name, seconds in profile["steps"].items()]
        print("\n".join(rows), flush=True)

    command = "python experiments/bench_rescore.py " + " ".join(sys.argv[1:])
    report = render(command, rows, memory, steps, load, shap)
    print(report)
    if arguments.out is not None:
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        arguments.out.write_text(report, "utf-8")


if __name__ == "__main__":
    main()
