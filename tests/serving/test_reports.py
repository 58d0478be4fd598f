"""Reports: numbers on a hand-made history with known results, then the HTML pages and PNG charts.

The history has seven leads (times in UTC, months in Asia/Shanghai), with the report date
2024-02-20 00:00 UTC and 30 stall days:

* L1 (Jan) lead → contacted d1 → qualified d3 → proposal d6 → negotiation d10 → won d15, rep R1
* L2 (Jan) lead → lost d3, rep R1, only an outbound "other" activity (not a contact type)
* L3 (Jan) lead → contacted d1 → qualified d5, still open (stalled), rep R2
* L4 (Jan 31 23:30 Shanghai) no stage change, inbound form then outbound call after 60 h, rep R2
* L5 (Feb 1 00:30 Shanghai) lead → won after 1 day (stages in between skipped), rep R3 (not in roster)
* L6 (Jan) lead → contacted d1, still open (stalled), rep R1
* L7 (Feb) created 12 hours before the report date, no contact yet, rep R2
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from PIL import Image

from data.folder import CanonicalTables, write_table
from data.validate import coerce_canonical_dtypes, empty_table
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, DataValidationError, InputFileError, SchemaError
from serving.reports import funnel_report, write_all_reports
from serving.reports.channels import attribute_revenue, compute_channels
from serving.reports.channels_report import write_channels_report
from serving.reports.charts import ChartLabels, ChartWriter
from serving.reports.fonts import discover_chart_fonts, latin_chart_fonts
from serving.reports.funnel import ALL_MONTHS, FunnelOptions, compute_funnel, stall_points
from serving.reports.funnel_report import write_funnel_report
from serving.reports.model_card_report import write_model_report
from serving.reports.model_card_source import load_card_file
from serving.reports.reps import (
    SLA_BREACHED,
    SLA_MET,
    SLA_PENDING,
    RepsOptions,
    receipts_from_data_folder,
    summarize_reps,
)
from serving.reports.reps_db import receipts_from_routing_db
from serving.reports.reps_report import write_reps_report
from serving.reports.scores import read_scores
from serving.reports.stage_history import STATUS_LOST, STATUS_OPEN, STATUS_WON, build_stage_history
from serving.store import open_store
from serving.store_models import assignments, lead_contacts, leads, reps, stage_changes
from training.model_card import KnownLimit, ModelCard

AS_OF = pd.Timestamp("2024-02-20T00:00:00Z")
JAN_10 = pd.Timestamp("2024-01-10T00:00:00Z")
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
TIMEZONE = "Asia/Shanghai"


def _leads() -> pd.DataFrame:
    rows = [
        ("L1", JAN_10, "百度SEM", "品牌词", "CRM软件", "C1", "R1"),
        ("L2", JAN_10, "百度SEM", "品牌词", "CRM软件", None, "R1"),
        ("L3", JAN_10, "抖音", "直播", None, None, "R2"),
        ("L4", pd.Timestamp("2024-01-31T15:30:00Z"), None, None, None, None, "R2"),
        ("L5", pd.Timestamp("2024-01-31T16:30:00Z"), "转介绍", None, None, "C5", "R3"),
        ("L6", JAN_10 + DAY, "抖音", "直播", None, None, "R1"),
        ("L7", AS_OF - 12 * HOUR, "抖音", "信息流", None, None, "R2"),
    ]
    frame = pd.DataFrame(
        rows,
        columns=["lead_id", "created_at", "channel", "campaign", "keyword", "customer_id", "owner_rep_id"],
    )
    return coerce_canonical_dtypes("leads", frame)


def _stage_changes() -> pd.DataFrame:
    l5_created = pd.Timestamp("2024-01-31T16:30:00Z")
    rows = [
        ("L1", "lead", JAN_10),
        ("L1", "contacted", JAN_10 + DAY),
        ("L1", "qualified", JAN_10 + 3 * DAY),
        ("L1", "proposal", JAN_10 + 6 * DAY),
        ("L1", "negotiation", JAN_10 + 10 * DAY),
        ("L1", "won", JAN_10 + 15 * DAY),
        ("L2", "lead", JAN_10),
        ("L2", "lost", JAN_10 + 3 * DAY),
        ("L3", "lead", JAN_10),
        ("L3", "contacted", JAN_10 + DAY),
        ("L3", "qualified", JAN_10 + 5 * DAY),
        ("L5", "lead", l5_created),
        ("L5", "won", l5_created + DAY),
        ("L6", "contacted", JAN_10 + 2 * DAY),
    ]
    return coerce_canonical_dtypes(
        "stage_changes", pd.DataFrame(rows, columns=["lead_id", "stage", "changed_at"])
    )


def _activities() -> pd.DataFrame:
    rows = [
        ("A1", "L1", "R1", JAN_10 + 2 * HOUR, "call", "outbound"),
        ("A2", "L2", "R1", JAN_10 + HOUR, "other", "outbound"),
        ("A3", "L4", None, pd.Timestamp("2024-01-31T16:30:00Z"), "form", "inbound"),
        ("A4", "L4", "R2", pd.Timestamp("2024-01-31T15:30:00Z") + 60 * HOUR, "call", "outbound"),
    ]
    frame = pd.DataFrame(
        rows, columns=["activity_id", "lead_id", "rep_id", "occurred_at", "type", "direction"]
    )
    return coerce_canonical_dtypes("activities", frame)


def _orders() -> pd.DataFrame:
    rows = [
        ("O1", "C1", pd.Timestamp("2024-01-05T00:00:00Z"), 500.0, "CNY"),
        ("O2", "C1", pd.Timestamp("2024-01-26T00:00:00Z"), 1000.0, "CNY"),
        ("O3", "C1", pd.Timestamp("2024-02-02T00:00:00Z"), -200.0, "CNY"),
        ("O4", "C5", pd.Timestamp("2024-02-03T00:00:00Z"), 400.0, "CNY"),
        ("O5", "C9", pd.Timestamp("2024-02-05T00:00:00Z"), 300.0, "CNY"),
    ]
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount", "currency"])
    return coerce_canonical_dtypes("orders", frame)


def _reps() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R4"],
            "name": ["王伟", "李娜", "张敏"],
            "tier": ["senior", "regular", "newcomer"],
            "capacity": [10, 20, 5],
            "active": [True, True, True],
        }
    )
    return coerce_canonical_dtypes("reps", frame)


@pytest.fixture(scope="module")
def tables() -> CanonicalTables:
    return CanonicalTables(
        leads=_leads(),
        activities=_activities(),
        stage_changes=_stage_changes(),
        orders=_orders(),
        reps=_reps(),
    )


@pytest.fixture(scope="module")
def history(tables: CanonicalTables):  # type: ignore[no-untyped-def]
    return build_stage_history(tables.stage_changes, tables.leads, timezone=TIMEZONE)


def _scores_file(path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L1", "L99"],
            "as_of": pd.to_datetime(
                ["2024-01-10T01:00Z", "2024-01-10T01:00Z", "2024-01-20T00:00Z", "2024-01-10T00:00Z"], utc=True
            ),
            "p_convert": [0.5, 0.25, 0.9, 0.1],
            "ltv": [200.0, 200.0, 200.0, 10.0],
            "expected_value": [100.0, 50.0, 180.0, 1.0],
        }
    )
    frame.to_parquet(path, index=False)
    return path


# --- stage history and funnel numbers ---------------------------------------------------------------


def test_stage_history_outcomes(history) -> None:  # type: ignore[no-untyped-def]
    leads = history.leads
    assert leads.at["L1", "status"] == STATUS_WON
    assert leads.at["L2", "status"] == STATUS_LOST
    assert leads.at["L3", "status"] == STATUS_OPEN
    assert leads.at["L5", "furthest_order"] == 5
    assert leads.at["L4", "furthest_order"] == 0
    # L4 has no stage change: it entered "lead" when it was created.
    assert leads.at["L4", "current_entered_at"] == pd.Timestamp("2024-01-31T15:30:00Z")


def test_stage_history_months_in_shanghai(history) -> None:  # type: ignore[no-untyped-def]
    assert history.leads.at["L4", "month"] == "2024-01"  # 23:30 in Shanghai
    assert history.leads.at["L5", "month"] == "2024-02"  # 00:30 the next day in Shanghai


def test_stage_history_counts_dropped_rows(tables: CanonicalTables) -> None:
    extra = pd.DataFrame(
        {
            "lead_id": ["L404", "L1"],
            "stage": ["won", "closing"],
            "changed_at": pd.to_datetime(["2024-01-20T00:00Z", "2024-01-20T00:00Z"], utc=True),
        }
    )
    changes = pd.concat([tables.stage_changes, extra], ignore_index=True)
    result = build_stage_history(changes, tables.leads, timezone=TIMEZONE)
    assert result.notes["report.dropped.stage_change_unknown_lead"] == 1
    assert result.notes["report.dropped.unknown_stage"] == 1
    assert len(result.leads) == 7


def test_stage_history_missing_column(tables: CanonicalTables) -> None:
    with pytest.raises(SchemaError, match=r"stage_changes\.parquet lacks column\(s\) changed_at"):
        build_stage_history(tables.stage_changes.drop(columns="changed_at"), tables.leads, timezone=TIMEZONE)


def _pair(frame: pd.DataFrame, month: str, source: str) -> pd.Series:
    rows = frame.loc[(frame["month"] == month) & (frame["from_stage"] == source)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_funnel_pair_conversion_overall(history) -> None:  # type: ignore[no-untyped-def]
    result = compute_funnel(history, as_of=AS_OF, options=FunnelOptions(stall_days=30))
    expected = {
        # from stage: reached, advanced, lost, stalled, open, inferred, conversion
        "lead": (7, 4, 1, 0, 2, 1, 4 / 5),
        "contacted": (4, 3, 0, 1, 0, 1, 3 / 4),
        "qualified": (3, 2, 0, 1, 0, 1, 2 / 3),
        "proposal": (2, 2, 0, 0, 0, 1, 1.0),
        "negotiation": (2, 2, 0, 0, 0, 0, 1.0),
    }
    for source, (reached, advanced, lost, stalled, still_open, inferred, conversion) in expected.items():
        row = _pair(result.pairs, ALL_MONTHS, source)
        assert row["reached"] == reached, source
        assert row["advanced"] == advanced, source
        assert row["lost"] == lost, source
        assert row["stalled"] == stalled, source
        assert row["open"] == still_open, source
        assert row["inferred"] == inferred, source
        assert row["conversion"] == pytest.approx(conversion), source


def test_funnel_pair_conversion_by_month(history) -> None:  # type: ignore[no-untyped-def]
    result = compute_funnel(history, as_of=AS_OF, options=FunnelOptions(stall_days=30))
    january = _pair(result.pairs, "2024-01", "lead")
    assert (january["reached"], january["advanced"], january["open"]) == (5, 3, 1)
    assert january["conversion"] == pytest.approx(3 / 4)
    february = _pair(result.pairs, "2024-02", "lead")
    assert (february["reached"], february["advanced"], february["open"]) == (2, 1, 1)
    assert february["conversion"] == pytest.approx(1.0)
    assert result.months() == ["2024-01", "2024-02"]


def test_monthly_rate_blank_when_few_decided(
    history, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    result = compute_funnel(history, as_of=AS_OF, options=FunnelOptions(stall_days=30))
    monkeypatch.setattr(funnel_report, "MIN_DECIDED_PER_MONTH", 4)
    charts = ChartWriter(tmp_path, "funnel", "en", latin_chart_fonts())

    section = funnel_report._monthly_section(result, "en", charts)

    rows = {row[0]: row for row in section.tables[0].rows}
    assert rows["2024-01"][2] == "75.0%"
    assert rows["2024-02"][2] == "—"
    assert "fewer than 4 decided leads" in (section.tables[0].note or "")


def test_funnel_stall_days_decide_open(history) -> None:  # type: ignore[no-untyped-def]
    result = compute_funnel(history, as_of=AS_OF, options=FunnelOptions(stall_days=60))
    row = _pair(result.pairs, ALL_MONTHS, "contacted")
    assert (row["stalled"], row["open"]) == (0, 1)
    assert row["conversion"] == pytest.approx(3 / 3)


def test_funnel_median_dwell(history) -> None:  # type: ignore[no-untyped-def]
    result = compute_funnel(history, as_of=AS_OF, options=FunnelOptions())
    dwell = result.overall(result.dwell).set_index("stage")
    assert dwell.at["lead", "median_days"] == pytest.approx(1.0)
    assert (dwell.at["lead", "left"], dwell.at["lead", "in_stage"]) == (5, 2)
    assert dwell.at["contacted", "median_days"] == pytest.approx(3.0)  # L1 2 days, L3 4 days
    assert (dwell.at["contacted", "left"], dwell.at["contacted", "in_stage"]) == (2, 1)
    assert dwell.at["qualified", "median_days"] == pytest.approx(3.0)
    assert dwell.at["negotiation", "median_days"] == pytest.approx(5.0)
    february = result.dwell.loc[result.dwell["month"] == "2024-02"].set_index("stage")
    assert pd.isna(february.at["proposal", "median_days"])
    assert february.at["proposal", "left"] == 0


def test_funnel_stall_points(history) -> None:  # type: ignore[no-untyped-def]
    points = stall_points(compute_funnel(history, as_of=AS_OF, options=FunnelOptions()))
    assert points.weakest_pair is not None
    assert points.weakest_pair[:2] == ("qualified", "proposal")
    assert points.most_stalled == ("contacted", 1)
    assert points.slowest_stage is not None
    assert points.slowest_stage[0] == "negotiation"


# --- channels: attribution and predicted values -----------------------------------------------------


def test_attribution_of_orders(tables: CanonicalTables, history) -> None:  # type: ignore[no-untyped-def]
    attribution = attribute_revenue(history, tables.leads, tables.orders)
    assert attribution.lead_revenue.to_dict() == {"L1": 800.0, "L5": 400.0}
    assert attribution.total_amount == pytest.approx(2000.0)
    assert (attribution.before_win_orders, attribution.before_win_amount) == (1, 500.0)
    assert (attribution.no_won_lead_orders, attribution.no_won_lead_amount) == (1, 300.0)
    assert attribution.won_without_customer == 0
    assert attribution.currencies == ("CNY",)


def test_attribution_latest_won_lead() -> None:
    leads = coerce_canonical_dtypes(
        "leads",
        pd.DataFrame(
            {
                "lead_id": ["A", "B"],
                "created_at": pd.to_datetime(["2024-01-01T00:00Z", "2024-02-20T00:00Z"], utc=True),
                "customer_id": ["C1", "C1"],
            }
        ),
    )
    changes = coerce_canonical_dtypes(
        "stage_changes",
        pd.DataFrame(
            {
                "lead_id": ["A", "B"],
                "stage": ["won", "won"],
                "changed_at": pd.to_datetime(["2024-01-02T00:00Z", "2024-03-01T00:00Z"], utc=True),
            }
        ),
    )
    orders = coerce_canonical_dtypes(
        "orders",
        pd.DataFrame(
            {
                "order_id": ["O1", "O2", "O3"],
                "customer_id": ["C1", "C1", "C1"],
                "ordered_at": pd.to_datetime(
                    ["2024-02-01T00:00Z", "2024-03-01T00:00Z", "2024-04-01T00:00Z"], utc=True
                ),
                "amount": [10.0, 20.0, 40.0],
            }
        ),
    )
    history = build_stage_history(changes, leads, timezone=TIMEZONE)
    attribution = attribute_revenue(history, leads, orders)
    # An order at the very time of a win goes to that win.
    assert attribution.lead_revenue.to_dict() == {"A": 10.0, "B": 60.0}


def test_channels_per_level(tables: CanonicalTables, history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scores = read_scores(_scores_file(tmp_path / "scores.parquet"), history.leads.index)
    result = compute_channels(history, tables.leads, tables.orders, scores)
    channels = result.levels["channel"].set_index("channel", drop=False)
    baidu = channels.loc["百度SEM"]
    assert (baidu["leads"], baidu["won"]) == (2, 1)
    assert baidu["conversion"] == pytest.approx(0.5)
    assert baidu["won_revenue"] == pytest.approx(800.0)
    assert baidu["revenue_share"] == pytest.approx(800 / 1200)
    assert baidu["realised_value_per_lead"] == pytest.approx(400.0)
    assert baidu["mean_expected_value"] == pytest.approx(75.0)  # the first score of L1 (100) and L2 (50)
    assert baidu["scored"] == 2
    douyin = channels.loc["抖音"]
    assert (douyin["leads"], douyin["won"], douyin["open"]) == (3, 0, 3)
    assert pd.isna(douyin["mean_expected_value"])
    assert int(result.levels["channel"]["channel"].isna().sum()) == 1  # L4 has no channel and is kept
    assert int(result.levels["channel"]["leads"].sum()) == 7
    keywords = result.levels["keyword"]
    assert len(keywords) == 5
    assert int(keywords["leads"].sum()) == 7


def test_scores_keep_earliest_per_lead(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scores = read_scores(_scores_file(tmp_path / "scores.parquet"), history.leads.index)
    assert scores.scores.at["L1", "expected_value"] == pytest.approx(100.0)
    assert scores.notes["report.scores.dropped.later_score"] == 1
    assert scores.notes["report.scores.dropped.unknown_lead"] == 1
    assert scores.rows_read == 4


def test_scores_repeated_lead_without_as_of(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "scores.csv"
    pd.DataFrame(
        {"lead_id": ["L1", "L1"], "p_convert": [0.1, 0.2], "ltv": [1.0, 1.0], "expected_value": [0.1, 0.2]}
    ).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"repeated lead ids \(first 'L1'\) and no as_of column"):
        read_scores(path, history.leads.index)


def test_scores_missing_column(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "scores.csv"
    pd.DataFrame({"lead_id": ["L1"], "p_convert": [0.1]}).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"lacks column\(s\) ltv, expected_value"):
        read_scores(path, history.leads.index)


def test_scores_non_numeric_value(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "scores.csv"
    pd.DataFrame({"lead_id": ["L1"], "p_convert": ["high"], "ltv": [1.0], "expected_value": [1.0]}).to_csv(
        path, index=False
    )
    with pytest.raises(
        DataValidationError, match=r"column p_convert has 1 non-numeric value\(s\), for example 'high'"
    ):
        read_scores(path, history.leads.index)


# --- reps: SLA and fairness ---------------------------------------------------------------------------


def test_reps_sla_from_activities(tables: CanonicalTables, history) -> None:  # type: ignore[no-untyped-def]
    receipts = receipts_from_data_folder(
        tables.leads, tables.activities, tables.reps, history, scores=None, options=RepsOptions(), as_of=AS_OF
    )
    status = receipts.frame.set_index("lead_id")["sla_status"]
    assert status["L1"] == SLA_MET  # outbound call after 2 hours
    assert status["L2"] == SLA_BREACHED  # an outbound "other" is no contact; lost after the deadline
    assert status["L3"] == SLA_MET  # entered contacted after 24 hours
    assert status["L4"] == SLA_BREACHED  # the inbound form does not count; the call came after 60 hours
    assert status["L5"] == SLA_MET  # won after 24 hours
    assert status["L7"] == SLA_PENDING  # created 12 hours before the report date
    assert receipts.notes["report.reps.note.owner_not_in_roster"] == 1


def test_reps_summary_per_rep_and_tier(tables: CanonicalTables, history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scores = read_scores(_scores_file(tmp_path / "scores.parquet"), history.leads.index)
    receipts = receipts_from_data_folder(
        tables.leads,
        tables.activities,
        tables.reps,
        history,
        scores=scores,
        options=RepsOptions(),
        as_of=AS_OF,
    )
    result = summarize_reps(receipts)
    by_rep = result.by_rep.set_index("rep_id")
    assert by_rep.at["R1", "leads"] == 3
    assert by_rep.at["R1", "sla_compliance"] == pytest.approx(2 / 3)
    assert by_rep.at["R1", "conversion"] == pytest.approx(1 / 3)
    assert by_rep.at["R1", "expected_value"] == pytest.approx(150.0)
    assert by_rep.at["R2", "sla_compliance"] == pytest.approx(1 / 2)
    assert by_rep.at["R2", "sla_pending"] == 1
    assert by_rep.at["R3", "tier"] == "unknown"
    assert by_rep.at["R4", "leads"] == 0  # in the roster, received nothing
    by_tier = result.by_tier.set_index("tier")
    assert list(result.by_tier["tier"]) == ["senior", "regular", "newcomer", "unknown"]
    assert by_tier.at["senior", "lead_share"] == pytest.approx(3 / 7)
    assert by_tier.at["senior", "capacity_share"] == pytest.approx(10 / 35)
    assert by_tier.at["newcomer", "leads"] == 0


def test_reps_without_activities_not_measured(tables: CanonicalTables, history) -> None:  # type: ignore[no-untyped-def]
    receipts = receipts_from_data_folder(
        tables.leads,
        empty_table("activities"),
        tables.reps,
        history,
        scores=None,
        options=RepsOptions(),
        as_of=AS_OF,
    )
    assert not receipts.sla_measured
    assert set(receipts.frame["sla_status"]) == {"not_applicable"}


def _fill_routing_db(url: str) -> None:
    t0 = pd.Timestamp("2024-03-01T00:00:00Z").to_pydatetime()
    hours = pd.Timedelta(hours=1).to_pytimedelta()
    store = open_store(url)
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(reps),
            [
                {
                    "rep_id": rep_id,
                    "name": name,
                    "tier": tier,
                    "capacity": 10,
                    "regions": [],
                    "skills": [],
                    "active": True,
                    "updated_at": t0,
                }
                for rep_id, name, tier in (("R1", "王伟", "senior"), ("R2", "李娜", "regular"))
            ],
        )
        connection.execute(
            sa.insert(leads),
            [
                {"lead_id": lead_id, "p_convert": 0.1, "ltv": 1.0, "expected_value": value, "received_at": t0}
                for lead_id, value in (("D1", 100.0), ("D2", 50.0), ("D3", 10.0), ("D4", 5.0))
            ],
        )
        common = {"segment": "warm", "policy_version": "test", "closed_at": None, "queue": None}
        received = [
            ("D1", "R1", "senior", "active", t0, t0 + 48 * hours, None),
            ("D2", "R1", "senior", "closed", t0, t0 + 48 * hours, t0 + 24 * hours),
            ("D2", "R2", "regular", "active", t0 + 24 * hours, t0 + 72 * hours, None),
            ("D3", "R2", "regular", "active", t0 + 99 * hours, t0 + 147 * hours, None),
        ]
        for lead_id, rep_id, tier, status, assigned_at, due, closed_at in received:
            values = {**common, "lead_id": lead_id, "rep_id": rep_id, "tier": tier, "status": status}
            values.update(assigned_at=assigned_at, sla_due_at=due, closed_at=closed_at)
            connection.execute(sa.insert(assignments).values(**values))
        queued = {
            **common,
            "lead_id": "D4",
            "rep_id": None,
            "queue": "pool",
            "tier": None,
            "status": "active",
        }
        connection.execute(sa.insert(assignments).values(**queued, assigned_at=t0, sla_due_at=None))
        connection.execute(
            sa.insert(lead_contacts),
            [
                {
                    "lead_id": "D1",
                    "first_contact_at": t0 + 10 * hours,
                    "source": "activity",
                    "source_id": "a1",
                    "recorded_at": t0,
                },
                {
                    "lead_id": "D2",
                    "first_contact_at": t0 + 80 * hours,
                    "source": "activity",
                    "source_id": "a2",
                    "recorded_at": t0,
                },
            ],
        )
        connection.execute(
            sa.insert(stage_changes),
            [{"lead_id": "D1", "stage": "won", "changed_at": t0 + 90 * hours, "recorded_at": t0}],
        )
    store.dispose()


def test_reps_from_routing_db(database_url: str, history) -> None:  # type: ignore[no-untyped-def]
    _fill_routing_db(database_url)
    store = open_store(database_url, create=False)
    try:
        receipts = receipts_from_routing_db(store, history, now=pd.Timestamp("2024-03-05T04:00:00Z"))
    finally:
        store.dispose()
    status = {(row.lead_id, row.rep_id): row.sla_status for row in receipts.frame.itertuples()}
    assert status[("D1", "R1")] == SLA_MET
    assert status[("D2", "R1")] == "not_applicable"  # reassigned before its deadline
    assert status[("D2", "R2")] == SLA_BREACHED  # first contact after 80 hours, due after 72
    assert status[("D3", "R2")] == SLA_PENDING
    assert len(receipts.frame) == 4  # the queued assignment is not a receipt
    result = summarize_reps(receipts)
    by_rep = result.by_rep.set_index("rep_id")
    assert by_rep.at["R1", "expected_value"] == pytest.approx(150.0)
    assert by_rep.at["R1", "sla_compliance"] == pytest.approx(1.0)
    assert by_rep.at["R1", "won"] == 1
    assert by_rep.at["R2", "sla_compliance"] == pytest.approx(0.0)
    assert receipts.notes["report.reps.note.assignment_lead_not_in_data"] == 4


# --- fonts and chart labels -----------------------------------------------------------------------------


def test_chart_labels_key_chinese_without_font() -> None:
    labels = ChartLabels(latin_chart_fonts())
    assert labels.text("telephone") == "telephone"
    assert labels.text("百度SEM") == "#1"
    assert labels.text("抖音") == "#2"
    assert labels.text("百度SEM") == "#1"
    assert labels.keys == [("#1", "百度SEM"), ("#2", "抖音")]
    assert labels.optional("线索数") is None


def test_chinese_font_found_outside_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib import font_manager

    from serving.reports import fonts

    if fonts._system_cjk_font() is None:
        pytest.skip("no Chinese font installed on this machine (Debian: apt-get install fonts-noto-cjk)")
    latin_only = [entry for entry in font_manager.fontManager.ttflist if "CJK" not in entry.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin_only)
    assert fonts._cached_cjk_font() is None or "CJK" not in str(fonts._cached_cjk_font())

    found = fonts._installed_cjk_font()

    assert found is not None
    assert fonts._build(found).can_draw("线索获取")


def test_font_file_without_chinese_glyphs() -> None:
    from matplotlib import font_manager

    latin_font = Path(font_manager.findfont("DejaVu Sans"))
    with pytest.raises(ConfigError, match=r"has no glyphs for Chinese text"):
        discover_chart_fonts(latin_font)


# --- rendered pages -------------------------------------------------------------------------------------


def _card_file(path: Path) -> Path:
    card = ModelCard(
        name="lead-scorer",
        bundle_version="20240301T000000Z-test",
        created_at="2024-03-01T00:00:00+00:00",
        data_window={
            "start": "2024-01-01T00:00:00+00:00",
            "end": "2024-02-20T00:00:00+00:00",
            "observed_until": "2024-02-20T00:00:00+00:00",
        },
        horizons={"horizon_days": 90, "ltv_horizon_days": 730},
        table_rows={"leads": 7, "activities": 4},
        fold_rows={"train": 5, "test": 2},
        fold_boundaries={"test": "2024-02-01T00:00:00+00:00"},
        test_positive_rate=0.25,
        metrics={
            "model": {"conversion_auc": 0.8, "conversion_ece": 0.01},
            "rules": {"conversion_auc": 0.7, "conversion_ece": 0.03},
        },
        calibration={"method": "platt", "ece_before": 0.02, "ece_after": 0.01, "prior_weight": 0.0},
        leakage={"checked": 3, "excluded": [{"feature": "won_flag", "reason": "AUC 0.99 alone"}]},
        ltv={"note": "too few orders"},
        features=["channel", "region"],
        insufficient_data=True,
        data_sufficiency={},
        known_limits=[KnownLimit("card.limit.no_ltv_model")],
    )
    path.write_text(json.dumps(card.to_dict(), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rendered(tables: CanonicalTables, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    fonts = latin_chart_fonts()
    locales = ["en", "zh-CN"]
    scores = _scores_file(out / "scores.parquet")
    write_funnel_report(
        tables, data_dir=None, out_dir=out, locales=locales, options=FunnelOptions(), fonts=fonts
    )
    write_channels_report(
        tables,
        data_dir=None,
        out_dir=out,
        locales=locales,
        timezone=TIMEZONE,
        scores_file=scores,
        fonts=fonts,
    )
    write_reps_report(
        tables,
        data_dir=None,
        out_dir=out,
        locales=locales,
        options=RepsOptions(),
        scores_file=None,
        db_url=None,
        fonts=fonts,
    )
    loaded = load_card_file(_card_file(out / "model_card.json"))
    write_model_report(loaded, out_dir=out, locales=locales, timezone=TIMEZONE, fonts=fonts)
    return out


@pytest.mark.parametrize(
    ("kind", "headings"),
    [
        ("funnel", ["销售漏斗", "阶段间转化率", "各阶段停留时间", "初步沟通 → 需求确认"]),
        ("channels", ["线索来源", "推广计划", "关键词", "（未填写）"]),
        ("reps", ["销售人员与分配公平性", "按级别", "资深", "首次联系时限"]),
        ("model", ["模型卡片", "已知局限", "未训练终身价值模型", "数据不足"]),
    ],
)
def test_report_pages_in_chinese(rendered: Path, kind: str, headings: list[str]) -> None:
    page = (rendered / f"{kind}.zh-CN.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in page
    for heading in headings:
        assert heading in page, heading
    assert f'href="{kind}.en.html"' in page


@pytest.mark.parametrize("kind", ["funnel", "channels", "reps", "model"])
def test_report_pages_in_english(rendered: Path, kind: str) -> None:
    page = (rendered / f"{kind}.en.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in page
    assert "Sources of these numbers" in page
    assert f'href="{kind}.zh-CN.html"' in page


@pytest.mark.parametrize("kind", ["funnel", "channels", "reps", "model"])
def test_report_charts_open_as_png(rendered: Path, kind: str) -> None:
    for locale in ("en", "zh-CN"):
        page = (rendered / f"{kind}.{locale}.html").read_text(encoding="utf-8")
        images = re.findall(r'<img src="([^"]+)"', page)
        assert images, f"{kind}.{locale}.html has no chart"
        for name in images:
            with Image.open(rendered / name) as image:
                assert image.format == "PNG"
                assert image.size[0] > 300
                assert image.size[1] > 150


def test_chinese_chart_labels_listed_as_keys(rendered: Path) -> None:
    page = (rendered / "channels.zh-CN.html").read_text(encoding="utf-8")
    # Channels are ordered by leads: 抖音 (3), 百度SEM (2), then one lead each.
    assert "#1 = 抖音" in page
    assert "#2 = 百度SEM" in page


def test_report_states_its_sources(rendered: Path) -> None:
    page = (rendered / "funnel.en.html").read_text(encoding="utf-8")
    assert "leads 7, activities 4, stage_changes 14, orders 5, reps 3" in page
    assert "2024-01-10 08:00 UTC+0800 to 2024-02-19 20:00 UTC+0800" in page
    assert "funnel.pairs.csv" in page
    assert (rendered / "funnel.pairs.csv").is_file()


def test_report_escapes_lead_data(tables: CanonicalTables, tmp_path: Path) -> None:
    leads = tables.leads.copy()
    leads["channel"] = leads["channel"].astype("object")
    leads.loc[0, "channel"] = "<script>alert(1)</script>"
    hostile = CanonicalTables(
        leads=coerce_canonical_dtypes("leads", leads),
        activities=tables.activities,
        stage_changes=tables.stage_changes,
        orders=tables.orders,
        reps=tables.reps,
    )
    write_channels_report(
        hostile,
        data_dir=None,
        out_dir=tmp_path,
        locales=["en"],
        timezone=TIMEZONE,
        scores_file=None,
        fonts=latin_chart_fonts(),
    )
    page = (tmp_path / "channels.en.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_model_card_file_invalid(tmp_path: Path) -> None:
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps({"name": "lead-scorer"}), encoding="utf-8")
    with pytest.raises(InputFileError, match=r"is not a leadscore model card"):
        load_card_file(path)


# --- command line -----------------------------------------------------------------------------------------


def _write_folder(tables: CanonicalTables, directory: Path) -> Path:
    for name in ("leads", "activities", "stage_changes", "orders", "reps"):
        write_table(tables.table(name), directory, name)
    return directory


def test_cli_funnel_one_locale(tables: CanonicalTables, tmp_path: Path) -> None:
    data_dir = _write_folder(tables, tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["report", "funnel", "--data", str(data_dir), "--out", str(out), "--locale", "zh-CN"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "funnel.zh-CN.html").is_file()
    assert not (out / "funnel.en.html").exists()
    assert f"report: {out / 'funnel.zh-CN.html'}" in result.output


def test_cli_reps_missing_routing_db(tables: CanonicalTables, tmp_path: Path) -> None:
    data_dir = _write_folder(tables, tmp_path / "data")
    missing = tmp_path / "missing.db"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "reps",
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "out"),
            "--db",
            f"sqlite:///{missing}",
        ],
    )
    assert result.exit_code == 2
    assert f"routing database {missing} not found" in result.output
    assert not missing.exists()


def test_cli_reps_database_without_tables(tables: CanonicalTables, tmp_path: Path) -> None:
    data_dir = _write_folder(tables, tmp_path / "data")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE unrelated (value INTEGER)")
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "reps",
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "out"),
            "--db",
            f"sqlite:///{other}",
        ],
    )
    assert result.exit_code == 2
    assert "cannot read the routing tables from sqlite:///" in result.output
    assert "no such table" in result.output


def test_cli_unknown_locale(tables: CanonicalTables, tmp_path: Path) -> None:
    data_dir = _write_folder(tables, tmp_path / "data")
    result = CliRunner().invoke(
        cli, ["report", "funnel", "--data", str(data_dir), "--out", str(tmp_path / "out"), "--locale", "fr"]
    )
    assert result.exit_code == 2
    assert "unsupported locale 'fr'" in result.output


def test_write_all_reports_without_model(tables: CanonicalTables, tmp_path: Path) -> None:
    data_dir = _write_folder(tables, tmp_path / "data")
    paths = write_all_reports(data_dir=data_dir, out_dir=tmp_path / "out", locales=("en",))
    names = {path.name for path in paths}
    assert {"funnel.en.html", "channels.en.html", "reps.en.html"} <= names
    assert "funnel.en.reach.png" in names
    assert "reps.by_rep.csv" in names
    assert not any(name.startswith("model.") for name in names)
    assert all(path.is_file() for path in paths)
    assert len(names) == len(paths)


def test_cli_reps_rejects_scores_with_db(tables: CanonicalTables, tmp_path: Path) -> None:
    data_dir = _write_folder(tables, tmp_path / "data")
    scores = _scores_file(tmp_path / "scores.parquet")
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "reps",
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "out"),
            "--scores",
            str(scores),
            "--db",
            f"sqlite:///{tmp_path / 'routing.db'}",
        ],
    )
    assert result.exit_code == 2
    assert "--scores and --db cannot be combined" in result.output
