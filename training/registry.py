"""The ``lead-scorer`` registered model: versions, the challenger and champion aliases, the promotion gate.

Every training run registers a new version under the alias ``challenger``. The gate scores the
challenger and the current champion on the same rows: the most recent holdout window, which is
the challenger's test fold. It moves ``champion`` to the challenger only when the challenger is
no worse on every configured metric, within a tolerance. The first version becomes champion without a
comparison. Each decision is stored as tags on the challenger version, logged, and returned.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from data.folder import CanonicalTables, read_data_dir
from leadscore.errors import ConfigError, InsufficientDataError, ModelNotFoundError
from training import metrics
from training.bundle import BUNDLE_ARTIFACT, ScorerBundle
from training.scorer import score_tables
from training.tracking import active_tracking_uri, tracking_client

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

MODEL_NAME = "lead-scorer"
CHAMPION = "champion"
CHALLENGER = "challenger"

TAG_BUNDLE_VERSION = "leadscore.bundle_version"
TAG_DECISION = "gate.decision"
TAG_REASON = "gate.reason"
TAG_COMPARED_WITH = "gate.champion_version"
TAG_DECIDED_AT = "gate.decided_at"
_TAG_PREFIX_METRIC = "gate.metric."

# Gate metric name -> whether a higher value is better. The gate can compare any of these.
GATE_METRICS: dict[str, bool] = {
    "conversion_auc": True,
    "conversion_pr_auc": True,
    "conversion_ece": False,
    "conversion_brier": False,
    "ltv_gini": True,
    "ltv_spearman": True,
    "ev_gini": True,
}
DEFAULT_GATE_METRICS: tuple[str, ...] = ("conversion_auc", "conversion_ece", "ltv_gini")
_MIN_ROWS_FOR_RANKING = 2


class GateConfig(BaseModel):
    """Metrics the promotion gate compares and how much worse a challenger may be on each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: tuple[str, ...] = Field(
        default=DEFAULT_GATE_METRICS,
        description="Gate metric names; see registry.GATE_METRICS for the choices.",
    )
    tolerance: float = Field(
        default=0.005,
        ge=0.0,
        description="Largest absolute worsening still counted as 'no worse', in the metric's own units.",
    )
    tolerances: dict[str, float] = Field(
        default_factory=dict,
        description="Per-metric tolerances that replace ``tolerance`` for those metrics.",
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in GATE_METRICS]
        if unknown:
            raise ValueError(f"unknown gate metric(s) {unknown}; choose from {sorted(GATE_METRICS)}")
        if not value:
            raise ValueError(f"the gate needs at least one metric; choose from {sorted(GATE_METRICS)}")
        return value

    @field_validator("tolerances")
    @classmethod
    def _known_tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [name for name in value if name not in GATE_METRICS]
        if unknown:
            raise ValueError(
                f"tolerances name unknown gate metric(s) {unknown}; choose from {sorted(GATE_METRICS)}"
            )
        negative = {name: tolerance for name, tolerance in value.items() if tolerance < 0}
        if negative:
            raise ValueError(f"tolerances must be non-negative; got {negative}")
        return value

    def tolerance_for(self, name: str) -> float:
        return self.tolerances.get(name, self.tolerance)


