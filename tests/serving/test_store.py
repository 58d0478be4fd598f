"""The routing store on SQLite and PostgreSQL: schema, roster, idempotent routing, decision log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.exc import DBAPIError, IntegrityError

from leadscore.cli.main import cli
from leadscore.errors import ConfigError, DataValidationError, NotFoundError
from serving.policy import ScoredLead
from serving.policy_config import RoutingPolicy, load_policy, parse_policy
from serving.roster import Rep, list_reps, parse_reps, upsert_reps
from serving.routing import assign_queued, get_route, route_lead
from serving.sla import record_stage_change
from serving.store import (
    RoutingStore,
    list_assignments,
    list_decisions,
    normalize_url,
    open_store,
)
from serving.store_models import assignments, create_schema, decision_log, metadata

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
SECRET_NAME = "王秘密"


@pytest.fixture
def store(database_url: str) -> Iterator[RoutingStore]:
    routing_store = open_store(database_url)
    yield routing_store
    routing_store.dispose()


@pytest.fixture
def policy() -> RoutingPolicy:
    return load_policy()


def rep_row(rep_id: str, tier: str = "senior", capacity: object = 2, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"rep_id": rep_id, "name": f"name-{rep_id}", "tier": tier, "capacity": capacity}
    row.update(fields)
    return row


def high_value_lead(lead_id: str, **fields: Any) -> ScoredLead:
    return ScoredLead(lead_id=lead_id, p_convert=0.5, ltv=100000.0, expected_value=50000.0, **fields)


# --- schema and engine ----------------------------------------------------------------------


def test_create_schema_is_idempotent(database_url: str) -> None:
    first = open_store(database_url)
    second = open_store(database_url)
    create_schema(second.engine)
    tables = set(sa.inspect(second.engine).get_table_names())
    assert set(metadata.tables) <= tables
    first.dispose()
    second.dispose()


def test_sqlite_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'sub' / 'routing.db'}")
    with store.transaction(write=False) as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.dispose()


def test_url_normalization() -> None:
    assert normalize_url("postgresql://u@127.0.0.1/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        normalize_url("mysql://u@127.0.0.1/db")
    with pytest.raises(ConfigError, match="invalid database URL 'not a url'"):
        normalize_url("not a url")


def test_naive_timestamp_rejected(store: RoutingStore) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive timestamp"):
        upsert_reps(store, [rep_row("S1")], now=datetime(2025, 1, 1))


def test_timestamps_round_trip_in_utc(store: RoutingStore) -> None:
    shanghai = timezone(timedelta(hours=8))
    hired = datetime(2024, 7, 1, 9, 30, tzinfo=shanghai)
    upsert_reps(store, [rep_row("S1", hired_at=hired)], now=NOW)
    stored = list_reps(store)[0].rep.hired_at
    assert stored == hired
    assert stored is not None
    assert stored.utcoffset() == timedelta(0)


# --- roster ---------------------------------------------------------------------------------


def test_upsert_inserts_updates_and_deactivates(store: RoutingStore) -> None:
    first = upsert_reps(store, [rep_row("S1"), rep_row("S2", "regular", regions=["华东"])], now=NOW)
    assert first.inserted == ("S1", "S2")

    second = upsert_reps(store, [rep_row("S2", "senior", capacity=7)], now=NOW, deactivate_missing=True)
    assert second.updated == ("S2",)
    assert second.deactivated == ("S1",)

    roster = {item.rep.rep_id: item for item in list_reps(store)}
    assert roster["S1"].rep.active is False
    assert roster["S2"].rep.tier == "senior"
    assert roster["S2"].rep.capacity == 7
    assert roster["S2"].rep.regions == ()
    assert [item.rep.rep_id for item in list_reps(store, include_inactive=False)] == ["S2"]


def test_upsert_validation_names_rep_and_field(store: RoutingStore) -> None:
    rows = [
        rep_row("S1", tier="boss"),
        rep_row("S2", capacity=-1),
        rep_row("S3", capacity=2.5),
        {"rep_id": "S4", "tier": "senior", "capacity": 1},
        rep_row("S5", regions="华东"),
        rep_row("S6", active="yes"),
        rep_row("S7", manager_id="S7"),
        rep_row("S8", hired_at=datetime(2024, 1, 1)),
        {"name": "no id", "tier": "senior", "capacity": 1},
        rep_row("S1"),
    ]
    with pytest.raises(DataValidationError) as caught:
        upsert_reps(store, rows, now=NOW)
    message = str(caught.value)
    assert "rep 'S1', field tier: 'boss' is not one of senior, regular, newcomer" in message
    assert "rep 'S2', field capacity: '-1' is not a whole number from 0 to 2,147,483,647" in message
    assert "rep 'S3', field capacity: '2.5' is not a whole number from 0 to 2,147,483,647" in message
    assert "rep 'S4', field name: is missing" in message
    assert "rep 'S5', field regions: '华东' is not a list of strings" in message
    assert "rep 'S6', field active: 'yes' is not true or false" in message
    assert "rep 'S7', field manager_id: a rep cannot be its own manager" in message
    assert "rep 'S8', field hired_at" in message
    assert "row 9: rep_id is missing" in message
    assert "rep 'S1': listed twice (rows 1 and 10)" not in message  # row 1 was invalid, so not a duplicate
    assert list_reps(store) == []


def test_parse_reps_rejects_duplicates() -> None:
    with pytest.raises(DataValidationError, match=r"rep 'S1': listed twice \(rows 1 and 2\)"):
        parse_reps([rep_row("S1"), rep_row("S1")])


def test_parse_reps_rejects_values_beyond_columns() -> None:
    long_id = "R" * 65
    rows = [
        rep_row(long_id),
        rep_row("S2", name="名" * 201),
        rep_row("S3", manager_id="M" * 65),
        rep_row("S4", capacity=2**31),
    ]

    with pytest.raises(DataValidationError) as raised:
        parse_reps(rows)

    message = str(raised.value)
    assert "invalid roster (4 problems)" in message
    assert "field rep_id: " in message
    assert "has 65 characters; the roster stores at most 64, so shorten it" in message
    assert "rep 'S2', field name: " in message
    assert "has 201 characters; the roster stores at most 200" in message
    assert "rep 'S3', field manager_id: " in message
    assert "rep 'S4', field capacity: '2147483648' is not a whole number from 0 to 2,147,483,647" in message


def test_parse_reps_accepts_rep_objects(store: RoutingStore) -> None:
    upsert_reps(store, [Rep("S1", "甲", "senior", 3, regions=("华东",))], now=NOW)
    assert list_reps(store)[0].rep.regions == ("华东",)


def test_database_rejects_negative_capacity(store: RoutingStore) -> None:
    with pytest.raises(IntegrityError), store.transaction() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO reps (rep_id, name, tier, capacity, regions, skills, active, updated_at) "
                "VALUES ('X', 'x', 'senior', -1, '[]', '[]', true, '2025-01-01')"
            )
        )


# --- routing persistence ------------------------------------------------------------------


def test_retry_returns_same_assignment(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    first = route_lead(store, high_value_lead("L1", model_version="m7"), policy, now=NOW)
    retry = route_lead(store, high_value_lead("L1"), policy, now=NOW + timedelta(minutes=5))

    assert first.assignment_id is not None
    assert retry.assignment_id == first.assignment_id
    assert retry.decision_id == first.decision_id
    assert retry.rep_id == "S1"
    assert first.replayed is False
    assert retry.replayed is True
    assert retry.sla_due_at == NOW + timedelta(hours=4)
    assert retry.reasons == first.reasons
    assert len(list_assignments(store)) == 1
    entries = list_decisions(store, lead_id="L1")
    assert [entry.event for entry in entries] == ["assigned"]
    assert entries[0].model_version == "m7"
    assert entries[0].policy_version == policy.version
    assert entries[0].expected_value == 50000.0


def test_second_active_assignment_violates_constraint(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value_lead("L1"), policy, now=NOW)
    with pytest.raises(IntegrityError), store.transaction() as connection:
        connection.execute(
            sa.insert(assignments).values(
                lead_id="L1",
                rep_id="S1",
                segment="high_value",
                status="active",
                assigned_at=NOW,
                policy_version="x",
            )
        )


def test_decision_log_is_append_only(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value_lead("L1"), policy, now=NOW)
    with pytest.raises(DBAPIError, match="append-only"), store.transaction() as connection:
        connection.execute(sa.update(decision_log).values(rep_id="S2"))
    with pytest.raises(DBAPIError, match="append-only"), store.transaction() as connection:
        connection.execute(sa.delete(decision_log))
    assert len(list_decisions(store)) == 1


def test_queue_when_roster_empty(store: RoutingStore, policy: RoutingPolicy) -> None:
    result = route_lead(store, high_value_lead("L1"), policy, now=NOW)
    assert result.rep_id is None
    assert result.queue == "unassigned"
    assert result.sla_due_at is None
    assert [entry.event for entry in list_decisions(store)] == ["queued"]


def test_shadow_mode_logs_without_assigning(store: RoutingStore) -> None:
    content = load_policy().model_dump(mode="json")
    content["teams"] = [{"name": "pilot", "rep_ids": ["S1"], "regions": ["华东"], "mode": "shadow"}]
    policy = parse_policy(content, source="test")
    upsert_reps(store, [rep_row("S1", capacity=1)], now=NOW)

    first = route_lead(store, high_value_lead("L1", region="华东"), policy, now=NOW)
    second = route_lead(store, high_value_lead("L2", region="华东"), policy, now=NOW)
    retry = route_lead(store, high_value_lead("L1", region="华东"), policy, now=NOW)

    assert first.shadow is True
    assert first.rep_id == "S1"
    assert first.assignment_id is None
    assert first.status == "shadow"
    assert second.rep_id == "S1"  # shadow decisions use no capacity
    assert retry.replayed is True
    assert retry.decision_id == first.decision_id
    assert list_assignments(store, active_only=False) == []
    assert list_reps(store)[0].open_leads == 0
    entries = list_decisions(store)
    assert [(entry.event, entry.shadow, entry.rep_id, entry.team) for entry in entries] == [
        ("shadow", True, "S1", "pilot"),
        ("shadow", True, "S1", "pilot"),
    ]


def test_won_frees_capacity_for_queue(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1", capacity=1), rep_row("R1", "regular", capacity=0)], now=NOW)
    assert route_lead(store, high_value_lead("L1"), policy, now=NOW).rep_id == "S1"
    assert route_lead(store, high_value_lead("L2"), policy, now=NOW).queue == "unassigned"
    assert assign_queued(store, policy, now=NOW) == []

    outcome = record_stage_change(store, "L1", "签约执行", changed_at=NOW + timedelta(hours=1))
    assert outcome.closed_assignment_id is not None
    loads = {item.rep.rep_id: item.open_leads for item in list_reps(store)}
    assert loads == {"R1": 0, "S1": 0}

    moved = assign_queued(store, policy, now=NOW + timedelta(hours=2))
    assert [(result.lead_id, result.rep_id) for result in moved] == [("L2", "S1")]
    assert moved[0].reasons[0].code == "assigned_from_queue"
    assert get_route(store, "L2").rep_id == "S1"
    assert [entry.event for entry in list_decisions(store)] == ["assigned", "queued", "closed", "assigned"]


def test_get_route_unknown_lead(store: RoutingStore) -> None:
    with pytest.raises(NotFoundError, match="lead 'nope' has not been routed"):
        get_route(store, "nope")


def test_names_never_logged(
    store: RoutingStore, policy: RoutingPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upsert_reps(store, [rep_row("S1", name=SECRET_NAME)], now=NOW)
    route_lead(store, high_value_lead("L1"), policy, now=NOW)
    list_reps(store)
    assert "S1" in caplog.text
    assert "L1" in caplog.text
    assert SECRET_NAME not in caplog.text


# --- roster CLI -----------------------------------------------------------------------------


def test_reps_load_csv_with_chinese_headers(tmp_path: Path, database_url: str) -> None:
    roster_file = tmp_path / "销售名单.csv"
    roster_file.write_text(
        "工号,姓名,级别,容量,负责区域,擅长行业,在岗,上级\n"
        "S001,张三,senior,5,华东;华南,制造业,是,M01\n"
        "R002,李四,regular,8,华北,,是,M01\n",
        "utf-8",
    )
    runner = CliRunner()
    loaded = runner.invoke(cli, ["reps", "load", str(roster_file), "--db", database_url])
    assert loaded.exit_code == 0, loaded.output
    assert "Loaded 2 reps: 2 new, 0 updated, 0 deactivated" in loaded.output

    listed = runner.invoke(cli, ["reps", "list", "--db", database_url, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    payload = json.loads(listed.stdout)
    assert [item["rep_id"] for item in payload] == ["R002", "S001"]
    assert payload[1]["regions"] == ["华东", "华南"]
    assert payload[1]["skills"] == ["制造业"]
    assert payload[1]["manager_id"] == "M01"
    assert payload[1]["open_leads"] == 0

    table = runner.invoke(cli, ["reps", "list", "--db", database_url])
    assert "S001" in table.stdout
    assert "0/5" in table.stdout


def test_reps_load_parquet_deactivates_missing(tmp_path: Path, database_url: str) -> None:
    store = open_store(database_url)
    upsert_reps(store, [rep_row("OLD")], now=NOW)
    store.dispose()
    frame = pd.DataFrame(
        {
            "rep_id": ["S1"],
            "name": ["甲"],
            "tier": ["newcomer"],
            "capacity": [3],
            "regions": [["华东"]],
            "skills": [[]],
            "active": [True],
        }
    )
    path = tmp_path / "reps.parquet"
    frame.to_parquet(path)
    result = CliRunner().invoke(
        cli, ["reps", "load", str(path), "--db", database_url, "--deactivate-missing"]
    )
    assert result.exit_code == 0, result.output
    assert "1 deactivated (OLD)" in result.output


def test_reps_load_rejected_row_loads_nothing(tmp_path: Path, database_url: str) -> None:
    roster_file = tmp_path / "reps.csv"
    roster_file.write_text(
        "rep_id,name,tier,capacity,active\nS1,甲,senior,5,true\nS2,乙,director,5,true\n", "utf-8"
    )
    result = CliRunner().invoke(cli, ["reps", "load", str(roster_file), "--db", database_url])
    assert result.exit_code == 2
    assert "1 of 2 roster rows" in result.output
    assert "nothing was loaded" in result.output
    assert "row 2, tier" in result.output
    store = open_store(database_url)
    assert list_reps(store) == []
    store.dispose()
