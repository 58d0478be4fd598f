"""Cold start: sufficiency levels, the refusal message, tightened training and the rule-score blend."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from leadscore.errors import DataValidationError, InsufficientDataError
from tests.training.modelling_data import make_lead_frame, to_matrix
from training import coldstart
from training.baselines.rules import fit_rule_model
from training.boosting import Fold
from training.conversion import ConversionModel, fit_conversion
from training.metrics import expected_calibration_error, roc_auc
from training.split import time_split


@pytest.mark.parametrize(
    ("n_rows", "n_positive", "n_leads", "level", "codes"),
    [
        (150, 30, 150, ("refuse"), ["coldstart.leads_below_minimum"]),
        (900, 12, 300, "refuse", ["coldstart.conversions_below_minimum"]),
        (250, 240, 250, "refuse", ["coldstart.non_conversions_below_minimum"]),
        (100, 5, 100, "refuse", ["coldstart.leads_below_minimum", "coldstart.conversions_below_minimum"]),
        (200, 20, 200, "insufficient_data", ["coldstart.leads_below_ok", "coldstart.conversions_below_ok"]),
        (5_000, 150, 5_000, "insufficient_data", ["coldstart.conversions_below_ok"]),
        (1_500, 300, 1_500, "insufficient_data", ["coldstart.leads_below_ok"]),
        (2_000, 200, 2_000, "ok", []),
        (50_000, 4_000, 20_000, "ok", []),
    ],
)
def test_assess_levels(n_rows, n_positive, n_leads, level, codes):
    sufficiency = coldstart.assess(n_rows, n_positive, n_leads)
    assert sufficiency.level == level
    assert [reason.code for reason in sufficiency.reasons] == codes
    assert sufficiency.insufficient_data == (level != "ok")


def test_refusal_message_says_found_needed_and_fix():
    sufficiency = coldstart.assess(150, 12, 150)
    with pytest.raises(InsufficientDataError) as raised:
        sufficiency.raise_if_refused()
    message = str(raised.value)
    assert "150 leads in the training data; at least 200 are needed" in message
    assert "12 converted leads in the training data; at least 20 are needed" in message
    assert "Import a longer CRM history" in message
    assert "score leads with the rule score until then" in message
    assert raised.value.code == "insufficient_data"
    assert raised.value.http_status == 422


def test_reasons_in_chinese():
    sufficiency = coldstart.assess(800, 60, 800)
    texts = sufficiency.reason_texts("zh-CN")
    assert texts == [
        "线索只有 800 条（少于 2000 条）：评分已与规则评分加权融合，并标记为数据不足",
        "成交线索只有 60 条（少于 200 条）：评分已与规则评分加权融合，并标记为数据不足",
    ]


def test_not_refused_does_not_raise():
    coldstart.assess(400, 40, 400).raise_if_refused()
    coldstart.assess(4_000, 400, 4_000).raise_if_refused()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((-1, 0, 0), "n_rows must be a non-negative integer, got -1"),
        ((10, 1.5, 10), "n_positive must be a non-negative integer, got 1.5"),
        ((10, 2, 20), r"n_leads \(20\) cannot exceed n_rows \(10\)"),
        ((10, 12, 10), r"n_positive \(12\) cannot exceed n_leads \(10\)"),
    ],
)
def test_assess_rejects_invalid_counts(arguments, message):
    with pytest.raises(DataValidationError, match=message):
        coldstart.assess(*arguments)


def test_sufficiency_dict_round_trip():
    sufficiency = coldstart.assess(800, 60, 700)
    payload = sufficiency.to_dict()
    assert payload["insufficient_data"] is True
    assert coldstart.DataSufficiency.from_dict(payload) == sufficiency


def test_plan_tightens_params_with_little_data():
    sufficiency = coldstart.assess(500, 50, 500)
    plan = coldstart.plan(
        sufficiency,
        {"num_leaves": 63, "min_data_in_leaf": 5, "lambda_l2": 0.0, "learning_rate": 0.1},
        num_boost_round=2_000,
        early_stopping_rounds=100,
    )
    assert plan.params["num_leaves"] == 7
    assert plan.params["max_depth"] == 3
    assert plan.params["min_data_in_leaf"] == 20
    assert plan.params["lambda_l2"] == 10.0
    assert plan.params["learning_rate"] == 0.05
    assert plan.num_boost_round == 300
    assert plan.early_stopping_rounds == 30
    assert plan.calibration_method == "platt"
    assert plan.prior_weight == pytest.approx(30 / 80)


def test_plan_leaves_params_alone_with_enough_data():
    params = {"num_leaves": 63, "learning_rate": 0.1}
    plan = coldstart.plan(
        coldstart.assess(10_000, 900, 10_000), params, num_boost_round=500, early_stopping_rounds=50
    )
    assert plan.params == params
    assert plan.num_boost_round == 500
    assert plan.prior_weight == 0.0
    assert plan.calibration_method == "auto"


def test_plan_raises_when_refused():
    with pytest.raises(InsufficientDataError, match="at least 200 are needed"):
        coldstart.plan(coldstart.assess(100, 30, 100), {}, num_boost_round=100, early_stopping_rounds=10)


def test_prior_weight_fades_with_conversions():
    weights = [coldstart.prior_weight(coldstart.assess(5_000, n, 5_000)) for n in (20, 50, 100, 199, 200)]
    assert weights[0] == pytest.approx(0.6)
    assert all(earlier > later for earlier, later in itertools.pairwise(weights))
    assert weights[-1] == 0.0


def test_blend_with_prior():
    blended = coldstart.blend_with_prior([0.9, 0.1], [0.5, 0.3], 0.25)
    assert blended == pytest.approx([0.8, 0.15])
    with pytest.raises(DataValidationError, match="prior weight must be in"):
        coldstart.blend_with_prior([0.5], [0.5], 1.5)
    with pytest.raises(DataValidationError, match=r"shape \(2,\) but prior probabilities \(1,\)"):
        coldstart.blend_with_prior([0.5, 0.4], [0.5], 0.5)


@pytest.fixture(scope="module")
def small_history() -> dict[str, object]:
    """About 500 leads with a 10 % conversion rate: a few dozen conversions in training."""
    frame = make_lead_frame(520, seed=41, intercept=-3.0)
    split = time_split(
        frame, purge=pd.Timedelta(0), valid_fraction=0.2, test_fraction=0.2, calibration_fraction=0.0
    )
    matrix = to_matrix(frame)
    y = frame["converted"].to_numpy()

    def fold(rows: np.ndarray) -> Fold:
        return Fold(matrix.iloc[rows].reset_index(drop=True), y[rows])

    train = fold(split.train)
    sufficiency = coldstart.assess(len(train), int(train.y.sum()), len(train))
    model = fit_conversion(train, fold(split.valid), sufficiency=sufficiency, seed=4, num_threads=1)
    rules = fit_rule_model(frame.iloc[split.train], train.y)
    return {"frame": frame, "split": split, "model": model, "rules": rules, "test": fold(split.test)}


def test_small_history_is_flagged(small_history):
    model: ConversionModel = small_history["model"]
    assert model.insufficient_data
    assert model.sufficiency.level == "insufficient_data"
    assert 20 <= model.sufficiency.n_positive < 200
    assert 0.1 < model.prior_weight < 0.6
    assert model.calibrator.method == "platt"
    assert model.params["num_leaves"] <= 7
    assert model.params["lambda_l2"] >= 10.0


def test_small_history_needs_prior(small_history):
    with pytest.raises(ValueError, match=r"trained with insufficient data.*pass prior_p"):
        small_history["model"].predict(small_history["test"].matrix)


def test_small_history_probabilities_not_overconfident(small_history):
    model: ConversionModel = small_history["model"]
    test: Fold = small_history["test"]
    test_frame = small_history["frame"].iloc[small_history["split"].test]
    prior = small_history["rules"].predict_proba(test_frame)
    probabilities = model.predict(test.matrix, prior_p=prior)
    assert probabilities.max() < 0.8
    assert probabilities.min() > 0.005
    assert expected_calibration_error(test.y, probabilities) < 0.1
    assert abs(probabilities.mean() - test.y.mean()) < 0.06
    assert roc_auc(test.y, probabilities) > 0.65


def test_refused_history_raises_before_training():
    frame = make_lead_frame(150, seed=3)
    matrix = to_matrix(frame)
    fold = Fold(matrix, frame["converted"].to_numpy())
    with pytest.raises(
        InsufficientDataError, match="150 leads in the training data; at least 200 are needed"
    ):
        fit_conversion(fold, fold, num_threads=1)


def test_small_history_beats_untightened_fit(small_history):
    """The same folds trained as if data were plentiful, with isotonic calibration, do worse."""
    frame = small_history["frame"]
    split = small_history["split"]
    matrix = to_matrix(frame)
    y = frame["converted"].to_numpy()
    train = Fold(matrix.iloc[split.train].reset_index(drop=True), y[split.train])
    valid = Fold(matrix.iloc[split.valid].reset_index(drop=True), y[split.valid])
    plentiful = coldstart.assess(5_000, 500, 5_000)
    naive = fit_conversion(
        train, valid, sufficiency=plentiful, seed=4, num_threads=1, calibration_method="isotonic"
    )
    test: Fold = small_history["test"]
    prior = small_history["rules"].predict_proba(frame.iloc[split.test])
    cold_start = small_history["model"].predict(test.matrix, prior_p=prior)
    naive_p = naive.predict(test.matrix)
    assert expected_calibration_error(test.y, cold_start) < expected_calibration_error(test.y, naive_p)
    assert cold_start.max() < naive_p.max()
