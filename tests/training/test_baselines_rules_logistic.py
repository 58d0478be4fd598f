"""Baselines: the points-table rule score and the logistic regression on the same features."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError
from tests.training.modelling_data import DEFINITIONS, Definition, make_lead_frame
from training.baselines.logistic import fit_logistic
from training.baselines.rules import (
    DEFAULT_RULES,
    CategoryLevel,
    NumericBand,
    RuleFactor,
    RuleScoreModel,
    fit_rule_model,
    rule_points,
    rule_score,
    score_range,
)
from training.metrics import roc_auc
from training.split import time_split

RULE_COLUMNS = sorted({column for rule in DEFAULT_RULES for column in rule.columns})


def lead_row(**values: object) -> dict[str, object]:
    """A feature row that earns 0 points on every factor, with ``values`` overriding it."""
    row: dict[str, object] = {
        "channel": "Baidu SEM",
        "company_size": "1-20",
        "declared_budget": np.nan,
        "contacted": 0.0,
        "hours_to_first_contact": 30.0,
        "first_contact_sla_breached": 0.0,
        "activities_inbound_30d": 0.0,
        "activities_demo_90d": 0.0,
        "activities_quote_90d": 0.0,
        "furthest_stage_order": 0.0,
    }
    row.update(values)
    return row


@pytest.fixture(scope="module")
def history() -> dict[str, object]:
    frame = make_lead_frame(6_000, seed=51)
    split = time_split(frame, purge=pd.Timedelta(0), calibration_fraction=0.0)
    return {"frame": frame, "train": frame.iloc[split.train], "test": frame.iloc[split.test]}


def test_points_table_covers_sales_ops_factors():
    names = [rule.name for rule in DEFAULT_RULES]
    assert names == [
        "channel",
        "company_size",
        "budget",
        "first_contact_speed",
        "first_contact_sla",
        "inbound_activity",
        "demo_done",
        "quote_sent",
        "stage_reached",
    ]
    assert score_range(DEFAULT_RULES) == (-10, 120)


def test_best_and_worst_leads_span_the_scale():
    best = lead_row(
        channel="转介绍",
        company_size="500+",
        declared_budget=800_000.0,
        contacted=1.0,
        hours_to_first_contact=0.5,
        activities_inbound_30d=4.0,
        activities_demo_90d=1.0,
        activities_quote_90d=2.0,
        furthest_stage_order=4.0,
    )
    worst = lead_row(first_contact_sla_breached=1.0, hours_to_first_contact=72.0)
    scores = rule_score(pd.DataFrame([best, worst, lead_row()]))
    assert scores.tolist() == pytest.approx([100.0, 0.0, 10 / 130 * 100])


@pytest.mark.parametrize(
    ("values", "factor", "points"),
    [
        ({"channel": "Referral (partner)"}, "channel", 20),
        ({"channel": "展会-上海"}, "channel", 15),
        ({"channel": "  WEB FORM "}, "channel", 5),
        ({"channel": None}, "channel", 0),
        ({"company_size": "101-500"}, "company_size", 10),
        ({"company_size": "1-20"}, "company_size", 0),
        ({"declared_budget": 100_000.0}, "budget", 10),
        ({"declared_budget": 99_999.0}, "budget", 5),
        ({"declared_budget": np.nan}, "budget", 0),
        ({"contacted": 1.0, "hours_to_first_contact": 0.2}, "first_contact_speed", 10),
        ({"contacted": 1.0, "hours_to_first_contact": 5.0}, "first_contact_speed", 5),
        ({"contacted": 0.0, "hours_to_first_contact": 0.2}, "first_contact_speed", 0),
        ({"first_contact_sla_breached": 1.0}, "first_contact_sla", -10),
        ({"activities_inbound_30d": 2.0}, "inbound_activity", 8),
        ({"activities_inbound_30d": 3.0}, "inbound_activity", 15),
        ({"activities_quote_90d": 1.0}, "quote_sent", 10),
        ({"furthest_stage_order": 3.0}, "stage_reached", 20),
        ({"furthest_stage_order": 5.0}, "stage_reached", 25),
    ],
)
def test_factor_points(values, factor, points):
    earned = rule_points(pd.DataFrame([lead_row(**values)]))
    assert earned.loc[0, factor] == points


def test_categorical_and_nullable_columns_accepted():
    frame = pd.DataFrame([lead_row(channel="转介绍"), lead_row(furthest_stage_order=None)])
    frame["channel"] = frame["channel"].astype("category")
    frame["furthest_stage_order"] = frame["furthest_stage_order"].astype("Int64")
    earned = rule_points(frame)
    assert earned["channel"].tolist() == [20, 0]
    assert earned["stage_reached"].tolist() == [0, 0]


def test_missing_rule_columns_raise():
    frame = pd.DataFrame([lead_row()]).drop(columns=["activities_demo_90d", "contacted"])
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['activities_demo_90d', 'contacted'\]"):
        rule_score(frame)


def test_missing_rule_columns_allowed_score_zero(caplog):
    frame = pd.DataFrame([lead_row(activities_demo_90d=2.0)])
    with caplog.at_level(logging.WARNING, logger="training.baselines.rules"):
        earned = rule_points(frame.drop(columns=["activities_demo_90d"]), allow_missing_columns=True)
    assert earned.loc[0, "demo_done"] == 0
    assert "activities_demo_90d" in caplog.text


def test_numeric_factor_rejects_text():
    frame = pd.DataFrame([lead_row(declared_budget="一百万")])
    with pytest.raises(SchemaError, match="column 'declared_budget' must be numeric"):
        rule_score(frame)


def test_invalid_rule_tables_raise():
    with pytest.raises(ConfigError, match="the rule table is empty"):
        rule_score(pd.DataFrame([lead_row()]), rules=())
    mixed = RuleFactor("mixed", "channel", (CategoryLevel(("a",), 1), NumericBand(0, 1, 2)), "Mixed", "混合")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'mixed' mixes text levels and numeric bands"):
        rule_score(pd.DataFrame([lead_row()]), rules=(mixed,))


def test_rule_model_maps_score_to_probability(history):
    train = history["train"]
    model = fit_rule_model(train, train["converted"])
    probabilities = model.predict_proba(train)
    assert abs(probabilities.mean() - train["converted"].mean()) < 0.01
    assert model.slope > 0
    ordered = np.argsort(model.score(train))
    assert np.all(np.diff(probabilities[ordered]) >= 0)


def test_rule_model_ranks_held_out_leads(history):
    train, test = history["train"], history["test"]
    model = fit_rule_model(train, train["converted"])
    assert roc_auc(test["converted"], model.predict_proba(test)) > 0.7


def test_rule_model_json_round_trip(history):
    train = history["train"]
    model = fit_rule_model(train, train["converted"])
    restored = RuleScoreModel.from_dict(json.loads(json.dumps(model.to_dict(), ensure_ascii=False)))
    assert restored == model
    assert np.array_equal(restored.predict_proba(history["test"]), model.predict_proba(history["test"]))


def test_rule_model_needs_both_classes(history):
    train = history["train"]
    with pytest.raises(InsufficientDataError, match="has 0 converted of"):
        fit_rule_model(train, np.zeros(len(train)))
    with pytest.raises(DataValidationError, match="must be 0 or 1"):
        fit_rule_model(train, np.full(len(train), 2.0))


def test_logistic_ranks_and_matches_base_rate(history):
    train, test = history["train"], history["test"]
    model = fit_logistic(train, DEFINITIONS)
    probabilities = model.predict_proba(test)
    assert probabilities.shape == (len(test),)
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert roc_auc(test["converted"], probabilities) > 0.75
    assert abs(model.predict_proba(train).mean() - train["converted"].mean()) < 0.01


def test_logistic_pipeline_steps(history):
    model = fit_logistic(history["train"], DEFINITIONS)
    features = model.pipeline.named_steps["features"]
    numeric_steps = features.named_transformers_["numeric"]
    assert numeric_steps.named_steps["impute"].strategy == "median"
    assert numeric_steps.named_steps["impute"].add_indicator is True
    encoder = features.named_transformers_["categorical"]
    assert encoder.handle_unknown == "infrequent_if_exist"
    assert model.pipeline.named_steps["model"].class_weight is None


def test_logistic_handles_unseen_categories_and_missing_values(history):
    model = fit_logistic(history["train"], DEFINITIONS)
    test = history["test"].head(5).copy()
    test["channel"] = ["抖音", None, "Baidu SEM", "new", "WeCom"]
    test["declared_budget"] = np.nan
    probabilities = model.predict_proba(test)
    assert np.all(np.isfinite(probabilities))


def test_logistic_ignores_column_order(history):
    model = fit_logistic(history["train"], DEFINITIONS)
    test = history["test"]
    reordered = test[list(reversed(test.columns))]
    assert np.array_equal(model.predict_proba(reordered), model.predict_proba(test))


def test_logistic_input_errors(history):
    train = history["train"]
    with pytest.raises(SchemaError, match="missing the label column 'won'"):
        fit_logistic(train, DEFINITIONS, label_column="won")
    with pytest.raises(ConfigError, match="has kind 'text'"):
        fit_logistic(train, [Definition("channel", "text")])
    with pytest.raises(ConfigError, match="no feature definitions given"):
        fit_logistic(train, [])
    with pytest.raises(SchemaError, match=r"numeric feature\(s\) contain non-numeric data: channel"):
        fit_logistic(train, [Definition("channel", "numeric")])
    with pytest.raises(SchemaError, match=r"missing feature column\(s\) \['budget_band'\]"):
        fit_logistic(train, [Definition("budget_band", "categorical")])
    with pytest.raises(InsufficientDataError, match="needs both classes"):
        fit_logistic(train.assign(converted=0), DEFINITIONS)
    with pytest.raises(DataValidationError, match="must be 0 or 1"):
        fit_logistic(train.assign(converted=3), DEFINITIONS)
