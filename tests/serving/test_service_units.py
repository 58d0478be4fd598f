"""Service pieces that need no running server: auth, locale, error bodies, request guard, API models."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI, Request
from pydantic import SecretStr, ValidationError

import leadscore
from data.schema import ACTIVITIES, LEADS, ORDERS, REPS, STAGE_CHANGES
from leadscore.errors import AuthError, ConfigError, DataValidationError, ModelNotFoundError
from leadscore.settings import Settings
from serving.api_models import (
    LeadActivity,
    LeadOrder,
    LeadRecord,
    LeadStageChange,
    RepIn,
    ReportedActivity,
    ReportedStageChange,
    ScoreRequest,
)
from serving.auth import AuthProblem, BearerTokenVerifier, require_token_or_insecure, resolve_api_token
from serving.errors_http import (
    ErrorHooks,
    describe_problem,
    displayable_value,
    format_location,
    install_error_handlers,
    unreadable_body_message,
    validation_error_body,
)
from serving.launch import prepare_launch, threads_per_worker
from serving.public_pages import with_service_info
from serving.request_guard import GuardConfig, RequestGuard
from serving.request_locale import locale_from_accept_language, locale_from_body, locale_from_headers
from serving.runtime import DatabaseHealth, probe_database
from serving.score_batcher import BatchTimeoutError, ScoreBatcher
from serving.store import open_store
from tests.serving.service_harness import free_port

TOKEN = "s3cret-token-for-tests-0123456789"


# --- auth ------------------------------------------------------------------------------------


def test_token_from_environment_setting() -> None:
    settings = Settings(api_token=SecretStr(TOKEN))
    token = resolve_api_token(settings)
    assert token is not None
    assert token.get_secret_value() == TOKEN


def test_token_from_file_first_line(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}  \nsecond line is ignored\n", "utf-8")
    path.chmod(0o600)
    token = resolve_api_token(Settings(token_file=path))
    assert token is not None
    assert token.get_secret_value() == TOKEN


def test_token_both_sources_rejected(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN, "utf-8")
    with pytest.raises(ConfigError, match=r"both LEADSCORE_API_TOKEN and a token file are set"):
        resolve_api_token(Settings(api_token=SecretStr(TOKEN), token_file=path))


def test_token_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"token file .*absent.* not found"):
        resolve_api_token(Settings(token_file=tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("\n\n", "utf-8")
    with pytest.raises(ConfigError, match=r"token file .*empty is empty"):
        resolve_api_token(Settings(token_file=empty))


def test_token_too_short_rejected() -> None:
    with pytest.raises(ConfigError, match=r"the API token has 5 characters; use at least 16"):
        resolve_api_token(Settings(api_token=SecretStr("short")))


def test_no_token_needs_insecure() -> None:
    assert resolve_api_token(Settings()) is None
    with pytest.raises(
        ConfigError, match=r"no API token configured; set LEADSCORE_API_TOKEN or pass --token-file"
    ):
        require_token_or_insecure(None, insecure=False)
    require_token_or_insecure(None, insecure=True)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, AuthProblem.MISSING),
        ("", AuthProblem.MISSING),
        (f"Basic {TOKEN}", AuthProblem.MALFORMED),
        ("Bearer", AuthProblem.MALFORMED),
        ("Bearer wrong-token-of-the-same-size!", AuthProblem.INVALID),
        (f"Bearer {TOKEN}x", AuthProblem.INVALID),
        (f"Bearer {TOKEN}", None),
        (f"bearer {TOKEN}", None),
    ],
)
def test_verifier_checks_header(header: str | None, problem: AuthProblem | None) -> None:
    verifier = BearerTokenVerifier(SecretStr(TOKEN))
    assert verifier.check(header) == problem


def test_verifier_raises_auth_error() -> None:
    verifier = BearerTokenVerifier(SecretStr(TOKEN))
    with pytest.raises(AuthError, match=r"invalid bearer token"):
        verifier.verify("Bearer nope")
    verifier.verify(f"Bearer {TOKEN}")


def test_launch_rejects_missing_token() -> None:
    with pytest.raises(ConfigError, match=r"no API token configured"):
        prepare_launch(Settings(), workers=1, insecure=False)


def test_threads_split_between_workers() -> None:
    assert threads_per_worker(1, cpus=2) == 2
    assert threads_per_worker(2, cpus=2) == 1
    assert threads_per_worker(4, cpus=2) == 1
    assert threads_per_worker(3, cpus=8) == 2


# --- locale ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR, zh;q=0.5", "zh-CN"),
        ("fr-FR, de", "en"),
        ("en;q=0.2, zh-Hans;q=0.7", "zh-CN"),
        ("zh;q=0, en;q=0.1", "en"),
    ],
)
def test_accept_language(header: str | None, expected: str) -> None:
    assert locale_from_accept_language(header, "en") == expected


def test_locale_query_wins_over_header() -> None:
    headers = {"accept-language": "en"}
    assert locale_from_headers(b"locale=zh-CN", headers, "en") == "zh-CN"
    assert locale_from_headers(b"locale=xx", headers, "zh-CN") == "en"
    assert locale_from_body({"locale": "zh-cn"}) == "zh-CN"
    assert locale_from_body({"locale": "fr"}) is None
    assert locale_from_body(["not", "an", "object"]) is None


# --- error bodies ----------------------------------------------------------------------------


def _errors(payload: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        ScoreRequest.model_validate(payload)
    return [dict(error) for error in caught.value.errors()]


def _lead(**fields: Any) -> dict[str, Any]:
    return {"lead_id": "L1", "created_at": "2026-03-01T09:30:00+08:00", **fields}


def test_missing_field_named() -> None:
    errors = _errors({"leads": [{"lead_id": "L1"}]})
    problem = describe_problem(errors[0], body_model=ScoreRequest)
    assert problem.field == "leads[0].created_at"
    assert problem.message == "leads[0].created_at is required"
    zh = describe_problem(errors[0], locale="zh-CN")
    assert zh.message == "缺少必填字段 leads[0].created_at"


def test_wrong_type_names_value_and_allowed() -> None:
    errors = _errors({"leads": [_lead(declared_budget="lots")]})
    problem = describe_problem(errors[0])
    assert problem.field == "leads[0].declared_budget"
    assert problem.value == "lots"
    assert problem.allowed == "a finite number"
    assert "has the invalid value 'lots'; expected a finite number" in problem.message


def test_null_in_integer_field() -> None:
    with pytest.raises(ValidationError) as caught:
        RepIn.model_validate(
            {"rep_id": "R1", "name": "王伟", "tier": "senior", "capacity": None, "active": True}
        )
    problem = describe_problem(dict(caught.value.errors()[0]))
    assert problem.field == "capacity"
    assert problem.message == "capacity must not be null; send an integer"
    assert problem.allowed == "an integer"


def test_unknown_choice_lists_allowed() -> None:
    lead = _lead(
        activities=[{"occurred_at": "2026-03-01T10:00:00+08:00", "type": "fax", "direction": "outbound"}]
    )
    problem = describe_problem(_errors({"leads": [lead]})[0])
    assert problem.field == "leads[0].activities[0].type"
    assert problem.allowed == ["call", "wechat", "email", "visit", "demo", "quote", "form", "other"]
    assert "expected one of call, wechat" in problem.message


def test_unknown_field_lists_accepted(tmp_path: Path) -> None:
    errors = _errors({"leads": [_lead(phone="13800000000")]})
    problem = describe_problem(errors[0], body_model=ScoreRequest)
    assert problem.field == "leads[0].phone"
    assert problem.type == "extra_forbidden"
    assert isinstance(problem.allowed, list)
    assert "lead_id" in problem.allowed
    assert "activities" in problem.allowed


def test_negative_budget_out_of_range() -> None:
    problem = describe_problem(_errors({"leads": [_lead(declared_budget=-5)]})[0])
    assert problem.allowed == ">= 0.0"
    assert problem.message == "leads[0].declared_budget=-5 is out of range; expected a value >= 0.0"


def test_chinese_stage_accepted_unknown_rejected() -> None:
    lead = _lead(stage_changes=[{"stage": "初步沟通", "changed_at": "2026-03-02T10:00:00+08:00"}])
    parsed = ScoreRequest.model_validate({"leads": [lead]})
    assert parsed.leads[0].stage_changes[0].stage == "contacted"
    bad = _lead(stage_changes=[{"stage": "快成交了", "changed_at": "2026-03-02T10:00:00+08:00"}])
    problem = describe_problem(_errors({"leads": [bad]})[0])
    assert problem.field == "leads[0].stage_changes[0].stage"
    assert "unknown stage '快成交了'" in problem.message


def test_empty_leads_list_rejected() -> None:
    error = _errors({"leads": []})[0]
    problem = describe_problem(error)
    assert problem.field == "leads"
    assert problem.allowed == "at least 1"
    assert problem.message == "leads must contain at least 1 lead; it has 0"
    assert describe_problem(error, locale="zh-CN").message == "leads 至少应包含 1 项，实际为 0 项"


def test_length_messages_count_what_was_sent() -> None:
    long_id = describe_problem(_errors({"leads": [_lead(lead_id="x" * 100_000)]})[0])
    assert long_id.message == (
        "leads[0].lead_id has 100000 characters, more than the maximum of 128; send at most 128"
    )
    assert isinstance(long_id.value, str)
    assert len(long_id.value) == 121
    blank_id = describe_problem(_errors({"leads": [_lead(lead_id="   ")]})[0])
    assert blank_id.message == "leads[0].lead_id must not be empty or blank"
    activity = {"occurred_at": "2026-03-01T10:00:00+08:00", "type": "call", "direction": "outbound"}
    too_many = describe_problem(_errors({"leads": [_lead(activities=[activity] * 5001)]})[0])
    assert (
        too_many.message
        == "leads[0].activities has 5001 items, more than the maximum of 5000; send at most 5000"
    )


def test_long_number_cut_in_value_and_message() -> None:
    problem = describe_problem(_errors({"leads": [_lead(declared_budget=10**400)]})[0])
    assert problem.field == "leads[0].declared_budget"
    assert problem.value == "1" + "0" * 119 + "… (401 digits)"
    assert "0" * 121 not in problem.message
    assert len(problem.message) < 250


@pytest.mark.parametrize(
    ("fields", "field", "error_type"),
    [
        ({"declared_budget": True}, "leads[0].declared_budget", "float_type"),
        ({"declared_budget": "200000"}, "leads[0].declared_budget", "float_type"),
        ({"declared_budget": "1e3"}, "leads[0].declared_budget", "float_type"),
        ({"created_at": 1700000000}, "leads[0].created_at", "datetime_type"),
        ({"created_at": "1700000000"}, "leads[0].created_at", "datetime_parsing"),
        (
            {"activities": [{"occurred_at": 1700000000.5, "type": "call", "direction": "outbound"}]},
            "leads[0].activities[0].occurred_at",
            "datetime_type",
        ),
        (
            {"orders": [{"ordered_at": "2025-01-01", "amount": "100"}], "customer_id": "C1"},
            "leads[0].orders[0].amount",
            "float_type",
        ),
    ],
)
def test_lax_values_rejected(fields: dict[str, Any], field: str, error_type: str) -> None:
    [error] = _errors({"leads": [_lead(**fields)]})
    problem = describe_problem(error)
    assert problem.field == field
    assert problem.type == error_type
    assert "has the invalid value" in problem.message


def test_numbers_and_iso_strings_accepted() -> None:
    parsed = ScoreRequest.model_validate({"leads": [_lead(declared_budget=200000)], "as_of": "2026-03-05"})
    assert parsed.leads[0].declared_budget == 200000.0
    assert parsed.as_of is not None
    assert parsed.as_of.day == 5
    rep = RepIn.model_validate(
        {"rep_id": "R1", "name": "王伟", "tier": "senior", "capacity": 3, "active": True}
    )
    assert rep.capacity == 3


def test_strict_rep_fields_reject_strings() -> None:
    with pytest.raises(ValidationError) as caught:
        RepIn.model_validate(
            {"rep_id": "R1", "name": "王伟", "tier": "senior", "capacity": "3", "active": "true"}
        )
    types = {(error["loc"][0], error["type"]) for error in caught.value.errors()}
    assert types == {("capacity", "int_type"), ("active", "bool_type")}


def test_timestamp_year_outside_pandas_range_named() -> None:
    errors = _errors({"leads": [_lead(created_at="2300-01-01T00:00:00Z")], "as_of": "1500-01-01T00:00:00"})
    problems = {problem.field: problem for problem in (describe_problem(error) for error in errors)}
    assert set(problems) == {"leads[0].created_at", "as_of"}
    created = problems["leads[0].created_at"]
    assert created.type == "timestamp_year"
    assert created.message == (
        "leads[0].created_at=2300-01-01T00:00:00Z is outside the supported years 1678 to 2261; check the date"
    )
    assert problems["as_of"].allowed == "a year from 1678 to 2261"


def test_lone_surrogate_named_and_body_encodable() -> None:
    errors = _errors({"leads": [_lead(lead_id="\ud800", channel="渠道\udfff")]})
    body = validation_error_body(errors, locale="en", request_id="req-2", body_model=ScoreRequest)
    encoded = json.dumps(body, ensure_ascii=False).encode("utf-8")
    assert b"\\ud800" in encoded
    fields = [problem["field"] for problem in body["errors"]]
    assert fields == ["leads[0].lead_id", "leads[0].channel"]
    assert body["errors"][0]["message"] == (
        "leads[0].lead_id='\\ud800' is not valid Unicode text because it contains a lone UTF-16 "
        "surrogate; send the text encoded as UTF-8"
    )
    assert body["errors"][1]["value"] == "渠道\\udfff"


def test_unreadable_body_messages() -> None:
    try:
        "线索".encode("gb18030").decode("utf-8")
    except UnicodeDecodeError as error:
        not_utf8 = error
    assert unreadable_body_message(not_utf8, "en") == (
        "the request body is not valid UTF-8 (byte 0xcf at position 0); send a JSON object encoded as UTF-8"
    )
    assert unreadable_body_message(RecursionError(), "zh-CN").startswith(
        "请求体中 JSON 数组或对象的嵌套层数过多"
    )
    assert "Exceeds the limit" in unreadable_body_message(ValueError("Exceeds the limit (4300 digits)"), "en")


def test_orders_need_customer_id() -> None:
    lead = _lead(orders=[{"ordered_at": "2025-01-01T00:00:00+08:00", "amount": 100.0}])
    problem = describe_problem(_errors({"leads": [lead]})[0])
    assert problem.field == "leads[0]"
    assert "orders were sent without a customer_id" in problem.message


def test_validation_body_counts_problems_in_chinese() -> None:
    errors = _errors({"leads": [{"lead_id": "", "created_at": "yesterday", "channel": 5}]})
    body = validation_error_body(errors, locale="zh-CN", request_id="req-1")
    assert body["code"] == "invalid_request"
    assert body["request_id"] == "req-1"
    assert len(body["errors"]) == 3
    assert body["message"].startswith("请求中有 3 处问题，第一处：")
    assert body["field"] == body["errors"][0]["field"]
    json.dumps(body, allow_nan=False)


def test_location_and_value_rendering() -> None:
    assert format_location(("body", "leads", 3, "activities", 0, "type")) == "leads[3].activities[0].type"
    assert format_location(("body",)) is None
    assert displayable_value(math.inf) == "inf"
    assert displayable_value("x" * 500).endswith("…")
    assert len(displayable_value("x" * 500)) == 121
    assert displayable_value({"a": 1}) == "<object with 1 keys>"


def test_models_follow_canonical_schema() -> None:
    """Every canonical column is a field of its API model, required exactly when the schema requires it."""
    cases = [
        (LeadRecord, LEADS, ()),
        (ReportedActivity, ACTIVITIES, ()),
        (ReportedStageChange, STAGE_CHANGES, ()),
        # Only rep_id is required: PUT /reps checks name, tier and capacity of new reps itself.
        (RepIn, REPS, ("name", "tier", "capacity", "active")),
        (LeadActivity, ACTIVITIES, ("activity_id", "lead_id")),
        (LeadStageChange, STAGE_CHANGES, ("lead_id",)),
        (LeadOrder, ORDERS, ("order_id", "customer_id")),
    ]
    for model, table, implied in cases:
        for column in table.columns:
            assert column.name in model.model_fields, f"{model.__name__} lacks {column.name}"
            field = model.model_fields[column.name]
            required = column.required and column.name not in implied
            assert field.is_required() == required, f"{model.__name__}.{column.name} required={required}"
            assert field.description, f"{model.__name__}.{column.name} has no description"


# --- request guard ---------------------------------------------------------------------------


class _EchoApp:
    """A stand-in ASGI app that returns 200 with the size of the body it read."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = json.dumps({"bytes": len(body)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _call_guard(
    guard: RequestGuard,
    *,
    path: str = "/score",
    method: str = "POST",
    headers: Iterable[tuple[str, str]] = (),
    chunks: Iterable[bytes] = (b"{}",),
    query: bytes = b"",
) -> tuple[int, dict[str, str], dict[str, Any]]:
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
    }
    asyncio.run(guard(scope, receive, send))
    start = sent[0]
    response_headers = {name.decode(): value.decode() for name, value in start["headers"]}
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return start["status"], response_headers, json.loads(body) if body else {}


