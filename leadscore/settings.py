"""Typed settings for every entry point, from a TOML file and ``LEADSCORE_*`` environment variables.

Precedence, highest first: command-line options, environment variables, the settings file
(``--config FILE`` or ``./leadscore.toml``), the defaults below. Unknown keys are rejected so
that a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadscore.errors import ConfigError

DEFAULT_SETTINGS_FILE = Path("leadscore.toml")


class Settings(BaseSettings):
    """Paths, URIs, horizons and service options shared by the CLI, the service and batch jobs."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="forbid", validate_default=True)

    data_dir: Path = Field(Path("data-folder"), description="Data folder of canonical Parquet tables.")
    work_dir: Path = Field(
        Path(".leadscore"), description="Folder for the local MLflow store, Optuna studies and checkpoints."
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; None means sqlite:///<work_dir>/mlflow.db. PostgreSQL by URL.",
    )
    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the routing database; None means sqlite:///<work_dir>/routing.db.",
    )
    timezone: str = Field("Asia/Shanghai", description="IANA timezone for naive timestamps in input files.")
    locale: Literal["en", "zh-CN"] = Field("en", description="Language of reasons, reports and API errors.")
    horizon_days: int = Field(90, gt=0, description="Conversion label window after the cutoff, in days.")
    ltv_horizon_days: int = Field(365, gt=0, description="Lifetime-value window after the cutoff, in days.")
    policy_file: Path | None = Field(None, description="Routing policy TOML; None means the shipped default.")
    api_token: SecretStr | None = Field(None, description="Bearer token the service requires.")
    token_file: Path | None = Field(None, description="File holding the bearer token (first line).")
    host: str = Field("127.0.0.1", description="Address the service binds to.")
    port: int = Field(3000, ge=1, le=65535, description="Port the service listens on.")
    # 10 MiB lets the largest /score request, 10,000 leads, average about 1 KiB per lead. The example
    # lead of the API docs (a custom attribute, two activities, a stage change) is 480 to 560 bytes.
    max_request_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        description="Largest request body the service accepts, in bytes; larger ones get HTTP 413.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    def resolved_tracking_uri(self) -> str:
        """Return the MLflow tracking URI, defaulting to a SQLite file in the work folder."""
        return self.tracking_uri or f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}"

    def resolved_db_url(self) -> str:
        """Return the routing database URL, defaulting to a SQLite file in the work folder."""
        return self.db_url or f"sqlite:///{(self.work_dir / 'routing.db').resolve()}"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (or ./leadscore.toml when present), the environment and overrides.

    ``overrides`` are command-line values; None values are ignored so unset options keep
    the file or environment value.
    """
    file_values: dict[str, Any] = {}
    source = path if path is not None else (DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.exists() else None)
    if source is not None:
        file_values = _read_toml(source)

    explicit = {key: value for key, value in overrides.items() if value is not None}
    try:
        # Environment variables are read by BaseSettings; file values are passed as init
        # arguments, so explicitly given keys win over both.
        return Settings(**{**_environment_free(file_values), **explicit})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        where = f" in {source}" if source is not None else ""
        raise ConfigError(f"invalid settings{where}: {problems}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"settings file {path} is not valid TOML: {error}") from None


def _environment_free(file_values: dict[str, Any]) -> dict[str, Any]:
    """Drop file values that an environment variable overrides, keeping env > file precedence."""
    return {key: value for key, value in file_values.items() if f"LEADSCORE_{key.upper()}" not in os.environ}
