"""``leadscore route backtest``: compare routing strategies on a synthetic history with ground truth."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from data.schema import DEFAULT_TIMEZONE
from leadscore.errors import ConfigError

DEFAULT_REPORT = Path(".leadscore/routing-backtest/routing-backtest.md")


@click.group()
def route() -> None:
    """Evaluate lead routing offline."""


def parse_start(text: str) -> dt.datetime:
    """Parse the ISO 8601 evaluation start; a time without an offset is read in Asia/Shanghai."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"invalid --from {text!r}; use ISO 8601 such as 2025-01-01 or 2025-01-01T00:00+08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(DEFAULT_TIMEZONE))
    return moment.astimezone(dt.UTC)


def companion_paths(report: Path) -> tuple[Path, Path]:
    """Return the zh-CN report and JSON paths written beside the English ``report``."""
    stem = report.name[: -len(report.suffix)] if report.suffix else report.name
    return report.with_name(f"{stem}.zh-CN.md"), report.with_name(f"{stem}.json")


def _command_line(params: dict[str, Any]) -> str:
    """Rebuild the command as run from the parsed options, defaults left out."""
    words = ["leadscore", "route", "backtest", "--data", str(params["data_dir"])]
    optional = (
        ("--policy", params["policy_file"]),
        ("--model-uri", params["model_uri"]),
        ("--tracking-uri", params["tracking_uri"]),
        ("--bundle", params["bundle_dir"]),
        ("--from", params["start_text"]),
        ("--holdout-months", params["holdout_months"] if params["start_text"] is None else None),
        ("--warmup-days", params["warmup_days"]),
        ("--max-open-days", params["max_open_days"]),
        ("--seed", params["seed"]),
        ("--out", params["out"]),
    )
    for flag, value in optional:
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


@route.command("backtest")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Data folder written by 'leadscore data generate' (canonical tables plus ground_truth/).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Routing policy TOML file [default: the shipped policy].",
)
@click.option(
    "--model-uri",
    default=None,
    help="Registered scorer to route on: models:/lead-scorer@ALIAS or models:/lead-scorer/VERSION. "
    "[default: none; without it and without --bundle the policy routes on the rule-score fallback].",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking and registry URI that --model-uri is read from, such as sqlite:///FILE "
    "[default: none; required with --model-uri].",
)
@click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Scorer bundle folder written by training, used instead of --model-uri [default: none].",
)
@click.option(
    "--from",
    "start_text",
    default=None,
    help="Start of the evaluation window, ISO 8601; without an offset read in Asia/Shanghai "
    "[default: the last --holdout-months of the history].",
)
@click.option(
    "--holdout-months",
    type=click.IntRange(min=1),
    default=None,
    help="Length of the evaluation window in months when --from is not given [default: 6].",
)
@click.option(
    "--warmup-days",
    type=click.IntRange(min=0),
    default=None,
    help="Days replayed before the evaluation window so that reps start with a load [default: 60].",
)
@click.option(
    "--max-open-days",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum days a lead occupies its rep; leads that never close are held this long [default: 90].",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Seed of the round-robin order [default: 0]."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="English Markdown report; FILE.zh-CN.md and FILE.json are written beside it "
    f"[default: {DEFAULT_REPORT}].",
)
def backtest(
    data_dir: Path,
    policy_file: Path | None,
    model_uri: str | None,
    tracking_uri: str | None,
    bundle_dir: Path | None,
    start_text: str | None,
    holdout_months: int | None,
    warmup_days: int | None,
    max_open_days: int | None,
    seed: int | None,
    out: Path | None,
) -> None:
    """Replay a synthetic history through round-robin, rules-only and the routing policy; report each."""
    import pandas as pd

    from serving.backtest import (
        DEFAULT_HOLDOUT_MONTHS,
        DEFAULT_MAX_OPEN_DAYS,
        DEFAULT_WARMUP_DAYS,
        BacktestSettings,
        run_backtest,
    )
    from serving.backtest_report import render_report, result_to_dict
    from serving.backtest_scores import load_bundle
    from serving.policy_config import load_policy

    if model_uri is not None and bundle_dir is not None:
        raise ConfigError("--model-uri and --bundle exclude each other; give one scorer")
    if start_text is not None and holdout_months is not None:
        raise ConfigError("--from and --holdout-months exclude each other; --from sets the window start")
    command = _command_line(dict(click.get_current_context().params))
    settings = BacktestSettings(
        evaluation_start=pd.Timestamp(parse_start(start_text)) if start_text else None,
        holdout_months=holdout_months or DEFAULT_HOLDOUT_MONTHS,
        warmup_days=DEFAULT_WARMUP_DAYS if warmup_days is None else warmup_days,
        max_open_days=max_open_days or DEFAULT_MAX_OPEN_DAYS,
        seed=seed or 0,
    )
    policy = load_policy(policy_file)
    with tempfile.TemporaryDirectory(prefix="leadscore-backtest-") as download_dir:
        bundle = None
        if model_uri is not None or bundle_dir is not None:
            bundle = load_bundle(model_uri, tracking_uri, bundle_dir, Path(download_dir))
        result = run_backtest(data_dir, policy, settings, bundle=bundle, bundle_label=model_uri)

    report = out or DEFAULT_REPORT
    report.parent.mkdir(parents=True, exist_ok=True)
    zh_path, json_path = companion_paths(report)
    report.write_text(render_report(result, locale="en", command=command), "utf-8")
    zh_path.write_text(render_report(result, locale="zh-CN", command=command), "utf-8")
    json_path.write_text(
        json.dumps({"command": command, **result_to_dict(result)}, ensure_ascii=False, indent=2, default=str)
        + "\n",
        "utf-8",
    )
    for item in result.strategies:
        click.echo(
            f"{item.strategy:<22} expected won revenue {item.expected_revenue:>16,.0f} CNY "
            f"({result.revenue_ratio(item.strategy):.3f} x round-robin), queued {item.queued_on_arrival:,}, "
            f"max utilization {item.max_utilization:.2f}"
        )
    click.echo(f"wrote {report}, {zh_path} and {json_path}")
