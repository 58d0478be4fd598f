"""A retried POST /route against a real server (SQLite, and PostgreSQL when set up).

A CRM that times out closes the connection and sends the same lead again. The server still
routes the first request, so the retry must get the same assignment back and leave one
assignment row, one decision-log entry and one unit of the rep's capacity for the lead.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from serving.store_models import assignments, decision_log
from tests.serving.service_harness import RunningServer
from tests.serving.test_service_api import (  # noqa: F401 (fixtures)
    champion,
    client,
    lead,
    rep_loads,
    server,
)

pytestmark = pytest.mark.slow

WAIT_SECONDS = 60.0


@pytest.fixture
def database(server: RunningServer) -> Iterator[sa.Engine]:  # noqa: F811
    """An engine on the server's routing database, for counting the rows a lead left."""
    engine = sa.create_engine(server.db_url)
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine, lead_id: str) -> tuple[int, int]:
    """Return the lead's (assignment rows, decision-log entries)."""
    with engine.connect() as connection:
        assigned = connection.execute(
            sa.select(sa.func.count()).select_from(assignments).where(assignments.c.lead_id == lead_id)
        ).scalar_one()
        decided = connection.execute(
            sa.select(sa.func.count()).select_from(decision_log).where(decision_log.c.lead_id == lead_id)
        ).scalar_one()
    return int(assigned), int(decided)


def _route(client: httpx.Client, lead_id: str, **fields: Any) -> dict[str, Any]:  # noqa: F811
    response = client.post("/route", json={"leads": [lead(lead_id, **fields)]})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def _open_leads(client: httpx.Client) -> dict[str, int]:  # noqa: F811
    return {rep_id: rep["open_leads"] for rep_id, rep in rep_loads(client).items()}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _send_and_hang_up(server: RunningServer, lead_id: str) -> None:  # noqa: F811
    """Send POST /route for one lead and close the connection without reading the response."""
    content = json.dumps({"leads": [lead(lead_id)]}).encode()
    head = (
        "POST /route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Length: {len(content)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head.encode("latin-1") + content)


def _wait_for_assignment(engine: sa.Engine, lead_id: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while _rows(engine, lead_id)[0] == 0:
        assert time.monotonic() < deadline, f"lead {lead_id} was not routed within {WAIT_SECONDS:.0f} s"
        time.sleep(0.1)


def test_route_twice_assigns_once(client: httpx.Client, database: sa.Engine) -> None:  # noqa: F811
    lead_id = _unique("TWICE")
    loads_before = _open_leads(client)

    first = _route(client, lead_id)
    # The retry carries a changed budget, so its score differs, but its assignment must not.
    retry = _route(client, lead_id, declared_budget=900000.0)

    assert first["replayed"] is False
    assert retry["replayed"] is True
    assert retry["rep_id"] == first["rep_id"]
    assert retry["assignment_id"] == first["assignment_id"]
    assert retry["decision_id"] == first["decision_id"]
    assert retry["sla_due_at"] == first["sla_due_at"]
    assert _rows(database, lead_id) == (1, 1)
    assert _open_leads(client)[first["rep_id"]] == loads_before[first["rep_id"]] + 1


def test_retry_after_disconnect_gets_first_assignment(
    client: httpx.Client,  # noqa: F811
    server: RunningServer,  # noqa: F811
    database: sa.Engine,
) -> None:
    lead_id = _unique("HANGUP")
    loads_before = _open_leads(client)

    _send_and_hang_up(server, lead_id)
    _wait_for_assignment(database, lead_id)
    retry = _route(client, lead_id)

    assert retry["replayed"] is True
    assert retry["rep_id"] is not None
    assert _rows(database, lead_id) == (1, 1)
    assert _open_leads(client)[retry["rep_id"]] == loads_before[retry["rep_id"]] + 1


def test_retry_racing_first_request_assigns_once(
    server: RunningServer,  # noqa: F811
    database: sa.Engine,
) -> None:
    lead_id = _unique("RACE")

    def route_once(_: int) -> dict[str, Any]:
        with server.client() as http:
            return _route(http, lead_id)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(route_once, range(2)))

    assert {result["assignment_id"] for result in results} == {results[0]["assignment_id"]}
    assert {result["rep_id"] for result in results} == {results[0]["rep_id"]}
    assert sorted(result["replayed"] for result in results) == [False, True]
    assert _rows(database, lead_id) == (1, 1)
