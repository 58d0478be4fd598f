"""Benchmark the leadscore service against a bare BentoML endpoint and ``mlflow models serve``.

Usage::

    python experiments/bench_service.py --work /tmp/bench-service [--requests 2000] [--clients 8]

In one run it trains a tiny ``lead-scorer`` champion (or uses ``--tracking-uri``), starts three
servers on 127.0.0.1 with the same number of worker processes, and measures each in turn:

* ``leadscore``: ``leadscore serve``, ``POST /score`` with one lead (attributes, two
  activities, a stage change), bearer token, validation, features, calibration, reasons.
* ``bare``: ``experiments/bench_bare_service.py``, ``POST /predict`` with one prebuilt
  feature row of the same lead: LightGBM ``Booster.predict`` and nothing else.
* ``mlflow``: ``mlflow models serve -m models:/lead-scorer@champion --env-manager local``,
  ``POST /invocations`` with the same lead as ``dataframe_records``; it runs the same
  pyfunc and so the same score path as the service.

Each server gets ``--warmup`` requests first, then ``--requests`` single-lead requests from
``--clients`` concurrent keep-alive clients, stopped early after ``--max-seconds``. The
clients share the CPUs with the servers, so by default they are the lean socket clients of
``experiments/loopback_client.py`` (about 0.1 ms of CPU per request); ``--client httpx``
uses httpx instead (about 1.0 ms), as the earlier records did.
Reported: p50 and p99 latency and requests per second. Targets: leadscore p99 at most 2x
the bare endpoint's, at least 500 requests/s, and at least 2x the throughput of mlflow.
Servers run one at a time under load while the others sit idle, taking turns for
``--rounds`` rounds so that a change of the machine's load hits all three alike. Loopback only.

At the end, with the servers stopped, ``training.scorer.score_payload`` is timed in this
process for 1, 8 and 64 leads per call, on the row path that small payloads take and on
the table path (``row_path=False``), and the 1-lead time of each is split by step
(cProfile), to show where a request's time goes. The steps of the ``POST /score`` handler
for one lead (request parsing, lead checks, scoring, response) are timed without HTTP.
"""

from __future__ import annotations

import os

# The in-process profile at the end scores with one LightGBM thread, as a service worker on a
# 2-CPU machine with 2 workers does. OpenMP reads this when LightGBM loads, so it is set first.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import contextlib
import cProfile
import itertools
import json
import platform
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from experiments.loopback_client import LoopbackClient  # noqa: E402 - needs the repository on sys.path
from features.pipeline import build_features  # noqa: E402
from serving.model_loading import load_champion  # noqa: E402
from tests.serving.service_harness import (  # noqa: E402
    QUIET_ENV,
    RunningServer,
    free_port,
    start_server,
    stop_server,
    wait_until_ready,
)
from tests.serving.service_model import train_tiny_champion  # noqa: E402
from training.scorer import parse_as_of, payload_spine, score_payload, split_records  # noqa: E402

AS_OF = "2025-03-05T09:00:00+08:00"


def bench_lead() -> dict[str, Any]:
    """Return the one lead every server scores: attributes, two activities and a stage change."""
    return {
        "lead_id": "BENCH-1",
        "created_at": "2025-03-01T09:00:00+08:00",
        "channel": "referral",
        "region": "华东",
        "industry": "软件",
        "company_size": "101-500",
        "declared_budget": 150000.0,
        "activities": [
            {"occurred_at": "2025-03-01T10:00:00+08:00", "type": "call", "direction": "outbound"},
            {"occurred_at": "2025-03-02T15:30:00+08:00", "type": "wechat", "direction": "inbound"},
        ],
        "stage_changes": [{"stage": "contacted", "changed_at": "2025-03-01T10:00:00+08:00"}],
    }


# --- the prebuilt feature row of the bare endpoint ---------------------------------------------


