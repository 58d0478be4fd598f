"""Queued leads go to a rep once room appears: roster updates, won or lost leads, the CLI.

Runs on SQLite, and on PostgreSQL when LEADSCORE_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from leadscore.cli.main import cli
from serving.api_models import ActivitiesRequest, RosterUpdateRequest
from serving.event_reports import record_reports
from serving.metrics import ServiceMetrics
from serving.policy import ScoredLead
from serving.policy_config import RoutingPolicy, load_policy
from serving.roster import upsert_reps
from serving.roster_views import update_roster
from serving.routing import get_route, route_lead
from serving.store import RoutingStore, count_queued, open_store

NOW = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[RoutingStore]:
    routing_store = open_store(database_url)
    yield routing_store
    routing_store.dispose()


@pytest.fixture
def policy() -> RoutingPolicy:
    return load_policy()


def _rep(rep_id: str, capacity: int) -> dict[str, Any]:
    return {"rep_id": rep_id, "name": rep_id, "tier": "senior", "capacity": capacity}


def _lead(lead_id: str) -> ScoredLead:
    return ScoredLead(lead_id=lead_id, p_convert=0.6, ltv=80_000.0, expected_value=48_000.0)


def _runtime(store: RoutingStore, policy: RoutingPolicy) -> Any:
    """The parts of a service worker that the roster and event views read."""
    return SimpleNamespace(
        store=store,
        policy=policy,
        settings=SimpleNamespace(timezone="Asia/Shanghai"),
        metrics=ServiceMetrics(CollectorRegistry()),
    )


def _queue_two_behind_one(store: RoutingStore, policy: RoutingPolicy) -> None:
    """Store one rep with room for one lead, route three leads: one assigned, two queued."""
    upsert_reps(store, [_rep("S1", 1)], now=NOW)
    assert route_lead(store, _lead("L1"), policy, now=NOW).rep_id == "S1"
    assert route_lead(store, _lead("L2"), policy, now=NOW).rep_id is None
    assert route_lead(store, _lead("L3"), policy, now=NOW + timedelta(minutes=1)).rep_id is None
    assert count_queued(store) == 2


def test_roster_update_assigns_queued(store: RoutingStore, policy: RoutingPolicy) -> None:
    _queue_two_behind_one(store, policy)

    body = RosterUpdateRequest.model_validate({"reps": [{"rep_id": "S1", "capacity": 2}]})
    response = update_roster(_runtime(store, policy), body)

    assert response.updated == ["S1"]
    assert response.assigned_from_queue == ["L2"]
    assert get_route(store, "L2").rep_id == "S1"
    assert get_route(store, "L3").rep_id is None
    assert count_queued(store) == 1


def test_won_lead_frees_room_for_queued(store: RoutingStore, policy: RoutingPolicy) -> None:
    _queue_two_behind_one(store, policy)
    body = ActivitiesRequest.model_validate(
        {"stage_changes": [{"lead_id": "L1", "stage": "签约执行", "changed_at": "2026-03-03T12:00:00+08:00"}]}
    )

    response = record_reports(_runtime(store, policy), body, "en")

    assert response.assigned_from_queue == ["L2"]
    assert get_route(store, "L2").rep_id == "S1"
    assert count_queued(store) == 1


def test_contact_report_leaves_queue(store: RoutingStore, policy: RoutingPolicy) -> None:
    _queue_two_behind_one(store, policy)
    body = ActivitiesRequest.model_validate(
        {"stage_changes": [{"lead_id": "L1", "stage": "初步沟通", "changed_at": "2026-03-03T12:00:00+08:00"}]}
    )

    response = record_reports(_runtime(store, policy), body, "en")

    assert response.assigned_from_queue == []
    assert count_queued(store) == 2


def test_cli_assigns_queued(
    store: RoutingStore, policy: RoutingPolicy, database_url: str, tmp_path: Path
) -> None:
    _queue_two_behind_one(store, policy)
    upsert_reps(store, [_rep("S2", 5)], now=NOW)

    result = CliRunner().invoke(cli, ["reps", "assign-queued", "--db", database_url, "--locale", "zh-CN"])

    assert result.exit_code == 0, result.output
    assert "排队的 2 条线索中有 2 条已分配" in result.output
    assert count_queued(store) == 0
    assert get_route(store, "L3").rep_id == "S2"


def test_reps_load_assigns_queued(
    store: RoutingStore, policy: RoutingPolicy, database_url: str, tmp_path: Path
) -> None:
    _queue_two_behind_one(store, policy)
    roster = tmp_path / "reps.csv"
    roster.write_text("rep_id,name,tier,capacity,active\nS1,S1,senior,1,true\nS3,S3,senior,1,true\n", "utf-8")

    result = CliRunner().invoke(cli, ["reps", "load", str(roster), "--db", database_url])

    assert result.exit_code == 0, result.output
    assert "Assigned 1 of 2 queued leads to reps with room" in result.output
    assert get_route(store, "L2").rep_id == "S3"
    assert count_queued(store) == 1