@dataclass(frozen=True)
class MetricComparison:
    """One gate metric for the challenger and the champion, and whether the challenger passed it."""

    name: str
    challenger: float | None
    champion: float | None
    higher_is_better: bool
    tolerance: float
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the promotion gate with the numbers it was based on."""

    promoted: bool
    forced: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    comparisons: tuple[MetricComparison, ...] = ()
    holdout_rows: int = 0
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """``promoted``, ``forced`` or ``rejected``."""
        if self.forced:
            return "forced"
        return "promoted" if self.promoted else "rejected"

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["outcome"] = self.outcome
        return payload


@dataclass(frozen=True)
class VersionSummary:
    """One registered version as ``leadscore models list`` shows it."""

    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: pd.Timestamp
    bundle_version: str | None
    decision: str | None
    metrics: dict[str, str]


# --- metrics on a scored holdout ----------------------------------------------------------------


HOLDOUT_LABEL_COLUMNS: tuple[str, ...] = ("converted", "value", "label_complete", "value_complete")
CONVERSION_TEST = "conversion_test"
LTV_TEST = "ltv_test"


def gate_metrics(scores: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, float]:
    """Compute every gate metric for score records against the holdout rows they were scored on.

    ``scores`` needs p_convert, ltv and expected_value and ``holdout`` the label columns, aligned
    by position. Conversion metrics use the rows marked ``conversion_test`` whose label window is
    complete. LTV metrics use the ``ltv_test`` rows with a complete LTV window. ltv_gini and
    ltv_spearman rank only converted rows, because ``ltv`` is the value of a lead once it
    converts, and ev_gini ranks all of them by expected value. A holdout without the two marker
    columns counts every row for both. A metric that is undefined on its rows (one class, no
    revenue) is left out, so callers check for missing keys instead of NaN.
    """
    if len(scores) != len(holdout):
        raise ConfigError(
            f"gate_metrics: {len(scores)} score rows but {len(holdout)} holdout rows; align them by row"
        )
    everywhere = np.ones(len(holdout), dtype=bool)
    in_conversion = (
        holdout[CONVERSION_TEST].to_numpy(dtype=bool) if CONVERSION_TEST in holdout else everywhere
    )
    in_ltv = holdout[LTV_TEST].to_numpy(dtype=bool) if LTV_TEST in holdout else everywhere
    converted = holdout["converted"].to_numpy(dtype=np.float64)
    value = holdout["value"].to_numpy(dtype=np.float64, na_value=0.0)
    p_convert = scores["p_convert"].to_numpy(dtype=np.float64)
    ltv = scores["ltv"].to_numpy(dtype=np.float64)
    expected_value = scores["expected_value"].to_numpy(dtype=np.float64)

    result: dict[str, float] = {}
    rows = in_conversion & holdout["label_complete"].to_numpy(dtype=bool)
    y = converted[rows]
    p = p_convert[rows]
    if y.size and 0 < y.sum() < y.size:
        result["conversion_auc"] = metrics.roc_auc(y, p)
        result["conversion_pr_auc"] = metrics.pr_auc(y, p)
        result["conversion_ece"] = metrics.expected_calibration_error(y, p)
        result["conversion_brier"] = metrics.brier(y, p)

    value_rows = in_ltv & holdout["value_complete"].to_numpy(dtype=bool)
    if value_rows.sum() >= _MIN_ROWS_FOR_RANKING and value[value_rows].sum() > 0:
        result["ev_gini"] = metrics.normalized_gini(value[value_rows], expected_value[value_rows])
    buyers = value_rows & (converted == 1.0)
    if buyers.sum() >= _MIN_ROWS_FOR_RANKING and value[buyers].sum() > 0 and np.ptp(value[buyers]) > 0:
        result["ltv_gini"] = metrics.normalized_gini(value[buyers], ltv[buyers])
        if np.ptp(ltv[buyers]) > 0:
            result["ltv_spearman"] = metrics.spearman(value[buyers], ltv[buyers])
    return result


# --- the decision -------------------------------------------------------------------------------


def compare_metrics(
    challenger: Mapping[str, float], champion: Mapping[str, float], config: GateConfig
) -> tuple[MetricComparison, ...]:
    """Compare the configured metrics; a metric the champion also lacks is skipped, not failed."""
    comparisons: list[MetricComparison] = []
    for name in config.metrics:
        higher_is_better = GATE_METRICS[name]
        tolerance = config.tolerance_for(name)
        new = challenger.get(name)
        old = champion.get(name)
        if new is None and old is None:
            note = "undefined for both models on this holdout"
            comparisons.append(MetricComparison(name, None, None, higher_is_better, tolerance, True, note))
            continue
        if new is None:
            note = "undefined for the challenger but defined for the champion"
            comparisons.append(MetricComparison(name, None, old, higher_is_better, tolerance, False, note))
            continue
        if old is None:
            note = "undefined for the champion"
            comparisons.append(MetricComparison(name, new, None, higher_is_better, tolerance, True, note))
            continue
        worsening = (old - new) if higher_is_better else (new - old)
        passed = worsening <= tolerance + 1e-12
        comparisons.append(MetricComparison(name, new, old, higher_is_better, tolerance, passed))
    return tuple(comparisons)


def decide(
    challenger_version: str,
    champion_version: str | None,
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float],
    config: GateConfig,
    *,
    force: bool = False,
    holdout_rows: int = 0,
) -> GateDecision:
    """Apply the gate rule to metrics already computed on one holdout."""
    if champion_version is None:
        reason = "no champion yet, so the first version becomes champion"
        return GateDecision(
            True, False, reason, challenger_version, None, (), holdout_rows, dict(challenger_metrics)
        )

    comparisons = compare_metrics(challenger_metrics, champion_metrics, config)
    failed = [comparison for comparison in comparisons if not comparison.passed]
    if force:
        failed_names = ", ".join(comparison.name for comparison in failed) or "none"
        reason = f"promotion forced by the operator (failed gate metrics: {failed_names})"
        promoted = True
    elif failed:
        reason = "challenger is worse than the champion on " + ", ".join(
            _describe_failure(comparison) for comparison in failed
        )
        promoted = False
    else:
        reason = "challenger is no worse than the champion on " + ", ".join(config.metrics)
        promoted = True
    return GateDecision(
        promoted,
        force,
        reason,
        challenger_version,
        champion_version,
        comparisons,
        holdout_rows,
        dict(challenger_metrics),
        dict(champion_metrics),
    )


def _describe_failure(comparison: MetricComparison) -> str:
    if comparison.challenger is None or comparison.champion is None:
        return f"{comparison.name} ({comparison.note})"
    return (
        f"{comparison.name} ({comparison.challenger:.4f} vs {comparison.champion:.4f}, "
        f"tolerance {comparison.tolerance:g})"
    )


# --- registry operations ------------------------------------------------------------------------


def register_challenger(
    client: MlflowClient, model_uri: str, run_id: str, *, tags: Mapping[str, str] | None = None
) -> ModelVersion:
    """Register ``model_uri`` as a new ``lead-scorer`` version and point ``challenger`` at it."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException:
        client.create_registered_model(
            MODEL_NAME, description="Calibrated lead conversion probability, lifetime value and reasons."
        )
        logger.info("created registered model %s", MODEL_NAME)

    # The registry resolves a ``models:/m-...`` source through the fluent tracking URI, so it
    # must point at this store while the version is created.
    # A tracking server accepts a ``models:/m-...`` source only with the model id beside it.
    with active_tracking_uri(client.tracking_uri):
        version = client.create_model_version(
            MODEL_NAME, model_uri, run_id=run_id, tags=dict(tags or {}), model_id=logged_model_id(model_uri)
        )
    version = _wait_until_ready(client, version)
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version.version)
    logger.info("registered %s version %s from run %s as %s", MODEL_NAME, version.version, run_id, CHALLENGER)
    return version


