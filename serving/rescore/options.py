"""Settings of one rescoring run, and the subset of them that keys its run folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadscore.errors import ConfigError
from leadscore.i18n import Locale
from serving.rescore.drift import DEFAULT_THRESHOLD
from serving.rescore.engines import DEFAULT_DASK_WORKERS
from serving.rescore.progress import DEFAULT_LOG_INTERVAL_SECONDS, ProgressMode
from training.scorer import DEFAULT_TOP_REASONS, MAX_TOP_REASONS

DEFAULT_CHUNK_SIZE = 20_000
RUNS_DIR = "rescore"
KEY_FORMAT = 1
"""Raise when the chunk files change meaning, so old run folders are never resumed by new code."""
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
"""Protocols of a remote Dask scheduler address; an address without one is read as tcp://."""


class RescoreOptions(BaseModel):
    """Everything ``leadscore rescore`` takes; the CLI fills it from flags and settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    data_dir: Path = Field(description="Data folder of canonical Parquet tables.")
    as_of: pd.Timestamp = Field(
        description="Scoring time (tz-aware); features use events strictly before it."
    )
    out: Path = Field(
        description="Scores file, .parquet or .csv; rejects, drift and summary files go beside it."
    )
    model_uri: str | None = Field(
        default=None,
        description="models:/lead-scorer@ALIAS, models:/lead-scorer/VERSION, or a bundle or MLflow "
        "model folder; None means models:/lead-scorer@champion.",
    )
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking and registry URI for models:/ URIs."
    )
    work_dir: Path = Field(
        default=Path(".leadscore"), description="Folder whose rescore/ subfolder contains the run folders."
    )
    engine: Literal["local", "dask"] = Field(default="local", description="Where chunks are scored.")
    scheduler: str | None = Field(
        default=None, description="Address of an existing Dask scheduler; None starts a LocalCluster."
    )
    dask_workers: int = Field(default=DEFAULT_DASK_WORKERS, ge=1, description="Workers of the LocalCluster.")
    dask_processes: bool = Field(
        default=True, description="LocalCluster workers as processes (True) or threads of this process."
    )
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=1, description="Target number of leads per chunk.")
    locale: Locale = Field(default="en", description="Language of reason texts and reject texts.")
    top_reasons: int = Field(
        default=DEFAULT_TOP_REASONS, ge=0, le=MAX_TOP_REASONS, description="Reasons per direction per lead."
    )
    route: bool = Field(default=False, description="Route unassigned scored leads through the routing store.")
    db_url: str | None = Field(default=None, description="Routing database URL (required with route).")
    policy_file: Path | None = Field(
        default=None, description="Routing policy TOML; None means the shipped one."
    )
    excel: bool = Field(default=False, description="Write the CSV with a UTF-8 byte order mark for Excel.")
    header_locale: Locale = Field(default="en", description="Language of the column headers.")
    drift_threshold: float = Field(
        default=DEFAULT_THRESHOLD, description="PSI above which a score or feature is flagged; finite, > 0."
    )
    keep_checkpoints: bool = Field(
        default=False, description="Keep the partitions and chunk files after a successful run."
    )
    progress: ProgressMode = Field(default="auto", description="Progress bar, log lines, or nothing.")
    progress_interval: float = Field(
        default=DEFAULT_LOG_INTERVAL_SECONDS, gt=0, description="Seconds between progress log lines."
    )

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: pd.Timestamp) -> pd.Timestamp:
        timestamp = pd.Timestamp(value)
        if timestamp.tzinfo is None:
            raise ValueError(f"as_of {timestamp.isoformat()} has no time zone; give an offset such as +08:00")
        return timestamp.tz_convert("UTC")

    @field_validator("drift_threshold")
    @classmethod
    def _finite_threshold(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"--drift-threshold {value} is invalid; give a finite PSI above 0, such as the default "
                f"{DEFAULT_THRESHOLD}"
            )
        return value

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        address = value.strip()
        if not is_scheduler_address(address):
            raise ConfigError(
                f"--scheduler {value!r} is not a Dask scheduler address; give PROTOCOL://HOST:PORT "
                f"such as tcp://10.0.0.5:8786 (protocols: {', '.join(SCHEDULER_SCHEMES)}), "
                "or leave --scheduler out to start a LocalCluster"
            )
        return address

    @property
    def runs_root(self) -> Path:
        return self.work_dir / RUNS_DIR


def is_scheduler_address(address: str) -> bool:
    """Return whether ``address`` has the form [PROTOCOL://]HOST:PORT of a Dask scheduler.

    This checks the form only; whether a scheduler listens there shows when the run connects.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme == "inproc":
        # An in-process scheduler (inproc://HOST/PID/N) has no port; only the Python API can pass one.
        return bool(parts.hostname) and len(parts.path.strip("/").split("/")) == 2
    try:
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme in SCHEDULER_SCHEMES
        and bool(parts.hostname)
        and bool(port)
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def input_fingerprint(data_dir: Path) -> dict[str, list[int]]:
    """Return size and modification time (ns) of each file in the data folder.

    A changed input file gives a new run key, so a run is never resumed on different data.
    Only Parquet and JSON files directly in the folder count, so a work folder placed inside
    the data folder (its run folders are below WORK_DIR/rescore/) leaves the key unchanged.
    """
    fingerprint: dict[str, list[int]] = {}
    for path in sorted(Path(data_dir).iterdir()):
        if path.is_file() and (path.suffix == ".parquet" or path.name.endswith(".json")):
            stat = path.stat()
            fingerprint[path.name] = [stat.st_size, stat.st_mtime_ns]
    return fingerprint


def key_arguments(
    options: RescoreOptions,
    *,
    model_version: str,
    model_uri: str,
    policy_version: str | None,
    database: str | None,
) -> dict[str, Any]:
    """Return the arguments that decide a run's results; their hash names the run folder.

    The engine, scheduler, worker count and progress settings are left out, because they
    change where and how fast chunks run but not what they produce. So a run started on one
    engine can be finished on the other. ``database`` must have its password hidden.
    """
    return {
        "key_format": KEY_FORMAT,
        "data_dir": str(Path(options.data_dir).resolve()),
        "inputs": input_fingerprint(options.data_dir),
        "as_of": options.as_of.isoformat(),
        "model_uri": model_uri,
        "model_version": model_version,
        "chunk_size": options.chunk_size,
        "locale": options.locale,
        "top_reasons": options.top_reasons,
        "route": options.route,
        "database": database,
        "policy_version": policy_version,
        "out": str(Path(options.out).resolve()),
        "excel": options.excel,
        "header_locale": options.header_locale,
        "drift_threshold": options.drift_threshold,
    }
