"""The main job end to end on embedded defaults: what ``make demo`` and ``leadscore demo`` run.

Steps: generate synthetic CRM history (or adapt the public Bank Marketing set), validate it,
train and register both models with a short Optuna study in a local MLflow store, start the
real service on 127.0.0.1 with a generated token, load the roster and route a handful of new
leads through ``POST /route``, write the reports, print where everything is, and stop the
service. Every step calls a stage's public functions or the service's HTTP API, the same way
a user would.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from leadscore.errors import LeadscoreError

if TYPE_CHECKING:
    from training.train import TrainResult

logger = logging.getLogger(__name__)

SERVICE_START_TIMEOUT_SECONDS = 180.0
PORT_ATTEMPTS = 3
NEW_LEAD_COUNT = 6


@dataclass(frozen=True)
class DemoOptions:
    """Choices of one demo run; the defaults finish in a few minutes on 2 cores."""

    out_dir: Path
    leads: int = 6000
    seed: int = 7
    trials: int = 5
    # 36 months leave a complete 24-month lifetime-value window for the first year of leads;
    # with less history no lead has a finished LTV label and the LTV model cannot be trained.
    months: int = 36
    # One year of repeat purchases: with 36 months of history this leaves two years of leads
    # with a complete window, enough buyers for the LTV model to learn more than a constant.
    ltv_horizon_days: int = 365
    dataset: str = "synthetic"
    bank_marketing_path: Path | None = None
    report_locales: tuple[str, ...] = ("en", "zh-CN")


@dataclass
class DemoPaths:
    """Where the demo writes each product, all under one output folder."""

    root: Path
    data: Path = field(init=False)
    new_leads: Path = field(init=False)
    work: Path = field(init=False)
    reports: Path = field(init=False)
    token_file: Path = field(init=False)
    server_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.data = self.root / "data"
        self.new_leads = self.root / "new-leads"
        self.work = self.root / "work"
        self.reports = self.root / "reports"
        self.token_file = self.root / "api-token"
        self.server_log = self.root / "service.log"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.work / 'mlflow.db'}"

    @property
    def routing_db_url(self) -> str:
        return f"sqlite:///{self.work / 'routing.db'}"


class _Progress:
    """Prints numbered step headers and their duration to stdout."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total = total
        self.done = 0
        self.echo = echo

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.done += 1
        self.echo(f"\n[{self.done}/{self.total}] {title}")
        started = time.monotonic()
        yield
        self.echo(f"      done in {time.monotonic() - started:.1f} s")