def _guard(app: _EchoApp, *, limit: int = 1000, secure: bool = True) -> RequestGuard:
    config = GuardConfig(
        verifier=BearerTokenVerifier(SecretStr(TOKEN)) if secure else None,
        max_body_bytes=limit,
        default_locale="en",
    )
    return RequestGuard(app, config_provider=lambda: config)  # type: ignore[arg-type]


def test_guard_rejects_missing_token() -> None:
    app = _EchoApp()
    status, headers, body = _call_guard(_guard(app))
    assert status == 401
    assert body["code"] == "unauthorized"
    assert body["message"] == "missing bearer token; send the header 'Authorization: Bearer <token>'"
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["request_id"] == headers["x-request-id"]
    assert app.calls == 0


def test_guard_rejects_wrong_token_in_chinese() -> None:
    app = _EchoApp()
    status, _, body = _call_guard(
        _guard(app), headers=[("Authorization", "Bearer wrong"), ("Accept-Language", "zh-CN")]
    )
    assert status == 401
    assert body["message"].startswith("访问令牌无效")
    assert "LEADSCORE_API_TOKEN" in body["message"]
    assert app.calls == 0


def test_guard_passes_valid_token_and_keeps_request_id() -> None:
    app = _EchoApp()
    status, headers, body = _call_guard(
        _guard(app),
        headers=[("Authorization", f"Bearer {TOKEN}"), ("X-Request-ID", "crm-42")],
        chunks=[b"abc"],
    )
    assert status == 200
    assert body == {"bytes": 3}
    assert headers["x-request-id"] == "crm-42"


