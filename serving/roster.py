"""The sales roster in the routing store: validation, upserts and listing with loads.

Roster rows use the columns of ``data.schema.REPS``. ``parse_reps`` checks every row before
anything is written and reports every problem with its rep id and field. ``upsert_reps``
writes whole rows, as a roster file has them. ``apply_rep_changes`` writes only the fields a
CRM sent and keeps the stored values of the others. Rep names are stored for people to read
and never logged.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.schema import TIERS
from leadscore.errors import DataValidationError
from serving.store import RoutingStore, lock_roster, open_loads
from serving.store_models import MAX_INTEGER, reps, row_to_dict

logger = logging.getLogger(__name__)

_MAX_PROBLEMS_SHOWN = 20
_MAX_CHANGES_LOGGED = 20
# Fields a new rep must have because no default is safe: a made-up name, tier or capacity
# would route leads by a guess. Active defaults to true and the rest to empty.
NEW_REP_FIELDS = ("name", "tier", "capacity")


@dataclass(frozen=True)
class Rep:
    """One roster row, validated against ``data.schema.REPS``."""

    rep_id: str
    name: str
    tier: str
    capacity: int
    regions: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    hired_at: datetime | None = None
    active: bool = True
    manager_id: str | None = None


@dataclass(frozen=True)
class RepLoad:
    """A rep with the number of leads it currently owns."""

    rep: Rep
    open_leads: int


@dataclass(frozen=True)
class RosterUpdate:
    """The rep ids that ``upsert_reps`` inserted, updated and deactivated."""

    inserted: tuple[str, ...]
    updated: tuple[str, ...]
    deactivated: tuple[str, ...]


@dataclass(frozen=True)
class MissingRepFields:
    """The fields a new rep lacks, with the rep's position in the change list."""

    position: int
    rep_id: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class RepeatedRep:
    """A rep listed a second time in one roster change, with both positions in the change list."""

    position: int
    first_position: int
    rep_id: str


class RepeatedRepsError(DataValidationError):
    """Reps listed more than once in one roster change, which would leave unclear which fields win."""

    def __init__(self, repeated: Sequence[RepeatedRep]) -> None:
        self.repeated = tuple(repeated)
        listed = "; ".join(
            f"rep {item.rep_id!r} at positions {item.first_position} and {item.position}" for item in repeated
        )
        super().__init__(f"list each rep once per roster change: {listed}")


def repeated_reps(changes: Sequence[Mapping[str, Any]]) -> list[RepeatedRep]:
    """Return a RepeatedRep for each change whose rep_id an earlier change already uses."""
    first_position: dict[str, int] = {}
    repeated: list[RepeatedRep] = []
    for position, change in enumerate(changes):
        rep_id = str(change.get("rep_id"))
        if rep_id in first_position:
            repeated.append(RepeatedRep(position, first_position[rep_id], rep_id))
        else:
            first_position[rep_id] = position
    return repeated


class NewRepFieldsMissingError(DataValidationError):
    """New reps in a roster change that lack fields of ``NEW_REP_FIELDS``."""

    def __init__(self, missing: Sequence[MissingRepFields]) -> None:
        self.missing = tuple(missing)
        listed = "; ".join(f"rep {item.rep_id!r} lacks {', '.join(item.fields)}" for item in missing)
        super().__init__(f"a new rep needs {', '.join(NEW_REP_FIELDS)}: {listed}")


def parse_reps(rows: Iterable[Mapping[str, Any]]) -> list[Rep]:
    """Validate roster rows (keys as in ``data.schema.REPS``) and return them as ``Rep``.

    Raises DataValidationError listing every problem with its rep id (or row number when
    the id is missing) and field, so one file can be fixed in one pass.
    """
    parsed: list[Rep] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        rep, row_problems = _parse_rep(row, number)
        problems.extend(row_problems)
        if rep is None:
            continue
        if rep.rep_id in seen:
            problems.append(f"rep {rep.rep_id!r}: listed twice (rows {seen[rep.rep_id]} and {number})")
            continue
        seen[rep.rep_id] = number
        parsed.append(rep)
    if problems:
        listed = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
        more = (
            f"; ... and {len(problems) - _MAX_PROBLEMS_SHOWN} more"
            if len(problems) > _MAX_PROBLEMS_SHOWN
            else ""
        )
        counted = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise DataValidationError(f"invalid roster ({counted}): {listed}{more}")
    return parsed


