"""The service over HTTP: a real ``leadscore serve`` subprocess on 127.0.0.1 with a real database.

A tiny model is trained once per session into a temporary MLflow SQLite store. The server
starts once per routing database (SQLite always, PostgreSQL when LEADSCORE_TEST_POSTGRES_URL
is set) with two workers, so concurrency crosses processes, and is stopped by its process id
at the end. Tests use distinct lead ids, so they do not depend on each other's order.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import re
import secrets
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import leadscore
from tests.serving.service_harness import (
    RunningServer,
    serve_command,
    start_server,
    stop_server,
    wait_until_ready,
)
from tests.serving.service_model import TinyChampion, train_tiny_champion

pytestmark = pytest.mark.slow

CAPACITY_REGION = "容量测试区"
SHADOW_REGION = "影子试点区"
SECRET_COMPANY = "保密科技有限公司"
SECRET_PHONE = "13912345678"
UTC = dt.UTC
# Large enough for the 5,000-lead request (about 4 MB), small enough to test 413 quickly.
MAX_REQUEST_BYTES = 8_000_000

POLICY = textwrap.dedent(
    f"""\
    name = "service-tests"
    queue = "unassigned"

    [segments]
    recompute = true

    [segments.high_value]
    min_expected_value = 20000.0
    min_p_convert = 0.20
    tier = "senior"
    fallback_tiers = ["regular"]
    sla_hours = 4.0

    [segments.standard]
    min_expected_value = 2000.0
    min_p_convert = 0.03
    tier = "regular"
    fallback_tiers = ["senior", "newcomer"]

    [segments.nurture]
    tier = "newcomer"
    fallback_tiers = ["regular", "senior"]

    [matching]
    region = "prefer"
    skill = "prefer"

    [sla]
    default_hours = 48.0
    contact_types = ["call", "wechat", "email", "visit", "demo", "quote"]

    [[teams]]
    name = "capacity"
    rep_ids = ["CAP-1", "CAP-2"]
    regions = ["{CAPACITY_REGION}"]

    [[teams]]
    name = "shadow-pilot"
    rep_ids = ["SHADOW-1"]
    regions = ["{SHADOW_REGION}"]
    mode = "shadow"
    """
)

ROSTER = [
    {
        "rep_id": "R-SEN",
        "name": "王伟",
        "tier": "senior",
        "capacity": 50,
        "active": True,
        "manager_id": "M-1",
    },
    {
        "rep_id": "R-REG",
        "name": "李娜",
        "tier": "regular",
        "capacity": 50,
        "active": True,
        "manager_id": "M-1",
    },
    {
        "rep_id": "R-NEW",
        "name": "张敏",
        "tier": "newcomer",
        "capacity": 50,
        "active": True,
        "manager_id": "M-1",
    },
    {"rep_id": "M-1", "name": "刘经理", "tier": "senior", "capacity": 0, "active": True},
    # Both capacity reps are regular, a tier every segment reaches, so 10 slots serve any lead.
    {"rep_id": "CAP-1", "name": "赵一", "tier": "regular", "capacity": 4, "active": True},
    {"rep_id": "CAP-2", "name": "钱二", "tier": "regular", "capacity": 6, "active": True},
    {
        "rep_id": "SHADOW-1",
        "name": "孙三",
        "tier": "regular",
        "capacity": 5,
        "active": True,
        "manager_id": "M-1",
    },
]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> TinyChampion:
    """The tiny model, trained and promoted once per session."""
    return train_tiny_champion(tmp_path_factory.mktemp("champion"))


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(
    request: pytest.FixtureRequest, champion: TinyChampion, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A running server with the roster loaded; one per routing database per session."""
    root = tmp_path_factory.mktemp(f"server-{request.param}")
    token_file = root / "token"
    token_file.write_text(secrets.token_urlsafe(32) + "\n", "utf-8")
    token_file.chmod(0o600)
    policy_file = root / "policy.toml"
    policy_file.write_text(POLICY, "utf-8")

    with routing_database(request.param, root) as db_url:
        running = start_server(
            tracking_uri=champion.tracking_uri,
            db_url=db_url,
            log_path=root / "server.log",
            token_file=token_file,
            policy_file=policy_file,
            workers=2,
            extra_args=["--max-request-bytes", str(MAX_REQUEST_BYTES)],
        )
        try:
            wait_until_ready(running)
            with running.client() as client:
                response = client.put("/reps", json={"reps": ROSTER})
                assert response.status_code == 200, response.text
            yield running
        finally:
            stop_server(running)


