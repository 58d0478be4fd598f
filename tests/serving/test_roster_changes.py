"""Roster changes that carry only some fields, on SQLite and PostgreSQL: stored values are kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from leadscore.errors import DataValidationError
from serving.roster import (
    NewRepFieldsMissingError,
    Rep,
    RepeatedRep,
    RepeatedRepsError,
    apply_rep_changes,
    list_reps,
    upsert_reps,
)
from serving.store import RoutingStore, open_store
from serving.store_models import reps

NOW = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
HIRED = datetime(2024, 7, 1, 1, 30, tzinfo=UTC)
FULL_REP = {
    "rep_id": "S1",
    "name": "王伟",
    "tier": "senior",
    "capacity": 8,
    "regions": ["华东", "华南"],
    "skills": ["软件"],
    "hired_at": HIRED,
    "active": True,
    "manager_id": "M1",
}


@pytest.fixture
def store(database_url: str) -> Iterator[RoutingStore]:
    routing_store = open_store(database_url)
    yield routing_store
    routing_store.dispose()


def _stored(store: RoutingStore) -> dict[str, Rep]:
    return {item.rep.rep_id: item.rep for item in list_reps(store)}


def _updated_at(store: RoutingStore, rep_id: str) -> datetime:
    with store.transaction(write=False) as connection:
        value = connection.execute(sa.select(reps.c.updated_at).where(reps.c.rep_id == rep_id)).scalar_one()
    assert isinstance(value, datetime)
    return value


def test_change_keeps_fields_not_sent(store: RoutingStore) -> None:
    upsert_reps(store, [FULL_REP], now=NOW)

    update = apply_rep_changes(store, [{"rep_id": "S1", "active": False}], now=LATER)

    rep = _stored(store)["S1"]
    assert update.updated == ("S1",)
    assert update.inserted == ()
    assert rep.active is False
    assert rep.name == "王伟"
    assert rep.tier == "senior"
    assert rep.capacity == 8
    assert rep.regions == ("华东", "华南")
    assert rep.skills == ("软件",)
    assert rep.hired_at == HIRED
    assert rep.manager_id == "M1"


def test_null_clears_optional_fields(store: RoutingStore) -> None:
    upsert_reps(store, [FULL_REP], now=NOW)

    apply_rep_changes(
        store,
        [{"rep_id": "S1", "regions": None, "skills": [], "manager_id": None, "hired_at": None}],
        now=LATER,
    )

    rep = _stored(store)["S1"]
    assert rep.regions == ()
    assert rep.skills == ()
    assert rep.manager_id is None
    assert rep.hired_at is None
    assert rep.capacity == 8


def test_change_recorded_with_time_and_fields(store: RoutingStore, caplog: pytest.LogCaptureFixture) -> None:
    upsert_reps(store, [FULL_REP], now=NOW)

    with caplog.at_level(logging.INFO, logger="serving.roster"):
        apply_rep_changes(store, [{"rep_id": "S1", "capacity": 3, "active": False}], now=LATER)

    assert _updated_at(store, "S1") == LATER
    assert "roster change to stored reps: S1(capacity,active)" in caplog.text
    assert "王伟" not in caplog.text


def test_new_rep_needs_name_tier_capacity(store: RoutingStore) -> None:
    upsert_reps(store, [FULL_REP], now=NOW)
    changes = [
        {"rep_id": "S1", "capacity": 1},
        {"rep_id": "N1", "capacity": 4},
        {"rep_id": "N2", "name": "李娜", "tier": "regular", "capacity": 2},
    ]

    with pytest.raises(NewRepFieldsMissingError, match=r"rep 'N1' lacks name, tier") as caught:
        apply_rep_changes(store, changes, now=LATER)

    missing = caught.value.missing
    assert [(item.position, item.rep_id, item.fields) for item in missing] == [(1, "N1", ("name", "tier"))]
    stored = _stored(store)
    assert set(stored) == {"S1"}
    assert stored["S1"].capacity == 8


def test_new_rep_defaults(store: RoutingStore) -> None:
    update = apply_rep_changes(
        store, [{"rep_id": "N1", "name": "李娜", "tier": "regular", "capacity": 2}], now=NOW
    )

    rep = _stored(store)["N1"]
    assert update.inserted == ("N1",)
    assert rep.active is True
    assert rep.regions == ()
    assert rep.skills == ()
    assert rep.hired_at is None
    assert rep.manager_id is None


def test_merged_rep_still_validated(store: RoutingStore) -> None:
    upsert_reps(store, [FULL_REP], now=NOW)

    with pytest.raises(DataValidationError, match="a rep cannot be its own manager"):
        apply_rep_changes(store, [{"rep_id": "S1", "manager_id": "S1"}], now=LATER)

    assert _stored(store)["S1"].manager_id == "M1"


def test_replace_with_partial_changes(store: RoutingStore) -> None:
    upsert_reps(store, [FULL_REP, {**FULL_REP, "rep_id": "S2", "manager_id": None}], now=NOW)

    update = apply_rep_changes(store, [{"rep_id": "S1", "capacity": 9}], now=LATER, deactivate_missing=True)

    stored = _stored(store)
    assert update.deactivated == ("S2",)
    assert stored["S2"].active is False
    assert stored["S1"].capacity == 9
    assert stored["S1"].regions == ("华东", "华南")


def test_rep_listed_twice_rejected_before_writing(store: RoutingStore) -> None:
    upsert_reps(store, [FULL_REP], now=NOW)
    changes = [
        {"rep_id": "S1", "capacity": 3},
        {"rep_id": "N1", "name": "李娜", "tier": "regular", "capacity": 2},
        {"rep_id": "S1", "active": False},
    ]

    with pytest.raises(RepeatedRepsError, match=r"rep 'S1' at positions 0 and 2") as caught:
        apply_rep_changes(store, changes, now=LATER, deactivate_missing=True)

    assert caught.value.repeated == (RepeatedRep(2, 0, "S1"),)
    stored = _stored(store)
    assert set(stored) == {"S1"}
    assert stored["S1"].capacity == 8
    assert stored["S1"].active is True