def test_guard_replaces_unsafe_request_id() -> None:
    app = _EchoApp()
    _, headers, _ = _call_guard(
        _guard(app),
        headers=[("Authorization", f"Bearer {TOKEN}"), ("X-Request-ID", "bad id\nforged log line")],
    )
    assert headers["x-request-id"] != "bad id\nforged log line"
    assert len(headers["x-request-id"]) == 32


def test_guard_public_paths_need_no_token() -> None:
    app = _EchoApp()
    for path in ("/healthz", "/readyz", "/metrics", "/docs.json"):
        status, _, _ = _call_guard(_guard(app), path=path, method="GET", chunks=[b""])
        assert status == 200, path


def test_guard_rejects_declared_large_body() -> None:
    app = _EchoApp()
    status, _, body = _call_guard(
        _guard(app, limit=10),
        headers=[("Authorization", f"Bearer {TOKEN}"), ("Content-Length", "11")],
        chunks=[b"x" * 11],
    )
    assert status == 413
    assert body["code"] == "payload_too_large"
    assert body["message"].startswith("the request body has 11 bytes, more than the limit of 10 bytes")
    assert app.calls == 0


def test_guard_rejects_streamed_large_body() -> None:
    app = _EchoApp()
    status, _, body = _call_guard(
        _guard(app, limit=10), headers=[("Authorization", f"Bearer {TOKEN}")], chunks=[b"x" * 6, b"y" * 6]
    )
    assert status == 413
    assert "over the limit of 10 bytes" in body["message"]
    assert app.calls == 0