@contextlib.contextmanager
def routing_database(kind: str, root: Path) -> Iterator[str]:
    """Yield a routing database URL: a SQLite file, or a throwaway PostgreSQL schema dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'routing.db'}"
        return
    import sqlalchemy as sa

    from tests.conftest import postgres_url_or_skip

    base_url = postgres_url_or_skip()
    schema = f"test_service_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


# --- payload helpers -------------------------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def lead(lead_id: str, **fields: Any) -> dict[str, Any]:
    """Return a lead created two days ago with two activities and a first-contact stage change."""
    created = _now() - dt.timedelta(days=2)
    record: dict[str, Any] = {
        "lead_id": lead_id,
        "created_at": _iso(created),
        "channel": "referral",
        "region": "华东",
        "industry": "软件",
        "company_size": "101-500",
        "declared_budget": 150000.0,
        "company_name": SECRET_COMPANY,
        "activities": [
            {"occurred_at": _iso(created + dt.timedelta(hours=1)), "type": "call", "direction": "outbound"},
            {
                "occurred_at": _iso(created + dt.timedelta(hours=20)),
                "type": "wechat",
                "direction": "inbound",
                "outcome": f"客户留了电话 {SECRET_PHONE}",
            },
        ],
        "stage_changes": [{"stage": "初步沟通", "changed_at": _iso(created + dt.timedelta(hours=1))}],
    }
    record.update(fields)
    return record


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rep_loads(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/reps")
    assert response.status_code == 200, response.text
    return {rep["rep_id"]: rep for rep in response.json()["reps"]}


# --- health, auth, docs ----------------------------------------------------------------------


def test_health_ready_metrics_public(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        metrics = anonymous.get("/metrics")
        assert metrics.status_code == 200
        assert "leadscore_payloads_rejected_total" in metrics.text
        assert anonymous.get("/docs.json").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/score", {"leads": []}),
        ("POST", "/route", {"leads": []}),
        ("GET", "/reps", None),
        ("PUT", "/reps", {"reps": []}),
        ("POST", "/activities", {"activities": []}),
        ("GET", "/sla/overdue", None),
        ("GET", "/model", None),
    ],
)
def test_auth_rejects_missing_and_wrong_token(
    server: RunningServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        missing = anonymous.request(method, path, json=body)
        wrong = anonymous.request(method, path, json=body, headers={"Authorization": "Bearer not-the-token"})
        zh = anonymous.request(method, path, json=body, headers={"Accept-Language": "zh-CN"})
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthorized"
    assert missing.json()["message"].startswith("missing bearer token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert wrong.json()["message"].startswith("invalid bearer token")
    assert "LEADSCORE_API_TOKEN" in wrong.json()["message"]
    assert zh.json()["message"].startswith("缺少访问令牌")


def test_unknown_path_returns_json(client: httpx.Client) -> None:
    unknown = client.get("/scores")
    unknown_zh = client.get("/scores", headers={"Accept-Language": "zh-CN"})
    wrong_method = client.get("/score")

    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    assert "/scores" in unknown.json()["message"]
    assert "/docs.json" in unknown.json()["message"]
    assert unknown.headers["x-request-id"] == unknown.json()["request_id"]
    assert unknown_zh.json()["message"].startswith("不存在接口 /scores")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert "POST" in wrong_method.headers["allow"]
    assert "POST" in wrong_method.json()["message"]


def test_index_page_is_leadscore(server: RunningServer) -> None:
    page = httpx.get(f"{server.base_url}/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>leadscore API" in page.text
    assert "googletagmanager" not in page.text
    assert "BentoML Prediction Service" not in page.text
    info = httpx.get(f"{server.base_url}/docs.json", timeout=30).json()["info"]
    assert info["version"] == leadscore.__version__
    assert "BentoML" not in info["description"]


def test_openapi_describes_every_field(server: RunningServer) -> None:
    spec = httpx.get(f"{server.base_url}/docs.json", timeout=30).json()
    for path in ("/score", "/route", "/reps", "/activities", "/sla/overdue", "/model"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    ours = [
        "ScoreRequest", "LeadRecord", "LeadActivity", "LeadStageChange", "LeadOrder", "ScoreResponse",
        "LeadScore", "ReasonOut", "ScoreFlags", "RouteRequest", "RouteResponse", "RouteResultOut",
        "RepIn", "RepOut", "RosterUpdateRequest", "ActivitiesRequest", "ActivitiesResponse",
        "OverdueResponse", "OverdueLead", "ErrorResponse", "ErrorItem", "ModelInfo",
    ]  # fmt: skip
    for name in ours:
        for field, definition in schemas[name]["properties"].items():
            assert definition.get("description"), f"{name}.{field} has no description"


# --- score -----------------------------------------------------------------------------------


def test_score_round_trip(client: httpx.Client, champion: TinyChampion) -> None:
    lead_id = unique("S")
    response = client.post("/score", json={"leads": [lead(lead_id)]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == champion.model_version
    assert body["registry_version"] == champion.registry_version
    assert body["locale"] == "en"
    [result] = body["results"]
    assert result["lead_id"] == lead_id
    assert 0.0 <= result["p_convert"] <= 1.0
    assert result["ltv"] >= 0.0
    assert result["expected_value"] == pytest.approx(result["p_convert"] * result["ltv"], rel=1e-9)
    assert result["grade"] in {"A", "B", "C", "D"}
    assert result["segment"] in {"high_value", "standard", "nurture"}
    assert result["model_version"] == champion.model_version
    reasons = result["reasons_positive"] + result["reasons_negative"]
    assert reasons
    for reason in reasons:
        assert set(reason) == {"feature", "direction", "contribution", "text"}
        assert reason["text"]
    assert all(reason["contribution"] > 0 for reason in result["reasons_positive"])
    assert all(reason["contribution"] < 0 for reason in result["reasons_negative"])
    assert result["flags"]["unseen_category"] is False
    assert response.headers["x-request-id"]


def test_score_many_in_request_order(client: httpx.Client) -> None:
    ids = [unique("M") for _ in range(5)]
    response = client.post("/score", json={"leads": [lead(lead_id) for lead_id in ids]})
    assert response.status_code == 200, response.text
    assert [result["lead_id"] for result in response.json()["results"]] == ids


def test_score_chinese_text_round_trips(client: httpx.Client) -> None:
    lead_id = f"线索-{uuid.uuid4().hex[:6]}"
    response = client.post(
        "/score", json={"leads": [lead(lead_id, region="西南", industry="教育")], "locale": "zh-CN"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["locale"] == "zh-CN"
    [result] = body["results"]
    assert result["lead_id"] == lead_id
    texts = [reason["text"] for reason in result["reasons_positive"] + result["reasons_negative"]]
    assert any(re.search(r"[\u4e00-\u9fff]", text) for text in texts), texts


def test_score_locale_from_accept_language(client: httpx.Client) -> None:
    response = client.post(
        "/score", json={"leads": [lead(unique("AL"))]}, headers={"Accept-Language": "zh-CN"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["locale"] == "zh-CN"


def test_unknown_category_scored_with_flag(client: httpx.Client) -> None:
    response = client.post("/score", json={"leads": [lead(unique("U"), channel="抖音直播")]})
    assert response.status_code == 200, response.text
    flags = response.json()["results"][0]["flags"]
    assert flags["unseen_category"] is True
    assert flags["unseen_categories"] == {"channel": "抖音直播"}


def test_columns_out_of_order_score_equal(client: httpx.Client) -> None:
    record = lead(unique("O"))
    reordered = dict(reversed(list(record.items())))
    reordered["activities"] = [dict(reversed(list(item.items()))) for item in record["activities"]]
    as_of = _iso(_now())
    first = client.post("/score", json={"leads": [record], "as_of": as_of}).json()["results"][0]
    second = client.post("/score", json={"as_of": as_of, "leads": [reordered]}).json()["results"][0]
    assert first["p_convert"] == second["p_convert"]
    assert first["ltv"] == second["ltv"]
    assert first["reasons_positive"] == second["reasons_positive"]


def test_score_5000_leads(client: httpx.Client) -> None:
    leads = [lead(f"BULK-{number:05d}") for number in range(5000)]
    response = client.post("/score", json={"leads": leads, "as_of": _iso(_now())}, timeout=300)
    assert response.status_code == 200, response.text[:500]
    results = response.json()["results"]
    assert len(results) == 5000
    assert results[0]["lead_id"] == "BULK-00000"
    assert results[-1]["lead_id"] == "BULK-04999"


def test_bulk_request_leaves_single_leads_unblocked(champion: TinyChampion, tmp_path: Path) -> None:
    """A payload over the row-path size is scored on a thread of its own with its own bundle copy."""
    import threading

    from prometheus_client import CollectorRegistry

    from leadscore.settings import Settings
    from serving.metrics import ServiceMetrics
    from serving.model_loading import load_champion
    from serving.policy_config import load_policy
    from serving.request_guard import GuardConfig
    from serving.runtime import ServiceRuntime
    from serving.store import open_store
    from training.row_scorer import ROW_PATH_MAX_LEADS
    from training.scorer import EXAMPLE_LEAD

    metrics = ServiceMetrics(CollectorRegistry())
    runtime = ServiceRuntime(
        Settings(),
        load_champion(champion.tracking_uri),
        open_store(f"sqlite:///{tmp_path / 'routing.db'}", create=True),
        load_policy(None),
        metrics,
        GuardConfig(verifier=None, max_body_bytes=1_000_000, default_locale="en", metrics=metrics),
    )
    release = threading.Event()
    score_bulk = runtime.bulk_batcher._score

    def held_bulk(records: list[dict[str, Any]], cutoff: Any, locale: str) -> list[dict[str, Any]]:
        release.wait(30)
        return score_bulk(records, cutoff, locale)

    runtime.bulk_batcher._score = held_bulk
    as_of = pd.Timestamp("2025-03-05T09:00:00+08:00").tz_convert("UTC")
    bulk_records = [{**EXAMPLE_LEAD, "lead_id": f"BULK-{n}"} for n in range(ROW_PATH_MAX_LEADS + 1)]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            bulk = pool.submit(runtime.score, bulk_records, as_of=as_of, locale="en", endpoint="score")
            _, single = runtime.score([dict(bulk_records[0])], as_of=as_of, locale="en", endpoint="score")
            bulk_was_waiting = not bulk.done()
            release.set()
            _, scored = bulk.result(60)
    finally:
        release.set()
        runtime.close()

    assert bulk_was_waiting
    assert len(scored) == ROW_PATH_MAX_LEADS + 1
    assert single == [scored[0]]


# --- malformed payloads ----------------------------------------------------------------------


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_missing_field_named(client: httpx.Client) -> None:
    record = lead(unique("X"))
    del record["created_at"]
    body = _problem(client.post("/score", json={"leads": [record]}))
    assert body["code"] == "invalid_request"
    assert body["field"] == "leads[0].created_at"
    assert body["message"] == "leads[0].created_at is required"


def test_wrong_type_named_with_value(client: httpx.Client) -> None:
    response = client.post("/score", json={"leads": [lead(unique("X"), declared_budget="很多")]})
    assert response.status_code == 422
    body = _problem(response)
    assert body["field"] == "leads[0].declared_budget"
    assert body["value"] == "很多"
    assert body["allowed"] == "a finite number"


def test_null_in_integer_field(client: httpx.Client) -> None:
    rep = {"rep_id": "R-NULL", "name": "周四", "tier": "regular", "capacity": None, "active": True}
    response = client.put("/reps", json={"reps": [rep]}, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    body = _problem(response)
    assert body["field"] == "reps[0].capacity"
    assert body["value"] is None
    assert body["message"] == "reps[0].capacity 不能为 null，应为整数"
    assert "R-NULL" not in rep_loads(client)


def test_unknown_activity_type_lists_allowed(client: httpx.Client) -> None:
    record = lead(unique("X"))
    record["activities"][0]["type"] = "fax"
    body = _problem(client.post("/score", json={"leads": [record], "locale": "zh-CN"}))
    assert body["field"] == "leads[0].activities[0].type"
    assert "call" in body["allowed"]
    assert "fax" in body["message"]
    assert "可选值" in body["message"]


def test_unknown_field_rejected_not_dropped(client: httpx.Client) -> None:
    body = _problem(client.post("/score", json={"leads": [lead(unique("X"), phone=SECRET_PHONE)]}))
    assert body["field"] == "leads[0].phone"
    assert "created_at" in body["allowed"]


def test_repeated_lead_id_rejected(client: httpx.Client) -> None:
    lead_id = unique("DUP")
    body = _problem(client.post("/score", json={"leads": [lead(lead_id), lead(lead_id)]}))
    assert body["field"] == "leads[1].lead_id"
    assert "repeats the lead_id of leads[0]" in body["message"]


def test_lead_created_after_as_of_rejected(client: httpx.Client) -> None:
    as_of = _iso(_now() - dt.timedelta(days=30))
    body = _problem(client.post("/score", json={"leads": [lead(unique("EARLY"))], "as_of": as_of}))
    assert body["code"] == "invalid_data"
    assert "created at or after as_of" in body["message"]


def _body(leads: Any, **extra: Any) -> bytes:
    return json.dumps({"leads": leads, **extra}).encode()


_JAN = "2026-01-01T00:00:00Z"
MALFORMED: list[tuple[bytes, str | None]] = [
    (b'{"leads": [', None),
    (b"[1, 2, 3]", None),
    (_body("not-a-list"), "leads"),
    (_body([{"lead_id": None, "created_at": _JAN}]), "leads[0].lead_id"),
    (_body([{"lead_id": "x\nforged", "created_at": _JAN}]), "leads[0].lead_id"),
    (_body([{"lead_id": "a", "created_at": "yesterday"}]), "leads[0].created_at"),
    (_body([{"lead_id": "a", "created_at": _JAN, "declared_budget": -1}]), "leads[0].declared_budget"),
    (_body([{"lead_id": "a", "created_at": _JAN}], locale="fr"), "locale"),
    (b'{"leads": [{"lead_id": "a", "created_at": "2026-01-01T00:00:00Z", "declared_budget": NaN}]}', None),
]


@pytest.mark.parametrize(("content", "field"), MALFORMED)
def test_malformed_payloads_get_4xx(client: httpx.Client, content: bytes, field: str | None) -> None:
    response = client.post("/score", content=content, headers={"Content-Type": "application/json"})
    body = _problem(response)
    assert body["code"] == "invalid_request"
    if field is not None:
        assert body["field"] == field


def _raw_exchange(server: RunningServer, head: str, body_parts: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Send a hand-made HTTP/1.1 request over a socket and return the status and JSON body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as connection:
        connection.sendall(head.encode("latin-1"))
        with contextlib.suppress(OSError):
            for part in body_parts:
                connection.sendall(part)
        received = b""
        while b"\r\n\r\n" not in received or len(received) < _expected_length(received):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    header_block, _, payload = received.partition(b"\r\n\r\n")
    status = int(header_block.split(b" ", 2)[1])
    return status, json.loads(payload)


def _expected_length(received: bytes) -> int:
    header_block, separator, _ = received.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", header_block)
    if not separator or match is None:
        return len(received) + 1
    return len(header_block) + 4 + int(match.group(1))


def test_payload_too_large_by_content_length(server: RunningServer) -> None:
    size = MAX_REQUEST_BYTES + 1
    head = (
        "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Length: {size}\r\n\r\n"
    )
    status, body = _raw_exchange(server, head, [b"{"])
    assert status == 413
    assert body["code"] == "payload_too_large"
    assert body["message"] == (
        f"the request body has {size} bytes, more than the limit of {MAX_REQUEST_BYTES} bytes; "
        "split the request into smaller batches, or score a large lead file with 'leadscore rescore'"
    )


def test_payload_too_large_when_chunked(server: RunningServer) -> None:
    head = (
        "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 1_000_000
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    parts = [chunk] * (MAX_REQUEST_BYTES // len(piece) + 1)
    status, body = _raw_exchange(server, head, parts)
    assert status == 413
    assert body["code"] == "payload_too_large"
    assert f"over the limit of {MAX_REQUEST_BYTES} bytes" in body["message"]


def _read_response(connection: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read one HTTP/1.1 response with a Content-Length from an open connection."""
    received = b""
    while b"\r\n\r\n" not in received or len(received) < _expected_length(received):
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection; received so far: {received[:300]!r}"
        received += chunk
    header_block, _, payload = received.partition(b"\r\n\r\n")
    return int(header_block.split(b" ", 2)[1]), json.loads(payload)