def prebuilt_row(tracking_uri: str, booster_file: Path) -> list[float | None]:
    """Save the champion's conversion booster and return the lead's model row as plain numbers."""
    from data.records import tables_from_records

    champion = load_champion(tracking_uri)
    bundle = champion.bundle
    bundle.conversion.booster.save_model(str(booster_file))
    leads, activities, stage_changes, orders = split_records([bench_lead()])
    tables = tables_from_records(
        leads,
        activities,
        stage_changes,
        orders,
        timezone=bundle.feature_config.timezone,
        attributes=bundle.attributes,
    )
    spine = payload_spine(tables, parse_as_of(AS_OF, bundle.feature_config.timezone))
    frame = build_features(spine, tables, bundle.feature_config)
    matrix = bundle.feature_spec.transform(frame).matrix
    row: list[float | None] = []
    for column in matrix.columns:
        series = matrix[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            code = int(series.cat.codes.iloc[0])
            row.append(None if code < 0 else float(code))
        else:
            value = float(series.iloc[0])
            row.append(None if np.isnan(value) else value)
    return row


# --- servers -----------------------------------------------------------------------------------


def start_bare(booster_file: Path, workers: int, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the bare BentoML endpoint with ``workers`` processes; return it and its port."""
    port = free_port()
    launcher = (
        "import bentoml, sys; from experiments.bench_bare_service import BareBooster as service; "
        f"service.config['workers'] = {workers}; "
        f"bentoml.serve(service, host='127.0.0.1', port={port}, blocking=True)"
    )
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(REPO_ROOT), "BENCH_BOOSTER_FILE": str(booster_file)}
    # A BentoML home of its own, because starting a server empties the home's metrics folder.
    env["BENTOML_HOME"] = str(log_path.parent / "bentoml-home-bare")
    env.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", launcher],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port


def start_mlflow(tracking_uri: str, workers: int, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``mlflow models serve`` of lead-scorer@champion with the local environment."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "serve",
        "-m",
        "models:/lead-scorer@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        str(workers),
    ]
    env = {
        **os.environ,
        **QUIET_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_REGISTRY_URI": tracking_uri,
        # mlflow starts its server as ``uvicorn ...``, found on PATH, so this environment's bin comes first.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.update({name: str(max(1, (os.cpu_count() or 1) // workers)) for name in ("OMP_NUM_THREADS",)})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, port


def wait_http(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 240.0) -> None:
    """Poll ``url`` until it returns 200, raising with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url} server exited early:\n{log_path.read_text('utf-8', errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} was not ready after {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started here: SIGTERM to its process group (it leads it), SIGKILL after 30 s."""
    import signal

    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --- load generation ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """Latencies in seconds of the successful requests, and the wall time of the run."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    stopped_early: bool = False

    def add(self, other: Measurement) -> None:
        """Add the requests and wall time of another run of the same server."""
        self.latencies.extend(other.latencies)
        self.errors += other.errors
        self.seconds += other.seconds
        self.stopped_early = self.stopped_early or other.stopped_early

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        count = len(ordered)
        return {
            "server": self.name,
            "requests": count,
            "errors": self.errors,
            "p50_ms": round(1000 * statistics.median(ordered), 2) if ordered else None,
            "p99_ms": round(1000 * ordered[min(count - 1, int(0.99 * count))], 2) if ordered else None,
            "requests_per_second": round(count / self.seconds, 1) if self.seconds else None,
            "stopped_early": self.stopped_early,
        }


class HttpClient(Protocol):
    """The client interface a sender uses, which httpx.Client and LoopbackClient both provide."""

    def post(self, url: str, json: Any) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: object) -> Any: ...


Sender = Callable[[Any], Any]
ClientFactory = Callable[[str, dict[str, str]], HttpClient]


def lean_client(base_url: str, headers: dict[str, str]) -> HttpClient:
    """Return a keep-alive client that costs the shared CPUs little (``experiments.loopback_client``)."""
    return LoopbackClient(base_url, headers, timeout=60)


def httpx_client(base_url: str, headers: dict[str, str]) -> HttpClient:
    """Return an httpx keep-alive client, which costs about 1.0 ms of CPU per request on a 2-CPU VM."""
    return httpx.Client(base_url=base_url, headers=headers, timeout=60)


CLIENTS: dict[str, ClientFactory] = {"lean": lean_client, "httpx": httpx_client}


def run_load(
    name: str,
    base_url: str,
    headers: dict[str, str],
    send: Sender,
    *,
    requests: int,
    clients: int,
    max_seconds: float,
    client_factory: ClientFactory = lean_client,
) -> Measurement:
    """Send ``requests`` requests from ``clients`` threads (keep-alive each); stop after ``max_seconds``."""
    measurement = Measurement(name)
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.perf_counter() + max_seconds

    def client_loop() -> None:
        with client_factory(base_url, headers) as http:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    if time.perf_counter() > deadline:
                        measurement.stopped_early = True
                        return
                    remaining[0] -= 1
                started = time.perf_counter()
                response = send(http)
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        measurement.latencies.append(elapsed)
                    else:
                        measurement.errors += 1

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    measurement.seconds = time.perf_counter() - started
    return measurement


def scorer_calls(base_url: str) -> tuple[float, float]:
    """Return (requests scored, scorer calls) so far, summed over workers, from leadscore's /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    values = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in values:
            if line.startswith(f"leadscore_score_batch_requests_{kind} "):
                values[kind] += float(line.split()[-1])
    return values["sum"], values["count"]


def warm_up(base_url: str, headers: dict[str, str], send: Sender, count: int) -> None:
    """Send ``count`` requests one by one, raising on the first response other than 200."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        for _ in range(count):
            response = send(http)
            if response.status_code != 200:
                raise RuntimeError(
                    f"warm-up request to {base_url} failed: {response.status_code} {response.text[:500]}"
                )


def _lead_ids() -> Callable[[], str]:
    """Return a thread-safe function that gives BENCH-1, BENCH-2, ..."""
    counter = itertools.count(1)
    lock = threading.Lock()

    def next_id() -> str:
        with lock:
            return f"BENCH-{next(counter)}"

    return next_id


# --- in-process profile of the score path ---------------------------------------------------------

# Steps of training.scorer.score_payload, as (label, file suffix, function name) for cProfile:
# first on the row path that one-lead payloads take, then on the table path.
ROW_PATH_STEPS: tuple[tuple[str, str, str], ...] = (
    ("split nested records", "training/scorer.py", "split_records"),
    ("records to typed rows", "data/payload_rows.py", "payload_rows"),
    ("features", "features/single_lead.py", "lead_features"),
    ("model matrix", "training/row_scorer.py", "_model_matrix"),
    ("rule-score prior", "training/row_scorer.py", "_rule_prior"),
    ("conversion model (calibrated)", "training/row_scorer.py", "_conversion"),
    ("LTV model", "training/row_scorer.py", "_ltv"),
    ("SHAP contributions and reason sentences", "training/row_scorer.py", "_reasons"),
)
TABLE_PATH_STEPS: tuple[tuple[str, str, str], ...] = (
    ("records to validated tables", "data/records.py", "tables_from_records"),
    ("features", "features/pipeline.py", "build_features"),
    ("feature spec transform", "features/spec.py", "transform"),
    ("rule-score prior", "training/baselines/rules.py", "predict_proba"),
    ("conversion model", "training/conversion.py", "predict"),
    ("LTV model", "training/ltv.py", "predict"),
    ("SHAP contributions", "training/reasons.py", "shap_contributions"),
    ("reason sentences", "training/reasons.py", "reasons_for_rows"),
)


def profile_score_path(tracking_uri: str, repeats: int) -> dict[str, Any]:
    """Time score_payload for 1, 8 and 64 leads on both paths, and split each 1-lead time by step."""
    bundle = load_champion(tracking_uri).bundle
    per_call: dict[str, dict[str, float]] = {"row_path": {}, "table_path": {}}
    for path, row_path in (("row_path", True), ("table_path", False)):
        for size in (1, 8, 64):
            records = [{**bench_lead(), "lead_id": f"P-{number}"} for number in range(size)]
            score_payload(bundle, records, as_of=AS_OF, row_path=row_path)
            started = time.perf_counter()
            for _ in range(repeats):
                score_payload(bundle, records, as_of=AS_OF, row_path=row_path)
            per_call[path][f"{size}_leads_ms"] = round(1000 * (time.perf_counter() - started) / repeats, 2)
    return {
        "score_payload_per_call": per_call,
        "one_lead_steps_ms": {
            "row_path": _step_times(bundle, repeats * 10, ROW_PATH_STEPS, row_path=True),
            "table_path": _step_times(bundle, repeats, TABLE_PATH_STEPS, row_path=False),
        },
    }


def profile_handler_steps(tracking_uri: str, repeats: int) -> dict[str, float]:
    """Time the steps of leadscore's ``POST /score`` handler for one lead in this process, in ms.

    HTTP is left out. These steps and leadscore's heavier request handling (request guard,
    FastAPI routing, hand-off to the scoring thread) make up its extra cost over the bare
    endpoint.
    """
    from serving.api_models import ScoreRequest, ScoreResponse
    from serving.payloads import lead_problems, lead_records, to_lead_score

    champion = load_champion(tracking_uri)
    bundle = champion.bundle
    body = json.dumps({"leads": [bench_lead()], "as_of": AS_OF}).encode()
    request = ScoreRequest.model_validate_json(body)
    records = lead_records(request.leads, bundle.attributes)
    cutoff = parse_as_of(request.as_of, bundle.feature_config.timezone)
    scores = score_payload(bundle, records, as_of=cutoff)

    def respond() -> str:
        response = ScoreResponse(
            model_version=champion.model_version,
            registry_version=champion.registry_version,
            as_of=cutoff.to_pydatetime(),
            locale="en",
            results=[to_lead_score(score) for score in scores],
        )
        return response.model_dump_json()

    steps: dict[str, Callable[[], object]] = {
        "parse and validate the request body": lambda: ScoreRequest.model_validate_json(body),
        "check leads and build scorer records": lambda: (
            lead_problems(request.leads, bundle.attributes, "en"),
            lead_records(request.leads, bundle.attributes),
        ),
        "score_payload": lambda: score_payload(bundle, records, as_of=cutoff),
        "build and serialize the response": respond,
    }
    result: dict[str, float] = {}
    for label, step in steps.items():
        step()
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        result[label] = round(1000 * (time.perf_counter() - started) / repeats, 3)
    return result


def _step_times(
    bundle: Any, repeats: int, steps: tuple[tuple[str, str, str], ...], *, row_path: bool
) -> dict[str, float]:
    """Return the cumulative cProfile time per step of a one-lead call, in ms per call."""
    profiler = cProfile.Profile()
    records = [bench_lead()]
    profiler.enable()
    for _ in range(repeats):
        score_payload(bundle, records, as_of=AS_OF, row_path=row_path)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    result: dict[str, float] = {}
    for label, suffix, function in (("whole call", "training/scorer.py", "score_payload"), *steps):
        cumulative = sum(
            entry[3]
            for (filename, _, name), entry in stats.items()
            if filename.endswith(suffix) and name == function
        )
        result[label] = round(1000 * cumulative / repeats, 3)
    return result


# --- main --------------------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=None, help="Folder for the model, logs and databases.")
    parser.add_argument(
        "--tracking-uri", default=None, help="Use this MLflow store's champion instead of training."
    )
    parser.add_argument("--requests", type=int, default=2000, help="Measured requests per server.")
    parser.add_argument("--warmup", type=int, default=50, help="Unmeasured requests per server first.")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients.")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="lean",
        help="HTTP client of the load generator: lean (plain sockets, little CPU) or httpx.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="Turns per server: each round measures every server with --requests / --rounds requests.",
    )
    parser.add_argument("--workers", type=int, default=2, help="Worker processes of every server.")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="Time limit per server over all rounds, in seconds."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the results as JSON here.")
    parser.add_argument(
        "--profile-repeats", type=int, default=30, help="Calls per batch size in the in-process profile."
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.requests < args.rounds:
        parser.error(f"--rounds must be 1 or more and at most --requests; got {args.rounds}")
    return args


@dataclass
class Servers:
    """The three running servers and how to send one request to each."""

    targets: list[tuple[str, str, dict[str, str], Sender]]


@contextlib.contextmanager
def running_servers(work: Path, tracking_uri: str, workers: int) -> Iterator[Servers]:
    """Start leadscore, the bare endpoint and mlflow; yield their targets; stop all three."""
    booster_file = work / "conversion-booster.txt"
    row = prebuilt_row(tracking_uri, booster_file)
    token_file = work / "token"
    token_file.write_text(secrets.token_urlsafe(32), "utf-8")
    token_file.chmod(0o600)
    leadscore: RunningServer | None = None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        leadscore = start_server(
            tracking_uri=tracking_uri,
            db_url=f"sqlite:///{work / 'routing.db'}",
            log_path=work / "leadscore.log",
            token_file=token_file,
            workers=workers,
            log_level="WARNING",
        )
        bare, bare_port = start_bare(booster_file, workers, work / "bare.log")
        processes.append(bare)
        mlflow_server, mlflow_port = start_mlflow(tracking_uri, workers, work / "mlflow.log")
        processes.append(mlflow_server)
        wait_until_ready(leadscore, timeout=240)
        wait_http(f"http://127.0.0.1:{bare_port}/readyz", bare, work / "bare.log")
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", mlflow_server, work / "mlflow.log")

        # Each request scores a new lead id, as a CRM sends distinct leads; the content is the same.
        next_id = _lead_ids()

        def score_body() -> dict[str, Any]:
            return {"leads": [{**bench_lead(), "lead_id": next_id()}], "as_of": AS_OF}

        def mlflow_body() -> dict[str, Any]:
            return {"dataframe_records": [{**bench_lead(), "lead_id": next_id(), "as_of": AS_OF}]}

        bare_url = f"http://127.0.0.1:{bare_port}"
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        yield Servers(
            [
                (
                    "leadscore",
                    leadscore.base_url,
                    leadscore.headers(),
                    lambda h: h.post("/score", json=score_body()),
                ),
                ("bare", bare_url, {}, lambda h: h.post("/predict", json={"features": row})),
                ("mlflow", mlflow_url, {}, lambda h: h.post("/invocations", json=mlflow_body())),
            ]
        )
    finally:
        if leadscore is not None:
            stop_server(leadscore)
        for process in processes:
            stop_process(process)


def build_report(
    args: argparse.Namespace, results: list[dict[str, Any]], loads: list[list[float]]
) -> dict[str, Any]:
    """Return the JSON report: command, machine, settings, per-server results and target ratios."""
    by_name = {result["server"]: result for result in results}
    ratios = {
        "p99_leadscore_over_bare": round(by_name["leadscore"]["p99_ms"] / by_name["bare"]["p99_ms"], 2),
        "rps_leadscore_over_mlflow": round(
            by_name["leadscore"]["requests_per_second"] / by_name["mlflow"]["requests_per_second"], 2
        ),
    }
    return {
        "command": " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": loads[0],
            "load_average_after": loads[1],
        },
        "settings": {
            "requests": args.requests,
            "clients": args.clients,
            "client": args.client,
            "workers": args.workers,
        },
        "results": results,
        "ratios": ratios,
    }


def measure_in_rounds(servers: Servers, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Warm every server up, then measure them in turns, ``args.rounds`` rounds of each.

    Taking turns spreads a change of the machine's load over all three servers, so it moves
    their ratios less than when each server runs all its requests at once.
    """
    for _, base_url, headers, send in servers.targets:
        warm_up(base_url, headers, send, args.warmup)
    leadscore_url = next(url for name, url, _, _ in servers.targets if name == "leadscore")
    batches_before = scorer_calls(leadscore_url)

    measurements = {name: Measurement(name) for name, *_ in servers.targets}
    for round_number in range(args.rounds):
        requests = args.requests // args.rounds + (1 if round_number < args.requests % args.rounds else 0)
        for name, base_url, headers, send in servers.targets:
            part = run_load(
                name,
                base_url,
                headers,
                send,
                requests=requests,
                clients=args.clients,
                max_seconds=args.max_seconds / args.rounds,
                client_factory=CLIENTS[args.client],
            )
            measurements[name].add(part)

    results = [measurement.summary() for measurement in measurements.values()]
    requests_after, calls_after = scorer_calls(leadscore_url)
    calls = calls_after - batches_before[1]
    scored = requests_after - batches_before[0]
    for result in results:
        if result["server"] == "leadscore":
            result["requests_per_scorer_call"] = round(scored / calls, 2) if calls else None
    for result in results:
        print(json.dumps(result), flush=True)
    return results


def main() -> None:
    args = parse_arguments()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-service-"))
    work.mkdir(parents=True, exist_ok=True)
    tracking_uri = args.tracking_uri or train_tiny_champion(work / "model").tracking_uri

    with running_servers(work, tracking_uri, args.workers) as servers:
        load_before = [round(value, 2) for value in os.getloadavg()]
        results = measure_in_rounds(servers, args)
        load_after = [round(value, 2) for value in os.getloadavg()]

    report = build_report(args, results, [load_before, load_after])
    report["profile"] = profile_score_path(tracking_uri, args.profile_repeats)
    report["profile"]["score_handler_steps_ms"] = profile_handler_steps(
        tracking_uri, args.profile_repeats * 10
    )
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
