"""Varied raw lead payloads from a small synthetic CRM history, for the row-path parity tests.

The history comes from ``data.synthetic`` (Chinese channels, regions and company names,
custom attributes, repeat customers with refunds). Each lead is turned into the JSON record
a CRM would send at a cutoff, with seeded random variations. They include unseen and
missing categories, missing numbers, integer budgets and extra custom attributes. Timestamps
are written with several UTC offsets, as 'Z', as datetimes or without an offset. Stage
names may be Chinese, stage changes and activities may share an instant, and orders include
refunds, same-day lines and new customers.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.folder import CanonicalTables, CustomAttribute, read_data_dir
from data.schema import ACTIVITY_TYPES
from data.stages import FUNNEL
from data.synthetic.config import GeneratorConfig
from data.synthetic.generate import generate_history
from tests.training.canonical_history import CHANNELS, SIZES

EXTRA_ATTRIBUTES: tuple[CustomAttribute, ...] = (
    CustomAttribute("budget_approved", "bool"),
    CustomAttribute("employees", "int"),
    CustomAttribute("fit score", "float"),
    CustomAttribute("last_webinar_at", "timestamp"),
    CustomAttribute("备注", "text"),
    CustomAttribute("行业细分", "category"),
)
MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
_OFFSETS = ("+08:00", "-05:00", "+00:00", "+05:45")
_STAGE_NAMES_ZH = {stage.code: stage.name_zh for stage in FUNNEL}


@functools.cache
def synthetic_tables() -> CanonicalTables:
    """Return a generated 400-lead history (12 months), built once per test session."""
    folder = Path(tempfile.mkdtemp(prefix="leadscore-payload-leads-"))
    atexit.register(shutil.rmtree, folder, True)
    generate_history(GeneratorConfig(leads=400, seed=5, months=12), folder)
    return read_data_dir(folder)


def all_attributes() -> tuple[CustomAttribute, ...]:
    """Return the generator's custom attributes followed by ``EXTRA_ATTRIBUTES``."""
    return (*synthetic_tables().attributes, *EXTRA_ATTRIBUTES)


@dataclass
class LeadCase:
    """One lead's raw record and the cutoff (microseconds, UTC) it is scored at."""

    record: dict[str, Any]
    cutoff: int


def _micros(value: pd.Timestamp) -> int:
    return int(value.value) // 1000


def _render(micros: int, style: str, timezone: str) -> Any:
    """Write an instant as the CRM might: with an offset, 'Z', naive local time or a datetime."""
    instant = pd.Timestamp(micros, unit="us", tz="UTC")
    if style == "naive":
        return instant.tz_convert(timezone).tz_localize(None).isoformat()
    if style == "z":
        return instant.isoformat().replace("+00:00", "Z")
    if style == "datetime":
        return instant.tz_convert("Asia/Kolkata").to_pydatetime()
    sign = -1 if style.startswith("-") else 1
    hours, minutes = (int(part) for part in style[1:].split(":"))
    offset = dt.timedelta(hours=hours, minutes=minutes) * sign
    return instant.tz_convert(dt.timezone(offset)).isoformat()


def render_micros(micros: int, number: int, timezone: str = "Asia/Shanghai") -> str:
    """Write an instant as an as_of text, cycling through offsets, 'Z' and naive local time by ``number``."""
    styles = ("+08:00", "z", "-05:00", "naive", "+05:45")
    return str(_render(micros, styles[number % len(styles)], timezone))