def test_guard_insecure_mode_allows_all() -> None:
    app = _EchoApp()
    status, _, body = _call_guard(_guard(app, secure=False), chunks=[b"x" * 5])
    assert status == 200
    assert body == {"bytes": 5}


class _FailingApp:
    """A stand-in ASGI app that raises before it sends anything."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("planted failure")


def test_guard_answers_500_when_app_raises(caplog: pytest.LogCaptureFixture) -> None:
    status, headers, body = _call_guard(
        _guard(_FailingApp(), secure=False),
        headers=[("Accept-Language", "zh-CN")],  # type: ignore[arg-type]
    )
    assert status == 500
    assert body["code"] == "internal_error"
    assert body["request_id"] == headers["x-request-id"]
    assert body["message"].startswith(f"处理请求 {body['request_id']} 时发生内部错误")
    logged = [
        record for record in caplog.records if "failed with an unexpected RuntimeError" in record.message
    ]
    assert len(logged) == 1
    assert logged[0].exc_info is not None


def test_guard_serves_own_index_page() -> None:
    app = _EchoApp()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    asyncio.run(_guard(app)(scope, receive, send))
    page = sent[1]["body"].decode("utf-8")
    assert sent[0]["status"] == 200
    assert app.calls == 0
    assert "<title>leadscore API" in page
    assert "BentoML" not in page
    assert "googletagmanager" not in page
    assert "<script" not in page


def test_docs_json_info_rewritten() -> None:
    spec = {
        "info": {"title": "leadscore", "version": "None", "contact": {"name": "BentoML Team"}},
        "paths": {},
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def respond() -> None:
        wrapped = with_service_info(send)
        await wrapped({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        await wrapped({"type": "http.response.body", "body": json.dumps(spec).encode(), "more_body": False})

    asyncio.run(respond())
    info = json.loads(sent[1]["body"])["info"]
    assert info["version"] == leadscore.__version__
    assert "contact" not in info
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(sent[1]["body"])).encode()


# --- a 500 on a keep-alive connection, through a real uvicorn server ---------------------------


def _failing_fastapi_app() -> RequestGuard:
    """A FastAPI app with the service's error handlers behind the request guard; /fail always raises."""
    app = FastAPI()
    install_error_handlers(
        app, ErrorHooks(default_locale=lambda: "en", on_validation_error=lambda _path: None)
    )

    @app.get("/fail")
    def fail() -> None:
        raise RuntimeError("planted failure")

    @app.get("/fail-in-chinese")
    def fail_in_chinese(request: Request) -> None:
        request.state.locale = "zh-CN"  # as an endpoint does with a body's "locale": "zh-CN"
        raise RuntimeError("planted failure")

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    config = GuardConfig(verifier=None, max_body_bytes=1000, default_locale="en")
    return RequestGuard(app, config_provider=lambda: config)  # type: ignore[arg-type]