def _parse_rep(row: Mapping[str, Any], number: int) -> tuple[Rep | None, list[str]]:
    rep_id = _text_or_none(row.get("rep_id"))
    if rep_id is None:
        return None, [f"row {number}: rep_id is missing; every rep needs an id"]
    problems: list[str] = []

    def problem(field: str, message: str) -> None:
        problems.append(f"rep {_cap(rep_id)!r}, field {field}: {message}")

    name = _text_or_none(row.get("name"))
    if name is None:
        problem("name", "is missing")
    tier = _text_or_none(row.get("tier"))
    if tier not in TIERS:
        problem("tier", f"{tier!r} is not one of {', '.join(TIERS)}")
    capacity = _whole_number(row.get("capacity"))
    if capacity is None or capacity < 0 or capacity > MAX_INTEGER:
        problem("capacity", f"{_cap(row.get('capacity'))!r} is not a whole number from 0 to {MAX_INTEGER:,}")
    regions = _string_list(row.get("regions"))
    if regions is None:
        problem("regions", f"{_cap(row.get('regions'))!r} is not a list of strings")
    skills = _string_list(row.get("skills"))
    if skills is None:
        problem("skills", f"{_cap(row.get('skills'))!r} is not a list of strings")
    hired_at, active = _hired_at_and_active(row, problem)
    manager_id = _text_or_none(row.get("manager_id"))
    if manager_id == rep_id:
        problem("manager_id", "a rep cannot be its own manager")
    for field, text in (("rep_id", rep_id), ("name", name), ("manager_id", manager_id)):
        if text is not None and len(text) > _column_length(field):
            problem(field, f"{_cap(text)!r} {_too_long(text, field)}")

    if problems:
        return None, problems
    return (
        Rep(
            rep_id=rep_id,
            name=str(name),
            tier=str(tier),
            capacity=int(capacity or 0),
            regions=tuple(regions or ()),
            skills=tuple(skills or ()),
            hired_at=hired_at,
            active=bool(active),
            manager_id=manager_id,
        ),
        [],
    )


def _hired_at_and_active(row: Mapping[str, Any], problem: Callable[[str, str], None]) -> tuple[Any, Any]:
    """Return the row's hired_at (None when missing) and active flag (True when missing)."""
    hired_at = row.get("hired_at")
    if _is_missing(hired_at):
        hired_at = None
    elif not isinstance(hired_at, datetime) or hired_at.tzinfo is None:
        problem("hired_at", f"{_cap(hired_at)!r} is not a tz-aware timestamp")

    active = row.get("active", True)
    if _is_missing(active):
        active = True
    if not pd.api.types.is_bool(active):
        problem("active", f"{_cap(active)!r} is not true or false")
    return hired_at, active


def _column_length(name: str) -> int:
    """Return the most characters the roster table's text column ``name`` holds."""
    column_type = reps.c[name].type
    if not isinstance(column_type, sa.String) or column_type.length is None:
        raise TypeError(f"reps.{name} is not a text column of bounded length")
    return column_type.length


def _too_long(text: str, name: str) -> str:
    return f"has {len(text)} characters; the roster stores at most {_column_length(name)}, so shorten it"


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _text_or_none(value: Any) -> str | None:
    if _is_missing(value):
        return None
    text = str(value).strip()
    return text or None


def _whole_number(value: Any) -> int | None:
    if _is_missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


def _string_list(value: Any) -> list[str] | None:
    if _is_missing(value):
        return []
    if isinstance(value, str):
        return None
    try:
        items = list(value)
    except TypeError:
        return None
    if not all(isinstance(item, str) for item in items):
        return None
    return [item.strip() for item in items if item.strip()]


