"""First-contact SLA: deadlines, contacts that close them, overdue listing, escalation, sla check."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from leadscore.cli.main import cli
from leadscore.cli.sla_cmd import parse_now
from leadscore.errors import ConfigError, ConflictError, DataValidationError
from serving.policy import ScoredLead
from serving.policy_config import RoutingPolicy, load_policy
from serving.roster import list_reps, upsert_reps
from serving.routing import route_lead
from serving.sla import (
    ActivityReport,
    WebhookNotifier,
    check_sla,
    overdue,
    record_activity,
    record_stage_change,
)
from serving.store import RoutingStore, list_assignments, list_decisions, open_store

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def store(database_url: str) -> Iterator[RoutingStore]:
    routing_store = open_store(database_url)
    yield routing_store
    routing_store.dispose()


@pytest.fixture
def policy() -> RoutingPolicy:
    return load_policy()


def rep_row(rep_id: str, tier: str = "senior", capacity: int = 5, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"rep_id": rep_id, "name": f"姓名{rep_id}", "tier": tier, "capacity": capacity}
    row.update(fields)
    return row


def high_value(lead_id: str) -> ScoredLead:
    return ScoredLead(lead_id=lead_id, p_convert=0.5, ltv=100000.0, expected_value=50000.0)


def standard(lead_id: str) -> ScoredLead:
    return ScoredLead(lead_id=lead_id, p_convert=0.1, ltv=50000.0, expected_value=5000.0)


def call(activity_id: str, lead_id: str, at: datetime, **fields: Any) -> ActivityReport:
    values: dict[str, Any] = {"activity_type": "call", "direction": "outbound", "rep_id": "S1"}
    values.update(fields)
    return ActivityReport(activity_id=activity_id, lead_id=lead_id, occurred_at=at, **values)


class _Recorder(BaseHTTPRequestHandler):
    """Records JSON bodies and responds with the status at the head of ``server.statuses``."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        statuses: list[int] = self.server.statuses  # type: ignore[attr-defined]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.bodies = []  # type: ignore[attr-defined]
    server.statuses = [200]  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def webhook_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/hooks/sla?key=secret-token"


# --- deadlines and first contacts -----------------------------------------------------------


