"""One code path: a lead scored alone gets exactly the features it gets inside any batch."""

from __future__ import annotations

import pandas as pd
import pytest

from features.config import FeatureConfig
from features.pipeline import build_features, feature_definitions
from features.spec import FeatureSpec
from features.spine import training_spine
from tests.features.builders import random_history, tables_of

CONFIG = FeatureConfig()


@pytest.fixture(scope="module")
def history() -> dict[str, list[dict[str, object]]]:
    return random_history(seed=7, lead_count=40)


@pytest.fixture(scope="module")
def batch(history: dict[str, list[dict[str, object]]]) -> pd.DataFrame:
    tables = tables_of(history)
    return build_features(training_spine(tables, CONFIG), tables, CONFIG)


@pytest.fixture(scope="module")
def spec(batch: pd.DataFrame) -> FeatureSpec:
    return FeatureSpec.fit(batch, feature_definitions(CONFIG, []))


def test_batch_covers_varied_leads(batch: pd.DataFrame) -> None:
    assert batch["lead_id"].nunique() >= 30
    assert (batch["activities_total"] > 0).mean() > 0.3
    assert (batch["is_existing_customer"] == 1).any()
    assert batch["stage"].nunique() >= 3


@pytest.mark.parametrize("lead_id", ["L000", "L003", "L010", "L021", "L039"])
def test_single_lead_matches_batch(
    history: dict[str, list[dict[str, object]]], batch: pd.DataFrame, spec: FeatureSpec, lead_id: str
) -> None:
    expected = batch[batch["lead_id"] == lead_id]
    alone = tables_of(history, [lead_id])

    online = build_features(expected[["lead_id", "cutoff"]], alone, CONFIG)

    pd.testing.assert_frame_equal(online, expected, check_exact=True)
    online_matrix = spec.transform(online).matrix
    batch_matrix = spec.transform(expected).matrix
    pd.testing.assert_frame_equal(online_matrix, batch_matrix, check_exact=True)
    for name in spec.categorical_features:
        assert online_matrix[name].cat.codes.tolist() == batch_matrix[name].cat.codes.tolist()


def test_batch_composition_and_row_order_do_not_matter(
    history: dict[str, list[dict[str, object]]], batch: pd.DataFrame
) -> None:
    subset = ["L039", "L004", "L017", "L000", "L028", "L009"]
    expected = batch[batch["lead_id"].isin(subset)].sample(frac=1.0, random_state=1)

    other_batch = build_features(expected[["lead_id", "cutoff"]], tables_of(history, subset), CONFIG)

    pd.testing.assert_frame_equal(other_batch, expected, check_exact=True)
