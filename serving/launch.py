"""Start the scoring service: check everything it needs, then hand over to BentoML's server.

``prepare_launch`` runs in the ``leadscore serve`` process before any worker exists. It
fails fast, with one clear message, on what would otherwise make every worker crash and
restart in a loop: no token (without ``--insecure``), an invalid policy file, no
``champion`` model, an unreachable routing database. It also creates the routing schema
once, so that workers never race to create tables.

Workers are separate processes started by BentoML. They read the same settings from
``LEADSCORE_*`` environment variables, which ``LaunchPlan.environment`` fills in with
resolved values.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadscore.errors import ConfigError
from leadscore.settings import Settings
from serving.auth import require_token_or_insecure, resolve_api_token
from serving.policy_config import load_policy

logger = logging.getLogger(__name__)

# Set to "1" by ``leadscore serve --insecure``; the service then accepts requests without a token.
INSECURE_ENV = "LEADSCORE_SERVE_INSECURE"
# Minimum level of leadscore's own log lines in the workers, from ``leadscore --log-level``.
LOG_LEVEL_ENV = "LEADSCORE_SERVE_LOG_LEVEL"
# Loggers of leadscore's packages. BentoML sets the root logger of a worker to WARNING, so these
# get their own level there.
APP_LOGGERS = ("leadscore", "data", "features", "training", "serving")
# Native thread-pool sizes (OpenMP for LightGBM, BLAS for numpy) set per worker.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class LaunchPlan:
    """Checked settings and the environment every worker process starts with."""

    settings: Settings
    workers: int
    insecure: bool
    threads_per_worker: int
    model_version: str
    environment: dict[str, str] = field(default_factory=dict)


def available_cpus() -> int:
    """Return the CPUs this process may run on (the affinity mask, not the machine total)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # sched_getaffinity is missing on macOS and Windows
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Split the CPUs evenly between workers, so that LightGBM threads never oversubscribe them."""
    total = cpus if cpus is not None else available_cpus()
    return max(1, total // max(1, workers))


def prepare_launch(settings: Settings, *, workers: int, insecure: bool) -> LaunchPlan:
    """Check the token, policy, champion model and database, and build the worker environment.

    Raises ConfigError (token, policy, database URL), ModelNotFoundError (no champion) or
    the database driver's error when the routing database cannot be reached.
    """
    from serving.model_loading import champion_version
    from serving.store import open_store

    require_free_port(settings.host, settings.port)
    token = resolve_api_token(settings)
    require_token_or_insecure(token, insecure=insecure)
    if token is None:
        logger.warning("serving WITHOUT authentication (--insecure): any client can score and route leads")

    load_policy(settings.policy_file)
    tracking_uri = settings.resolved_tracking_uri()
    model_version = champion_version(tracking_uri)

    db_url = settings.resolved_db_url()
    store = open_store(db_url, create=True)
    store.dispose()

    threads = threads_per_worker(workers)
    environment = _worker_environment(settings, tracking_uri, db_url, insecure=insecure, threads=threads)
    return LaunchPlan(
        settings=settings,
        workers=workers,
        insecure=insecure,
        threads_per_worker=threads,
        model_version=model_version,
        environment=environment,
    )


def require_free_port(host: str, port: int) -> None:
    """Raise ConfigError naming the address when another process already listens on it."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}); stop the process using the port "
                "or choose another one with --port"
            ) from None


def _worker_environment(
    settings: Settings, tracking_uri: str, db_url: str, *, insecure: bool, threads: int
) -> dict[str, str]:
    environment = {
        "LEADSCORE_TRACKING_URI": tracking_uri,
        "LEADSCORE_DB_URL": db_url,
        "LEADSCORE_WORK_DIR": str(Path(settings.work_dir).resolve()),
        "LEADSCORE_LOCALE": settings.locale,
        "LEADSCORE_TIMEZONE": settings.timezone,
        "LEADSCORE_MAX_REQUEST_BYTES": str(settings.max_request_bytes),
        INSECURE_ENV: "1" if insecure else "0",
        LOG_LEVEL_ENV: logging.getLevelName(logging.getLogger().getEffectiveLevel()),
    }
    if settings.policy_file is not None:
        environment["LEADSCORE_POLICY_FILE"] = str(Path(settings.policy_file).resolve())
    if settings.token_file is not None:
        environment["LEADSCORE_TOKEN_FILE"] = str(Path(settings.token_file).resolve())
    if settings.api_token is not None:
        environment["LEADSCORE_API_TOKEN"] = settings.api_token.get_secret_value()
    for name in THREAD_ENV_VARS:
        environment[name] = str(threads)
    return environment


def configure_worker_logging(level: str | None) -> None:
    """Give leadscore's loggers ``level`` (INFO when unset) inside a BentoML worker."""
    chosen = (level or "INFO").upper()
    if chosen not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        chosen = "INFO"
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(chosen)


def serve_forever(plan: LaunchPlan) -> None:
    """Run the BentoML HTTP server with ``plan`` until it is stopped (SIGINT or SIGTERM).

    Unless ``BENTOML_HOME`` is set, the server gets a temporary BentoML home, removed at exit.
    BentoML 1.4 empties ``BENTOML_HOME/prometheus_multiproc_dir`` whenever a server starts, so
    a shared home would let any other BentoML server started later on the machine wipe this
    server's metrics.
    """
    import shutil
    import tempfile

    os.environ.update(plan.environment)
    temporary_home: str | None = None
    if "BENTOML_HOME" not in os.environ:
        temporary_home = tempfile.mkdtemp(prefix="leadscore-bentoml-")
        os.environ["BENTOML_HOME"] = temporary_home

    import bentoml

    from serving.service import LeadscoreService

    # LeadscoreService is a bentoml Service object; the decorator leaves it untyped.
    service: Any = LeadscoreService
    service.config["workers"] = plan.workers
    logger.info(
        "starting leadscore service on http://%s:%d with %d worker(s), %d thread(s) each, model %s",
        plan.settings.host,
        plan.settings.port,
        plan.workers,
        plan.threads_per_worker,
        plan.model_version,
    )
    try:
        bentoml.serve(service, host=plan.settings.host, port=plan.settings.port, blocking=True)
    finally:
        if temporary_home is not None:
            shutil.rmtree(temporary_home, ignore_errors=True)
    logger.info("leadscore service stopped")
