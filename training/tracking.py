"""MLflow tracking setup: where runs and registered models are stored, and how a run is logged.

The default store is a SQLite file in the work folder, with run artifacts in a folder beside
it. A team points ``--tracking-uri`` at a PostgreSQL database (or an MLflow server) instead.
The registry always uses the same URI as tracking, so ``lead-scorer`` versions live next to
the runs that produced them.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadscore.errors import ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "leadscore"
TRACKING_DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"

_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_SERVER_SCHEMES = ("http", "https")
# MLflow's SQLAlchemy store defaults a bare postgresql:// URL to psycopg2, which leadscore does
# not depend on. psycopg 3 is installed, so bare PostgreSQL URLs get its dialect name.
_POSTGRES_ALIASES = ("postgresql", "postgres")
_MAX_PARAM_LENGTH = 6000


def default_tracking_uri(work_dir: Path) -> str:
    """Return the SQLite tracking URI inside ``work_dir`` (an absolute path, so any cwd works)."""
    return f"sqlite:///{(Path(work_dir) / TRACKING_DB_FILE).resolve()}"


def display_uri(uri: str) -> str:
    """Return ``uri`` with the password of its user part replaced by ``***``, for logs and messages."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.password is None:
        return uri
    host = parsed.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f"{parsed.username or ''}:***@{host}"))


def normalize_tracking_uri(uri: str) -> str:
    """Validate a tracking URI and return it with a usable database driver.

    Accepted: ``sqlite:///PATH``, ``postgresql[+driver]://...``, ``mysql[+driver]://...``,
    ``mssql[+driver]://...`` and ``http(s)://`` MLflow servers. Bare ``postgresql://`` and
    ``postgres://`` become ``postgresql+psycopg://``.
    """
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower()
    dialect = scheme.split("+", 1)[0]
    if scheme in _POSTGRES_ALIASES:
        normalized = urllib.parse.urlunparse(parsed._replace(scheme="postgresql+psycopg"))
        logger.info("tracking URI uses the psycopg (version 3) driver for PostgreSQL")
        return normalized
    if dialect in _DATABASE_SCHEMES or scheme in _SERVER_SCHEMES:
        if dialect == "sqlite" and not parsed.path.strip("/"):
            raise ConfigError(
                f"tracking URI {display_uri(uri)!r} has no database file; use sqlite:////absolute/path/mlflow.db"
            )
        return uri
    raise ConfigError(
        f"unsupported tracking URI {display_uri(uri)!r}; use sqlite:///PATH/mlflow.db, "
        "postgresql+psycopg://USER@HOST:PORT/DATABASE or http(s)://MLFLOW-SERVER"
    )


def resolve_tracking_uri(uri: str | None, work_dir: Path) -> str:
    """Return ``uri`` validated, or the default SQLite URI in ``work_dir`` when it is None."""
    if uri is None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return default_tracking_uri(work_dir)
    return normalize_tracking_uri(uri)


def default_artifact_location(tracking_uri: str, work_dir: Path) -> str | None:
    """Return the folder for run artifacts of a new experiment.

    A SQLite store keeps artifacts in ``mlartifacts`` beside the database file and any other
    database store uses ``WORK_DIR/mlartifacts``, so artifacts never land in the current
    directory (MLflow's own default). An MLflow server chooses for itself, so this returns None.
    """
    parsed = urllib.parse.urlparse(tracking_uri)
    scheme = parsed.scheme.lower()
    if scheme in _SERVER_SCHEMES:
        return None
    if scheme == "sqlite":
        database_file = Path(urllib.parse.unquote(parsed.path))
        # sqlite:////abs/path parses to path "//abs/path"; Path() collapses the extra slash.
        return (database_file.parent / ARTIFACTS_DIR).resolve().as_uri()
    return (Path(work_dir) / ARTIFACTS_DIR).resolve().as_uri()


