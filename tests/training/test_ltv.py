"""Lifetime-value model: hurdle and Tweedie candidates, selection, label handling, persistence."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from leadscore.errors import ConfigError, InputFileError, InsufficientDataError, SchemaError
from tests.training.modelling_data import make_lead_frame, to_matrix
from training.boosting import Fold
from training.ltv import (
    CANDIDATES,
    LtvModel,
    choose_candidate,
    fit_ltv,
    label_report,
    role_labels,
)
from training.metrics import normalized_gini
from training.split import time_split

# One thread: these tests fit many small boosters, where OpenMP synchronization costs more than
# it saves, most of all when other processes share the cores.
ROUNDS = {"num_boost_round": 300, "early_stopping_rounds": 30, "num_threads": 1}


@pytest.fixture(scope="module")
def folds() -> dict[str, Fold]:
    frame = make_lead_frame(8_000, seed=21)
    split = time_split(frame, purge=pd.Timedelta(0), calibration_fraction=0.0)
    matrix = to_matrix(frame)
    value = frame["value"].to_numpy()
    return {
        name: Fold(matrix.iloc[rows].reset_index(drop=True), value[rows])
        for name, rows in (("train", split.train), ("valid", split.valid), ("test", split.test))
    }


@pytest.fixture(scope="module")
def model(folds) -> LtvModel:
    return fit_ltv(folds["train"], folds["valid"], seed=2, **ROUNDS)


def test_all_candidates_compared_on_validation(model):
    for kind in CANDIDATES:
        assert set(model.validation[kind]) == {"normalized_gini", "spearman"}
    assert model.validation["chosen"] == {"kind": model.kind}
    scores = {kind: model.validation[kind] for kind in CANDIDATES}
    assert model.kind == choose_candidate(scores)


def test_chosen_model_ranks_test_revenue(model, folds):
    test = folds["test"]
    predictions = model.predict(test.matrix)
    assert predictions.shape == (len(test),)
    assert np.all(np.isfinite(predictions))
    assert np.all(predictions >= 0)
    assert normalized_gini(test.y, predictions) > 0.5


@pytest.mark.parametrize("kind", CANDIDATES)
def test_each_candidate_predicts_revenue_scale(folds, kind):
    model = fit_ltv(folds["train"], folds["valid"], candidates=[kind], seed=2, **ROUNDS)
    assert model.kind == kind
    test = folds["test"]
    predictions = model.predict(test.matrix)
    assert normalized_gini(test.y, predictions) > 0.4
    # The mean prediction lands within a factor of two of the mean net revenue.
    ratio = predictions.mean() / test.y.mean()
    assert 0.5 < ratio < 2.0


def test_hurdle_components_multiply_to_prediction(folds):
    model = fit_ltv(folds["train"], folds["valid"], candidates=["hurdle_log1p"], seed=2, **ROUNDS)
    parts = model.predict_components(folds["test"].matrix)
    assert np.all((parts["p_any"] > 0) & (parts["p_any"] < 1))
    assert np.all(parts["amount"] >= 0)
    assert np.allclose(parts["p_any"] * parts["amount"], model.predict(folds["test"].matrix))
    assert model.smearing > 1.0


def test_tweedie_components_are_not_separated(folds):
    model = fit_ltv(folds["train"], folds["valid"], candidates=["tweedie"], seed=2, **ROUNDS)
    parts = model.predict_components(folds["test"].matrix)
    assert parts.isna().all().all()


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        (
            {
                "a": {"normalized_gini": 0.70, "spearman": 0.1},
                "b": {"normalized_gini": 0.60, "spearman": 0.9},
            },
            "a",
        ),
        (
            {
                "a": {"normalized_gini": 0.700, "spearman": 0.1},
                "b": {"normalized_gini": 0.697, "spearman": 0.2},
            },
            "b",
        ),
        (
            {
                "a": {"normalized_gini": 0.700, "spearman": 0.3},
                "b": {"normalized_gini": 0.697, "spearman": 0.2},
            },
            "a",
        ),
    ],
)
def test_selection_rule_gini_then_spearman(scores, expected):
    assert choose_candidate(scores) == expected


def test_negative_labels_clipped_and_counted(folds, caplog):
    train = folds["train"]
    n_negative = int((train.y < 0).sum())
    assert n_negative > 0
    with caplog.at_level(logging.WARNING, logger="training.ltv"):
        model = fit_ltv(train, folds["valid"], candidates=["tweedie"], seed=2, **ROUNDS)
    assert model.labels is not None
    assert model.labels.n_negative_clipped == n_negative
    assert f"{n_negative} of {len(train)} training rows have negative net revenue" in caplog.text


def test_role_labels_per_objective():
    values = np.array([-50.0, 0.0, 10.0, 1_000.0])
    mask, labels = role_labels(values, "occurrence", None)
    assert mask.all()
    assert labels.tolist() == [0.0, 0.0, 1.0, 1.0]
    mask, labels = role_labels(values, "tweedie", 500.0)
    assert mask.all()
    assert labels.tolist() == [0.0, 0.0, 10.0, 500.0]
    mask, labels = role_labels(values, "gamma", None)
    assert mask.tolist() == [False, False, True, True]
    assert labels.tolist() == [10.0, 1_000.0]
    mask, labels = role_labels(values, "log1p", 500.0)
    assert np.allclose(labels, np.log1p([10.0, 500.0]))


def test_label_report_caps_heavy_tail():
    values = np.concatenate([np.zeros(50), np.arange(1.0, 1001.0), [-5.0]])
    report = label_report(values, 0.99)
    assert report.n_positive == 1000
    assert report.n_zero == 50
    assert report.n_negative_clipped == 1
    assert report.cap_value == pytest.approx(np.quantile(np.arange(1.0, 1001.0), 0.99))
    assert report.n_capped == 10


def test_hurdle_skipped_with_few_buyers(folds):
    train = folds["train"]
    keep = (train.y <= 0) | (np.cumsum(train.y > 0) <= 10)
    few_buyers = train.subset(keep)
    model = fit_ltv(few_buyers, folds["valid"], seed=2, **ROUNDS)
    assert model.kind == "tweedie"
    assert "at least 20 buyers" in model.validation["hurdle_gamma"]["skipped"]
    assert "found 10 buyers" in model.validation["hurdle_log1p"]["skipped"]


def test_validation_without_revenue_raises(folds):
    valid = folds["valid"]
    empty = Fold(valid.matrix, np.zeros(len(valid)))
    with pytest.raises(InsufficientDataError, match="validation fold has no net revenue to rank"):
        fit_ltv(folds["train"], empty, **ROUNDS)


def test_invalid_arguments_raise(folds):
    with pytest.raises(ConfigError, match=r"LTV candidates \['poisson'\] are invalid"):
        fit_ltv(folds["train"], folds["valid"], candidates=["poisson"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="cap_quantile must be in"):
        fit_ltv(folds["train"], folds["valid"], cap_quantile=0.2)
    with pytest.raises(ConfigError, match="needs objective 'tweedie'"):
        fit_ltv(
            folds["train"], folds["valid"], candidates=["tweedie"], params={"tweedie": {"objective": "l2"}}
        )


def test_save_and_load_round_trip(model, folds, tmp_path):
    model.save(tmp_path / "ltv")
    names = sorted(path.name for path in (tmp_path / "ltv").iterdir())
    expected_boosters = sorted(f"ltv_{role}.txt" for role in model.boosters)
    assert names == sorted(["ltv.json", *expected_boosters])
    metadata = json.loads((tmp_path / "ltv" / "ltv.json").read_text())
    assert metadata["kind"] == model.kind
    loaded = LtvModel.load(tmp_path / "ltv")
    matrix = folds["test"].matrix
    assert np.array_equal(loaded.predict(matrix), model.predict(matrix))
    assert loaded.labels == model.labels


def test_load_reports_missing_booster(model, tmp_path):
    model.save(tmp_path / "ltv")
    next((tmp_path / "ltv").glob("ltv_*.txt")).unlink()
    with pytest.raises(InputFileError, match="is missing; the model directory is incomplete"):
        LtvModel.load(tmp_path / "ltv")


def test_predict_checks_columns(model, folds):
    with pytest.raises(SchemaError, match=r"missing \['noise'\]"):
        model.predict(folds["test"].matrix.drop(columns=["noise"]))