class _Builder:
    """Turns leads of the synthetic history into varied raw records."""

    def __init__(self, seed: int, timezone: str, *, naive_allowed: bool) -> None:
        self.rng = np.random.default_rng(seed)
        self.timezone = timezone
        self.styles = ["+08:00", "-05:00", "z", "datetime", "+05:45"] + (
            ["naive"] * 2 if naive_allowed else []
        )
        tables = synthetic_tables()
        self.leads = tables.leads
        self.activities = dict(iter(tables.activities.groupby("lead_id")))
        self.stage_changes = dict(iter(tables.stage_changes.groupby("lead_id")))
        self.orders = dict(iter(tables.orders.groupby("customer_id")))

    def chance(self, probability: float) -> bool:
        return bool(self.rng.random() < probability)

    def time(self, micros: int) -> Any:
        return _render(micros, str(self.rng.choice(self.styles)), self.timezone)

    def pick_cutoff(self, position: int, *, open_at_cutoff: bool) -> int | None:
        """Return a random cutoff after the lead's creation; before its close when ``open_at_cutoff``."""
        lead = self.leads.iloc[position]
        created = _micros(lead["created_at"])
        cutoff = created + int(self.rng.uniform(0.5, 200 * 24) * MICROS_PER_HOUR)
        close = self._close_time(str(lead["lead_id"]))
        if open_at_cutoff and close is not None and cutoff >= close:
            if close - created < 2 * MICROS_PER_HOUR:
                return None
            cutoff = created + int((close - created) * self.rng.uniform(0.1, 0.95))
        return cutoff

    def case(self, position: int, cutoff: int, *, shift: int = 0) -> LeadCase:
        """Return the record of lead ``position`` at ``cutoff``, every time moved by ``shift``."""
        lead = self.leads.iloc[position]
        lead_id = str(lead["lead_id"])
        created = _micros(lead["created_at"])
        record = self._lead_fields(lead, shift)
        record["activities"] = self._activities(lead_id, shift) if self.chance(0.9) else []
        record["stage_changes"] = self._stage_changes(lead_id, shift)
        record["orders"] = self._orders(record, lead, created, cutoff, shift)
        return LeadCase(record, cutoff + shift)

    def _close_time(self, lead_id: str) -> int | None:
        changes = self.stage_changes.get(lead_id)
        if changes is None:
            return None
        terminal = changes[changes["stage"].isin(["won", "lost"])]
        return None if terminal.empty else min(_micros(value) for value in terminal["changed_at"])

    def _lead_fields(self, lead: pd.Series, shift: int) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for name, value in lead.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if isinstance(value, pd.Timestamp):
                record[str(name)] = self.time(_micros(value) + shift)
            elif isinstance(value, float):
                record[str(name)] = float(value)
            else:
                record[str(name)] = str(value)
        self._vary_categories(record)
        self._extra_attributes(record, _micros(lead["created_at"]) + shift)
        return record

    def _vary_categories(self, record: dict[str, Any]) -> None:
        if self.chance(0.3):
            record["channel"] = str(self.rng.choice(CHANNELS))
            record["company_size"] = str(self.rng.choice(SIZES))
        elif self.chance(0.15):
            record["channel"] = f"全新渠道-{self.rng.integers(100)}"
        if self.chance(0.1):
            record.pop("channel", None)
        if self.chance(0.1):
            record["region"] = None
        if self.chance(0.05):
            record["channel"] = "__other__"
        budget = record.get("declared_budget")
        if budget is not None and self.chance(0.2):
            record["declared_budget"] = int(budget)
        elif self.chance(0.15):
            record["declared_budget"] = None

    def _extra_attributes(self, record: dict[str, Any], created: int) -> None:
        if self.chance(0.7):
            record["budget_approved"] = self.chance(0.5)
        if self.chance(0.7):
            record["employees"] = int(self.rng.integers(1, 5000))
        if self.chance(0.7):
            record["fit score"] = float(np.round(self.rng.normal(50, 20), 3))
        if self.chance(0.7):
            offset = int(self.rng.uniform(-30, 120) * MICROS_PER_DAY)
            record["last_webinar_at"] = self.time(created + offset)
        if self.chance(0.5):
            record["备注"] = "客户关注价格，下周回电"
        if self.chance(0.6):
            record["行业细分"] = str(self.rng.choice(["汽车零部件", "光伏", "跨境电商", "SaaS"]))

    def _activities(self, lead_id: str, shift: int) -> list[dict[str, Any]]:
        frame = self.activities.get(lead_id)
        rows: list[dict[str, Any]] = []
        if frame is None:
            return rows
        for item in frame.itertuples(index=False):
            row: dict[str, Any] = {
                "occurred_at": self.time(_micros(item.occurred_at) + shift),
                "type": item.type,
                "direction": item.direction,
            }
            if self.chance(0.5):
                row["activity_id"] = item.activity_id
            if isinstance(item.rep_id, str) and self.chance(0.8):
                row["rep_id"] = item.rep_id
            if self.chance(0.3):
                row["lead_id"] = lead_id
            if isinstance(item.outcome, str):
                row["outcome"] = item.outcome
            rows.append(row)
            if self.chance(0.1):
                twin = {key: value for key, value in row.items() if key != "activity_id"}
                twin["type"] = str(self.rng.choice(ACTIVITY_TYPES))
                twin["direction"] = "outbound" if item.direction == "inbound" else "inbound"
                rows.append(twin)
        self.rng.shuffle(rows)  # type: ignore[arg-type]
        return rows

    def _stage_changes(self, lead_id: str, shift: int) -> list[dict[str, Any]]:
        frame = self.stage_changes.get(lead_id)
        rows: list[dict[str, Any]] = []
        if frame is None:
            return rows
        keys = {(str(item.stage), _micros(item.changed_at)) for item in frame.itertuples(index=False)}
        for item in frame.itertuples(index=False):
            micros = _micros(item.changed_at)
            stage = str(item.stage)
            name = _STAGE_NAMES_ZH.get(stage, stage) if self.chance(0.3) else stage
            rows.append({"stage": name, "changed_at": self.time(micros + shift)})
            # Another stage entered at the same instant, which features order by funnel position.
            tie = "qualified" if stage != "qualified" else "proposal"
            if stage not in ("won", "lost") and (tie, micros) not in keys and self.chance(0.15):
                keys.add((tie, micros))
                rows.append({"stage": tie, "changed_at": self.time(micros + shift)})
        return rows

    def _orders(
        self, record: dict[str, Any], lead: pd.Series, created: int, cutoff: int, shift: int
    ) -> list[dict[str, Any]]:
        customer = lead["customer_id"]
        rows: list[dict[str, Any]] = []
        if isinstance(customer, str):
            frame = self.orders.get(customer)
            for item in frame.itertuples(index=False) if frame is not None else ():
                row = {
                    "ordered_at": self.time(_micros(item.ordered_at) + shift),
                    "amount": float(item.amount),
                }
                if self.chance(0.7):
                    row["order_id"] = item.order_id
                rows.append(row)
        elif self.chance(0.15):
            record["customer_id"] = f"NEW-{record['lead_id']}"
        if "customer_id" in record and self.chance(0.5):
            rows.extend(self._awkward_orders(created, cutoff, shift))
        return rows

    def _awkward_orders(self, created: int, cutoff: int, shift: int) -> list[dict[str, Any]]:
        """Orders on one day, at one instant with different amounts, refunds and tiny amounts."""
        base = created - int(self.rng.uniform(1, 400)) * MICROS_PER_DAY
        moments = [base, base, base + MICROS_PER_HOUR, base + 40 * MICROS_PER_DAY, cutoff - MICROS_PER_HOUR]
        amounts = [0.1, 0.2, 1e7 + 0.3, -0.1, 333.33]
        return [
            {"ordered_at": self.time(moment + shift), "amount": amount}
            for moment, amount in zip(moments, amounts, strict=True)
            if self.chance(0.8)
        ]


