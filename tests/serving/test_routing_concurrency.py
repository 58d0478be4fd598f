"""Capacity and idempotency under concurrent route calls, from threads and from processes.

The roster has 10 slots: seniors S1 (3) and S2 (2), and regular R1 (5) that high-value
leads fall back to. 32 high-value leads routed at once must give exactly 10 assignments,
no rep above capacity and 22 queued leads, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import sqlalchemy as sa

from serving.policy import ScoredLead
from serving.policy_config import load_policy
from serving.roster import list_reps, upsert_reps
from serving.routing import RouteResult, route_lead
from serving.store import RoutingStore, list_assignments, list_decisions, open_store
from serving.store_models import assignments

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
CAPACITIES = {"S1": 3, "S2": 2, "R1": 5}
TIERS = {"S1": "senior", "S2": "senior", "R1": "regular"}
CALLS = 32
SLOTS = sum(CAPACITIES.values())


@pytest.fixture
def seeded_url(database_url: str) -> Iterator[str]:
    store = open_store(database_url)
    rows = [
        {"rep_id": rep_id, "name": f"rep {rep_id}", "tier": TIERS[rep_id], "capacity": capacity}
        for rep_id, capacity in CAPACITIES.items()
    ]
    upsert_reps(store, rows, now=NOW)
    store.dispose()
    yield database_url


def scored(lead_id: str) -> ScoredLead:
    return ScoredLead(lead_id=lead_id, p_convert=0.6, ltv=80000.0, expected_value=48000.0, region="华东")


def check_capacity_outcome(url: str) -> None:
    store = open_store(url, create=False)
    try:
        active = list_assignments(store)
        owners = Counter(item.rep_id for item in active if item.rep_id is not None)
        queued = [item for item in active if item.queue is not None]
        assert len(active) == CALLS
        assert len({item.lead_id for item in active}) == CALLS
        assert sum(owners.values()) == SLOTS
        assert len(queued) == CALLS - SLOTS
        for rep_id, capacity in CAPACITIES.items():
            assert owners[rep_id] == capacity, f"rep {rep_id} has {owners[rep_id]} leads, capacity {capacity}"
        loads = {item.rep.rep_id: item.open_leads for item in list_reps(store)}
        assert loads == CAPACITIES
        events = Counter(entry.event for entry in list_decisions(store))
        assert events == Counter({"assigned": SLOTS, "queued": CALLS - SLOTS})
    finally:
        store.dispose()


def test_threads_never_exceed_capacity(seeded_url: str) -> None:
    store = open_store(seeded_url, create=False, pool_size=CALLS, max_overflow=0)
    policy = load_policy()
    barrier = threading.Barrier(CALLS)

    def call(index: int) -> RouteResult:
        barrier.wait(timeout=30)
        return route_lead(store, scored(f"T{index:02d}"), policy, now=NOW)

    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        results = list(pool.map(call, range(CALLS)))
    store.dispose()

    assigned = [result for result in results if result.rep_id is not None]
    assert len(assigned) == SLOTS
    assert sum(1 for result in results if result.queue == "unassigned") == CALLS - SLOTS
    fallback = [result for result in assigned if result.tier == "regular"]
    assert len(fallback) == CAPACITIES["R1"]
    assert all("fallback_tier" in [reason.code for reason in result.reasons] for result in fallback)
    check_capacity_outcome(seeded_url)


def _route_in_process(url: str, lead_id: str, barrier: Barrier, results: Queue[tuple[str, str]]) -> None:
    try:
        store = open_store(url, create=False, pool_size=1, max_overflow=0)
        policy = load_policy()
        barrier.wait(timeout=60)
        result = route_lead(store, scored(lead_id), policy, now=NOW)
        store.dispose()
        results.put((lead_id, result.rep_id or f"queue:{result.queue}"))
    except Exception as error:  # reported to the parent, which fails the test with it
        results.put((lead_id, f"error:{type(error).__name__}: {error}"))


def test_processes_never_exceed_capacity(seeded_url: str) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CALLS)
    results: Queue[tuple[str, str]] = context.Queue()
    workers = [
        context.Process(target=_route_in_process, args=(seeded_url, f"P{index:02d}", barrier, results))
        for index in range(CALLS)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    errors = [value for value in outcomes.values() if value.startswith("error:")]
    assert errors == []
    owners = Counter(value for value in outcomes.values() if not value.startswith("queue:"))
    assert owners == Counter(CAPACITIES)
    assert sum(1 for value in outcomes.values() if value == "queue:unassigned") == CALLS - SLOTS
    check_capacity_outcome(seeded_url)


def test_concurrent_retries_make_one_assignment(seeded_url: str) -> None:
    store: RoutingStore = open_store(seeded_url, create=False, pool_size=16, max_overflow=0)
    policy = load_policy()
    barrier = threading.Barrier(16)

    def call(_: int) -> RouteResult:
        barrier.wait(timeout=30)
        return route_lead(store, scored("SAME"), policy, now=NOW)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(16)))

    assert len({result.assignment_id for result in results}) == 1
    assert sum(1 for result in results if not result.replayed) == 1
    with store.transaction(write=False) as connection:
        count = connection.execute(
            sa.select(sa.func.count()).select_from(assignments).where(assignments.c.lead_id == "SAME")
        ).scalar_one()
    assert count == 1
    assert len(list_decisions(store, lead_id="SAME")) == 1
    store.dispose()