def logged_model_id(model_uri: str) -> str | None:
    """Return the id of a logged model from its ``models:/m-...`` URI, or None for other URIs."""
    prefix = "models:/"
    if not model_uri.startswith(prefix):
        return None
    rest = model_uri[len(prefix) :]
    return rest if rest.startswith("m-") and "/" not in rest else None


def _wait_until_ready(
    client: MlflowClient, version: ModelVersion, timeout_seconds: float = 60.0
) -> ModelVersion:
    """Wait for a version to leave PENDING_REGISTRATION (immediate on database stores, not on servers)."""
    deadline = time.monotonic() + timeout_seconds
    while version.status == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise ModelNotFoundError(
                f"{MODEL_NAME} version {version.version} is still pending registration after "
                f"{timeout_seconds:.0f} s; check the MLflow server"
            )
        time.sleep(0.5)
        version = client.get_model_version(MODEL_NAME, version.version)
    if version.status != "READY":
        raise ModelNotFoundError(
            f"{MODEL_NAME} version {version.version} failed to register (status {version.status}): "
            f"{version.status_message}"
        )
    return version


def version_by_alias(client: MlflowClient, alias: str) -> ModelVersion | None:
    """Return the version ``alias`` points at, or None when the alias or the model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(MODEL_NAME, alias)
    except MlflowException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise


def require_version_by_alias(client: MlflowClient, alias: str) -> ModelVersion:
    """Return the version ``alias`` points at or raise ModelNotFoundError saying how to create it."""
    version = version_by_alias(client, alias)
    if version is None:
        raise ModelNotFoundError(
            f"registered model {MODEL_NAME!r} has no {alias!r} version in this tracking store; "
            "run 'leadscore train --data DIR' first (and check --tracking-uri)"
        )
    return version


def record_decision(client: MlflowClient, decision: GateDecision) -> None:
    """Store the decision as tags on the challenger version, log it, and move ``champion`` if promoted."""
    tags = {
        TAG_DECISION: decision.outcome,
        TAG_REASON: decision.reason[:4900],
        TAG_COMPARED_WITH: decision.champion_version or "none",
        TAG_DECIDED_AT: pd.Timestamp.now(tz="UTC").isoformat(),
    }
    for comparison in decision.comparisons:
        tags[f"{_TAG_PREFIX_METRIC}{comparison.name}.challenger"] = _format_number(comparison.challenger)
        tags[f"{_TAG_PREFIX_METRIC}{comparison.name}.champion"] = _format_number(comparison.champion)
        tags[f"{_TAG_PREFIX_METRIC}{comparison.name}.passed"] = str(comparison.passed).lower()
    if decision.champion_version is None:
        for name, number in decision.challenger_metrics.items():
            tags[f"{_TAG_PREFIX_METRIC}{name}.challenger"] = _format_number(number)
    for key, text in tags.items():
        client.set_model_version_tag(MODEL_NAME, decision.challenger_version, key, text)

    if decision.promoted:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, decision.challenger_version)
    log = logger.warning if decision.forced or not decision.promoted else logger.info
    log(
        "promotion gate: %s version %s (champion was %s): %s; challenger %s; champion %s",
        decision.outcome,
        decision.challenger_version,
        decision.champion_version or "none",
        decision.reason,
        _format_metrics(decision.challenger_metrics),
        _format_metrics(decision.champion_metrics),
    )


def _format_number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "undefined"
    return f"{value:.6f}"


def _format_metrics(values: Mapping[str, float]) -> str:
    if not values:
        return "{}"
    return "{" + ", ".join(f"{name}={value:.4f}" for name, value in sorted(values.items())) + "}"


def list_versions(client: MlflowClient) -> list[VersionSummary]:
    """Return every ``lead-scorer`` version, newest first, with its aliases and gate outcome."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(MODEL_NAME)
    except MlflowException:
        return []
    aliases_by_version: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        aliases_by_version.setdefault(str(version), []).append(alias)

    summaries: list[VersionSummary] = []
    for version in client.search_model_versions(f"name = '{MODEL_NAME}'"):
        tags = dict(version.tags or {})
        gate_values = {
            key.removeprefix(_TAG_PREFIX_METRIC).removesuffix(".challenger"): value
            for key, value in tags.items()
            if key.startswith(_TAG_PREFIX_METRIC) and key.endswith(".challenger")
        }
        summaries.append(
            VersionSummary(
                version=str(version.version),
                aliases=tuple(sorted(aliases_by_version.get(str(version.version), []))),
                run_id=version.run_id,
                created_at=pd.Timestamp(int(version.creation_timestamp), unit="ms", tz="UTC"),
                bundle_version=tags.get(TAG_BUNDLE_VERSION),
                decision=tags.get(TAG_DECISION),
                metrics=gate_values,
            )
        )
    summaries.sort(key=lambda summary: int(summary.version), reverse=True)
    return summaries


