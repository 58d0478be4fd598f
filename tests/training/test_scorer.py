"""The one score path: score records, batch invariance, unseen categories and reasons."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.catalog import FeatureDef
from features.pipeline import build_features
from leadscore.errors import ConfigError, DataValidationError
from tests.training import scorer_setup
from training.reasons import ReasonContext, reasons_for_row, sentence
from training.scorer import SCORE_COLUMNS, score_payload, score_tables, score_tables_with_matrix

CJK = re.compile(r"[\u4e00-\u9fff]")


def _leads() -> list[dict[str, Any]]:
    return [
        scorer_setup.open_lead("NEW-1"),
        scorer_setup.open_lead("NEW-2", channel="web form", company_size="1-20", activities=[]),
        scorer_setup.open_lead("NEW-3", channel="trade show", declared_budget=None),
        scorer_setup.open_lead(
            "NEW-4",
            created_at="2025-02-01T08:00:00+08:00",
            activities=[
                {"occurred_at": f"2025-03-0{day}T10:00:00+08:00", "type": "wechat", "direction": "inbound"}
                for day in (1, 2, 3)
            ],
        ),
    ]


def test_score_record_fields() -> None:
    bundle = scorer_setup.bundle()

    records = score_payload(bundle, _leads(), as_of=scorer_setup.AS_OF)

    assert [record["lead_id"] for record in records] == ["NEW-1", "NEW-2", "NEW-3", "NEW-4"]
    for record in records:
        assert set(record) == set(SCORE_COLUMNS)
        assert 0.0 < record["p_convert"] < 1.0
        assert record["ltv"] >= 0.0
        assert math.isclose(record["expected_value"], record["p_convert"] * record["ltv"], rel_tol=1e-12)
        assert record["grade"] in {"A", "B", "C", "D"}
        assert record["segment"] in {"high_value", "standard", "nurture"}
        assert record["model_version"] == bundle.bundle_version
        assert record["as_of"] == "2025-03-05T01:00:00+00:00"
        assert record["flags"]["insufficient_data"] is bundle.insufficient_data
        assert record["flags"]["unseen_categories"] == {}


def test_score_alone_equals_score_in_batch() -> None:
    bundle = scorer_setup.bundle()
    leads = _leads()

    batch = score_payload(bundle, leads, as_of=scorer_setup.AS_OF)
    reversed_batch = score_payload(bundle, leads[::-1], as_of=scorer_setup.AS_OF)
    alone = [score_payload(bundle, [lead], as_of=scorer_setup.AS_OF)[0] for lead in leads]

    assert alone == batch
    assert reversed_batch[::-1] == batch


def test_score_tables_row_subset_matches_full_batch() -> None:
    bundle = scorer_setup.bundle()
    tables = scorer_setup.history()
    spine = scorer_setup.holdout()[["lead_id", "cutoff"]].head(80).reset_index(drop=True)

    full = score_tables(bundle, tables, spine)
    subset = score_tables(bundle, tables, spine.iloc[[5, 40, 79]].reset_index(drop=True))

    for column in ("p_convert", "ltv", "expected_value", "grade", "segment", "reasons_positive", "flags"):
        assert subset[column].tolist() == full[column].iloc[[5, 40, 79]].tolist()


def test_scored_matrix_is_spec_transform() -> None:
    bundle = scorer_setup.bundle()
    tables = scorer_setup.history()
    spine = scorer_setup.holdout()[["lead_id", "cutoff"]].head(40).reset_index(drop=True)
    features = build_features(spine, tables, bundle.feature_config)

    scored = score_tables_with_matrix(bundle, tables, spine, top_reasons=2)

    pd.testing.assert_frame_equal(scored.matrix, bundle.feature_spec.transform(features).matrix)
    pd.testing.assert_frame_equal(scored.records, score_tables(bundle, tables, spine, top_reasons=2))
    assert scored.records["reasons_positive"].map(len).max() == 2


def test_scored_matrix_of_empty_spine() -> None:
    spine = pd.DataFrame(
        {"lead_id": pd.Series(dtype="str"), "cutoff": pd.Series(dtype="datetime64[us, UTC]")}
    )

    scored = score_tables_with_matrix(scorer_setup.bundle(), scorer_setup.history(), spine)

    assert list(scored.records.columns) == list(SCORE_COLUMNS)
    assert len(scored.records) == 0
    assert len(scored.matrix) == 0


def test_unseen_category_flagged() -> None:
    bundle = scorer_setup.bundle()
    lead = scorer_setup.open_lead("NEW-9", channel="抖音", region="火星")

    record = score_payload(bundle, [lead], as_of=scorer_setup.AS_OF)[0]

    assert record["flags"]["unseen_categories"] == {"channel": "抖音", "region": "火星"}
    assert 0.0 < record["p_convert"] < 1.0


def test_reasons_in_both_locales() -> None:
    bundle = scorer_setup.bundle()
    lead = scorer_setup.open_lead("NEW-1")

    english = score_payload(bundle, [lead], as_of=scorer_setup.AS_OF, locale="en")[0]
    chinese = score_payload(bundle, [lead], as_of=scorer_setup.AS_OF, locale="zh-CN")[0]

    for record in (english, chinese):
        assert len(record["reasons_positive"]) == 3
        assert len(record["reasons_negative"]) == 3
        assert all(reason["contribution"] > 0 for reason in record["reasons_positive"])
        assert all(reason["contribution"] < 0 for reason in record["reasons_negative"])
        contributions = [abs(reason["contribution"]) for reason in record["reasons_positive"]]
        assert contributions == sorted(contributions, reverse=True)
    english_texts = [reason["text"] for reason in english["reasons_positive"] + english["reasons_negative"]]
    chinese_texts = [reason["text"] for reason in chinese["reasons_positive"] + chinese["reasons_negative"]]
    assert all(CJK.search(text) for text in chinese_texts)
    assert not any(CJK.search(text) for text in english_texts if "华" not in text and "软件" not in text)
    assert [reason["feature"] for reason in english["reasons_positive"]] == [
        reason["feature"] for reason in chinese["reasons_positive"]
    ]
    assert english["p_convert"] == chinese["p_convert"]


def test_reason_count_follows_top_reasons() -> None:
    bundle = scorer_setup.bundle()
    lead = scorer_setup.open_lead("NEW-1")

    none = score_payload(bundle, [lead], as_of=scorer_setup.AS_OF, top_reasons=0)[0]
    five = score_payload(bundle, [lead], as_of=scorer_setup.AS_OF, top_reasons=5)[0]

    assert none["reasons_positive"] == []
    assert none["reasons_negative"] == []
    assert len(five["reasons_positive"]) == 5
    assert none["p_convert"] == five["p_convert"]


def test_naive_as_of_uses_business_timezone() -> None:
    bundle = scorer_setup.bundle()
    lead = scorer_setup.open_lead("NEW-1")

    naive = score_payload(bundle, [lead], as_of="2025-03-05 09:00:00")[0]
    aware = score_payload(bundle, [lead], as_of=scorer_setup.AS_OF)[0]

    assert naive == aware


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"created_at": "2025-03-01T09:00:00+08:00"}, "lead record 1 has no lead_id"),
        (
            scorer_setup.open_lead(
                "X1",
                activities=[
                    {"lead_id": "OTHER", "occurred_at": "2025-03-01", "type": "call", "direction": "outbound"}
                ],
            ),
            r"lead 'X1': activities item 1 has lead_id 'OTHER'",
        ),
        (
            scorer_setup.open_lead(
                "X2", customer_id=None, orders=[{"ordered_at": "2025-03-02", "amount": 10.0}]
            ),
            "lead 'X2' has orders but no customer_id",
        ),
        (
            scorer_setup.open_lead("X3", activities="call on Monday"),
            "lead 'X3': activities must be a list of objects",
        ),
        (scorer_setup.open_lead("X4", created_at="2025-04-01T09:00:00+08:00"), r"created at or after as_of"),
        (
            scorer_setup.open_lead(
                "X5", stage_changes=[{"stage": "签约执行", "changed_at": "2025-03-03T10:00:00+08:00"}]
            ),
            r"\['X5'\] were already won or lost before as_of",
        ),
        (scorer_setup.open_lead("X6", favourite_colour="blue"), "favourite_colour"),
    ],
)
def test_payload_errors_name_lead_and_fix(record: dict[str, Any], message: str) -> None:
    with pytest.raises(DataValidationError, match=message):
        score_payload(scorer_setup.bundle(), [record], as_of=scorer_setup.AS_OF)


def test_invalid_locale_and_reason_count() -> None:
    bundle = scorer_setup.bundle()
    lead = scorer_setup.open_lead()

    with pytest.raises(ConfigError, match="unsupported locale 'fr'"):
        score_payload(bundle, [lead], as_of=scorer_setup.AS_OF, locale="fr")
    with pytest.raises(DataValidationError, match="top_reasons must be a whole number from 0 to 20"):
        score_payload(bundle, [lead], as_of=scorer_setup.AS_OF, top_reasons=-1)
    with pytest.raises(DataValidationError, match="as_of 'yesterday' is not an ISO 8601 timestamp"):
        score_payload(bundle, [lead], as_of="yesterday")


def test_empty_payload_and_spine() -> None:
    bundle = scorer_setup.bundle()
    empty_spine = pd.DataFrame(
        {"lead_id": pd.Series(dtype="str"), "cutoff": pd.Series(dtype="datetime64[us, UTC]")}
    )

    assert score_payload(bundle, [], as_of=scorer_setup.AS_OF) == []
    assert list(score_tables(bundle, scorer_setup.history(), empty_spine).columns) == list(SCORE_COLUMNS)


# --- sentences ------------------------------------------------------------------------------------

CONTEXT = ReasonContext.of(
    [FeatureDef("attr_lead_quality", "categorical", "Lead quality", "线索质量", "Custom attribute.")],
    sla_hours=48.0,
)


@pytest.mark.parametrize(
    ("feature", "row", "english", "chinese"),
    [
        (
            "contacted",
            {"contacted": 0.0, "hours_to_first_contact": 60.0},
            "not contacted within 48 hours",
            "48 小时内未首次联系",
        ),
        (
            "hours_to_first_contact",
            {"contacted": 1.0, "hours_to_first_contact": 3.0},
            "first contacted within 48 hours",
            "48 小时内完成首次联系",
        ),
        (
            "first_contact_sla_breached",
            {"contacted": 1.0, "hours_to_first_contact": 75.2},
            "first contacted only after 75 hours",
            "75 小时后才首次联系",
        ),
        ("channel", {"channel": "转介绍"}, "came through a referral", "来自转介绍"),
        ("channel", {"channel": "Baidu SEM"}, "came through the Baidu SEM channel", "来自Baidu SEM渠道"),
        (
            "activities_inbound_7d",
            {"activities_inbound_7d": 3.0},
            "3 inbound contacts in the last 7 days",
            "最近 7 天 3 次客户主动联系",
        ),
        (
            "activities_inbound_30d",
            {"activities_inbound_30d": 1.0},
            "1 inbound contact in the last 30 days",
            "最近 30 天 1 次客户主动联系",
        ),
        (
            "activities_demo_90d",
            {"activities_demo_90d": 2.0},
            "2 demos in the last 90 days",
            "最近 90 天演示 2 次",
        ),
        ("stage", {"stage": "proposal"}, "currently at the proposal stage", "当前处于方案呈现阶段"),
        (
            "days_since_last_inbound",
            {"days_since_last_inbound": None},
            "has never reached out",
            "客户从未主动联系",
        ),
        (
            "furthest_stage_order",
            {"furthest_stage_order": 4.0},
            "has reached the negotiation stage",
            "最远已到达成交准备阶段",
        ),
        (
            "declared_budget",
            {"declared_budget": 150000.0},
            "stated a budget of 150,000 CNY",
            "声明预算 150,000 元",
        ),
        ("attr_lead_quality", {"attr_lead_quality": "High"}, "Lead quality: High", "线索质量：High"),
        (
            "attr_lead_quality",
            {"attr_lead_quality": np.nan},
            "Lead quality: not recorded",
            "线索质量：未记录",
        ),
        ("unknown_feature", {"unknown_feature": 2.5}, "unknown_feature: 2.5", "unknown_feature：2.5"),
    ],
)
def test_reason_sentence_per_locale(feature: str, row: dict[str, Any], english: str, chinese: str) -> None:
    assert sentence(feature, row, "en", CONTEXT) == english
    assert sentence(feature, row, "zh-CN", CONTEXT) == chinese


def test_reasons_for_row_orders_and_dedupes() -> None:
    names = ["contacted", "hours_to_first_contact", "channel", "declared_budget", "activities_inbound_7d"]
    row = {
        "contacted": 0.0,
        "hours_to_first_contact": 80.0,
        "channel": "referral",
        "declared_budget": None,
        "activities_inbound_7d": 2.0,
    }
    contributions = np.array([-0.9, -0.5, 0.7, -0.1, 0.3, -2.0])  # the last column is the bias

    positives, negatives = reasons_for_row(contributions, names, row, locale="en", context=CONTEXT, top=3)

    assert [reason.text for reason in positives] == [
        "came through a referral",
        "2 inbound contacts in the last 7 days",
    ]
    assert [reason.text for reason in negatives] == ["not contacted within 48 hours", "no budget stated"]
    assert [reason.feature for reason in negatives] == ["contacted", "declared_budget"]
    assert negatives[0].contribution == -0.9
