"""CLV features: BG/NBD summary statistics and order aggregates before a cutoff."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.clv import CLV_COLUMNS, clv_features
from leadscore.errors import SchemaError


def _orders(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([customer for customer, _, _ in rows], dtype="str"),
            "ordered_at": pd.Series([pd.Timestamp(time, tz="UTC") for _, time, _ in rows]).dt.as_unit("us"),
            "amount": [amount for _, _, amount in rows],
        }
    )


def _queries(*rows: tuple[str | None, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([customer for customer, _ in rows], dtype="str"),
            "cutoff": pd.Series([pd.Timestamp(time, tz="UTC") for _, time in rows]).dt.as_unit("us"),
        }
    )


ORDERS = _orders(
    ("C1", "2024-01-01 09:00", 100.0),
    ("C1", "2024-01-01 15:00", 50.0),  # same day: one purchase day worth 150
    ("C1", "2024-01-11 09:00", 80.0),
    ("C1", "2024-01-12 09:00", -30.0),  # refund
    ("C1", "2024-01-31 09:00", 40.0),
    ("C2", "2024-01-05 09:00", 0.0),  # a free order still counts as a purchase
)


def test_bgnbd_statistics() -> None:
    features = clv_features(ORDERS, _queries(("C1", "2024-02-10 00:00")), timezone="UTC").iloc[0]

    assert features["frequency"] == 2
    assert features["recency"] == 30
    assert features["T"] == 39
    assert features["monetary_value"] == pytest.approx((80 + 40) / 2)


def test_order_aggregates() -> None:
    features = clv_features(ORDERS, _queries(("C1", "2024-02-10 00:00")), timezone="UTC").iloc[0]

    assert features["order_count"] == 4
    assert features["total_net_value"] == pytest.approx(240.0)
    assert features["mean_net_value"] == pytest.approx(60.0)
    assert features["refund_share"] == pytest.approx(30 / 270)
    assert features["tenure_days"] == pytest.approx(39 + 15 / 24)
    assert features["days_since_last_order"] == pytest.approx(9 + 15 / 24)
    assert features["interpurchase_mean_days"] == pytest.approx(15.0)
    assert features["interpurchase_std_days"] == pytest.approx(np.std([10, 20], ddof=1))


def test_cutoff_inside_a_purchase_day() -> None:
    features = clv_features(ORDERS, _queries(("C1", "2024-01-01 12:00")), timezone="UTC").iloc[0]

    assert features["order_count"] == 1
    assert features["frequency"] == 0
    assert features["recency"] == 0
    assert features["T"] == 0
    assert features["monetary_value"] == 0
    assert features["total_net_value"] == 100.0
    assert math.isnan(features["interpurchase_mean_days"])


def test_purchase_days_follow_the_timezone() -> None:
    orders = _orders(("C1", "2024-01-01 15:00", 10.0), ("C1", "2024-01-01 17:00", 20.0))
    queries = _queries(("C1", "2024-01-03 00:00"))

    in_utc = clv_features(orders, queries, timezone="UTC").iloc[0]
    in_shanghai = clv_features(orders, queries, timezone="Asia/Shanghai").iloc[0]

    # 17:00 UTC is 01:00 the next day in Shanghai, so there it is a repeat purchase day.
    assert in_utc["frequency"] == 0
    assert in_shanghai["frequency"] == 1
    assert in_shanghai["monetary_value"] == 20.0


def test_customers_without_purchases() -> None:
    queries = _queries(("C1", "2023-12-01 00:00"), (None, "2024-02-01 00:00"), ("C9", "2024-02-01 00:00"))

    features = clv_features(ORDERS, queries, timezone="UTC")

    assert features["order_count"].tolist() == [0, 0, 0]
    assert features["total_net_value"].tolist() == [0, 0, 0]
    for name in set(CLV_COLUMNS) - {"order_count", "total_net_value"}:
        assert features[name].isna().all(), name


def test_refund_only_customer() -> None:
    orders = _orders(("C1", "2024-01-01 00:00", -25.0))

    features = clv_features(orders, _queries(("C1", "2024-02-01 00:00")), timezone="UTC").iloc[0]

    assert features["order_count"] == 0
    assert features["total_net_value"] == -25.0
    assert math.isnan(features["refund_share"])
    assert math.isnan(features["frequency"])


def test_rows_keep_index_and_order() -> None:
    queries = _queries(("C2", "2024-02-01 00:00"), ("C1", "2024-01-20 00:00"), ("C1", "2024-02-10 00:00"))
    queries.index = pd.Index(["x", "y", "z"])

    features = clv_features(ORDERS, queries, timezone="UTC")

    assert features.index.tolist() == ["x", "y", "z"]
    assert features["order_count"].tolist() == [1, 3, 4]
    assert list(features.columns) == list(CLV_COLUMNS)


def test_missing_columns_are_named() -> None:
    with pytest.raises(SchemaError, match=r"table 'customer_cutoffs' lacks column\(s\) \['cutoff'\]"):
        clv_features(ORDERS, pd.DataFrame({"customer_id": ["C1"]}))


def test_matches_published_cdnow_summary(shared_datasets: Path) -> None:
    """Hardie's CDNOW sample: 39-week calibration ending 1997-09-30, summary in weeks."""
    folder = shared_datasets / "cdnow"
    transactions = pd.read_csv(
        folder / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["original_id", "customer", "date", "cds", "value"],
        dtype={"original_id": str, "customer": str, "date": str},
    )
    orders = pd.DataFrame(
        {
            "customer_id": transactions["customer"].astype(int).astype(str),
            "ordered_at": pd.to_datetime(transactions["date"], format="%Y%m%d")
            .dt.tz_localize("UTC")
            .dt.as_unit("us"),
            "amount": transactions["value"].astype(float),
        }
    )
    reference = pd.read_csv(folder / "cdnow_customers_summary_with_transactions.csv")
    queries = pd.DataFrame(
        {
            "customer_id": reference["ID"].astype(str),
            "cutoff": pd.Series([pd.Timestamp("1997-10-01", tz="UTC")] * len(reference)).dt.as_unit("us"),
        }
    )

    features = clv_features(orders, queries, timezone="UTC")

    assert len(reference) == 2357
    np.testing.assert_array_equal(features["frequency"].to_numpy(), reference["x"].to_numpy())
    np.testing.assert_allclose(features["recency"] / 7, reference["t_x"], atol=0.005)
    np.testing.assert_allclose(features["T"] / 7, reference["T"], atol=0.005)
    np.testing.assert_allclose(features["monetary_value"], reference["zbar"], atol=0.005)