def lead_cases(seed: int, *, timezone: str, count: int = 200, open_at_cutoff: bool = False) -> list[LeadCase]:
    """Return up to ``count`` single-lead cases, each at its own cutoff."""
    builder = _Builder(seed, timezone, naive_allowed=timezone in ("Asia/Shanghai", "UTC"))
    cases = []
    for position in builder.rng.permutation(len(builder.leads))[:count]:
        cutoff = builder.pick_cutoff(int(position), open_at_cutoff=open_at_cutoff)
        if cutoff is not None:
            cases.append(builder.case(int(position), cutoff))
    return cases


def shared_cutoff_payloads(
    seed: int, *, timezone: str, payloads: int, max_leads: int
) -> list[tuple[list[dict[str, Any]], str]]:
    """Return payloads of 1 to ``max_leads`` open leads, moved in time to share one as_of text.

    Some leads share a customer_id with the lead before them, without orders of their own.
    """
    builder = _Builder(seed, timezone, naive_allowed=timezone in ("Asia/Shanghai", "UTC"))
    as_of = _micros(pd.Timestamp("2025-06-01T09:30:00Z"))
    result = []
    for _ in range(payloads):
        records: list[dict[str, Any]] = []
        size = int(builder.rng.integers(1, max_leads + 1))
        for position in builder.rng.permutation(len(builder.leads))[:size]:
            cutoff = builder.pick_cutoff(int(position), open_at_cutoff=True)
            if cutoff is None:
                continue
            case = builder.case(int(position), cutoff, shift=as_of - cutoff)
            if records and records[-1].get("customer_id") and builder.chance(0.1):
                case.record["customer_id"] = records[-1]["customer_id"]
                case.record["orders"] = []
            records.append(case.record)
        if records:
            result.append((records, str(_render(as_of, str(builder.rng.choice(_OFFSETS)), timezone))))
    return result
