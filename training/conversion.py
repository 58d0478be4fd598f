"""The conversion model: a LightGBM binary classifier with a probability calibrator.

``fit_conversion`` trains the booster with the native ``lightgbm.train`` API on the training
fold, early-stops on the validation fold and fits the calibrator on a later fold (the
calibration fold, or the validation fold when there is none). The model exposes the raw
booster probability and the calibrated probability. With too little history (see
``training.coldstart``) the calibrated probability is also blended with the rule-score
probability, and the model reports ``insufficient_data``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from leadscore.errors import ConfigError, DataValidationError, InputFileError
from training import coldstart
from training.boosting import Fold, MatrixLayout, predict_booster, train_booster
from training.calibration import Calibrator, fit_calibrator
from training.params import (
    CONVERSION_DEFAULTS,
    DEFAULT_EARLY_STOPPING_ROUNDS,
    DEFAULT_NUM_BOOST_ROUND,
    DEFAULT_SEED,
    build_params,
    check_probability_params,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BOOSTER_FILE = "conversion.txt"
METADATA_FILE = "conversion.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ConversionModel:
    """A trained conversion booster, its calibrator and the cold-start blend weight."""

    booster: lgb.Booster
    layout: MatrixLayout
    params: dict[str, Any]
    calibrator: Calibrator
    sufficiency: coldstart.DataSufficiency
    prior_weight: float = 0.0

    @property
    def insufficient_data(self) -> bool:
        """Whether the model was trained on too little history to be trusted on its own."""
        return self.sufficiency.insufficient_data

    @property
    def best_iteration(self) -> int:
        """The boosting round kept by early stopping (all rounds when early stopping never triggered)."""
        return int(self.booster.best_iteration or self.booster.current_iteration())

    def predict_raw(self, matrix: pd.DataFrame) -> FloatArray:
        """Return the booster's uncalibrated conversion probabilities for the rows of ``matrix``."""
        self.layout.check(matrix, context="conversion model")
        return predict_booster(self.booster, matrix)

    def predict_calibrated(self, matrix: pd.DataFrame) -> FloatArray:
        """Return calibrated conversion probabilities, before any cold-start blend."""
        return self.calibrator.predict(self.predict_raw(matrix))

    def predict(self, matrix: pd.DataFrame, prior_p: npt.ArrayLike | None = None) -> FloatArray:
        """Return the final conversion probability of each row.

        A model trained with too little data needs ``prior_p``, the rule-score probability of the
        same rows (``RuleScoreModel.predict_proba``), to blend with. Other models ignore it.
        """
        calibrated = self.predict_calibrated(matrix)
        if self.prior_weight == 0.0:
            return calibrated
        if prior_p is None:
            raise ValueError(
                f"this conversion model was trained with insufficient data and blends its probability with "
                f"the rule-score probability (weight {self.prior_weight:.2f}); pass prior_p for the same rows"
            )
        return coldstart.blend_with_prior(calibrated, prior_p, self.prior_weight)

    def save(self, directory: Path) -> None:
        """Write the booster in LightGBM's text format and the metadata as JSON into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(directory / BOOSTER_FILE, num_iteration=self.best_iteration)
        metadata = {
            "format_version": FORMAT_VERSION,
            "layout": self.layout.to_dict(),
            "params": self.params,
            "calibrator": self.calibrator.to_dict(),
            "sufficiency": self.sufficiency.to_dict(),
            "prior_weight": self.prior_weight,
        }
        (directory / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> ConversionModel:
        """Read a model written by ``save``."""
        directory = Path(directory)
        metadata = _read_metadata(directory / METADATA_FILE)
        booster_path = directory / BOOSTER_FILE
        if not booster_path.is_file():
            raise InputFileError(
                f"conversion booster {booster_path} is missing; the model directory is incomplete"
            )
        return cls(
            booster=lgb.Booster(model_file=booster_path),
            layout=MatrixLayout.from_dict(metadata["layout"]),
            params=dict(metadata["params"]),
            calibrator=Calibrator.from_dict(metadata["calibrator"]),
            sufficiency=coldstart.DataSufficiency.from_dict(metadata["sufficiency"]),
            prior_weight=float(metadata["prior_weight"]),
        )


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputFileError(f"model metadata {path} is missing; save the model with ConversionModel.save")
    try:
        metadata: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputFileError(f"model metadata {path} is not valid JSON: {error}") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise InputFileError(
            f"model metadata {path} has format_version {metadata.get('format_version')!r}; "
            f"this version of leadscore reads {FORMAT_VERSION}"
        )
    return metadata


def _check_binary_labels(fold: Fold, name: str) -> None:
    bad = np.flatnonzero((fold.y != 0) & (fold.y != 1))
    if bad.size:
        shown = ", ".join(f"[{i}]={fold.y[i]}" for i in bad[:5])
        raise DataValidationError(
            f"{name} fold labels must be 0 or 1 (converted); {bad.size} are not: {shown}"
        )


def conversion_params(
    overrides: Mapping[str, Any] | None, *, seed: int = DEFAULT_SEED, num_threads: int | None = None
) -> dict[str, Any]:
    """Return the final conversion parameters: defaults, then ``overrides``, then the deterministic settings.

    Raises ConfigError for a non-binary objective or a class-reweighting parameter.
    """
    params = build_params(CONVERSION_DEFAULTS, overrides, seed=seed, num_threads=num_threads)
    if params.get("objective") != "binary":
        raise ConfigError(f"the conversion model needs objective 'binary', got {params.get('objective')!r}")
    check_probability_params(params)
    return params


def fit_conversion(
    train: Fold,
    valid: Fold,
    calibration: Fold | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    sufficiency: coldstart.DataSufficiency | None = None,
    seed: int = DEFAULT_SEED,
    num_threads: int | None = None,
    num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS,
    calibration_method: Literal["auto", "isotonic", "platt"] = "auto",
) -> ConversionModel:
    """Train the conversion booster, early-stopped on ``valid``, and calibrate it on a later fold.

    ``params`` are LightGBM overrides, for example ``TuningResult.best_params``. ``sufficiency``
    should come from ``coldstart.assess`` with the training fold's lead and conversion counts.
    Without it, every training row counts as one lead. A refused sufficiency raises
    InsufficientDataError. ``calibration_method`` applies only with enough data, because the
    cold-start plan always calibrates with Platt scaling.
    """
    for fold, name in ((train, "training"), (valid, "validation"), (calibration, "calibration")):
        if fold is not None:
            _check_binary_labels(fold, name)
    if sufficiency is None:
        sufficiency = coldstart.assess(len(train), int(train.y.sum()), len(train))

    base = {**CONVERSION_DEFAULTS, **(params or {})}
    training_plan = coldstart.plan(
        sufficiency, base, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds
    )
    final_params = conversion_params(training_plan.params, seed=seed, num_threads=num_threads)
    booster = train_booster(
        final_params,
        train,
        valid,
        num_boost_round=training_plan.num_boost_round,
        early_stopping_rounds=training_plan.early_stopping_rounds,
    )
    layout = MatrixLayout.of(train.matrix)

    calibration_fold = calibration if calibration is not None else valid
    if calibration is None:
        logger.info("no calibration fold given; calibrating on the validation fold")
    method = training_plan.calibration_method if sufficiency.insufficient_data else calibration_method
    layout.check(calibration_fold.matrix, context="calibration fold")
    raw = predict_booster(booster, calibration_fold.matrix)
    calibrator = fit_calibrator(raw, calibration_fold.y, method=method, seed=seed)
    return ConversionModel(
        booster=booster,
        layout=layout,
        params=final_params,
        calibrator=calibrator,
        sufficiency=sufficiency,
        prior_weight=training_plan.prior_weight,
    )
