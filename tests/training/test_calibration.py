"""Calibration: isotonic and Platt calibrators, automatic choice, JSON round trip, input checks."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError
from tests.training.modelling_data import make_lead_frame, to_matrix
from training.calibration import Calibrator, choose_method, fit_calibrator
from training.metrics import brier, expected_calibration_error
from training.split import time_split


@pytest.fixture(scope="module")
def reweighted_scores() -> dict[str, np.ndarray]:
    """Raw probabilities of a booster trained with scale_pos_weight=10, on later folds.

    Reweighting the positives tenfold inflates every probability, so the raw scores are
    deliberately miscalibrated (conversion rate about 13 %).
    """
    frame = make_lead_frame(12_000, seed=11)
    split = time_split(frame, purge=pd.Timedelta(0), calibration_fraction=0.2)
    matrix = to_matrix(frame)
    y = frame["converted"].to_numpy()
    params = {
        "objective": "binary",
        "scale_pos_weight": 10.0,
        "num_leaves": 15,
        "learning_rate": 0.1,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "seed": 1,
        "verbosity": -1,
    }
    booster = lgb.train(params, lgb.Dataset(matrix.iloc[split.train], y[split.train]), num_boost_round=80)
    return {
        "calibration_p": booster.predict(matrix.iloc[split.calibration]),
        "calibration_y": y[split.calibration],
        "test_p": booster.predict(matrix.iloc[split.test]),
        "test_y": y[split.test],
    }


def calibration_fold(scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return scores["calibration_p"], scores["calibration_y"]


def test_reweighted_booster_is_miscalibrated(reweighted_scores):
    ece = expected_calibration_error(reweighted_scores["test_y"], reweighted_scores["test_p"])
    assert ece > 0.15
    assert reweighted_scores["test_p"].mean() > 2 * reweighted_scores["test_y"].mean()


@pytest.mark.parametrize("method", ["auto", "platt", "isotonic"])
def test_calibration_fixes_reweighted_booster(reweighted_scores, method):
    calibrator = fit_calibrator(*calibration_fold(reweighted_scores), method)
    test_y = reweighted_scores["test_y"]
    raw = reweighted_scores["test_p"]
    calibrated = calibrator.predict(raw)
    assert expected_calibration_error(test_y, calibrated) < 0.03
    assert expected_calibration_error(test_y, calibrated) < expected_calibration_error(test_y, raw) / 5
    assert brier(test_y, calibrated) < brier(test_y, raw)
    assert abs(calibrated.mean() - test_y.mean()) < 0.02


def test_auto_records_both_methods(reweighted_scores):
    calibrator = fit_calibrator(*calibration_fold(reweighted_scores))
    assert set(calibrator.selection) == {"platt", "isotonic"}
    for scores in calibrator.selection.values():
        assert 0.0 < scores["brier"] < 0.25
        assert 0.0 <= scores["ece"] < 0.1
    assert calibrator.method == choose_method(calibrator.selection)


def test_auto_choice_is_reproducible(reweighted_scores):
    first = fit_calibrator(*calibration_fold(reweighted_scores), seed=4)
    second = fit_calibrator(*calibration_fold(reweighted_scores), seed=4)
    assert first == second


@pytest.mark.parametrize(
    ("platt", "isotonic", "expected"),
    [
        ({"brier": 0.100, "ece": 0.01}, {"brier": 0.090, "ece": 0.02}, "isotonic"),
        ({"brier": 0.090, "ece": 0.02}, {"brier": 0.100, "ece": 0.01}, "platt"),
        ({"brier": 0.1000, "ece": 0.02}, {"brier": 0.1001, "ece": 0.01}, "isotonic"),
        ({"brier": 0.1001, "ece": 0.01}, {"brier": 0.1000, "ece": 0.02}, "platt"),
        ({"brier": 0.1000, "ece": 0.01}, {"brier": 0.1000, "ece": 0.01}, "platt"),
    ],
)
def test_choose_method_rule(platt, isotonic, expected):
    assert choose_method({"platt": platt, "isotonic": isotonic}) == expected


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrator_json_round_trip(reweighted_scores, method):
    calibrator = fit_calibrator(*calibration_fold(reweighted_scores), method)
    payload = json.loads(json.dumps(calibrator.to_dict()))
    restored = Calibrator.from_dict(payload)
    raw = reweighted_scores["test_p"]
    assert np.array_equal(restored.predict(raw), calibrator.predict(raw))
    assert restored.method == method


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrated_probabilities_are_monotone(reweighted_scores, method):
    calibrator = fit_calibrator(*calibration_fold(reweighted_scores), method)
    grid = np.linspace(0.0, 1.0, 501)
    calibrated = calibrator.predict(grid)
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated.min() >= 0.0
    assert calibrated.max() <= 1.0


def test_platt_avoids_certainty_when_separable():
    raw = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    calibrator = fit_calibrator(raw, y, "platt")
    calibrated = calibrator.predict(np.array([0.0, 1.0]))
    assert calibrated[0] > 0.0
    assert calibrated[1] < 1.0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"format_version": 9, "method": "platt"}, "format_version 9 is not supported"),
        ({"format_version": 1, "method": "beta"}, "method 'beta' is invalid"),
        ({"format_version": 1, "method": "platt", "slope": "x", "intercept": 0}, "'slope' must be a finite"),
        (
            {"format_version": 1, "method": "isotonic", "x_thresholds": [0.1, 0.5], "y_thresholds": [0.2]},
            "x_thresholds has 2 values but y_thresholds has 1",
        ),
        (
            {
                "format_version": 1,
                "method": "isotonic",
                "x_thresholds": [0.5, 0.1],
                "y_thresholds": [0.1, 0.3],
            },
            "must be non-decreasing",
        ),
        (
            {"format_version": 1, "method": "isotonic", "x_thresholds": [], "y_thresholds": []},
            "must be a non-empty list",
        ),
    ],
)
def test_from_dict_rejects_malformed_payload(payload, message):
    with pytest.raises(ConfigError, match=message):
        Calibrator.from_dict(payload)


def test_labels_must_be_binary():
    with pytest.raises(DataValidationError, match=r"labels must be 0 or 1; 1 are not: \[2\]=2.0"):
        fit_calibrator([0.1, 0.2, 0.3, 0.4], [0, 1, 2, 0])


def test_probabilities_must_be_in_unit_interval():
    with pytest.raises(DataValidationError, match=r"\[1\]=1.5"):
        fit_calibrator([0.1, 1.5, 0.3, 0.4], [0, 1, 1, 0])


def test_labels_and_probabilities_must_align():
    with pytest.raises(DataValidationError, match="one-dimensional with 3 values"):
        fit_calibrator([0.1, 0.2, 0.3], [0, 1])


def test_too_few_positives_raise():
    with pytest.raises(InsufficientDataError, match="has 1 positive and 5 negative"):
        fit_calibrator([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 0, 0, 0, 1])


def test_unknown_method_raises():
    with pytest.raises(ConfigError, match="calibration method 'beta' is invalid"):
        fit_calibrator([0.1, 0.9], [0, 1], method="beta")  # type: ignore[arg-type]
