"""Reasons of many rows at once: the same reasons as one row at a time, whatever the values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.catalog import FeatureDef
from training.reasons import (
    MIN_CONTRIBUTION,
    ReasonContext,
    contribution_order,
    reasons_for_row,
    reasons_for_rows,
)

CONTEXT = ReasonContext.of(
    [
        FeatureDef("attr_tier", "categorical", "Tier", "等级", "Custom attribute."),
        FeatureDef("attr_score", "numeric", "Score", "评分", "Custom attribute."),
        FeatureDef("attr_flag", "categorical", "Flag", "标记", "Custom attribute."),
    ],
    sla_hours=48.0,
)
NAMES = [
    "contacted",
    "hours_to_first_contact",
    "first_contact_sla_breached",
    "channel",
    "declared_budget",
    "days_since_last_inbound",
    "activities_inbound_7d",
    "attr_tier",
    "attr_score",
    "attr_flag",
    "stage",
]


def _frame() -> pd.DataFrame:
    """Return 8 feature rows with missing values, -0.0, and text, nullable and mixed object columns."""
    return pd.DataFrame(
        {
            "lead_id": [f"L{number}" for number in range(8)],
            "contacted": [0.0, 1.0, 0.0, np.nan, 1.0, 0.0, 1.0, 1.0],
            "hours_to_first_contact": [60.0, 3.0, 10.0, np.nan, 75.2, 60.0, np.nan, 3.0],
            "first_contact_sla_breached": [1.0, 0.0, 0.0, np.nan, 1.0, 1.0, 0.0, 0.0],
            "channel": pd.Series(
                ["转介绍", "Baidu SEM", None, "展会", "转介绍", None, "展会", "展会"], dtype="str"
            ),
            "declared_budget": [150000.0, -0.0, 0.0, np.nan, 0.0, -0.0, 2.5, 150000.0],
            "days_since_last_inbound": [np.nan, 0.4, 1.0, 12.6, np.nan, 3.0, 12.4, 0.0],
            "activities_inbound_7d": [3.0, 1.0, 0.0, 1.0, 3.0, np.nan, 2.0, 1.0],
            "attr_tier": pd.Series(
                ["gold", None, "silver", "gold", None, "gold", "silver", None], dtype="category"
            ),
            "attr_score": pd.Series([1, 2, None, 1, 2, 3, None, 1], dtype="Int64"),
            "attr_flag": pd.Series(
                [True, 1, 1.0, None, np.float64(1.0), np.int64(1), True, "1"], dtype=object
            ),
            "stage": pd.Series(["proposal", "lead", None, "proposal", "contacted", "lead", None, "lead"]),
        }
    )


def _contributions(rows: int, seed: int) -> np.ndarray:
    """Return contributions with ties, values below the noise floor and a bias column."""
    rng = np.random.default_rng(seed)
    values = rng.choice([-0.8, -0.3, -0.3, -1e-8, 0.0, 0.3, 0.3, 0.5, 0.8], size=(rows, len(NAMES) + 1))
    values[:, -1] = 5.0  # the bias column: larger than every feature, but never a reason
    return values


def _row_by_row(frame: pd.DataFrame, contributions: np.ndarray, locale: str, top: int) -> list[Any]:
    """Return ``reasons_for_row`` of each row, with the row read by ``to_dict(orient="records")``."""
    rows = frame[NAMES].to_dict(orient="records")
    return [
        reasons_for_row(contributions[position], NAMES, row, locale=locale, context=CONTEXT, top=top)  # type: ignore[arg-type]
        for position, row in enumerate(rows)
    ]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("top", [1, 2, 3, 5])
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_batch_equals_row_by_row(seed: int, top: int, locale: str) -> None:
    frame = _frame()
    contributions = _contributions(len(frame), seed)

    batch = reasons_for_rows(contributions, frame, NAMES, locale=locale, context=CONTEXT, top=top)  # type: ignore[arg-type]

    assert batch == _row_by_row(frame, contributions, locale, top)


def test_shared_sentence_keeps_stronger_feature() -> None:
    frame = _frame().iloc[[0]].reset_index(drop=True)
    contributions = np.zeros((1, len(NAMES) + 1))
    contributions[0, NAMES.index("contacted")] = -0.9
    contributions[0, NAMES.index("hours_to_first_contact")] = -0.7
    contributions[0, NAMES.index("declared_budget")] = -0.2
    contributions[0, NAMES.index("channel")] = -0.1

    [(positives, negatives)] = reasons_for_rows(
        contributions, frame, NAMES, locale="en", context=CONTEXT, top=2
    )

    assert positives == []
    assert [reason.feature for reason in negatives] == ["contacted", "declared_budget"]
    assert [reason.text for reason in negatives] == [
        "not contacted within 48 hours",
        "stated a budget of 150,000 CNY",
    ]


def test_negative_zero_budget_keeps_its_sign() -> None:
    frame = _frame().iloc[[1, 2]].reset_index(drop=True)
    contributions = np.zeros((2, len(NAMES) + 1))
    contributions[:, NAMES.index("declared_budget")] = 0.4

    batch = reasons_for_rows(contributions, frame, NAMES, locale="en", context=CONTEXT, top=1)

    assert [positives[0].text for positives, _ in batch] == [
        "stated a budget of -0 CNY",
        "stated a budget of 0 CNY",
    ]


def test_nan_contribution_counts_as_negative() -> None:
    frame = _frame().iloc[[3]].reset_index(drop=True)
    contributions = np.full((1, len(NAMES) + 1), 0.3)
    contributions[0, NAMES.index("hours_to_first_contact")] = np.nan

    [(positives, negatives)] = reasons_for_rows(
        contributions, frame, NAMES, locale="en", context=CONTEXT, top=len(NAMES)
    )
    [(row_positives, row_negatives)] = _row_by_row(frame, contributions, "en", len(NAMES))

    assert positives == row_positives
    assert len(positives) == len(NAMES) - 1
    assert [(reason.feature, reason.direction, reason.text) for reason in negatives] == [
        ("hours_to_first_contact", "negative", "hours_to_first_contact: not recorded")
    ]
    assert [(reason.feature, reason.text) for reason in row_negatives] == [
        (reason.feature, reason.text) for reason in negatives
    ]
    assert np.isnan(negatives[0].contribution)


def test_weak_contributions_give_no_reasons() -> None:
    frame = _frame()
    contributions = np.full((len(frame), len(NAMES) + 1), MIN_CONTRIBUTION / 2)

    batch = reasons_for_rows(contributions, frame, NAMES, locale="en", context=CONTEXT, top=3)

    assert batch == [([], [])] * len(frame)


def test_contribution_order_matches_per_row_sort() -> None:
    contributions = _contributions(50, seed=3)[:, :-1]

    together = contribution_order(contributions)

    for position, row in enumerate(contributions):
        assert together[position].tolist() == contribution_order(row).tolist()
    assert together[0].tolist() == np.argsort(-np.abs(contributions[0]), kind="stable").tolist()


def test_rows_must_match_contributions() -> None:
    frame = _frame()

    with pytest.raises(ValueError, match=r"contributions of shape \(3, 12\) for 8 feature rows"):
        reasons_for_rows(np.zeros((3, 12)), frame, NAMES, locale="en", context=CONTEXT, top=3)
    with pytest.raises(ValueError, match=r"no column\(s\) \['missing_feature'\]"):
        reasons_for_rows(np.zeros((8, 2)), frame, ["missing_feature"], locale="en", context=CONTEXT, top=3)