def tracking_client(tracking_uri: str) -> MlflowClient:
    """Return an MLflow client whose tracking store and model registry both use ``tracking_uri``."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def active_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.start_run``, ``log_model``) at ``tracking_uri`` for a block.

    The previous tracking and registry URIs are restored on exit, so a caller's own MLflow
    setup is untouched.
    """
    import mlflow

    previous_tracking = mlflow.get_tracking_uri()
    previous_registry = mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """Return the id of experiment ``name``, creating it with ``artifact_location`` if it is new.

    A deleted experiment of that name is restored, because MLflow keeps its name reserved.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id: str = client.create_experiment(name, artifact_location=artifact_location)
        logger.info("created MLflow experiment %r (id %s)", name, experiment_id)
        return experiment_id
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
        logger.info("restored deleted MLflow experiment %r (id %s)", name, experiment.experiment_id)
    return str(experiment.experiment_id)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested parameters into ``a.b`` keys with string values MLflow accepts.

    Lists and other non-mapping values are JSON-encoded. A value longer than MLflow's limit
    for parameter values (6000 characters in MLflow 3) is cut and marked, so a long category list
    cannot make logging fail.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        if len(text) > _MAX_PARAM_LENGTH:
            text = text[: _MAX_PARAM_LENGTH - 20] + "...[truncated]"
        flat[name] = text
    return flat


def finite_metrics(metrics: Mapping[str, float | None]) -> dict[str, float]:
    """Keep the metrics MLflow can store: finite numbers. Each dropped key is logged."""
    kept: dict[str, float] = {}
    for key, value in metrics.items():
        if value is None or not math.isfinite(float(value)):
            logger.warning("metric %s is %s and is not logged to MLflow", key, value)
            continue
        kept[key] = float(value)
    return kept


def log_json_artifact(payload: Any, artifact_file: str) -> None:
    """Write ``payload`` as UTF-8 JSON into the active run's artifacts at ``artifact_file``."""
    import mlflow

    text = json.dumps(payload, ensure_ascii=False, indent=2, default=str)
    mlflow.log_text(text, artifact_file)


PYFUNC_CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
LOGGED_MODEL_NAME = "lead-scorer"
# Distributions the pyfunc imports at load time. leadscore itself is not on a package index, so
# it is not listed: an environment that loads the model needs leadscore installed.
_RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "lightgbm",
    "pandas",
    "numpy",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "pydantic",
)


def runtime_requirements() -> list[str]:
    """Return pinned requirements (``name==version``) of the packages the pyfunc needs."""
    from importlib.metadata import PackageNotFoundError, version

    pinned: list[str] = []
    for name in _RUNTIME_DISTRIBUTIONS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            logger.warning("package %s is not installed; it is left out of the model requirements", name)
    return pinned


def scorer_signature() -> Any:
    """Return the MLflow signature of the lead-scorer pyfunc: no input schema, the params, the output.

    The input has no schema because MLflow's schema enforcement would drop or fill lead fields
    silently. The scorer validates records itself. The params schema lets callers pass
    ``as_of``, ``locale`` and ``top_reasons`` at inference time. The output schema describes
    the score records, so Spark's ``spark_udf`` can derive its result type.
    """
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Map, Object, ParamSchema, ParamSpec, Property, Schema

    reason = Object(
        [
            Property("feature", "string"),
            Property("direction", "string"),
            Property("contribution", "double"),
            Property("text", "string"),
        ]
    )
    flags = Object(
        [
            Property("unseen_categories", Map("string"), required=False),
            Property("insufficient_data", "boolean"),
        ]
    )
    outputs = Schema(
        [
            ColSpec("string", "lead_id"),
            ColSpec("string", "as_of"),
            ColSpec("double", "p_convert"),
            ColSpec("double", "ltv"),
            ColSpec("double", "expected_value"),
            ColSpec("string", "grade"),
            ColSpec("string", "segment"),
            ColSpec(Array(reason), "reasons_positive", required=False),
            ColSpec(Array(reason), "reasons_negative", required=False),
            ColSpec("string", "model_version"),
            ColSpec(flags, "flags"),
        ]
    )
    params = ParamSchema(
        [
            ParamSpec("as_of", "string", None),
            ParamSpec("locale", "string", "en"),
            ParamSpec("top_reasons", "long", 3),
        ]
    )
    return ModelSignature(inputs=None, outputs=outputs, params=params)


def log_scorer_model(bundle_dir: Path, example: Mapping[str, Any]) -> Any:
    """Log the bundle as the lead-scorer pyfunc (models from code) in the active run.

    ``example`` is the raw lead record logged as the model's input example. Returns MLflow's
    ``ModelInfo``; its ``model_uri`` is what the registry registers.
    """
    import mlflow

    from training.bundle import BUNDLE_ARTIFACT

    return mlflow.pyfunc.log_model(
        name=LOGGED_MODEL_NAME,
        python_model=str(PYFUNC_CODE_FILE),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        code_paths=None,
        pip_requirements=runtime_requirements(),
        signature=scorer_signature(),
        input_example=[dict(example)],
    )
