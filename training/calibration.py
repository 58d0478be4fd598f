"""Probability calibration of the conversion booster: isotonic regression or Platt scaling.

The calibrator is fitted on a fold later than the booster's training data (see
``training.split``). ``method="auto"`` cross-fits both methods on that fold and keeps the one
with the lower out-of-fold Brier score. When the two Brier scores are within 0.5 % of each
other, the lower expected calibration error (ECE) decides, and Platt wins an exact tie
because its two parameters vary less on small folds than the isotonic step function.

A fitted calibrator is plain JSON (``to_dict``/``from_dict``): Platt's slope and intercept on
the logit of the raw probability, or the isotonic thresholds. Nothing is pickled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError
from training.metrics import brier, expected_calibration_error

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
CalibrationMethod = Literal["isotonic", "platt"]
METHODS: tuple[str, ...] = ("isotonic", "platt")
FORMAT_VERSION = 1

# Probabilities are kept this far from 0 and 1 before taking the logit.
LOGIT_EPSILON = 1e-6
# Relative Brier difference under which the two methods count as equal and ECE decides.
BRIER_TIE_TOLERANCE = 0.005
MAX_CROSS_FIT_FOLDS = 5
MIN_CLASS_COUNT = 2


def logit(p: FloatArray) -> FloatArray:
    """Return log(p / (1 - p)) with ``p`` clipped to [1e-6, 1 - 1e-6]."""
    clipped = np.clip(p, LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
    return np.asarray(np.log(clipped) - np.log1p(-clipped), dtype=np.float64)


def sigmoid(z: FloatArray) -> FloatArray:
    """Return 1 / (1 + exp(-z)) without overflow."""
    return np.asarray(np.exp(-np.logaddexp(0.0, -z)), dtype=np.float64)


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw booster probabilities to calibrated probabilities.

    ``selection`` stores the cross-fitted Brier and ECE of each method that ``method="auto"``
    compared, for the model card. It is empty when the method was given explicitly.
    """

    method: CalibrationMethod
    slope: float = 1.0
    intercept: float = 0.0
    x_thresholds: tuple[float, ...] = ()
    y_thresholds: tuple[float, ...] = ()
    n_rows: int = 0
    selection: dict[str, dict[str, float]] = field(default_factory=dict)

    def predict(self, p: npt.ArrayLike) -> FloatArray:
        """Return calibrated probabilities for raw probabilities ``p``."""
        raw = _check_probabilities(np.asarray(p, dtype=np.float64), "raw probabilities")
        if self.method == "platt":
            return sigmoid(self.slope * logit(raw) + self.intercept)
        # np.interp keeps the end values outside the threshold range, like IsotonicRegression
        # with out_of_bounds="clip".
        return np.asarray(np.interp(raw, self.x_thresholds, self.y_thresholds), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Return the calibrator as JSON-ready data."""
        payload: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "n_rows": self.n_rows,
            "selection": self.selection,
        }
        if self.method == "platt":
            payload.update(slope=self.slope, intercept=self.intercept)
        else:
            payload.update(x_thresholds=list(self.x_thresholds), y_thresholds=list(self.y_thresholds))
        return payload

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Calibrator:
        """Rebuild a calibrator from ``to_dict`` output, raising ConfigError on a malformed payload."""
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise ConfigError(
                f"calibrator format_version {version!r} is not supported; expected {FORMAT_VERSION}"
            )
        method = payload.get("method")
        if method not in METHODS:
            raise ConfigError(f"calibrator method {method!r} is invalid; expected one of {METHODS}")

        n_rows = int(payload.get("n_rows", 0))
        selection = dict(payload.get("selection", {}))
        if method == "platt":
            slope = _finite_number(payload, "slope")
            intercept = _finite_number(payload, "intercept")
            return cls(method="platt", slope=slope, intercept=intercept, n_rows=n_rows, selection=selection)

        x_values = _threshold_array(payload, "x_thresholds")
        y_values = _threshold_array(payload, "y_thresholds")
        if x_values.size != y_values.size:
            raise ConfigError(
                f"calibrator x_thresholds has {x_values.size} values but y_thresholds has {y_values.size}"
            )
        if np.any(np.diff(x_values) < 0) or np.any(np.diff(y_values) < 0):
            raise ConfigError("calibrator thresholds must be non-decreasing; the payload is corrupt")
        return cls(
            method="isotonic",
            x_thresholds=tuple(float(v) for v in x_values),
            y_thresholds=tuple(float(v) for v in y_values),
            n_rows=n_rows,
            selection=selection,
        )


def _finite_number(payload: Mapping[str, Any], key: str) -> float:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ConfigError(f"calibrator field {key!r} must be a finite number, got {value!r}")
    return float(value)


def _threshold_array(payload: Mapping[str, Any], key: str) -> FloatArray:
    values = payload.get(key)
    if not isinstance(values, list) or not values:
        raise ConfigError(f"calibrator field {key!r} must be a non-empty list of numbers, got {values!r}")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array > 1):
        raise ConfigError(f"calibrator field {key!r} must contain probabilities in [0, 1]")
    return array


def _check_probabilities(p: FloatArray, name: str) -> FloatArray:
    if p.ndim != 1:
        raise DataValidationError(f"{name} must be one-dimensional, got shape {p.shape}")
    bad = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
    if bad.size:
        shown = ", ".join(f"[{i}]={p[i]}" for i in bad[:5])
        raise DataValidationError(
            f"{name} must be finite probabilities in [0, 1]; {bad.size} are not: {shown}"
        )
    return p


def _check_labels(y: FloatArray, n_rows: int) -> FloatArray:
    if y.ndim != 1 or y.size != n_rows:
        raise DataValidationError(f"labels must be one-dimensional with {n_rows} values, got shape {y.shape}")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        shown = ", ".join(f"[{i}]={y[i]}" for i in bad[:5])
        raise DataValidationError(f"labels must be 0 or 1; {bad.size} are not: {shown}")
    return y


def fit_sigmoid(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Fit P(y = 1) = sigmoid(slope * x + intercept) by maximum likelihood; return (slope, intercept).

    The targets are Platt's smoothed labels: (positives + 1) / (positives + 2) for a positive
    and 1 / (negatives + 2) for a negative. They keep a small or separable sample from
    producing probabilities of exactly 0 or 1 (Platt 1999, "Probabilistic outputs for support
    vector machines").
    """
    n_positive = float(y.sum())
    n_negative = float(y.size - n_positive)
    targets = np.where(y == 1, (n_positive + 1.0) / (n_positive + 2.0), 1.0 / (n_negative + 2.0))

    def loss_and_gradient(theta: FloatArray) -> tuple[float, FloatArray]:
        z = theta[0] * x + theta[1]
        # -t log s(z) - (1 - t) log(1 - s(z)) == logaddexp(0, z) - t z
        loss = float(np.sum(np.logaddexp(0.0, z) - targets * z))
        residual = sigmoid(z) - targets
        return loss, np.array([np.sum(residual * x), np.sum(residual)])

    result = minimize(loss_and_gradient, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    if not result.success:
        logger.warning("sigmoid fit did not converge (%s); using the last iterate", result.message)
    return float(result.x[0]), float(result.x[1])


def fit_platt(raw_p: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Fit Platt scaling on logit(raw_p) and return (slope, intercept)."""
    return fit_sigmoid(logit(raw_p), y)


def fit_isotonic(raw_p: FloatArray, y: FloatArray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Fit a non-decreasing step function from raw to calibrated probability; return its thresholds."""
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(raw_p, y)
    return (
        tuple(float(v) for v in model.X_thresholds_),
        tuple(float(v) for v in model.y_thresholds_),
    )


def _fit_method(method: CalibrationMethod, raw_p: FloatArray, y: FloatArray) -> Calibrator:
    if method == "platt":
        slope, intercept = fit_platt(raw_p, y)
        return Calibrator(method="platt", slope=slope, intercept=intercept, n_rows=int(y.size))
    x_thresholds, y_thresholds = fit_isotonic(raw_p, y)
    return Calibrator(
        method="isotonic", x_thresholds=x_thresholds, y_thresholds=y_thresholds, n_rows=int(y.size)
    )


def cross_fit_scores(raw_p: FloatArray, y: FloatArray, *, seed: int) -> dict[str, dict[str, float]]:
    """Return the out-of-fold Brier score and ECE of each method on stratified folds of the data."""
    n_positive = int(y.sum())
    n_splits = min(MAX_CROSS_FIT_FOLDS, n_positive, int(y.size) - n_positive)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    scores: dict[str, dict[str, float]] = {}
    for method in METHODS:
        out_of_fold = np.empty(y.size, dtype=np.float64)
        for fit_rows, held_out_rows in folds.split(raw_p.reshape(-1, 1), y):
            calibrator = _fit_method(method, raw_p[fit_rows], y[fit_rows])  # type: ignore[arg-type]
            out_of_fold[held_out_rows] = calibrator.predict(raw_p[held_out_rows])
        scores[method] = {
            "brier": brier(y, out_of_fold),
            "ece": expected_calibration_error(y, out_of_fold, n_bins=10),
        }
    return scores


def choose_method(scores: Mapping[str, Mapping[str, float]]) -> CalibrationMethod:
    """Pick the method with the lower Brier score; within 0.5 %, the lower ECE; on a full tie, Platt."""
    platt, isotonic = scores["platt"], scores["isotonic"]
    reference = max(platt["brier"], isotonic["brier"], 1e-12)
    if abs(platt["brier"] - isotonic["brier"]) / reference > BRIER_TIE_TOLERANCE:
        return "isotonic" if isotonic["brier"] < platt["brier"] else "platt"
    return "isotonic" if isotonic["ece"] < platt["ece"] else "platt"


def fit_calibrator(
    raw_p: npt.ArrayLike,
    y: npt.ArrayLike,
    method: Literal["auto", "isotonic", "platt"] = "auto",
    *,
    seed: int = 0,
) -> Calibrator:
    """Fit a calibrator on raw probabilities and 0/1 outcomes of a fold the booster did not train on.

    Needs at least two positives and two negatives. With ``method="auto"`` both methods are
    cross-fitted first and the chosen one is refitted on all rows.
    """
    if method not in ("auto", *METHODS):
        raise ConfigError(f"calibration method {method!r} is invalid; use 'auto', 'isotonic' or 'platt'")
    probabilities = _check_probabilities(np.asarray(raw_p, dtype=np.float64), "raw probabilities")
    labels = _check_labels(np.asarray(y, dtype=np.float64), probabilities.size)
    n_positive = int(labels.sum())
    n_negative = int(labels.size) - n_positive
    if min(n_positive, n_negative) < MIN_CLASS_COUNT:
        raise InsufficientDataError(
            f"calibration needs at least {MIN_CLASS_COUNT} positive and {MIN_CLASS_COUNT} negative rows; "
            f"the calibration fold has {n_positive} positive and {n_negative} negative. "
            "Use a longer history or a larger calibration fraction"
        )

    selection: dict[str, dict[str, float]] = {}
    chosen: CalibrationMethod
    if method == "auto":
        selection = cross_fit_scores(probabilities, labels, seed=seed)
        chosen = choose_method(selection)
        logger.info("calibration method %s chosen by cross-fitting: %s", chosen, selection)
    else:
        chosen = method
    fitted = _fit_method(chosen, probabilities, labels)
    return Calibrator(
        method=fitted.method,
        slope=fitted.slope,
        intercept=fitted.intercept,
        x_thresholds=fitted.x_thresholds,
        y_thresholds=fitted.y_thresholds,
        n_rows=fitted.n_rows,
        selection=selection,
    )
