"""``leadscore sla check``: list leads whose first contact is overdue and escalate them.

Meant to run every few minutes from cron or a scheduler. Each overdue lead is escalated
once (a log line, the webhook and a decision-log entry); ``--reassign`` or
``--return-to-pool`` also move it. The exit status is 0 even when leads are overdue or a
webhook call failed; errors in the command itself exit with 2.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from leadscore.errors import ConfigError


@click.group()
def sla() -> None:
    """Check first-contact SLAs of routed leads."""


def parse_now(text: str, timezone: str) -> dt.datetime:
    """Parse an ISO 8601 time; without an offset it is read in ``timezone``."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"invalid --now {text!r}; use ISO 8601 such as 2025-03-01T09:30 or 2025-03-01T01:30+00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(dt.UTC)


@sla.command("check")
@click.option(
    "--db",
    "db_url",
    default=None,
    help="SQLAlchemy URL of the routing database (sqlite:///FILE or postgresql+psycopg://...) "
    "[default: the db_url setting, else sqlite:///WORK_DIR/routing.db].",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Routing policy TOML file [default: the policy_file setting, else the shipped policy].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings TOML file [default: ./leadscore.toml when present, else built-in settings].",
)
@click.option(
    "--webhook",
    "webhook_url",
    default=None,
    help="http:// or https:// URL that each escalation is POSTed to as JSON "
    "[default: none, escalations are only logged and written to the decision log].",
)
@click.option(
    "--webhook-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the webhook per attempt.",
)
@click.option(
    "--webhook-retries",
    type=click.IntRange(min=0, max=10),
    default=2,
    show_default=True,
    help="Extra webhook attempts per escalation after a timeout, connection error, HTTP 429 or 5xx.",
)
@click.option(
    "--reassign", is_flag=True, help="Reassign each overdue lead to another eligible rep with room."
)
@click.option("--return-to-pool", is_flag=True, help="Take each overdue lead from its rep and queue it.")
@click.option(
    "--now",
    "now_text",
    default=None,
    help="Check as of this ISO 8601 time; without an offset it is read in the timezone setting "
    "(Asia/Shanghai unless set) [default: the current time].",
)
@click.option(
    "--locale",
    default=None,
    help="Language of the summary and reasons: en or zh-CN [default: the locale setting, else en].",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts.",
)
def check(
    db_url: str | None,
    policy_file: Path | None,
    config_file: Path | None,
    webhook_url: str | None,
    webhook_timeout: float,
    webhook_retries: int,
    reassign: bool,
    return_to_pool: bool,
    now_text: str | None,
    locale: str | None,
    output_format: str,
) -> None:
    """List leads past their first-contact deadline, escalate them and optionally move them."""
    from leadscore.i18n import parse_locale
    from leadscore.settings import load_settings
    from serving.policy_config import load_policy
    from serving.routing import utc_now
    from serving.sla import SlaAction, WebhookNotifier, check_sla
    from serving.store import open_store

    if reassign and return_to_pool:
        raise ConfigError("--reassign and --return-to-pool exclude each other; choose one")
    settings = load_settings(config_file, db_url=db_url, policy_file=policy_file, locale=locale)
    chosen_locale = parse_locale(locale or settings.locale)
    policy = load_policy(settings.policy_file)
    now = parse_now(now_text, settings.timezone) if now_text else utc_now()
    action: SlaAction = "escalate"
    if reassign:
        action = "reassign"
    elif return_to_pool:
        action = "return_to_queue"

    # httpx logs every request URL at INFO, and chat-bot webhook URLs carry their access key.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    notifier = (
        WebhookNotifier(webhook_url, timeout_seconds=webhook_timeout, retries=webhook_retries)
        if webhook_url
        else None
    )
    store = open_store(settings.resolved_db_url())
    try:
        report = check_sla(store, policy, now=now, action=action, notifier=notifier)
    finally:
        store.dispose()
        if notifier is not None:
            notifier.close()

    if output_format == "json":
        payload = {
            "checked_at": report.checked_at.isoformat(),
            "action": report.action,
            "summary": report.summary(chosen_locale),
            "leads": [
                {
                    **outcome.lead.to_dict(),
                    "action": outcome.action,
                    "escalated": outcome.escalated,
                    "notice_failed": outcome.notice_failed,
                    "new_rep_id": outcome.new_result.rep_id if outcome.new_result else None,
                    "new_queue": outcome.new_result.queue if outcome.new_result else None,
                }
                for outcome in report.outcomes
            ],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return

    zone = ZoneInfo(settings.timezone)
    if report.outcomes:
        click.echo(f"{'lead_id':<16} {'rep_id':<10} {'manager':<10} {'due':<26} late(h) action")
    for outcome in report.outcomes:
        lead = outcome.lead
        moved_to = ""
        if outcome.new_result is not None:
            moved_to = f" -> {outcome.new_result.rep_id or outcome.new_result.queue}"
        notice = " (notice failed)" if outcome.notice_failed else ""
        click.echo(
            f"{lead.lead_id:<16} {lead.rep_id:<10} {lead.manager_id or '-':<10} "
            f"{lead.sla_due_at.astimezone(zone).isoformat(timespec='minutes'):<26} "
            f"{lead.overdue_hours:>7.1f} {_action_label(outcome.action, outcome.escalated)}{moved_to}{notice}"
        )
    click.echo(report.summary(chosen_locale))


def _action_label(action: str, escalated: bool) -> str:
    """Return the table's action column: what was done to the lead in this run."""
    if action != "none":
        return action
    return "escalated" if escalated else "already_escalated"