def run_demo(options: DemoOptions, echo: Callable[[str], None] = print) -> None:
    """Run every demo step in order; the service is stopped even when a step fails."""
    paths = DemoPaths(options.out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    quiet_library_logs()
    progress = _Progress(total=8, echo=echo)

    with progress.step("Building CRM history"):
        prepare_history(options, paths, echo)
    with progress.step("Validating the data folder against the canonical model"):
        validate_history(paths, echo)
    with progress.step(f"Training and registering the models ({options.trials} Optuna trials)"):
        train_models(options, paths, echo)

    token = write_token(paths.token_file)
    with progress.step("Starting the service on 127.0.0.1"):
        server, port = start_service_on_free_port(paths, echo)
    base_url = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
        with progress.step("Loading the sales roster through PUT /reps"):
            load_roster(client, paths, echo)
        with progress.step(f"Routing {NEW_LEAD_COUNT} new leads through POST /route"):
            rows = route_new_leads(client, options, paths)
            echo(format_route_table(rows))
            dump_rows(rows, paths.root / "routed-leads.json")
        with progress.step("Writing reports"):
            report_paths = write_reports(options, paths, echo)
    finally:
        with progress.step("Stopping the service"):
            stop_service(server)

    echo(closing_summary(paths, base_url, report_paths))


def quiet_library_logs() -> None:
    """Keep the demo's output to its own progress lines, with warnings and errors still shown.

    Each stage logs its steps at INFO, httpx every request, Optuna every trial, and MLflow
    draws a progress bar for each artifact download. The run's MLflow record keeps all of that.
    """
    import optuna

    logging.getLogger().setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def prepare_history(options: DemoOptions, paths: DemoPaths, echo: Callable[[str], None]) -> None:
    """Write the training history and a separate batch of new leads that arrive after it."""
    from data.synthetic.config import load_generator_config
    from data.synthetic.generate import generate_history

    if options.dataset == "bank-marketing":
        from data.public import adapt_public_dataset

        if options.bank_marketing_path is None:
            raise LeadscoreError(
                "--bank-marketing PATH is required with --dataset bank-marketing; "
                "point it at bank-additional-full.csv"
            )
        record = adapt_public_dataset(
            "bank-marketing", options.bank_marketing_path, paths.data, overwrite=True
        )
        echo(f"      Bank Marketing: {record.get('rows_accepted', '?')} contacts adapted into {paths.data}")
    else:
        config = load_generator_config(
            leads=options.leads, seed=options.seed, months=options.months, start=history_start(options)
        )
        summary = generate_history(config, paths.data, overwrite=True)
        echo(
            f"      {summary.leads:,} leads, {summary.activities:,} activities, "
            f"{summary.stage_changes:,} stage changes, {summary.orders:,} order lines, "
            f"{summary.reps} reps -> {paths.data}"
        )

    # The new leads come from an independent draw over the current month, after the history,
    # so the model has never seen them.
    arrivals_start = (pd.Timestamp(history_start(options)) + pd.DateOffset(months=options.months)).date()
    arrivals = load_generator_config(leads=400, seed=options.seed + 1, start=arrivals_start, months=1)
    generate_history(arrivals, paths.new_leads, overwrite=True)


def history_start(options: DemoOptions) -> dt.date:
    """Return the first day of a history that ends where the current month begins."""
    month_start = pd.Timestamp.now(tz="Asia/Shanghai").normalize().replace(day=1)
    return (month_start - pd.DateOffset(months=options.months)).date()


def validate_history(paths: DemoPaths, echo: Callable[[str], None]) -> None:
    """Check every table and cross-table reference; stop the demo on any problem."""
    from data.folder import read_data_dir
    from data.validate import validate_tables

    reports = validate_tables(read_data_dir(paths.data))
    for name, report in reports.items():
        echo(f"      {name:<14} {report.rows:>9,} rows  {len(report.problems)} problems")
    failing = [name for name, report in reports.items() if not report.ok]
    if failing:
        raise LeadscoreError(f"generated tables failed validation: {', '.join(failing)}")


def train_models(options: DemoOptions, paths: DemoPaths, echo: Callable[[str], None]) -> None:
    """Train, evaluate and register the scorer; the first model becomes champion."""
    from features.config import FeatureConfig
    from training.train import TrainOptions, train

    result = train(
        TrainOptions(
            data_dir=paths.data,
            work_dir=paths.work,
            tracking_uri=paths.tracking_uri,
            trials=options.trials,
            seed=options.seed,
            feature_config=FeatureConfig(ltv_horizon_days=options.ltv_horizon_days),
        )
    )
    echo(f"      {result_summary(result)}")


def result_summary(result: TrainResult) -> str:
    """One line on what training produced: registered version and headline test metrics."""
    model = result.test_metrics.get("model", {})
    parts = [f"registered lead-scorer version {result.model_version}"]
    for key, label in (
        ("conversion_auc", "test ROC-AUC"),
        ("conversion_ece", "ECE"),
        ("ltv_gini", "LTV Gini"),
    ):
        if key in model:
            parts.append(f"{label} {model[key]:.3f}")
    if result.decision is not None:
        parts.append(f"gate: {result.decision.outcome}")
    return ", ".join(parts)


def write_token(path: Path) -> str:
    """Generate a bearer token and store it readable by the owner only."""
    token = secrets.token_urlsafe(32)
    path.write_text(token + "\n", "utf-8")
    path.chmod(0o600)
    return token


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_service_on_free_port(
    paths: DemoPaths, echo: Callable[[str], None]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the service on a free port; try another port when another process took it first.

    The port is free when it is picked but not held until the service binds it, and the
    service's process manager picks ports for itself too, so another process can take it.
    """
    for _ in range(PORT_ATTEMPTS - 1):
        port = free_port()
        echo(f"      port {port}")
        try:
            return start_service(paths, port, echo), port
        except LeadscoreError as error:
            if "Address already in use" not in str(error):
                raise
            logger.warning("port %d was taken while the service started; trying another port", port)

    port = free_port()
    echo(f"      port {port}")
    return start_service(paths, port, echo), port


def start_service(paths: DemoPaths, port: int, echo: Callable[[str], None]) -> subprocess.Popen[bytes]:
    """Start ``leadscore serve`` as a child process and wait until /readyz answers 200."""
    command = [
        sys.executable, "-m", "leadscore", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--tracking-uri", paths.tracking_uri,
        "--db", paths.routing_db_url,
        "--token-file", str(paths.token_file),
    ]  # fmt: skip
    log = paths.server_log.open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    echo(f"      pid {server.pid}, log {paths.server_log}")
    wait_until_ready(server, f"http://127.0.0.1:{port}/readyz", paths.server_log)
    return server


def wait_until_ready(server: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll the readiness endpoint; raise with the log's tail if the server dies or times out."""
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise LeadscoreError(f"the service exited with status {server.returncode}:\n{_tail(log_path)}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1.0)
    stop_service(server)
    raise LeadscoreError(
        f"the service was not ready within {SERVICE_START_TIMEOUT_SECONDS:.0f} s:\n{_tail(log_path)}"
    )


def stop_service(server: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM to the service's process group and wait; SIGKILL after 30 s."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        logger.warning("service pid %d ignored SIGTERM for 30 s; killing it", server.pid)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def load_roster(client: httpx.Client, paths: DemoPaths, echo: Callable[[str], None]) -> None:
    """Send the generated reps to PUT /reps, as a CRM would on first setup."""
    reps = pd.read_parquet(paths.data / "reps.parquet")
    payload = {"reps": [rep_payload(row) for row in reps.to_dict("records")], "replace": True}
    response = client.put("/reps", json=payload)
    _raise_for_status(response, "PUT /reps")
    tiers = reps["tier"].value_counts().to_dict()
    echo(f"      {len(reps)} reps loaded: " + ", ".join(f"{count} {tier}" for tier, count in tiers.items()))


def rep_payload(row: dict[Any, Any]) -> dict[str, Any]:
    """Convert one reps.parquet row to the PUT /reps JSON shape."""
    return {
        "rep_id": row["rep_id"],
        "name": row["name"],
        "tier": row["tier"],
        "capacity": int(row["capacity"]),
        "regions": _list_or_none(row.get("regions")),
        "skills": _list_or_none(row.get("skills")),
        "active": bool(row["active"]),
        "manager_id": None if _is_missing(row.get("manager_id")) else row["manager_id"],
    }


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _list_or_none(value: Any) -> list[str] | None:
    return None if _is_missing(value) else [str(item) for item in value]


def route_new_leads(client: httpx.Client, options: DemoOptions, paths: DemoPaths) -> list[dict[str, Any]]:
    """Route the newest arrivals, then fetch their Chinese reasons from POST /score."""
    leads, as_of = pick_new_leads(paths.new_leads, NEW_LEAD_COUNT)
    body = {"leads": leads, "as_of": as_of.isoformat()}

    routed = client.post("/route", json={**body, "locale": "en"})
    _raise_for_status(routed, "POST /route")
    scored_zh = client.post("/score", json={**body, "locale": "zh-CN"})
    _raise_for_status(scored_zh, "POST /score")

    zh_by_lead = {item["lead_id"]: item for item in scored_zh.json()["results"]}
    return [route_row(item, zh_by_lead[item["lead_id"]]) for item in routed.json()["results"]]


def pick_new_leads(directory: Path, count: int) -> tuple[list[dict[str, Any]], pd.Timestamp]:
    """Take arrivals as they look two hours after they came in, moved to end at the current time.

    One lead per channel first, so the table shows the range of sources. The picked leads and
    their activities are shifted in time so the newest arrived two hours ago, which makes the
    SLA deadlines real, upcoming times. Each lead carries only the activities before now.
    """
    leads = pd.read_parquet(directory / "leads.parquet").sort_values("created_at")
    activities = pd.read_parquet(directory / "activities.parquet")
    late = leads.tail(count * 10)
    picked = late.drop_duplicates("channel").tail(count)
    if len(picked) < count:
        picked = pd.concat([picked, late.drop(picked.index).tail(count - len(picked))])

    as_of = pd.Timestamp.now(tz="UTC").floor("s")
    shift = as_of - pd.Timedelta(hours=2) - picked["created_at"].max()
    picked = picked.assign(created_at=picked["created_at"] + shift)
    own = activities[activities["lead_id"].isin(picked["lead_id"])]
    own = own.assign(occurred_at=own["occurred_at"] + shift)
    records = [lead_payload(row, own, as_of) for row in picked.to_dict("records")]
    return records, as_of


def lead_payload(row: dict[Any, Any], activities: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, Any]:
    """Build one POST /route lead: canonical attributes plus activities before ``as_of``."""
    fields = ("channel", "campaign", "keyword", "region", "industry", "company_size", "customer_id")
    # Arrival ids get a prefix so they never collide with the ids of the training history.
    payload: dict[str, Any] = {
        "lead_id": f"NEW-{row['lead_id']}",
        "created_at": row["created_at"].isoformat(),
    }
    for name in fields:
        value = row.get(name)
        if value is not None and not pd.isna(value):
            payload[name] = value
    budget = row.get("declared_budget")
    if budget is not None and not pd.isna(budget):
        payload["declared_budget"] = float(budget)

    own = activities[(activities["lead_id"] == row["lead_id"]) & (activities["occurred_at"] < as_of)]
    payload["activities"] = [
        {"occurred_at": item["occurred_at"].isoformat(), "type": item["type"], "direction": item["direction"]}
        for item in own.to_dict("records")
    ]
    return payload


def route_row(routed: dict[str, Any], scored_zh: dict[str, Any]) -> dict[str, Any]:
    """Flatten one routing result and its Chinese twin into a table row."""
    score = routed["score"]
    reason_en = _top_reason(score)
    reason_zh = _top_reason(scored_zh)
    return {
        "lead": routed["lead_id"],
        "p_convert": score["p_convert"],
        "ltv": score["ltv"],
        "expected_value": score["expected_value"],
        "grade": score["grade"],
        "rep": routed["rep_id"] or f"queue:{routed['queue']}",
        "tier": routed["tier"] or "-",
        "sla_due": (routed["sla_due_at"] or "-")[:16],
        "reason_en": reason_en,
        "reason_zh": reason_zh,
    }


def _top_reason(score: dict[str, Any]) -> str:
    reasons = sorted(
        score["reasons_positive"] + score["reasons_negative"],
        key=lambda reason: abs(reason["contribution"]),
        reverse=True,
    )
    return reasons[0]["text"] if reasons else "-"


def format_route_table(rows: list[dict[str, Any]]) -> str:
    """Render routed leads as a fixed-width table, reasons on their own lines."""
    indent = " " * 6
    header = (
        f"{indent}{'lead':<14}{'p_convert':>10}{'LTV':>11}{'EV':>10}  grade  "
        f"{'rep':<10}{'tier':<10}SLA due (UTC)"
    )
    lines = [header, indent + "-" * (len(header) - len(indent))]
    for row in rows:
        lines.append(
            f"{indent}{row['lead']:<14}{row['p_convert']:>10.3f}{row['ltv']:>11,.0f}"
            f"{row['expected_value']:>10,.0f}  {row['grade']:^5}  {row['rep']:<10}{row['tier']:<10}"
            f"{row['sla_due']}"
        )
        lines.append(f"{indent}  why: {row['reason_en']}")
        lines.append(f"{indent}  原因: {row['reason_zh']}")
    return "\n".join(lines)


def write_reports(options: DemoOptions, paths: DemoPaths, echo: Callable[[str], None]) -> list[Path]:
    """Write the funnel, channels, reps and model-card reports in every requested locale."""
    from serving.reports import write_all_reports

    written: list[Path] = write_all_reports(
        data_dir=paths.data,
        out_dir=paths.reports,
        locales=options.report_locales,
        tracking_uri=paths.tracking_uri,
        routing_db_url=paths.routing_db_url,
    )
    for path in written:
        if path.suffix == ".html":
            echo(f"      {path}")
    return written


def closing_summary(paths: DemoPaths, base_url: str, reports: list[Path]) -> str:
    """Tell the user where every product of the run is and how to look at it."""
    return "\n".join(
        [
            "",
            "Everything is under " + str(paths.root),
            f"  data folder         {paths.data}",
            f"  MLflow UI           mlflow ui --backend-store-uri {paths.tracking_uri}",
            f"  routing database    {paths.routing_db_url}",
            f"  reports             {paths.reports}" + (f" ({len(reports)} files)" if reports else ""),
            f"  service log         {paths.server_log}",
            f"  the service ran at  {base_url} (stopped); start it again with:",
            f"    leadscore serve --tracking-uri {paths.tracking_uri} --db {paths.routing_db_url} "
            f"--token-file {paths.token_file}",
        ]
    )


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise LeadscoreError(f"{what} failed with HTTP {response.status_code}: {response.text[:500]}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no service log)"


def dump_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Keep the routed-lead table as JSON next to the reports."""
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), "utf-8")