def _post_on(
    connection: socket.socket, server: RunningServer, path: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """Send one keep-alive POST on an open connection and return the status and JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(head.encode("latin-1") + body)
    return _read_response(connection)


# Inputs that once escaped as HTTP 500, after which the server dropped the keep-alive connection.
FORMER_500_BODIES = [
    b'{"leads": [{"lead_id": "\\ud800", "created_at": "2026-01-01T00:00:00Z"}]}',
    _body([{"lead_id": "Y2300", "created_at": _JAN}], as_of="2300-01-01T00:00:00Z"),
    _body([{"lead_id": "Y2300", "created_at": "2300-01-01T00:00:00Z"}]),
    _body([{"lead_id": "GAP", "created_at": "1988-04-17T02:30:00"}], as_of=_JAN),
    _body([{"lead_id": "REPEAT", "created_at": "1987-01-01T00:00:00Z"}], as_of="1988-09-11T01:30:00"),
]


def test_rejections_keep_the_connection(server: RunningServer) -> None:
    valid = json.dumps({"leads": [lead(unique("KA"))]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as connection:
        for _ in range(3):
            for content in FORMER_500_BODIES:
                status, body = _post_on(connection, server, "/score", content)
                assert status == 422, body
                assert body["code"] in {"invalid_request", "invalid_data"}
                status, body = _post_on(connection, server, "/score", valid)
                assert status == 200, body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"leads": [{"lead_id": "Y", "created_at": _JAN}], "as_of": "2300-01-01T00:00:00Z"}, "as_of"),
        ({"leads": [{"lead_id": "Y", "created_at": "2300-01-01T00:00:00Z"}]}, "leads[0].created_at"),
    ],
)
def test_year_past_2261_rejected_with_field(
    client: httpx.Client, payload: dict[str, Any], field: str
) -> None:
    response = client.post("/score", json=payload)
    assert response.status_code == 422
    body = _problem(response)
    assert body["code"] == "invalid_request"
    assert body["field"] == field
    assert body["value"] == "2300-01-01T00:00:00Z"
    assert (
        body["message"]
        == f"{field}=2300-01-01T00:00:00Z is outside the supported years 1678 to 2261; check the date"
    )


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        (
            {"leads": [{"lead_id": "GAP", "created_at": "1988-04-17T02:30:00"}], "as_of": _JAN},
            "leads record 1, field 'created_at': '1988-04-17 02:30:00'",
        ),
        (
            {
                "leads": [{"lead_id": "REP", "created_at": "1987-01-01T00:00:00Z"}],
                "as_of": "1988-09-11T01:30:00",
            },
            "as_of '1988-09-11 01:30:00'",
        ),
    ],
)
def test_daylight_saving_local_time_rejected(
    client: httpx.Client, payload: dict[str, Any], shown: str
) -> None:
    response = client.post("/score", json=payload)
    assert response.status_code == 422
    body = _problem(response)
    assert body["code"] == "invalid_data"
    assert body["message"].startswith(shown)
    assert "daylight-saving change in Asia/Shanghai" in body["message"]


def test_lone_surrogate_rejected_with_field(server: RunningServer) -> None:
    content = b'{"leads": [{"lead_id": "a", "channel": "\\ud800", "created_at": "2026-01-01T00:00:00Z"}]}'
    with server.client() as http:
        response = http.post("/score", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    body = _problem(response)
    assert body["field"] == "leads[0].channel"
    assert body["value"] == "\\ud800"
    assert "lone UTF-16 surrogate" in body["message"]


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "POST"])
def test_method_not_allowed_lists_every_method(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/reps", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert response.json()["message"] == f"{method} is not allowed on /reps; use GET, PUT"


def test_body_not_utf8_gets_unreadable_body(client: httpx.Client) -> None:
    content = json.dumps({"leads": [{"lead_id": "线索", "created_at": _JAN}]}, ensure_ascii=False).encode(
        "gb18030"
    )
    response = client.post("/score", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = _problem(response)
    assert body["code"] == "unreadable_body"
    assert body["message"].startswith("the request body is not valid UTF-8 (byte 0xcf at position ")
    assert body["message"].endswith("send a JSON object encoded as UTF-8")


def test_deeply_nested_body_gets_unreadable_body(client: httpx.Client) -> None:
    content = b"[" * 5000 + b"]" * 5000
    response = client.post(
        "/score", content=content, headers={"Content-Type": "application/json", "Accept-Language": "zh-CN"}
    )
    assert response.status_code == 400
    body = _problem(response)
    assert body["code"] == "unreadable_body"
    assert body["message"].startswith("请求体中 JSON 数组或对象的嵌套层数过多")


def test_trailing_slash_gets_json_404(client: httpx.Client) -> None:
    response = client.post("/score/", json={"leads": [lead(unique("SL"))]})
    assert response.status_code == 404
    body = _problem(response)
    assert body["code"] == "not_found"
    assert body["message"] == "no endpoint at /score/; send the request to /score, without the trailing slash"


def test_root_and_double_slash_errors_are_json(server: RunningServer, client: httpx.Client) -> None:
    post_root = client.post("/", json={})
    assert post_root.status_code == 405
    assert post_root.headers["content-type"].startswith("application/json")
    assert post_root.json()["code"] == "method_not_allowed"
    head = (
        "POST //score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    )
    status, body = _raw_exchange(server, head, [b"{}"])
    assert status == 404
    assert body["code"] == "not_found"
    assert body["message"].startswith("no endpoint at //score")


def test_length_errors_count_what_was_sent(client: httpx.Client) -> None:
    long_id = _problem(client.post("/score", json={"leads": [lead("x" * 100_000)]}))
    assert (
        long_id["message"]
        == "leads[0].lead_id has 100000 characters, more than the maximum of 128; send at most 128"
    )
    empty = _problem(client.post("/score", json={"leads": []}))
    assert empty["message"] == "leads must contain at least 1 lead; it has 0"
    content = (
        b'{"leads": [{"lead_id": "a", "created_at": "2026-01-01T00:00:00Z", "declared_budget": '
        + b"9" * 400
        + b"}]}"
    )
    huge = _problem(client.post("/score", content=content, headers={"Content-Type": "application/json"}))
    assert huge["value"] == "9" * 120 + "… (400 digits)"
    assert "9" * 121 not in huge["message"]


@pytest.mark.parametrize(
    ("request_options"),
    [
        {"locale_in_body": True},
        {"params": {"locale": "zh-CN"}},
        {"headers": {"Accept-Language": "zh-CN,en;q=0.5"}},
    ],
    ids=["body", "query", "accept-language"],
)
def test_invalid_data_message_in_chinese(client: httpx.Client, request_options: dict[str, Any]) -> None:
    options = dict(request_options)
    payload: dict[str, Any] = {"leads": [lead(unique("ZH"))], "as_of": _iso(_now() - dt.timedelta(days=30))}
    if options.pop("locale_in_body", False):
        payload["locale"] = "zh-CN"
    body = _problem(client.post("/score", json=payload, **options))
    assert body["code"] == "invalid_data"
    assert body["message"].startswith("数据无效：")
    assert "created at or after as_of" in body["message"]


@pytest.mark.parametrize(
    ("fields", "field", "value"),
    [
        ({"declared_budget": True}, "leads[0].declared_budget", True),
        ({"declared_budget": "200000"}, "leads[0].declared_budget", "200000"),
        ({"declared_budget": "1e3"}, "leads[0].declared_budget", "1e3"),
        ({"created_at": 1700000000}, "leads[0].created_at", 1700000000),
        (
            {"activities": [{"occurred_at": 1700000000, "type": "call", "direction": "outbound"}]},
            "leads[0].activities[0].occurred_at",
            1700000000,
        ),
    ],
)
def test_lax_values_rejected(client: httpx.Client, fields: dict[str, Any], field: str, value: Any) -> None:
    response = client.post("/score", json={"leads": [lead(unique("LAX"), **fields)]})
    assert response.status_code == 422
    body = _problem(response)
    assert body["code"] == "invalid_request"
    assert body["field"] == field
    assert body["value"] == value
    assert "has the invalid value" in body["message"]


def test_rep_capacity_string_rejected(client: httpx.Client) -> None:
    rep = {"rep_id": "R-LAX", "name": "周五", "tier": "regular", "capacity": "5", "active": True}
    body = _problem(client.put("/reps", json={"reps": [rep]}))
    assert body["field"] == "reps[0].capacity"
    assert body["allowed"] == "an integer"
    assert "R-LAX" not in rep_loads(client)


# --- route -----------------------------------------------------------------------------------


def test_route_round_trip_and_idempotent_retry(client: httpx.Client) -> None:
    lead_id = unique("RT")
    payload = {"leads": [lead(lead_id)], "locale": "zh-CN"}
    first = client.post("/route", json=payload)
    assert first.status_code == 200, first.text
    [result] = first.json()["results"]
    assert result["lead_id"] == lead_id
    assert result["rep_id"] in {"R-SEN", "R-REG", "R-NEW"}
    assert result["tier"] in {"senior", "regular", "newcomer"}
    assert result["segment"] in {"high_value", "standard", "nurture"}
    assert result["assignment_id"] is not None
    assert result["sla_due_at"] is not None
    assert result["replayed"] is False
    assert result["reasons"]
    assert all(reason["text"] for reason in result["reasons"])
    assert any(re.search(r"[\u4e00-\u9fff]", reason["text"]) for reason in result["reasons"])

    loads_before = rep_loads(client)
    retry = client.post("/route", json=payload)
    assert retry.status_code == 200, retry.text
    [again] = retry.json()["results"]
    assert again["assignment_id"] == result["assignment_id"]
    assert again["rep_id"] == result["rep_id"]
    assert again["replayed"] is True
    assert rep_loads(client)[result["rep_id"]]["open_leads"] == loads_before[result["rep_id"]]["open_leads"]


def test_capacity_never_exceeded_with_32_concurrent_routes(server: RunningServer) -> None:
    lead_ids = [unique("CAP") for _ in range(32)]

    def route(lead_id: str) -> dict[str, Any]:
        with server.client() as http:
            response = http.post("/route", json={"leads": [lead(lead_id, region=CAPACITY_REGION)]})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["results"][0]
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(route, lead_ids))

    assigned = [result for result in results if result["rep_id"] is not None]
    queued = [result for result in results if result["rep_id"] is None]
    assert len(assigned) == 10
    assert len(queued) == 22
    assert {result["queue"] for result in queued} == {"unassigned"}
    assert len({result["assignment_id"] for result in results}) == 32
    per_rep = {
        rep_id: sum(1 for result in assigned if result["rep_id"] == rep_id) for rep_id in ("CAP-1", "CAP-2")
    }
    assert per_rep == {"CAP-1": 4, "CAP-2": 6}
    with server.client() as http:
        loads = rep_loads(http)
    assert loads["CAP-1"]["open_leads"] == 4
    assert loads["CAP-2"]["open_leads"] == 6
    assert loads["CAP-1"]["available"] is False


def test_shadow_team_assigns_nothing(client: httpx.Client) -> None:
    response = client.post("/route", json={"leads": [lead(unique("SH"), region=SHADOW_REGION)]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["shadow"] is True
    assert result["status"] == "shadow"
    assert result["assignment_id"] is None
    assert result["team"] == "shadow-pilot"
    assert any(reason["code"] == "shadow_team" for reason in result["reasons"])
    assert rep_loads(client)["SHADOW-1"]["open_leads"] == 0


# --- SLA -------------------------------------------------------------------------------------


def test_sla_overdue_then_closed_by_first_contact(client: httpx.Client, server: RunningServer) -> None:
    lead_id = unique("SLA")
    assigned_at = _now() - dt.timedelta(days=3)
    created = assigned_at - dt.timedelta(hours=2)
    record = lead(lead_id, created_at=_iso(created), activities=[], stage_changes=[])
    routed = client.post("/route", json={"leads": [record], "as_of": _iso(assigned_at)})
    assert routed.status_code == 200, routed.text
    [result] = routed.json()["results"]
    assert result["rep_id"] is not None
    due = dt.datetime.fromisoformat(result["sla_due_at"])
    assert due < _now()

    overdue = client.get("/sla/overdue")
    assert overdue.status_code == 200, overdue.text
    entries = {entry["lead_id"]: entry for entry in overdue.json()["leads"]}
    assert lead_id in entries
    entry = entries[lead_id]
    assert entry["rep_id"] == result["rep_id"]
    assert entry["manager_id"] == "M-1"
    assert entry["overdue_minutes"] > 0

    contact = {
        "activity_id": unique("ACT"),
        "lead_id": lead_id,
        "rep_id": result["rep_id"],
        "occurred_at": _iso(_now() - dt.timedelta(minutes=5)),
        "type": "call",
        "direction": "outbound",
    }
    reported = client.post("/activities", json={"activities": [contact]})
    assert reported.status_code == 200, reported.text
    assert reported.json()["sla_closed"] == [lead_id]
    assert reported.json()["sla_closed_late"] == [lead_id]
    repeated = client.post("/activities", json={"activities": [contact]})
    assert repeated.json()["activities_repeated"] == 1

    after = client.get("/sla/overdue")
    assert lead_id not in {entry["lead_id"] for entry in after.json()["leads"]}
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    assert re.search(r'^leadscore_sla_breaches_total\{kind="late_first_contact"\} \d', metrics, re.MULTILINE)

    clash = dict(contact, rep_id="R-NEW")
    conflict = client.post("/activities", json={"activities": [clash]})
    assert conflict.status_code == 409
    assert conflict.json()["field"] == "activities[0].activity_id"


def test_stage_change_in_chinese_closes_sla(client: httpx.Client) -> None:
    lead_id = unique("STG")
    record = lead(lead_id, activities=[], stage_changes=[])
    routed = client.post("/route", json={"leads": [record]})
    assert routed.status_code == 200, routed.text
    change = {"lead_id": lead_id, "stage": "初步沟通", "changed_at": _iso(_now())}
    reported = client.post("/activities", json={"stage_changes": [change]})
    assert reported.status_code == 200, reported.text
    assert reported.json()["sla_closed"] == [lead_id]
    assert reported.json()["sla_closed_late"] == []


# --- metrics and logs ------------------------------------------------------------------------


def test_metrics_count_scores_decisions_auth(client: httpx.Client, server: RunningServer) -> None:
    client.post("/score", json={"leads": [lead(unique("MET"), channel="未知渠道")]})
    client.post("/route", json={"leads": [lead(unique("MET"))]})
    httpx.post(f"{server.base_url}/score", json={"leads": []}, headers={"Authorization": "Bearer wrong"})
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    assert re.search(r'^leadscore_scores_served_total\{endpoint="score"\} \d', text, re.MULTILINE)
    assert re.search(r'^leadscore_unseen_categories_total\{feature="channel"\} \d', text, re.MULTILINE)
    assert re.search(
        r'^leadscore_routing_decisions_total\{outcome="assigned",segment="\w+",tier="\w+"\}',
        text,
        re.MULTILINE,
    )
    assert re.search(r"^leadscore_auth_failures_total\{[^}]*\} \d", text, re.MULTILINE)


def _validation_errors_on_score(server: RunningServer) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    found = re.search(r'^leadscore_validation_errors_total\{path="/score"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_invalid_data_rejections(client: httpx.Client, server: RunningServer) -> None:
    before = _validation_errors_on_score(server)
    as_of = _iso(_now() - dt.timedelta(days=30))

    response = client.post("/score", json={"leads": [lead(unique("EARLY"))], "as_of": as_of})

    assert response.json()["code"] == "invalid_data"
    assert _validation_errors_on_score(server) == before + 1


def test_log_lines_carry_request_ids_not_personal_data(client: httpx.Client, server: RunningServer) -> None:
    lead_id = unique("LOG")
    response = client.post(
        "/score", json={"leads": [lead(lead_id)]}, headers={"X-Request-ID": f"crm-{lead_id}"}
    )
    assert response.status_code == 200
    lines: list[str] = []
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        log = server.log_path.read_text("utf-8", errors="replace")
        lines = [line for line in log.splitlines() if f"request_id=crm-{lead_id}" in line]
        time.sleep(0.2)
    assert len(lines) == 1
    assert f"lead_ids={lead_id}" in lines[0]
    assert "status=200" in lines[0]
    assert SECRET_COMPANY not in log
    assert SECRET_PHONE not in log
    for rep in ROSTER:
        assert str(rep["name"]) not in log
    assert server.token is not None
    assert server.token not in log


# --- the serve command -----------------------------------------------------------------------


def test_serve_refuses_to_start_without_token(tmp_path: Path) -> None:
    command = serve_command(["--port", "9", "--db", f"sqlite:///{tmp_path / 'r.db'}"])
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path, check=False
    )
    assert finished.returncode == 2
    assert "no API token configured; set LEADSCORE_API_TOKEN or pass --token-file" in finished.stderr