def _cap(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def upsert_reps(
    store: RoutingStore,
    rows: Iterable[Mapping[str, Any] | Rep],
    *,
    now: datetime,
    deactivate_missing: bool = False,
) -> RosterUpdate:
    """Insert new reps and update known ones; validate everything before writing anything.

    ``deactivate_missing`` marks every stored rep absent from ``rows`` inactive, for a file
    that is the whole roster. Reps are never deleted, because assignments and the decision
    log refer to them. Lowering a capacity below a rep's current load takes no leads away;
    the rep simply gets no new ones until the load drops.
    """
    validated = parse_reps(dataclasses.asdict(row) if isinstance(row, Rep) else row for row in rows)
    return store.run(
        lambda connection: _upsert_reps(connection, validated, now, deactivate_missing),
        operation="roster update",
    )


def apply_rep_changes(
    store: RoutingStore,
    changes: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    deactivate_missing: bool = False,
) -> RosterUpdate:
    """Insert new reps and change stored ones in only the fields given, in one transaction.

    Each change contains ``rep_id`` and the fields to set, as in ``data.schema.REPS``. A field
    left out keeps the stored value. A rep listed twice raises RepeatedRepsError before the
    database is read. A new rep must give every field of ``NEW_REP_FIELDS``, else
    NewRepFieldsMissingError names the ones missing. The merged rows pass ``parse_reps``
    before anything is written, and the roster stays locked (on PostgreSQL) from the read to
    the commit, so two concurrent changes to different fields of one rep both survive.
    """
    repeated = repeated_reps(changes)
    if repeated:
        raise RepeatedRepsError(repeated)

    def work(connection: Connection) -> RosterUpdate:
        lock_roster(connection)
        stored = {row.rep_id: _rep_from_row(row_to_dict(row)) for row in connection.execute(sa.select(reps))}
        roster = parse_reps(_merged_rows(changes, stored))
        _log_changed_fields(roster, stored)
        return _upsert_reps(connection, roster, now, deactivate_missing)

    return store.run(work, operation="roster change")


def _merged_rows(changes: Sequence[Mapping[str, Any]], stored: Mapping[str, Rep]) -> list[dict[str, Any]]:
    """Return each change laid over its stored rep; raise when a new rep lacks a required field."""
    rows: list[dict[str, Any]] = []
    missing: list[MissingRepFields] = []
    for position, change in enumerate(changes):
        rep_id = str(change.get("rep_id"))
        current = stored.get(rep_id)
        if current is not None:
            rows.append({**dataclasses.asdict(current), **change})
            continue
        lacking = tuple(name for name in NEW_REP_FIELDS if name not in change)
        if lacking:
            missing.append(MissingRepFields(position, rep_id, lacking))
        rows.append(dict(change))
    if missing:
        raise NewRepFieldsMissingError(missing)
    return rows


def _log_changed_fields(roster: Sequence[Rep], stored: Mapping[str, Rep]) -> None:
    """Log which fields each stored rep changes (names of fields only, never values)."""
    changes: list[str] = []
    for rep in roster:
        current = stored.get(rep.rep_id)
        if current is None:
            continue
        fields = [
            field.name
            for field in dataclasses.fields(Rep)
            if getattr(rep, field.name) != getattr(current, field.name)
        ]
        changes.append(f"{rep.rep_id}({','.join(fields) or 'no change'})")
    if changes:
        shown = changes[:_MAX_CHANGES_LOGGED]
        more = f" (+{len(changes) - len(shown)} more)" if len(changes) > len(shown) else ""
        logger.info("roster change to stored reps: %s%s", " ".join(shown), more)


def _upsert_reps(
    connection: Connection, roster: Sequence[Rep], now: datetime, deactivate_missing: bool
) -> RosterUpdate:
    existing = set(connection.execute(sa.select(reps.c.rep_id)).scalars())
    inserted: list[str] = []
    updated: list[str] = []
    for rep in roster:
        values = {
            "name": rep.name,
            "tier": rep.tier,
            "capacity": rep.capacity,
            "regions": list(rep.regions),
            "skills": list(rep.skills),
            "hired_at": rep.hired_at,
            "active": rep.active,
            "manager_id": rep.manager_id,
            "updated_at": now,
        }
        if rep.rep_id in existing:
            connection.execute(sa.update(reps).where(reps.c.rep_id == rep.rep_id).values(**values))
            updated.append(rep.rep_id)
        else:
            connection.execute(sa.insert(reps).values(rep_id=rep.rep_id, **values))
            inserted.append(rep.rep_id)
    deactivated: list[str] = []
    if deactivate_missing:
        listed = {rep.rep_id for rep in roster}
        deactivated = sorted(existing - listed)
        if deactivated:
            connection.execute(
                sa.update(reps).where(reps.c.rep_id.in_(deactivated)).values(active=False, updated_at=now)
            )
    logger.info(
        "roster updated: %d inserted, %d updated, %d deactivated (%s)",
        len(inserted),
        len(updated),
        len(deactivated),
        ", ".join(deactivated) or "none deactivated",
    )
    return RosterUpdate(tuple(inserted), tuple(updated), tuple(deactivated))


def list_reps(store: RoutingStore, *, include_inactive: bool = True) -> list[RepLoad]:
    """Return every rep in rep_id order with its number of open leads."""

    def read(connection: Connection) -> list[RepLoad]:
        loads = open_loads(connection)
        query = sa.select(reps).order_by(reps.c.rep_id)
        if not include_inactive:
            query = query.where(reps.c.active.is_(True))
        return [
            RepLoad(_rep_from_row(row_to_dict(row)), loads.get(row.rep_id, 0))
            for row in connection.execute(query)
        ]

    return store.run(read, write=False, operation="roster read")


def _rep_from_row(row: Mapping[str, Any]) -> Rep:
    return Rep(
        rep_id=row["rep_id"],
        name=row["name"],
        tier=row["tier"],
        capacity=row["capacity"],
        regions=tuple(row["regions"] or ()),
        skills=tuple(row["skills"] or ()),
        hired_at=row["hired_at"],
        active=bool(row["active"]),
        manager_id=row["manager_id"],
    )