@contextlib.contextmanager
def _uvicorn_in_thread(app: Any) -> Iterator[int]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert server.started, "uvicorn did not start within 20 s"
        yield port
    finally:
        server.should_exit = True
        thread.join(20)


def _get_on(connection: socket.socket, path: str) -> tuple[int, bytes]:
    """Send one keep-alive GET on an open connection and return the status and body."""
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii"))
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection before answering GET {path}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    assert match is not None, head
    while len(body) < int(match.group(1)):
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection in the body of GET {path}"
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def test_500_keeps_connection_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    with (
        _uvicorn_in_thread(_failing_fastapi_app()) as port,
        socket.create_connection(("127.0.0.1", port), timeout=20) as connection,
    ):
        for _ in range(3):
            status, body = _get_on(connection, "/fail")
            assert status == 500
            assert json.loads(body)["code"] == "internal_error"
            status, body = _get_on(connection, "/ok")
            assert status == 200
            assert json.loads(body) == {"ok": True}

    messages = [record.getMessage() for record in caplog.records]
    assert sum("failed with an unexpected RuntimeError" in message for message in messages) == 3
    assert not any("Exception in ASGI application" in message for message in messages)


def test_500_in_locale_endpoint_chose() -> None:
    with (
        _uvicorn_in_thread(_failing_fastapi_app()) as port,
        socket.create_connection(("127.0.0.1", port), timeout=20) as connection,
    ):
        status, body = _get_on(connection, "/fail-in-chinese")
    assert status == 500
    error = json.loads(body)
    assert error["message"].startswith(f"处理请求 {error['request_id']} 时发生内部错误")