def test_sla_due_at_by_segment(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1"), rep_row("R1", "regular")], now=NOW)
    assert route_lead(store, high_value("L1"), policy, now=NOW).sla_due_at == NOW + 4 * HOUR
    assert route_lead(store, standard("L2"), policy, now=NOW).sla_due_at == NOW + 48 * HOUR


def test_overdue_lists_owner_and_manager(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1", manager_id="M1"), rep_row("M1", capacity=0)], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)

    assert overdue(store, now=NOW + 4 * HOUR) == []  # due exactly now: not yet past
    late = overdue(store, now=NOW + 5 * HOUR)
    assert len(late) == 1
    assert late[0].lead_id == "L1"
    assert late[0].rep_id == "S1"
    assert late[0].manager_id == "M1"
    assert late[0].overdue_by == HOUR
    assert late[0].to_dict()["overdue_hours"] == 1.0


def test_outbound_call_closes_timer(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)

    outcome = record_activity(store, policy, call("A1", "L1", NOW + 2 * HOUR))
    assert outcome.recorded is True
    assert outcome.first_contact is True
    assert outcome.first_contact_at == NOW + 2 * HOUR
    assert outcome.sla_due_at == NOW + 4 * HOUR
    assert outcome.sla_met is True
    assert overdue(store, now=NOW + 10 * HOUR) == []


def test_late_contact_closes_timer_unmet(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    assert len(overdue(store, now=NOW + 6 * HOUR)) == 1
    outcome = record_activity(store, policy, call("A1", "L1", NOW + 6 * HOUR, activity_type="wechat"))
    assert outcome.sla_met is False
    assert overdue(store, now=NOW + 7 * HOUR) == []
    # Checked as of a time before the contact, the lead was still overdue.
    assert len(overdue(store, now=NOW + 5 * HOUR)) == 1


def test_inbound_and_form_do_not_close_timer(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    inbound = record_activity(store, policy, call("A1", "L1", NOW + HOUR, direction="inbound"))
    form = record_activity(store, policy, call("A2", "L1", NOW + HOUR, activity_type="form"))
    assert inbound.first_contact is False
    assert form.first_contact is False
    assert inbound.sla_met is None
    assert len(overdue(store, now=NOW + 5 * HOUR)) == 1


def test_stage_change_beyond_lead_closes_timer(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    route_lead(store, high_value("L2"), policy, now=NOW)

    same_stage = record_stage_change(store, "L1", "线索获取", changed_at=NOW + HOUR)
    assert same_stage.first_contact is False
    contacted = record_stage_change(store, "L2", "初步沟通", changed_at=NOW + HOUR)
    assert contacted.first_contact is True
    assert contacted.sla_met is True
    assert [item.lead_id for item in overdue(store, now=NOW + 5 * HOUR)] == ["L1"]


def test_contact_before_routing_counts(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    record_activity(store, policy, call("A1", "L1", NOW - HOUR))
    route_lead(store, high_value("L1"), policy, now=NOW)
    assert overdue(store, now=NOW + 5 * HOUR) == []


def test_lost_stage_closes_assignment(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1", capacity=1)], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    outcome = record_stage_change(store, "L1", "丢单", changed_at=NOW + HOUR)
    assert outcome.closed_assignment_id is not None
    assert outcome.first_contact is False
    assert overdue(store, now=NOW + 5 * HOUR) == []
    assert list_reps(store)[0].open_leads == 0
    repeat = record_stage_change(store, "L1", "lost", changed_at=NOW + HOUR)
    assert repeat.recorded is False


def test_repeated_activity_is_harmless(store: RoutingStore, policy: RoutingPolicy) -> None:
    first = record_activity(store, policy, call("A1", "L1", NOW))
    again = record_activity(store, policy, call("A1", "L1", NOW))
    assert first.recorded is True
    assert again.recorded is False
    with pytest.raises(ConflictError, match="activity 'A1' is already stored with different content"):
        record_activity(store, policy, call("A1", "L2", NOW))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"activity_type": "fax"}, "activity 'A1': unknown type 'fax'; expected one of call, wechat"),
        ({"direction": "sideways"}, "activity 'A1': unknown direction 'sideways'"),
        (
            {"occurred_at": datetime(2025, 1, 1)},
            "activity 'A1': occurred_at 2025-01-01T00:00:00 has no time zone",
        ),
        ({"lead_id": ""}, "activity 'A1': lead_id must be a non-empty id"),
    ],
)
def test_invalid_activity_rejected(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "activity_id": "A1",
        "lead_id": "L1",
        "activity_type": "call",
        "direction": "outbound",
        "occurred_at": NOW,
    }
    values.update(fields)
    with pytest.raises(DataValidationError, match=message):
        ActivityReport(**values)


def test_unknown_stage_rejected(store: RoutingStore) -> None:
    with pytest.raises(DataValidationError, match="unknown stage 'signed'"):
        record_stage_change(store, "L1", "signed", changed_at=NOW)


# --- escalation -----------------------------------------------------------------------------


def test_check_escalates_once(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1", manager_id="M1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)

    first = check_sla(store, policy, now=NOW + 5 * HOUR)
    second = check_sla(store, policy, now=NOW + 6 * HOUR)

    assert first.escalated == 1
    assert first.outcomes[0].action == "none"
    assert len(second.outcomes) == 1
    assert second.escalated == 0
    escalations = list_decisions(store, event="escalated")
    assert len(escalations) == 1
    assert escalations[0].rep_id == "S1"
    assert [reason.code for reason in escalations[0].reasons] == ["sla_overdue", "sla_escalated"]
    assert escalations[0].reasons[1].text("zh-CN") == "已上报销售 S1 的经理 M1。"
    assert first.summary("en").startswith("1 overdue leads at 2025-03-03T06:00+00:00: 1 escalated")


def test_webhook_receives_escalation(
    store: RoutingStore, policy: RoutingPolicy, webhook: ThreadingHTTPServer
) -> None:
    upsert_reps(store, [rep_row("S1", manager_id="M1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    with WebhookNotifier(webhook_url(webhook), retries=0) as notifier:
        report = check_sla(store, policy, now=NOW + 5 * HOUR, notifier=notifier)

    assert report.escalated == 1
    bodies: list[dict[str, Any]] = webhook.bodies  # type: ignore[attr-defined]
    assert len(bodies) == 1
    body = bodies[0]
    assert body["event"] == "sla_overdue"
    assert body["lead_id"] == "L1"
    assert body["rep_id"] == "S1"
    assert body["manager_id"] == "M1"
    assert body["overdue_hours"] == 1.0
    assert body["action"] == "none"
    assert body["policy_version"] == policy.version
    assert "Escalated to manager M1 of rep S1." in body["messages"]["en"]
    assert "已上报销售 S1 的经理 M1。" in body["messages"]["zh-CN"]
    assert "姓名S1" not in json.dumps(body, ensure_ascii=False)


def test_webhook_failure_not_fatal_and_retried(
    store: RoutingStore,
    policy: RoutingPolicy,
    webhook: ThreadingHTTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upsert_reps(store, [rep_row("S1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    webhook.statuses = [503]  # type: ignore[attr-defined]

    with WebhookNotifier(webhook_url(webhook), retries=2, backoff_seconds=0.01) as notifier:
        failed = check_sla(store, policy, now=NOW + 5 * HOUR, notifier=notifier)
        assert len(webhook.bodies) == 3  # type: ignore[attr-defined]
        assert failed.escalated == 0
        assert failed.failed_notices == 1
        assert list_decisions(store, event="escalated") == []
        assert "webhook http://127.0.0.1 failed for lead L1 after 3 attempt(s): HTTP 503" in caplog.text
        own_lines = [record.getMessage() for record in caplog.records if record.name.startswith("serving")]
        assert not [line for line in own_lines if "secret-token" in line]

        webhook.statuses = [200]  # type: ignore[attr-defined]
        retried = check_sla(store, policy, now=NOW + 6 * HOUR, notifier=notifier)
    assert retried.escalated == 1
    assert len(list_decisions(store, event="escalated")) == 1


def test_webhook_client_error_not_retried(webhook: ThreadingHTTPServer) -> None:
    webhook.statuses = [404]  # type: ignore[attr-defined]
    with WebhookNotifier(webhook_url(webhook), retries=3, backoff_seconds=0.01) as notifier:
        assert notifier.notify({"lead_id": "L1"}) is False
    assert len(webhook.bodies) == 1  # type: ignore[attr-defined]


def test_webhook_unreachable_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    port = server.server_address[1]
    server.server_close()  # nothing listens on this port any more
    with WebhookNotifier(f"http://127.0.0.1:{port}/x", retries=1, backoff_seconds=0.01) as notifier:
        assert notifier.notify({"lead_id": "L9"}) is False
    assert "for lead L9 after 2 attempt(s): ConnectError" in caplog.text


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "not a url", "http://"])
def test_webhook_url_validated(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid webhook URL"):
        WebhookNotifier(url)


def test_reassign_excludes_owner_and_respects_capacity(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(
        store,
        [rep_row("S1", capacity=3), rep_row("S2", capacity=2), rep_row("R1", "regular", capacity=0)],
        now=NOW,
    )
    for index in range(5):
        route_lead(store, high_value(f"L{index}"), policy, now=NOW)
    # S1 owns L0, L2, L4 and S2 owns L1, L3 (least loaded first, then rep_id).
    record_activity(store, policy, call("A1", "L1", NOW + HOUR))
    upsert_reps(store, [rep_row("S3", capacity=1), rep_row("S4", capacity=1)], now=NOW)

    later = NOW + 5 * HOUR
    report = check_sla(store, policy, now=later, action="reassign")

    actions = Counter(outcome.action for outcome in report.outcomes)
    assert actions == Counter({"reassigned": 2, "not_reassigned": 2})
    # S1 and S2 own overdue leads, so only the new reps S3 and S4 take any.
    new_owners = sorted(outcome.new_result.rep_id or "" for outcome in report.outcomes if outcome.new_result)
    assert new_owners == ["S3", "S4"]
    loads = {item.rep.rep_id: (item.open_leads, item.rep.capacity) for item in list_reps(store)}
    assert all(open_leads <= capacity for open_leads, capacity in loads.values())
    for outcome in report.outcomes:
        if outcome.new_result is not None:
            assert outcome.new_result.rep_id != outcome.lead.rep_id
            assert outcome.new_result.sla_due_at == later + 4 * HOUR
            assert outcome.new_result.reasons[0].code == "sla_overdue"
    assert report.escalated == 4
    assert len(list_decisions(store, event="reassigned")) == 2
    assert len(list_decisions(store, event="escalated")) == 4
    assert {item.lead_id for item in overdue(store, now=later + HOUR)} == {
        outcome.lead.lead_id for outcome in report.outcomes if outcome.action == "not_reassigned"
    }


def test_concurrent_reassign_runs_respect_capacity(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1", capacity=6)], now=NOW)
    for index in range(6):
        route_lead(store, high_value(f"L{index}"), policy, now=NOW)
    upsert_reps(store, [rep_row("S2", capacity=3)], now=NOW)
    barrier = threading.Barrier(2)
    reports = []

    def run() -> None:
        barrier.wait(timeout=30)
        reports.append(check_sla(store, policy, now=NOW + 5 * HOUR, action="reassign"))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    loads = {item.rep.rep_id: item.open_leads for item in list_reps(store)}
    assert loads == {"S1": 3, "S2": 3}
    assert len(list_decisions(store, event="reassigned")) == 3
    assert sum(report.count("reassigned") for report in reports) == 3
    # The run that moved or claimed a lead escalates it. The other run may add a second
    # notice while the lead is being moved, but never a third.
    per_lead = Counter(entry.lead_id for entry in list_decisions(store, event="escalated"))
    assert set(per_lead) == {f"L{index}" for index in range(6)}
    assert max(per_lead.values()) <= 2


def test_return_to_queue_frees_capacity(store: RoutingStore, policy: RoutingPolicy) -> None:
    upsert_reps(store, [rep_row("S1", capacity=2)], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    report = check_sla(store, policy, now=NOW + 5 * HOUR, action="return_to_queue")
    assert report.count("returned_to_queue") == 1
    assert report.outcomes[0].new_result is not None
    assert report.outcomes[0].new_result.queue == "unassigned"
    assert list_reps(store)[0].open_leads == 0
    active = list_assignments(store)
    assert [(item.lead_id, item.rep_id, item.queue) for item in active] == [("L1", None, "unassigned")]
    assert [entry.event for entry in list_decisions(store)] == ["assigned", "returned_to_queue", "escalated"]


# --- leadscore sla check --------------------------------------------------------------------


def seed_overdue(url: str) -> None:
    store = open_store(url)
    policy = load_policy()
    upsert_reps(
        store,
        [rep_row("S1", capacity=3, manager_id="M1"), rep_row("S2", capacity=1), rep_row("R1", "regular", 0)],
        now=NOW,
    )
    for index in range(3):
        route_lead(store, high_value(f"L{index}"), policy, now=NOW)
    store.dispose()


def test_cli_reassign_never_exceeds_capacity(database_url: str, webhook: ThreadingHTTPServer) -> None:
    seed_overdue(database_url)
    # S2 (capacity 1) took L1 when routed, so no rep has room: nothing can be reassigned.
    # Free one slot on S2 by closing L1, then two overdue leads compete for it.
    store = open_store(database_url)
    record_stage_change(store, "L1", "won", changed_at=NOW + HOUR)
    store.dispose()

    result = CliRunner().invoke(
        cli,
        [
            "sla",
            "check",
            "--db",
            database_url,
            "--reassign",
            "--now",
            "2025-03-03T14:00",  # Asia/Shanghai, so 06:00 UTC: 5 h after routing
            "--webhook",
            webhook_url(webhook),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 overdue leads at 2025-03-03T06:00+00:00: 2 escalated, 1 reassigned" in result.stdout
    assert "reassigned -> S2" in result.stdout
    assert "not_reassigned" in result.stdout

    store = open_store(database_url)
    loads = {item.rep.rep_id: (item.open_leads, item.rep.capacity) for item in list_reps(store)}
    store.dispose()
    assert loads["S2"] == (1, 1)
    assert loads["S1"] == (1, 3)
    assert len(webhook.bodies) == 2  # type: ignore[attr-defined]
    assert "secret-token" not in result.stderr


def test_cli_escalate_labels_each_run(database_url: str) -> None:
    seed_overdue(database_url)
    arguments = ["sla", "check", "--db", database_url, "--now", "2025-03-03T06:00+00:00"]

    first = CliRunner().invoke(cli, arguments)
    second = CliRunner().invoke(cli, arguments)

    assert first.exit_code == 0, first.output
    assert first.stdout.count(" escalated") >= 3
    assert "already_escalated" not in first.stdout
    assert second.exit_code == 0, second.output
    assert second.stdout.count("already_escalated") == 3


def test_cli_return_to_pool_json(database_url: str) -> None:
    seed_overdue(database_url)
    result = CliRunner().invoke(
        cli,
        [
            "sla",
            "check",
            "--db",
            database_url,
            "--return-to-pool",
            "--now",
            "2025-03-03T06:00+00:00",
            "--format",
            "json",
            "--locale",
            "zh-CN",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["action"] == "return_to_queue"
    assert [lead["action"] for lead in payload["leads"]] == ["returned_to_queue"] * 3
    assert {lead["new_queue"] for lead in payload["leads"]} == {"unassigned"}
    assert payload["summary"].startswith("截至 2025-03-03T06:00+00:00 共 3 条线索首次联系超时")


def test_cli_rejects_both_actions(database_url: str) -> None:
    result = CliRunner().invoke(cli, ["sla", "check", "--db", database_url, "--reassign", "--return-to-pool"])
    assert result.exit_code == 2
    assert "--reassign and --return-to-pool exclude each other" in result.output


def test_cli_nothing_overdue(database_url: str) -> None:
    result = CliRunner().invoke(cli, ["sla", "check", "--db", database_url, "--now", "2025-03-03T09:00"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("0 overdue leads at 2025-03-03T01:00+00:00")


def test_parse_now() -> None:
    assert parse_now("2025-03-03T09:00", "Asia/Shanghai") == NOW
    assert parse_now("2025-03-03T01:00Z", "Asia/Shanghai") == NOW
    with pytest.raises(ConfigError, match="invalid --now 'yesterday'"):
        parse_now("yesterday", "Asia/Shanghai")


def test_escalation_logs_ids_not_names(
    store: RoutingStore, policy: RoutingPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upsert_reps(store, [rep_row("S1", manager_id="M1")], now=NOW)
    route_lead(store, high_value("L1"), policy, now=NOW)
    check_sla(store, policy, now=NOW + 5 * HOUR, action="return_to_queue")
    assert "SLA overdue: lead L1, rep S1, manager M1" in caplog.text
    assert "姓名S1" not in caplog.text


def test_tally_lists_only_leads_with_timer() -> None:
    from serving.event_reports import _Tally
    from serving.sla import ContactOutcome

    contacted = datetime(2025, 3, 3, 2, tzinfo=UTC)
    tally = _Tally()

    tally.add(ContactOutcome("ROUTED", True, True, contacted, contacted + timedelta(hours=4), True))
    tally.add(ContactOutcome("NEVER-ROUTED", True, True, contacted, None, None))

    assert tally.closed == ["ROUTED"]
    assert tally.closed_late == []
    assert tally.recorded == 2
