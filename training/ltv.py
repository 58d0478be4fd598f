"""The lifetime-value (LTV) model: expected net revenue of a lead over the LTV horizon.

Net revenue per lead is mostly zero (most leads never buy), sometimes negative (refunds exceed
purchases) and heavy-tailed among buyers. Three LightGBM candidates are fitted on the same
split and the validation fold picks one:

* ``hurdle_gamma``: P(revenue > 0) from a binary classifier times E[revenue | revenue > 0] from
  a gamma-objective regressor trained on the buyers only.
* ``hurdle_log1p``: the same classifier times a least-squares regressor on log1p(revenue) of the
  buyers, mapped back with Duan's smearing factor so that the mean is not biased low.
* ``tweedie``: one regressor with the Tweedie objective (a compound Poisson-gamma
  distribution with a point mass at zero) on all rows.

Selection: the highest normalized Gini on the validation fold (how well the ranking
concentrates revenue, the decision routing makes). When two candidates are within 0.005 Gini,
the higher Spearman correlation wins. Evaluation uses the actual net labels, refunds included.

Label handling for training, each step counted and logged:

* Negative net values become 0, because the Tweedie and gamma objectives reject them.
* The classifier's positive class is ``value > 0``, so a net refund counts as no revenue.
* Values above the 99.9th percentile of the training buyers are capped at it, so a handful
  of outliers cannot dominate the squared-error and deviance losses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from leadscore.errors import ConfigError, InputFileError, InsufficientDataError
from training.boosting import Fold, MatrixLayout, predict_booster, train_booster
from training.metrics import normalized_gini, spearman
from training.params import (
    DEFAULT_EARLY_STOPPING_ROUNDS,
    DEFAULT_NUM_BOOST_ROUND,
    DEFAULT_SEED,
    GAMMA_DEFAULTS,
    LOG1P_DEFAULTS,
    OCCURRENCE_DEFAULTS,
    TWEEDIE_DEFAULTS,
    build_params,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
LtvKind = Literal["hurdle_gamma", "hurdle_log1p", "tweedie"]
BoosterRole = Literal["occurrence", "gamma", "log1p", "tweedie"]

CANDIDATES: tuple[LtvKind, ...] = ("hurdle_gamma", "hurdle_log1p", "tweedie")
ROLES_BY_KIND: dict[str, tuple[BoosterRole, ...]] = {
    "hurdle_gamma": ("occurrence", "gamma"),
    "hurdle_log1p": ("occurrence", "log1p"),
    "tweedie": ("tweedie",),
}
DEFAULTS_BY_ROLE: dict[str, dict[str, Any]] = {
    "occurrence": OCCURRENCE_DEFAULTS,
    "gamma": GAMMA_DEFAULTS,
    "log1p": LOG1P_DEFAULTS,
    "tweedie": TWEEDIE_DEFAULTS,
}

GINI_TIE_TOLERANCE = 0.005
DEFAULT_CAP_QUANTILE = 0.999
# The buyer-only regressors need this many buyers in the training fold, and the hurdle's
# early stopping needs at least MIN_VALID_BUYERS in the validation fold.
MIN_TRAIN_BUYERS = 20
MIN_VALID_BUYERS = 5
METADATA_FILE = "ltv.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LabelReport:
    """Counts of the training labels and of what was changed before fitting."""

    n_rows: int
    n_positive: int
    n_zero: int
    n_negative_clipped: int
    cap_value: float | None
    n_capped: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "n_positive": self.n_positive,
            "n_zero": self.n_zero,
            "n_negative_clipped": self.n_negative_clipped,
            "cap_value": self.cap_value,
            "n_capped": self.n_capped,
        }


def label_report(values: FloatArray, cap_quantile: float | None) -> LabelReport:
    """Count zero, positive and negative net values and find the cap for heavy tails."""
    positives = values[values > 0]
    cap_value: float | None = None
    n_capped = 0
    if cap_quantile is not None and positives.size:
        cap_value = float(np.quantile(positives, cap_quantile))
        n_capped = int((values > cap_value).sum())
    return LabelReport(
        n_rows=int(values.size),
        n_positive=int(positives.size),
        n_zero=int((values == 0).sum()),
        n_negative_clipped=int((values < 0).sum()),
        cap_value=cap_value,
        n_capped=n_capped,
    )


def role_labels(
    values: FloatArray, role: BoosterRole, cap_value: float | None
) -> tuple[BoolArray, FloatArray]:
    """Return (row mask, training labels) of one booster role from net values.

    The occurrence classifier uses every row with label ``value > 0``. The gamma and log1p
    regressors use only rows with ``value > 0``. Tweedie uses every row with negatives set to 0.
    Positive values are capped at ``cap_value`` when it is given.
    """
    capped = np.minimum(values, cap_value) if cap_value is not None else values
    if role == "occurrence":
        return np.ones(values.size, dtype=bool), (values > 0).astype(np.float64)
    if role == "tweedie":
        return np.ones(values.size, dtype=bool), np.asarray(np.maximum(capped, 0.0), dtype=np.float64)
    buyers = values > 0
    if role == "gamma":
        return buyers, np.asarray(capped[buyers], dtype=np.float64)
    return buyers, np.asarray(np.log1p(capped[buyers]), dtype=np.float64)


def role_fold(fold: Fold, role: BoosterRole, cap_value: float | None) -> Fold:
    """Return the rows and labels of ``fold`` that the booster of ``role`` trains on."""
    mask, labels = role_labels(fold.y, role, cap_value)
    matrix = fold.matrix.loc[mask].reset_index(drop=True) if not mask.all() else fold.matrix
    return Fold(matrix, labels)


def role_params(
    role: BoosterRole, overrides: Mapping[str, Any] | None, *, seed: int, num_threads: int | None
) -> dict[str, Any]:
    """Return the final LightGBM parameters of one booster role."""
    params = build_params(DEFAULTS_BY_ROLE[role], overrides, seed=seed, num_threads=num_threads)
    expected = DEFAULTS_BY_ROLE[role]["objective"]
    if params["objective"] != expected:
        raise ConfigError(f"the LTV {role} booster needs objective {expected!r}, got {params['objective']!r}")
    return params


@dataclass(frozen=True)
class LtvModel:
    """The chosen LTV candidate: its boosters, smearing factor and the validation record."""

    kind: LtvKind
    boosters: dict[str, lgb.Booster]
    layout: MatrixLayout
    params: dict[str, dict[str, Any]]
    smearing: float = 1.0
    validation: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: LabelReport | None = None

    def predict_components(self, matrix: pd.DataFrame) -> pd.DataFrame:
        """Return ``p_any`` (probability of revenue) and ``amount`` (revenue if any) per row.

        For the Tweedie model both columns are NaN because it does not separate the parts.
        """
        self.layout.check(matrix, context="LTV model")
        if self.kind == "tweedie":
            missing = np.full(len(matrix), np.nan)
            return pd.DataFrame({"p_any": missing, "amount": missing})
        p_any = predict_booster(self.boosters["occurrence"], matrix)
        if self.kind == "hurdle_gamma":
            amount = predict_booster(self.boosters["gamma"], matrix)
        else:
            log_amount = predict_booster(self.boosters["log1p"], matrix)
            amount = np.maximum(np.expm1(log_amount) * self.smearing + (self.smearing - 1.0), 0.0)
        return pd.DataFrame({"p_any": p_any, "amount": amount})

    def predict(self, matrix: pd.DataFrame) -> FloatArray:
        """Return the expected net revenue over the LTV horizon per row (0 or more)."""
        if self.kind == "tweedie":
            self.layout.check(matrix, context="LTV model")
            return predict_booster(self.boosters["tweedie"], matrix)
        parts = self.predict_components(matrix)
        return np.asarray(parts["p_any"].to_numpy() * parts["amount"].to_numpy(), dtype=np.float64)

    def save(self, directory: Path) -> None:
        """Write each booster in LightGBM's text format (``ltv_<role>.txt``) and ``ltv.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for role, booster in self.boosters.items():
            booster.save_model(directory / f"ltv_{role}.txt")
        metadata = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "roles": list(self.boosters),
            "layout": self.layout.to_dict(),
            "params": self.params,
            "smearing": self.smearing,
            "validation": self.validation,
            "labels": self.labels.to_dict() if self.labels is not None else None,
        }
        (directory / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> LtvModel:
        """Read a model written by ``save``."""
        directory = Path(directory)
        path = directory / METADATA_FILE
        if not path.is_file():
            raise InputFileError(f"LTV metadata {path} is missing; save the model with LtvModel.save")
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputFileError(f"LTV metadata {path} is not valid JSON: {error}") from None

        if metadata.get("format_version") != FORMAT_VERSION:
            raise InputFileError(
                f"LTV metadata {path} has format_version {metadata.get('format_version')!r}; "
                f"expected {FORMAT_VERSION}"
            )
        kind = metadata["kind"]
        if kind not in CANDIDATES:
            raise InputFileError(
                f"LTV metadata {path} names an unknown model kind {kind!r}; expected {CANDIDATES}"
            )

        boosters: dict[str, lgb.Booster] = {}
        for role in ROLES_BY_KIND[kind]:
            booster_path = directory / f"ltv_{role}.txt"
            if not booster_path.is_file():
                raise InputFileError(
                    f"LTV booster {booster_path} is missing; the model directory is incomplete"
                )
            boosters[role] = lgb.Booster(model_file=booster_path)
        labels = metadata.get("labels")
        return cls(
            kind=kind,
            boosters=boosters,
            layout=MatrixLayout.from_dict(metadata["layout"]),
            params=metadata["params"],
            smearing=float(metadata["smearing"]),
            validation=metadata["validation"],
            labels=LabelReport(**labels) if labels is not None else None,
        )


def _smearing_factor(booster: lgb.Booster, fold: Fold) -> float:
    """Return Duan's smearing factor, the mean of exp(residual) of a log-scale regressor.

    Without it, expm1 of the predicted mean of log1p(revenue) estimates the median rather
    than the mean of a skewed amount and is biased low.
    """
    residuals = fold.y - predict_booster(booster, fold.matrix)
    return float(np.mean(np.exp(residuals)))


@dataclass
class _FitSettings:
    params: Mapping[str, Mapping[str, Any]]
    seed: int
    num_threads: int | None
    num_boost_round: int
    early_stopping_rounds: int
    cap_value: float | None


def _fit_role(
    role: BoosterRole, train: Fold, valid: Fold, settings: _FitSettings
) -> tuple[lgb.Booster, dict[str, Any]]:
    params = role_params(
        role, settings.params.get(role), seed=settings.seed, num_threads=settings.num_threads
    )
    booster = train_booster(
        params,
        role_fold(train, role, settings.cap_value),
        role_fold(valid, role, settings.cap_value),
        num_boost_round=settings.num_boost_round,
        early_stopping_rounds=settings.early_stopping_rounds,
    )
    return booster, params


def _skip_reason(kind: LtvKind, train: Fold, valid: Fold) -> str | None:
    """Return why ``kind`` cannot be fitted on these folds, or None when it can."""
    train_buyers = int((train.y > 0).sum())
    valid_buyers = int((valid.y > 0).sum())
    if kind == "tweedie":
        return None if train_buyers > 0 else "the training fold has no lead with revenue"
    if train_buyers < MIN_TRAIN_BUYERS or train_buyers == len(train):
        return (
            f"the hurdle needs at least {MIN_TRAIN_BUYERS} buyers and some non-buyers in training; "
            f"found {train_buyers} buyers of {len(train)} rows"
        )
    if valid_buyers < MIN_VALID_BUYERS:
        return (
            f"the hurdle needs at least {MIN_VALID_BUYERS} buyers in validation for early stopping; "
            f"found {valid_buyers}"
        )
    return None


def _fit_candidate(
    kind: LtvKind, train: Fold, valid: Fold, settings: _FitSettings, layout: MatrixLayout
) -> LtvModel:
    boosters: dict[str, lgb.Booster] = {}
    params: dict[str, dict[str, Any]] = {}
    for role in ROLES_BY_KIND[kind]:
        boosters[role], params[role] = _fit_role(role, train, valid, settings)
    smearing = 1.0
    if kind == "hurdle_log1p":
        smearing = _smearing_factor(boosters["log1p"], role_fold(valid, "log1p", settings.cap_value))
    return LtvModel(kind=kind, boosters=boosters, layout=layout, params=params, smearing=smearing)


def _score(valid: Fold, predictions: FloatArray) -> dict[str, float]:
    gini = normalized_gini(valid.y, predictions)
    if np.all(predictions == predictions[0]):
        # A booster without a single split predicts a constant, which has no rank correlation.
        return {"normalized_gini": gini, "spearman": 0.0}
    return {"normalized_gini": gini, "spearman": spearman(valid.y, predictions)}


def choose_candidate(scores: Mapping[str, Mapping[str, float]]) -> str:
    """Pick the highest normalized Gini; within 0.005 of the best, the highest Spearman correlation."""
    best_gini = max(score["normalized_gini"] for score in scores.values())
    contenders = [
        kind for kind, score in scores.items() if best_gini - score["normalized_gini"] <= GINI_TIE_TOLERANCE
    ]
    return max(contenders, key=lambda kind: (scores[kind]["spearman"], scores[kind]["normalized_gini"]))


def _check_valid_values(valid: Fold) -> None:
    if valid.y.sum() <= 0 or np.all(valid.y == valid.y[0]):
        raise InsufficientDataError(
            f"the LTV validation fold has no net revenue to rank "
            f"({len(valid)} rows, total {valid.y.sum():.2f}); "
            "use a longer history so that some validation leads have orders within the LTV horizon"
        )


def fit_ltv(
    train: Fold,
    valid: Fold,
    *,
    candidates: Sequence[LtvKind] = CANDIDATES,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = DEFAULT_SEED,
    num_threads: int | None = None,
    num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS,
    cap_quantile: float | None = DEFAULT_CAP_QUANTILE,
) -> LtvModel:
    """Fit every candidate on ``train``, early-stop on ``valid`` and return the one ``valid`` ranks best.

    ``train.y`` and ``valid.y`` contain net revenue per row. ``params`` maps a booster role
    (``occurrence``, ``gamma``, ``log1p``, ``tweedie``) to LightGBM overrides, for example
    from ``tune_ltv``. A candidate the data cannot support (too few buyers for a hurdle) is
    skipped, and the skip reason is kept in ``LtvModel.validation``.
    """
    unknown = [kind for kind in candidates if kind not in CANDIDATES]
    if unknown or not candidates:
        raise ConfigError(f"LTV candidates {list(candidates)} are invalid; choose from {list(CANDIDATES)}")
    if cap_quantile is not None and not 0.5 <= cap_quantile <= 1.0:
        raise ConfigError(f"cap_quantile must be in [0.5, 1] or None, got {cap_quantile!r}")
    _check_valid_values(valid)

    report = label_report(train.y, cap_quantile)
    if report.n_negative_clipped:
        logger.warning(
            "LTV labels: %d of %d training rows have negative net revenue (refunds); "
            "they count as 0 for the Tweedie and gamma objectives and as non-buyers for the hurdle",
            report.n_negative_clipped,
            report.n_rows,
        )
    if report.n_capped:
        logger.info("LTV labels: %d training values capped at %.2f", report.n_capped, report.cap_value)

    layout = MatrixLayout.of(train.matrix)
    layout.check(valid.matrix, context="LTV validation fold")
    settings = _FitSettings(
        params or {}, seed, num_threads, num_boost_round, early_stopping_rounds, report.cap_value
    )
    fitted: dict[str, LtvModel] = {}
    validation: dict[str, dict[str, Any]] = {}
    for kind in candidates:
        reason = _skip_reason(kind, train, valid)
        if reason is not None:
            logger.warning("LTV candidate %s skipped: %s", kind, reason)
            validation[kind] = {"skipped": reason}
            continue
        fitted[kind] = _fit_candidate(kind, train, valid, settings, layout)
        validation[kind] = _score(valid, fitted[kind].predict(valid.matrix))
    if not fitted:
        raise InsufficientDataError(
            f"no LTV candidate could be fitted: {validation}; use a longer history with more paying customers"
        )

    chosen = choose_candidate({kind: validation[kind] for kind in fitted})
    logger.info("LTV model %s chosen on validation: %s", chosen, validation)
    model = fitted[chosen]
    return LtvModel(
        kind=model.kind,
        boosters=model.boosters,
        layout=layout,
        params=model.params,
        smearing=model.smearing,
        validation={"chosen": {"kind": chosen}, **validation},
        labels=report,
    )