# --- score batcher ---------------------------------------------------------------------------


class _RecordingScorer:
    """A fake scorer that records each call and can block until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], pd.Timestamp, str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(
        self, records: list[dict[str, Any]], cutoff: pd.Timestamp, locale: str
    ) -> list[dict[str, Any]]:
        self.entered.set()
        self.release.wait(10)
        ids = [str(record["lead_id"]) for record in records]
        if "BAD" in ids:
            raise DataValidationError("lead 'BAD' is invalid")
        self.calls.append((ids, cutoff, locale))
        return [{"lead_id": lead_id, "locale": locale} for lead_id in ids]


def _submit(
    batcher: ScoreBatcher, ids: list[str], *, locale: str = "en", as_of: pd.Timestamp | None = None
) -> concurrent.futures.Future[Any]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(batcher.score, [{"lead_id": lead_id} for lead_id in ids], as_of=as_of, locale=locale)
    pool.shutdown(wait=False)
    return future


def _wait_queued(batcher: ScoreBatcher, count: int) -> None:
    deadline = time.monotonic() + 5
    while batcher._queue.qsize() < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_batcher_combines_waiting_requests() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer)
    first = _submit(batcher, ["A"])
    assert scorer.entered.wait(5)
    waiting = [_submit(batcher, [f"B{number}"]) for number in range(3)]
    _wait_queued(batcher, 3)
    scorer.release.set()
    _, results = first.result(5)
    assert results == [{"lead_id": "A", "locale": "en"}]
    for number, future in enumerate(waiting):
        _, scored = future.result(5)
        assert scored == [{"lead_id": f"B{number}", "locale": "en"}]
    assert [ids for ids, _, _ in scorer.calls] == [["A"], ["B0", "B1", "B2"]]
    batcher.stop()


def test_batcher_keeps_locales_and_repeated_ids_apart() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer)
    first = _submit(batcher, ["A"])
    assert scorer.entered.wait(5)
    english = _submit(batcher, ["B"])
    _wait_queued(batcher, 1)
    chinese = _submit(batcher, ["C"], locale="zh-CN")
    _wait_queued(batcher, 2)
    repeated = _submit(batcher, ["B"])
    _wait_queued(batcher, 3)
    scorer.release.set()
    for future in (first, english, chinese, repeated):
        future.result(5)
    batches = [(ids, locale) for ids, _, locale in scorer.calls]
    assert batches == [(["A"], "en"), (["B"], "en"), (["C"], "zh-CN"), (["B"], "en")]
    assert chinese.result(5)[1] == [{"lead_id": "C", "locale": "zh-CN"}]
    batcher.stop()


def test_batcher_error_reaches_only_its_request() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer)
    first = _submit(batcher, ["A"])
    assert scorer.entered.wait(5)
    good = _submit(batcher, ["G"])
    bad = _submit(batcher, ["BAD"])
    _wait_queued(batcher, 2)
    scorer.release.set()
    first.result(5)
    assert good.result(5)[1] == [{"lead_id": "G", "locale": "en"}]
    with pytest.raises(DataValidationError, match=r"lead 'BAD' is invalid"):
        bad.result(5)
    batcher.stop()


def test_batcher_explicit_cutoff_kept() -> None:
    scorer = _RecordingScorer()
    scorer.release.set()
    batcher = ScoreBatcher(scorer)
    as_of = pd.Timestamp("2026-03-01T00:00:00Z")
    cutoff, _ = batcher.score([{"lead_id": "A"}], as_of=as_of, locale="en")
    assert cutoff == as_of
    now_cutoff, _ = batcher.score([{"lead_id": "A"}], as_of=None, locale="en")
    assert abs((pd.Timestamp.now(tz="UTC") - now_cutoff).total_seconds()) < 5
    batcher.stop()


# --- score batcher, requests waiting on an event loop ----------------------------------------


def _records(*ids: str) -> list[dict[str, Any]]:
    return [{"lead_id": lead_id} for lead_id in ids]


async def _wait_until(condition: threading.Event) -> None:
    for _ in range(500):
        if condition.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the scoring thread never started")


def test_async_requests_are_combined_with_queued_ones() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer)

    async def scenario() -> list[tuple[pd.Timestamp, list[dict[str, Any]]]]:
        first = asyncio.create_task(batcher.score_async(_records("A"), as_of=None, locale="en"))
        await _wait_until(scorer.entered)
        waiting = [
            asyncio.create_task(batcher.score_async(_records(f"B{n}"), as_of=None, locale="en"))
            for n in range(3)
        ]
        while batcher._queue.qsize() < 3:
            await asyncio.sleep(0.01)
        scorer.release.set()
        return await asyncio.gather(first, *waiting)

    results = asyncio.run(scenario())
    batcher.stop()

    assert [scored for _, scored in results] == [
        [{"lead_id": "A", "locale": "en"}],
        *([{"lead_id": f"B{n}", "locale": "en"}] for n in range(3)),
    ]
    assert [ids for ids, _, _ in scorer.calls] == [["A"], ["B0", "B1", "B2"]]
    assert len({cutoff for cutoff, _ in results[1:]}) == 1


def test_async_error_reaches_only_its_request() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer)

    async def scenario() -> tuple[Any, Any]:
        first = asyncio.create_task(batcher.score_async(_records("A"), as_of=None, locale="en"))
        await _wait_until(scorer.entered)
        good = asyncio.create_task(batcher.score_async(_records("G"), as_of=None, locale="en"))
        bad = asyncio.create_task(batcher.score_async(_records("BAD"), as_of=None, locale="en"))
        while batcher._queue.qsize() < 2:
            await asyncio.sleep(0.01)
        scorer.release.set()
        await first
        return await asyncio.gather(good, bad, return_exceptions=True)

    good, bad = asyncio.run(scenario())
    batcher.stop()

    assert good[1] == [{"lead_id": "G", "locale": "en"}]
    assert isinstance(bad, DataValidationError)
    assert "lead 'BAD' is invalid" in str(bad)


def test_cancelled_async_request_leaves_the_scoring_thread_working() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer)

    async def scenario() -> list[dict[str, Any]]:
        gone = asyncio.create_task(batcher.score_async(_records("GONE"), as_of=None, locale="en"))
        await _wait_until(scorer.entered)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        scorer.release.set()
        _, scored = await batcher.score_async(_records("NEXT"), as_of=None, locale="en")
        return scored

    assert asyncio.run(scenario()) == [{"lead_id": "NEXT", "locale": "en"}]
    assert batcher.score(_records("SYNC"), as_of=None, locale="en")[1] == [
        {"lead_id": "SYNC", "locale": "en"}
    ]
    batcher.stop()
    assert [ids for ids, _, _ in scorer.calls] == [["GONE"], ["NEXT"], ["SYNC"]]


def test_async_request_times_out_with_overloaded_error() -> None:
    scorer = _RecordingScorer()
    batcher = ScoreBatcher(scorer, timeout_seconds=0.2)

    async def scenario() -> None:
        await batcher.score_async(_records("SLOW"), as_of=None, locale="en")

    with pytest.raises(BatchTimeoutError, match=r"waited more than 0 s; the worker is overloaded"):
        asyncio.run(scenario())
    scorer.release.set()
    batcher.stop()


# --- readiness and insecure start ------------------------------------------------------------


def test_database_probe_ready_and_cached(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'routing.db'}", create=False)
    health = DatabaseHealth()
    assert probe_database(store, health) is True
    assert health.schema_ready is True
    first_check = health.checked_at
    assert probe_database(store, health) is True
    assert health.checked_at == first_check
    store.dispose()


def test_database_probe_unreachable_not_ready() -> None:
    # Port 1 on the loopback interface has no listener, so the connection is refused at once.
    store = open_store("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2", create=False)
    health = DatabaseHealth()
    assert probe_database(store, health) is False
    assert health.schema_ready is False
    store.dispose()


def test_insecure_launch_warns_then_checks_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", db_url=f"sqlite:///{tmp_path / 'r.db'}"
    )
    with caplog.at_level("WARNING"), pytest.raises(ModelNotFoundError, match=r"has no 'champion' version"):
        prepare_launch(settings, workers=1, insecure=True)
    assert any("WITHOUT authentication" in record.getMessage() for record in caplog.records)


def test_chinese_category_synonyms_accepted() -> None:
    from serving.api_models import LeadActivity, RepIn

    activity = LeadActivity.model_validate(
        {"occurred_at": "2025-01-01T10:00:00+08:00", "type": "电话", "direction": "呼出"}
    )
    english = LeadActivity.model_validate(
        {"occurred_at": "2025-01-01T10:00:00+08:00", "type": "Call", "direction": "OUTBOUND"}
    )
    rep = RepIn.model_validate(
        {"rep_id": "R1", "name": "王五", "tier": "资深", "capacity": 10, "active": True}
    )

    assert (activity.type, activity.direction) == ("call", "outbound")
    assert (english.type, english.direction) == ("call", "outbound")
    assert rep.tier == "senior"
    with pytest.raises(ValueError, match="Input should be 'call'"):
        LeadActivity.model_validate(
            {"occurred_at": "2025-01-01T10:00:00+08:00", "type": "飞鸽", "direction": "呼出"}
        )
