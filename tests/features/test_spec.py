"""Feature spec: names and order, category sets, unseen categories, dtypes, JSON round trip."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.catalog import FeatureDef
from features.spec import OTHER_LEVEL, FeatureSpec
from leadscore.errors import ConfigError, SchemaError

DEFINITIONS = [
    FeatureDef("channel", "categorical", "Channel", "来源渠道", "Acquisition channel."),
    FeatureDef("budget", "numeric", "Budget", "预算", "Declared budget."),
    FeatureDef("visits", "numeric", "Visits", "拜访", "Visit count."),
    FeatureDef("region", "categorical", "Region", "区域", "Region."),
]


def _training_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(["baidu", "wecom", "referral", "expo"], size=rows)
    region = rng.choice(["east", "west"], size=rows)
    budget = rng.gamma(2.0, 10_000.0, size=rows)
    visits = rng.poisson(2.0, size=rows).astype(float)
    score = (channel == "referral") * 1.5 + (region == "east") * 0.5 + visits * 0.4 + budget / 40_000
    converted = (score + rng.normal(0, 0.7, size=rows) > 1.8).astype(int)
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(rows)],
            "channel": pd.Series(channel, dtype="str"),
            "budget": budget,
            "visits": visits,
            "region": pd.Series(region, dtype="str"),
            "converted": converted,
        }
    )


def test_fit_learns_categories_and_order() -> None:
    spec = FeatureSpec.fit(_training_frame(), DEFINITIONS)

    assert spec.feature_names == ["channel", "budget", "visits", "region"]
    assert spec.categorical_features == ["channel", "region"]
    assert spec.categories["channel"] == ("baidu", "expo", "referral", "wecom")
    assert spec.model_categories("region") == ["east", "west", OTHER_LEVEL]


def test_transform_maps_and_counts_unseen() -> None:
    spec = FeatureSpec.fit(_training_frame(), DEFINITIONS)
    frame = pd.DataFrame(
        {
            "channel": ["baidu", "douyin", None, "douyin"],
            "budget": [1.0, 2.0, 3.0, 4.0],
            "visits": [0.0, 1.0, 2.0, 3.0],
            "region": ["east", "east", "north", None],
        }
    )

    result = spec.transform(frame)

    assert result.unseen_counts == {"channel": 2, "region": 1}
    assert result.unseen_mask.tolist() == [False, True, True, True]
    channel = result.matrix["channel"]
    assert channel.tolist()[:2] == ["baidu", OTHER_LEVEL]
    assert pd.isna(channel.iloc[2])
    assert channel.cat.codes.tolist() == [0, 4, -1, 4]
    assert list(channel.cat.categories) == ["baidu", "expo", "referral", "wecom", OTHER_LEVEL]


def test_rare_categories_fold_into_other() -> None:
    frame = _training_frame()
    frame.loc[:2, "channel"] = "trade_show"

    spec = FeatureSpec.fit(frame, DEFINITIONS, min_category_count=5)
    result = spec.transform(frame)

    assert "trade_show" not in spec.categories["channel"]
    assert result.unseen_counts["channel"] == 3
    assert spec.reference["channel"]["proportions"][OTHER_LEVEL] == pytest.approx(3 / len(frame))


def test_column_order_does_not_change_predictions() -> None:
    frame = _training_frame()
    spec = FeatureSpec.fit(frame, DEFINITIONS)
    matrix = spec.transform(frame).matrix
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=7, min_child_samples=5, verbose=-1)
    model.fit(matrix, frame["converted"])

    shuffled = frame[["region", "converted", "visits", "lead_id", "budget", "channel"]]
    expected = np.asarray(model.predict_proba(matrix))[:, 1]
    observed = np.asarray(model.predict_proba(spec.transform(shuffled).matrix))[:, 1]

    np.testing.assert_array_equal(observed, expected)
    assert list(spec.transform(shuffled).matrix.columns) == spec.feature_names


def test_single_object_row_gets_training_codes() -> None:
    frame = _training_frame()
    spec = FeatureSpec.fit(frame, DEFINITIONS)
    batch = spec.transform(frame).matrix
    row = pd.DataFrame(
        [{"region": "west", "channel": "wecom", "visits": 3, "budget": "15000.5"}], dtype=object
    )

    single = spec.transform(row).matrix

    wecom_codes = batch["channel"].cat.codes[(frame["channel"] == "wecom").to_numpy()].unique().tolist()
    west_codes = batch["region"].cat.codes[(frame["region"] == "west").to_numpy()].unique().tolist()
    assert single["channel"].cat.codes.tolist() == wecom_codes == [3]
    assert single["region"].cat.codes.tolist() == west_codes == [1]
    assert single["budget"].dtype == np.float64
    assert single["budget"].tolist() == [15000.5]
    assert single["visits"].tolist() == [3.0]


def test_integer_feature_with_a_null() -> None:
    frame = _training_frame(rows=50)
    spec = FeatureSpec.fit(frame, DEFINITIONS)
    scoring = frame.head(3).copy()
    scoring["visits"] = pd.array([2, None, 5], dtype="Int64")
    as_objects = scoring.astype({"visits": object})
    as_objects["visits"] = [2, None, 5]

    nullable = spec.transform(scoring).matrix["visits"]
    objects = spec.transform(as_objects).matrix["visits"]

    for values in (nullable, objects):
        assert values.dtype == np.float64
        assert values.iloc[0] == 2.0
        assert np.isnan(values.iloc[1])
        assert values.iloc[2] == 5.0


def test_numbers_and_text_are_one_category() -> None:
    definitions = [FeatureDef("size", "categorical", "Size", "规模", "Company size band.")]
    spec = FeatureSpec.fit(pd.DataFrame({"size": ["50", "200", "50"]}), definitions)

    result = spec.transform(pd.DataFrame({"size": [50, 200.0, "50", True]}, dtype=object))

    assert result.matrix["size"].tolist()[:3] == ["50", "200", "50"]
    assert result.unseen_counts == {"size": 1}


def test_missing_and_extra_columns_are_listed() -> None:
    spec = FeatureSpec.fit(_training_frame(), DEFINITIONS)
    frame = _training_frame().rename(columns={"visits": "visit_count"})

    with pytest.raises(
        SchemaError, match=r"missing 1 column\(s\) \['visits'\]; extra column\(s\) .*'visit_count'"
    ):
        spec.transform(frame)


def test_strict_mode_rejects_extra_columns() -> None:
    spec = FeatureSpec.fit(_training_frame(), DEFINITIONS)

    with pytest.raises(
        SchemaError, match=r"feature spec: extra column\(s\) \['lead_id', 'converted'\]\. Build features"
    ):
        spec.transform(_training_frame(), strict=True)


def test_text_in_numeric_feature_is_rejected() -> None:
    spec = FeatureSpec.fit(_training_frame(), DEFINITIONS)
    frame = _training_frame().head(3).astype({"budget": object})
    frame.loc[1, "budget"] = "lots"

    with pytest.raises(
        SchemaError,
        match=r"numeric feature 'budget' has 1 value\(s\) that are not numbers, for example \['lots'\]",
    ):
        spec.transform(frame)


def test_reserved_other_level_is_rejected() -> None:
    frame = _training_frame()
    frame.loc[0, "channel"] = OTHER_LEVEL

    with pytest.raises(SchemaError, match="contains the reserved value '__other__'"):
        FeatureSpec.fit(frame, DEFINITIONS)


def test_json_round_trip() -> None:
    spec = FeatureSpec.fit(_training_frame(), DEFINITIONS, min_category_count=2)
    frame = _training_frame(seed=3)

    payload = json.loads(json.dumps(spec.to_dict(), allow_nan=False))
    restored = FeatureSpec.from_dict(payload)

    assert restored.feature_names == spec.feature_names
    assert restored.categories == spec.categories
    assert restored.features == spec.features
    assert restored.reference == spec.reference
    pd.testing.assert_frame_equal(restored.transform(frame).matrix, spec.transform(frame).matrix)


def test_reference_distribution_of_numeric_feature() -> None:
    frame = pd.DataFrame({"budget": [*range(100), None]}, dtype="float64")
    definitions = [FeatureDef("budget", "numeric", "Budget", "预算", "Declared budget.")]

    reference = FeatureSpec.fit(frame, definitions).reference["budget"]

    assert len(reference["edges"]) == 9
    assert sum(reference["proportions"]) + reference["missing"] == pytest.approx(1.0)
    assert reference["missing"] == pytest.approx(1 / 101)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda payload: payload.update(version=99), "feature spec version 99 is not supported"),
        (lambda payload: payload.update(format="other"), "not a feature spec"),
        (lambda payload: payload["features"][0].update(kind="text"), "unknown kind 'text'"),
        (lambda payload: payload.pop("reference"), "malformed feature spec"),
    ],
)
def test_from_dict_rejects_bad_payloads(change, message: str) -> None:  # type: ignore[no-untyped-def]
    payload = FeatureSpec.fit(_training_frame(), DEFINITIONS).to_dict()
    change(payload)

    with pytest.raises(ConfigError, match=message):
        FeatureSpec.from_dict(payload)