def check_holdout(holdout: pd.DataFrame) -> None:
    """Raise when a stored holdout lacks columns or has no rows the gate can score."""
    missing = [name for name in ("lead_id", "cutoff", *HOLDOUT_LABEL_COLUMNS) if name not in holdout.columns]
    if missing:
        raise ConfigError(f"holdout lacks column(s) {missing}; retrain to store a complete holdout")
    if not holdout["label_complete"].to_numpy(dtype=bool).any():
        raise InsufficientDataError(
            "the holdout has no rows with a complete label window, so the gate cannot compare models; "
            "retrain on a longer history"
        )


# --- scoring both models on the holdout ---------------------------------------------------------


def evaluate_on_holdout(
    bundle: ScorerBundle, tables: CanonicalTables, holdout: pd.DataFrame
) -> dict[str, float]:
    """Score the holdout rows with ``bundle`` through the one score path and return the gate metrics."""
    check_holdout(holdout)
    spine = holdout[["lead_id", "cutoff"]].reset_index(drop=True)
    scores = score_tables(bundle, tables, spine, top_reasons=0)
    return gate_metrics(scores.reset_index(drop=True), holdout.reset_index(drop=True))


def download_version_bundle(tracking_uri: str, version: str, destination: Path) -> Path:
    """Download registered version ``version`` and return the path of its scorer bundle."""
    import mlflow.artifacts
    import yaml

    destination.mkdir(parents=True, exist_ok=True)
    with active_tracking_uri(tracking_uri):
        model_dir = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{MODEL_NAME}/{version}",
                dst_path=str(destination),
                tracking_uri=tracking_uri,
            )
        )
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
    try:
        relative = mlmodel["flavors"]["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
    except (KeyError, TypeError):
        raise ModelNotFoundError(
            f"{MODEL_NAME} version {version} has no {BUNDLE_ARTIFACT!r} artifact; "
            "it was not logged by leadscore, so retrain"
        ) from None
    return model_dir / relative


def load_version_bundle(tracking_uri: str, version: str, destination: Path) -> ScorerBundle:
    """Download and load the scorer bundle of registered version ``version``."""
    return ScorerBundle.load(download_version_bundle(tracking_uri, version, destination))


def run_gate(
    tracking_uri: str,
    *,
    challenger_version: str,
    tables: CanonicalTables,
    holdout: pd.DataFrame,
    config: GateConfig,
    force: bool = False,
    challenger_metrics: Mapping[str, float] | None = None,
    workspace: Path,
) -> GateDecision:
    """Compare the challenger with the champion on ``holdout``, record the decision and return it.

    ``challenger_metrics`` are the challenger's gate metrics on this holdout when the caller
    already has them (right after training). Otherwise the challenger is downloaded and scored
    too. The champion is always downloaded and re-scored on the same rows. ``workspace`` is a
    folder for the downloaded models.
    """
    client = tracking_client(tracking_uri)
    champion = version_by_alias(client, CHAMPION)
    if champion is not None and str(champion.version) == str(challenger_version):
        reason = f"version {challenger_version} is already the champion"
        logger.info("promotion gate: %s", reason)
        return GateDecision(True, False, reason, str(challenger_version), str(champion.version))

    rows = len(holdout)
    if challenger_metrics is None:
        challenger_bundle = load_version_bundle(
            tracking_uri, str(challenger_version), workspace / "challenger"
        )
        challenger_metrics = evaluate_on_holdout(challenger_bundle, tables, holdout)
    champion_metrics: dict[str, float] = {}
    if champion is not None:
        champion_bundle = load_version_bundle(tracking_uri, str(champion.version), workspace / "champion")
        champion_metrics = evaluate_on_holdout(champion_bundle, tables, holdout)

    decision = decide(
        str(challenger_version),
        str(champion.version) if champion is not None else None,
        challenger_metrics,
        champion_metrics,
        config,
        force=force,
        holdout_rows=rows,
    )
    record_decision(client, decision)
    return decision


HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
DATA_DIR_TAG = "data_dir"


def promote_challenger(
    tracking_uri: str,
    *,
    config: GateConfig,
    force: bool = False,
    data_dir: Path | None = None,
    workspace: Path,
) -> GateDecision:
    """Run the gate for the current ``challenger`` against the ``champion`` (``leadscore promote``).

    The holdout is the one stored with the challenger's training run, and the tables are read
    from ``data_dir`` or else from the data folder that run was trained on. With ``force`` the
    challenger becomes champion whatever the metrics, and the decision is recorded as forced.
    """
    import mlflow.artifacts

    client = tracking_client(tracking_uri)
    challenger = require_version_by_alias(client, CHALLENGER)
    if challenger.run_id is None:
        raise ModelNotFoundError(
            f"{MODEL_NAME} version {challenger.version} has no training run, so its holdout is unknown"
        )
    run = client.get_run(challenger.run_id)
    source = data_dir or (Path(run.data.tags[DATA_DIR_TAG]) if DATA_DIR_TAG in run.data.tags else None)
    if source is None:
        raise ConfigError(
            f"the training run of {MODEL_NAME} version {challenger.version} does not name its data folder; "
            "pass --data DIR"
        )
    with active_tracking_uri(tracking_uri):
        holdout_path = mlflow.artifacts.download_artifacts(
            run_id=challenger.run_id,
            artifact_path=HOLDOUT_ARTIFACT,
            dst_path=str(workspace / "holdout"),
            tracking_uri=tracking_uri,
        )
    holdout = pd.read_parquet(holdout_path)
    tables = read_data_dir(source)
    logger.info(
        "promotion gate for %s version %s on %d holdout rows from %s (force=%s)",
        MODEL_NAME,
        challenger.version,
        len(holdout),
        source,
        force,
    )
    return run_gate(
        tracking_uri,
        challenger_version=str(challenger.version),
        tables=tables,
        holdout=holdout,
        config=config,
        force=force,
        workspace=workspace,
    )
