"""Conversion model: LightGBM booster with early stopping, calibration, parameters and persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.catalog import FeatureDef
from features.spec import FeatureSpec
from leadscore.errors import ConfigError, DataValidationError, SchemaError
from tests.training.modelling_data import FEATURES, make_lead_frame, to_matrix
from training.boosting import Fold
from training.conversion import ConversionModel, conversion_params, fit_conversion
from training.metrics import expected_calibration_error, roc_auc
from training.params import available_cores, resolve_num_threads
from training.split import time_split

# One thread: small boosters gain nothing from a second OpenMP thread, which only spins when
# other processes share the cores. The default thread count is checked on the parameters.
ROUNDS = {"num_boost_round": 400, "early_stopping_rounds": 30, "num_threads": 1}


@pytest.fixture(scope="module")
def folds() -> dict[str, Fold]:
    frame = make_lead_frame(8_000, seed=5)
    split = time_split(frame, purge=pd.Timedelta(0))
    matrix = to_matrix(frame)
    y = frame["converted"].to_numpy()
    return {
        name: Fold(matrix.iloc[rows].reset_index(drop=True), y[rows])
        for name, rows in (
            ("train", split.train),
            ("valid", split.valid),
            ("calibration", split.calibration),
            ("test", split.test),
        )
    }


@pytest.fixture(scope="module")
def model(folds) -> ConversionModel:
    return fit_conversion(folds["train"], folds["valid"], folds["calibration"], seed=3, **ROUNDS)


def test_model_ranks_and_is_calibrated(model, folds):
    test = folds["test"]
    calibrated = model.predict(test.matrix)
    assert roc_auc(test.y, calibrated) > 0.75
    assert expected_calibration_error(test.y, calibrated) < 0.04
    assert abs(calibrated.mean() - test.y.mean()) < 0.03
    assert not model.insufficient_data
    assert model.prior_weight == 0.0


def test_raw_and_calibrated_probabilities_exposed(model, folds):
    matrix = folds["test"].matrix
    raw = model.predict_raw(matrix)
    calibrated = model.predict_calibrated(matrix)
    assert raw.shape == calibrated.shape == (len(matrix),)
    assert np.all((raw > 0) & (raw < 1))
    assert np.all((calibrated >= 0) & (calibrated <= 1))
    assert np.array_equal(calibrated, model.calibrator.predict(raw))
    assert np.array_equal(model.predict(matrix), calibrated)


def test_early_stopping_keeps_best_iteration(model):
    assert 1 <= model.best_iteration < ROUNDS["num_boost_round"]


def test_final_params_are_deterministic(model):
    assert model.params["objective"] == "binary"
    assert model.params["deterministic"] is True
    assert model.params["force_col_wise"] is True
    assert model.params["num_threads"] == 1
    for name in ("seed", "bagging_seed", "feature_fraction_seed", "data_random_seed"):
        assert model.params[name] == 3
    for name in ("is_unbalance", "scale_pos_weight"):
        assert name not in model.params


def test_default_thread_count_is_explicit():
    params = conversion_params(None)
    assert params["num_threads"] == min(2, available_cores())


def test_same_seed_gives_identical_predictions(model, folds):
    again = fit_conversion(folds["train"], folds["valid"], folds["calibration"], seed=3, **ROUNDS)
    matrix = folds["test"].matrix
    assert np.array_equal(again.predict_raw(matrix), model.predict_raw(matrix))
    assert np.array_equal(again.predict(matrix), model.predict(matrix))


def test_prediction_ignores_batch_composition(model, folds):
    matrix = folds["test"].matrix
    whole = model.predict(matrix)
    single = model.predict(matrix.iloc[[7]].reset_index(drop=True))
    reversed_rows = model.predict(matrix.iloc[::-1].reset_index(drop=True))[::-1]
    assert single[0] == whole[7]
    assert np.array_equal(reversed_rows, whole)


def test_save_and_load_round_trip(model, folds, tmp_path):
    model.save(tmp_path / "conversion")
    files = sorted(path.name for path in (tmp_path / "conversion").iterdir())
    assert files == ["conversion.json", "conversion.txt"]
    assert json.loads((tmp_path / "conversion" / "conversion.json").read_text())["calibrator"]["method"]
    loaded = ConversionModel.load(tmp_path / "conversion")
    matrix = folds["test"].matrix
    assert np.array_equal(loaded.predict_raw(matrix), model.predict_raw(matrix))
    assert np.array_equal(loaded.predict(matrix), model.predict(matrix))
    assert loaded.layout == model.layout
    assert loaded.sufficiency == model.sufficiency


def test_reordered_columns_raise(model, folds):
    matrix = folds["test"].matrix
    with pytest.raises(SchemaError, match="same names in another order"):
        model.predict(matrix[list(reversed(matrix.columns))])


def test_missing_column_raises(model, folds):
    with pytest.raises(SchemaError, match=r"missing \['noise'\]"):
        model.predict(folds["test"].matrix.drop(columns=["noise"]))


def test_other_categories_raise(model, folds):
    matrix = folds["test"].matrix.copy()
    matrix["channel"] = matrix["channel"].cat.add_categories(["抖音"])
    with pytest.raises(SchemaError, match=r"column 'channel' has categories .* \(unknown: \['抖音'\]\)"):
        model.predict(matrix)


def test_text_column_raises(model, folds):
    matrix = folds["test"].matrix.copy()
    matrix["channel"] = matrix["channel"].astype(str)
    with pytest.raises(SchemaError, match=r"invalid: channel \(str\)"):
        model.predict(matrix)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scale_pos_weight": 10.0}, r"contain \['scale_pos_weight'\], which distort the probability scale"),
        ({"is_unbalance": True}, r"contain \['is_unbalance'\]"),
        ({"unbalance": True}, r"contain \['unbalance'\]"),
        ({"objective": "regression"}, "needs objective 'binary'"),
        (
            {"n_jobs": 8},
            r"alias\(es\) \['n_jobs'\] are not accepted; use the canonical names \(n_jobs -> num_threads\)",
        ),
        ({"num_threads": 0}, "num_threads must be a positive integer, got 0"),
    ],
)
def test_invalid_params_raise(overrides, message):
    with pytest.raises(ConfigError, match=message):
        conversion_params(overrides)


def test_fit_rejects_reweighting_params(folds):
    with pytest.raises(ConfigError, match="scale_pos_weight"):
        fit_conversion(folds["train"], folds["valid"], params={"scale_pos_weight": 5.0}, **ROUNDS)


def test_thread_count_capped_at_available_cores():
    assert resolve_num_threads(None) == min(2, available_cores())
    assert resolve_num_threads(available_cores() + 8) == available_cores()


def test_non_binary_labels_raise(folds):
    train = folds["train"]
    bad = Fold(train.matrix, np.where(np.arange(len(train)) == 4, 2.0, train.y))
    with pytest.raises(DataValidationError, match=r"training fold labels must be 0 or 1.*\[4\]=2.0"):
        fit_conversion(bad, folds["valid"], **ROUNDS)


def test_fold_rejects_missing_labels():
    with pytest.raises(DataValidationError, match=r"at rows \[1\]; drop those rows"):
        Fold(pd.DataFrame({"x": [1.0, 2.0]}), np.array([0.0, np.nan]))


def test_calibrates_on_valid_without_calibration_fold(folds):
    model = fit_conversion(folds["train"], folds["valid"], seed=3, **ROUNDS)
    assert model.calibrator.n_rows == len(folds["valid"])


def test_fits_on_feature_spec_matrix():
    frame = make_lead_frame(4_000, seed=8)
    definitions = [
        FeatureDef(
            name, "categorical" if name in ("channel", "company_size", "stage") else "numeric", name, name, ""
        )
        for name in FEATURES
    ]
    split = time_split(frame, purge=pd.Timedelta(0))
    spec = FeatureSpec.fit(frame.iloc[split.train], definitions)
    y = frame["converted"].to_numpy()

    def fold(rows: np.ndarray) -> Fold:
        return Fold(spec.transform(frame.iloc[rows]).matrix.reset_index(drop=True), y[rows])

    model = fit_conversion(fold(split.train), fold(split.valid), fold(split.calibration), **ROUNDS)
    unseen = frame.iloc[split.test].copy()
    unseen["channel"] = "抖音"
    transformed = spec.transform(unseen)
    assert transformed.unseen_counts["channel"] == len(unseen)
    probabilities = model.predict(transformed.matrix.reset_index(drop=True))
    assert np.all(np.isfinite(probabilities))
    assert roc_auc(y[split.test], model.predict(fold(split.test).matrix)) > 0.7
