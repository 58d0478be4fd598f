"""Leakage probe: single-feature AUC above the threshold or post-contact marks exclude a feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.folder import CustomAttribute
from features.catalog import FeatureDef, attribute_definitions
from features.leakage import HIGH_AUC, POST_CONTACT, categorical_auc, numeric_auc, probe
from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError

ROWS = 2000


def _frame(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    converted = (rng.random(ROWS) < 0.3).astype(int)
    frame = pd.DataFrame(
        {
            "budget": rng.gamma(2.0, 1000.0, ROWS) + converted * 300.0,
            # Filled in almost only for converted leads: the missingness gives the label away.
            "contract_value": np.where(converted == 1, rng.gamma(2.0, 5000.0, ROWS), np.nan),
            "channel": rng.choice(["baidu", "wecom", "expo"], ROWS),
            "status_tag": np.where(converted == 1, "closed won", rng.choice(["ringing", "no answer"], ROWS)),
            "lead_code": [f"X{i}" for i in range(ROWS)],
            "attr_Lead_Quality": rng.choice(["High", "Low"], ROWS),
        }
    )
    return frame, converted


DEFINITIONS = [
    FeatureDef("budget", "numeric", "Budget", "预算", "Declared budget."),
    FeatureDef("contract_value", "numeric", "Contract value", "合同金额", "Signed contract value."),
    FeatureDef("channel", "categorical", "Channel", "渠道", "Channel."),
    FeatureDef("status_tag", "categorical", "Status tag", "状态标签", "Status tag set by reps."),
    FeatureDef("lead_code", "categorical", "Lead code", "线索编码", "An id-like code."),
    *attribute_definitions(
        [CustomAttribute("Lead Quality", "category", post_contact=True)], include_post_contact=True
    ),
]
ATTRIBUTES = [CustomAttribute("Lead Quality", "category", post_contact=True)]


def test_flags_leaky_and_post_contact_features() -> None:
    frame, converted = _frame()

    report = probe(frame, converted, DEFINITIONS, ATTRIBUTES)

    assert report.excluded == ["contract_value", "status_tag", "attr_Lead_Quality"]
    assert report.finding("contract_value").reasons == (HIGH_AUC,)
    assert report.finding("status_tag").auc > 0.99
    assert report.finding("attr_Lead_Quality").reasons == (POST_CONTACT,)
    assert [d.name for d in report.kept(DEFINITIONS)] == ["budget", "channel", "lead_code"]


def test_id_like_category_is_not_memorised() -> None:
    frame, converted = _frame()

    auc = categorical_auc(frame["lead_code"], converted)

    assert auc < 0.6


def test_allow_keeps_a_flagged_feature() -> None:
    frame, converted = _frame()

    report = probe(frame, converted, DEFINITIONS, ATTRIBUTES, allow=["status_tag"])

    assert "status_tag" in report.flagged
    assert "status_tag" not in report.excluded
    assert report.finding("status_tag").allowed


def test_threshold_controls_flags() -> None:
    frame, converted = _frame()

    report = probe(frame, converted, DEFINITIONS, [], threshold=0.55)

    assert "budget" in report.excluded
    assert "attr_Lead_Quality" in report.excluded  # the definition itself carries post_contact


def test_numeric_auc_is_direction_free() -> None:
    target = np.array([0, 0, 1, 1])

    assert numeric_auc(pd.Series([4.0, 3.0, 2.0, 1.0]), target) == 1.0
    assert numeric_auc(pd.Series([1.0, 1.0, 1.0, 1.0]), target) == 0.5
    assert numeric_auc(pd.Series([np.nan, np.nan, 1.0, 2.0]), target) == 1.0


def test_report_renders_in_both_locales() -> None:
    frame, converted = _frame()
    report = probe(frame, converted, DEFINITIONS, ATTRIBUTES)

    english = report.to_markdown("en")
    chinese = report.to_markdown("zh-CN")

    assert "| `status_tag` | Status tag |" in english
    assert "alone predicts the label with AUC" in english
    assert "declared post-contact" in english
    assert "| `status_tag` | 状态标签 |" in chinese
    assert "已排除" in chinese


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (np.zeros(ROWS), InsufficientDataError, "the probe needs both classes"),
        (np.full(ROWS, 2), DataValidationError, r"labels must be 0 or 1; found \[2\]"),
        (np.zeros(10), DataValidationError, f"10 labels for {ROWS} feature rows"),
    ],
)
def test_bad_labels_are_rejected(labels: np.ndarray, error: type[Exception], message: str) -> None:
    frame, _ = _frame()

    with pytest.raises(error, match=message):
        probe(frame, labels, DEFINITIONS, ATTRIBUTES)


def test_bad_arguments_are_rejected() -> None:
    frame, converted = _frame()

    with pytest.raises(SchemaError, match=r"lacks defined feature\(s\) \['budget'\]"):
        probe(frame.drop(columns=["budget"]), converted, DEFINITIONS, ATTRIBUTES)
    with pytest.raises(ConfigError, match=r"allow names feature\(s\) \['nope'\]"):
        probe(frame, converted, DEFINITIONS, ATTRIBUTES, allow=["nope"])
    with pytest.raises(ConfigError, match="threshold must be in"):
        probe(frame, converted, DEFINITIONS, ATTRIBUTES, threshold=0.4)


def test_x_education_post_contact_columns(shared_datasets: Path) -> None:
    leads = pd.read_csv(shared_datasets / "x-education-leads" / "Leads.csv")
    attributes = [
        CustomAttribute("Tags", "category", post_contact=True),
        CustomAttribute("Lead Quality", "category", post_contact=True),
        CustomAttribute("Lead Source", "category"),
    ]
    definitions = attribute_definitions(attributes, include_post_contact=True)
    frame = leads.rename(columns={d.attribute: d.name for d in definitions})

    report = probe(frame, leads["Converted"], definitions, attributes)

    assert report.excluded == ["attr_Tags", "attr_Lead_Quality"]
    assert report.finding("attr_Tags").auc > 0.9
    assert report.finding("attr_Lead_Source").auc < 0.75
