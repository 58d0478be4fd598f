"""UCI Bank Marketing (bank-additional-full.csv) onto the canonical model.

Source: S. Moro, P. Cortez and P. Rita, "A Data-Driven Approach to Predict the Success of
Bank Telemarketing", Decision Support Systems 62 (2014), doi:10.1016/j.dss.2014.03.001.
The UCI Machine Learning Repository lists the dataset under CC BY 4.0.

One row is one client contacted by a Portuguese bank's term-deposit campaign. Rows are in
date order from May 2008 to November 2010 but carry only ``month`` and ``day_of_week``.
``created_at`` (the date of the last contact) is rebuilt by ``reconstruct_contact_dates``.
``y`` becomes stage changes: ``lead`` at ``created_at``, then ``won`` (y=yes) or ``lost``
(y=no) ``OUTCOME_OFFSET`` later.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.folder import AttributeType, CustomAttribute
from data.public import names
from data.public.source import (
    AdaptedDataset,
    RejectCollector,
    canonical_tables,
    outcome_stage_changes,
    read_text_table,
)
from data.public.values import parse_flags, parse_numbers, parse_whole_numbers, to_missing

logger = logging.getLogger(__name__)

NAME = names.BANK_MARKETING
DEFAULT_FILE = "bank-additional-full.csv"
FIRST_YEAR = 2008
LOCAL_TIMEZONE = "Europe/Lisbon"
DAY_START = pd.Timedelta(hours=9)
DAY_LENGTH = pd.Timedelta(hours=9)  # calls of one day spread evenly over 09:00-18:00
OUTCOME_OFFSET = pd.Timedelta(days=1)
MONTHS: tuple[str, ...] = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
UNKNOWN = "unknown"
NEVER_CONTACTED_DAYS = "999"
NONEXISTENT = "nonexistent"


@dataclass(frozen=True)
class SourceColumn:
    """A column of bank-additional-full.csv kept as a custom lead attribute."""

    header: str
    name: str
    type: AttributeType
    post_contact: bool
    description: str
    missing: tuple[str, ...] = ()  # sentinel values that mean "missing"


ATTRIBUTE_COLUMNS: tuple[SourceColumn, ...] = (
    SourceColumn("age", "age", "int", False, "Age of the client in years."),
    SourceColumn("marital", "marital", "category", False, "Marital status.", (UNKNOWN,)),
    SourceColumn("education", "education", "category", False, "Education level.", (UNKNOWN,)),
    SourceColumn("default", "credit_in_default", "bool", False, "Has credit in default.", (UNKNOWN,)),
    SourceColumn("housing", "housing_loan", "bool", False, "Has a housing loan.", (UNKNOWN,)),
    SourceColumn("loan", "personal_loan", "bool", False, "Has a personal loan.", (UNKNOWN,)),
    SourceColumn("month", "contact_month", "category", False, "Month of the last contact (source field)."),
    SourceColumn(
        "day_of_week", "contact_weekday", "category", False, "Weekday of the last contact (source field)."
    ),
    SourceColumn(
        "duration",
        "last_call_seconds",
        "int",
        True,
        "Duration of the last call in seconds; unknown before the call and leaks the outcome.",
    ),
    SourceColumn(
        "campaign", "campaign_contacts", "int", False, "Contacts in this campaign, including the last one."
    ),
    SourceColumn(
        "pdays",
        "days_since_previous_campaign",
        "int",
        False,
        "Days since the client was last contacted by a previous campaign; missing when never contacted.",
        (NEVER_CONTACTED_DAYS,),
    ),
    SourceColumn("previous", "previous_contacts", "int", False, "Contacts before this campaign."),
    SourceColumn(
        "poutcome",
        "previous_outcome",
        "category",
        False,
        "Outcome of the previous campaign; missing when there was none.",
        (NONEXISTENT,),
    ),
    SourceColumn(
        "emp.var.rate", "employment_variation_rate", "float", False, "Employment variation rate (quarterly)."
    ),
    SourceColumn("cons.price.idx", "consumer_price_index", "float", False, "Consumer price index (monthly)."),
    SourceColumn(
        "cons.conf.idx", "consumer_confidence_index", "float", False, "Consumer confidence index (monthly)."
    ),
    SourceColumn("euribor3m", "euribor_3m", "float", False, "Euribor 3-month rate (daily)."),
    SourceColumn("nr.employed", "employees", "float", False, "Number of employees in thousands (quarterly)."),
)
EXPECTED_COLUMNS: tuple[str, ...] = ("job", "contact", "y", *(column.header for column in ATTRIBUTE_COLUMNS))
CANONICAL_SOURCES: dict[str, str] = {
    "lead_id": "1-based data row number, zero-padded to 5 digits",
    "created_at": "month and day_of_week with the year and week rebuilt from row order (see timestamps)",
    "channel": "contact (cellular or telephone)",
    "industry": "job ('unknown' is missing); the client's occupation stands in for an industry",
}


@dataclass
class DateReconstruction:
    """Rebuilt contact dates and how many month runs needed the even-spread fallback."""

    dates: np.ndarray  # datetime64[D]
    month_runs: int
    evenly_spread_runs: int


def adapt(path: Path) -> AdaptedDataset:
    """Read bank-additional-full.csv at ``path`` and map it onto the canonical tables."""
    raw = read_text_table(path, separator=";", expected=EXPECTED_COLUMNS)
    rejects = RejectCollector(raw)
    counts: dict[str, int] = {}

    month = raw["month"].str.strip().str.lower()
    weekday = raw["day_of_week"].str.strip().str.lower()
    outcome = raw["y"].str.strip().str.lower()
    rejects.reject(~month.isin(MONTHS).to_numpy(), f"month is not one of {', '.join(MONTHS)}")
    rejects.reject(~weekday.isin(WEEKDAYS).to_numpy(), f"day_of_week is not one of {', '.join(WEEKDAYS)}")
    rejects.reject(~outcome.isin(["yes", "no"]).to_numpy(), "y is not yes or no")
    attributes, values = _parse_attributes(raw, rejects, counts)

    kept = rejects.accepted
    month_index = (
        month[kept].map({name: code for code, name in enumerate(MONTHS, start=1)}).to_numpy(np.int64)
    )
    weekday_index = weekday[kept].map({name: code for code, name in enumerate(WEEKDAYS)}).to_numpy(np.int64)
    reconstruction = reconstruct_contact_dates(month_index, weekday_index, FIRST_YEAR)
    counts["month_runs"] = reconstruction.month_runs
    counts["month_runs_spread_evenly"] = reconstruction.evenly_spread_runs
    created = contact_times(reconstruction.dates)

    rows = np.flatnonzero(kept) + 1
    industry, _ = to_missing(raw["job"], (UNKNOWN,))
    channel, _ = to_missing(raw["contact"])
    leads = pd.DataFrame(
        {
            "lead_id": [f"{row:05d}" for row in rows],
            "created_at": created,
            "channel": channel[kept].to_numpy(),
            "industry": industry[kept].to_numpy(),
        }
    ).astype({"lead_id": "str", "channel": "str", "industry": "str"})
    for attribute in attributes:
        leads[attribute.name] = values[attribute.name][kept].to_numpy()
    won = (outcome[kept] == "yes").to_numpy()
    counts["won"] = int(won.sum())
    counts["exact_duplicate_rows_kept"] = int(raw[kept].duplicated().sum())

    first, last = reconstruction.dates.min(), reconstruction.dates.max()
    tables = canonical_tables(
        {"leads": leads, "stage_changes": outcome_stage_changes(leads, won, OUTCOME_OFFSET)}, attributes
    )
    return AdaptedDataset(
        tables=tables,
        entity_table="leads",
        rows_read=len(raw),
        rejects=rejects.frame(),
        timestamps=(
            f"The file has month and day_of_week but no year or day of month. Walking the rows in order, the "
            f"year starts at {FIRST_YEAR} and goes up by one whenever the month number decreases. Within a "
            "month, a new week starts whenever the weekday decreases, and each week is placed on the "
            "earliest calendar week that keeps every row of the month inside the month (a month that "
            "fits no such alignment is spread evenly over its days). Calls of one day get times spread "
            f"evenly over 09:00-18:00 {LOCAL_TIMEZONE} in row order. Rebuilt dates run from {first} to "
            f"{last}. The won or lost stage is at created_at + {OUTCOME_OFFSET.days} day."
        ),
        mapping=CANONICAL_SOURCES,
        counts=counts,
        notes=[
            "duration (last_call_seconds) is post_contact: unknown before the call; duration=0 means y=no.",
            "pdays=999 and poutcome='nonexistent' (never contacted before) and 'unknown' values are missing.",
            "Exact duplicate rows are kept: each row is a separate client contact.",
            "activities, orders and reps are empty: the file has no such records.",
        ],
    )


def reconstruct_contact_dates(month: np.ndarray, weekday: np.ndarray, first_year: int) -> DateReconstruction:
    """Rebuild calendar dates from a date-ordered sequence of (month 1-12, weekday 0-4) pairs.

    The year goes up whenever the month number decreases. Inside each run of equal months, a
    decrease of the weekday starts a new week. Each run's weeks map onto consecutive Monday-
    based calendar weeks, shifted to the earliest alignment that keeps every date inside
    the month. A week in which all calls fall after the previous week's last weekday cannot
    be distinguished from that week, so dates may sit a week early. Runs with no valid
    alignment are spread evenly over the month instead and counted.
    """
    count = len(month)
    dates = np.empty(count, dtype="datetime64[D]")
    if count == 0:
        return DateReconstruction(dates, 0, 0)
    new_run = np.ones(count, dtype=bool)
    new_run[1:] = month[1:] != month[:-1]
    year = first_year + np.cumsum(np.concatenate([[0], month[1:] < month[:-1]]))
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], count)
    fallback = 0
    for start, end in zip(starts, ends, strict=True):
        run_dates = _place_month_run(int(year[start]), int(month[start]), weekday[start:end])
        if run_dates is None:
            fallback += 1
            run_dates = _spread_over_month(int(year[start]), int(month[start]), end - start)
        dates[start:end] = run_dates
    return DateReconstruction(dates, len(starts), fallback)


def _place_month_run(year: int, month: int, weekday: np.ndarray) -> np.ndarray | None:
    first_day = dt.date(year, month, 1)
    last_day = _last_day(year, month)
    week = np.concatenate([[0], np.cumsum(weekday[1:] < weekday[:-1])])
    first_monday = np.datetime64(first_day - dt.timedelta(days=first_day.weekday()), "D")
    low, high = np.datetime64(first_day, "D"), np.datetime64(last_day, "D")
    for offset in range(6):
        candidate = first_monday + (7 * (offset + week) + weekday).astype("timedelta64[D]")
        if candidate.min() >= low and candidate.max() <= high:
            return candidate
    return None


def _spread_over_month(year: int, month: int, count: int) -> np.ndarray:
    first_day = np.datetime64(dt.date(year, month, 1), "D")
    days = _last_day(year, month).day
    offsets = (np.arange(count) * days) // count
    result: np.ndarray = first_day + offsets.astype("timedelta64[D]")
    return result


def _last_day(year: int, month: int) -> dt.date:
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


def contact_times(dates: np.ndarray) -> pd.DatetimeIndex:
    """Return UTC times for dated rows: each day's rows spread evenly over the calling day."""
    days = pd.Series(dates)
    position = days.groupby(days, sort=False).cumcount().to_numpy()
    per_day = days.map(days.value_counts()).to_numpy()
    fraction = (position + 0.5) / per_day
    local = pd.DatetimeIndex(dates.astype("datetime64[us]")) + DAY_START + DAY_LENGTH * fraction
    return local.tz_localize(LOCAL_TIMEZONE).tz_convert("UTC").as_unit("us")


def _parse_attributes(
    raw: pd.DataFrame, rejects: RejectCollector, counts: dict[str, int]
) -> tuple[list[CustomAttribute], dict[str, pd.Series]]:
    attributes: list[CustomAttribute] = []
    values: dict[str, pd.Series] = {}
    for column in ATTRIBUTE_COLUMNS:
        text, sentinels = to_missing(raw[column.header], column.missing)
        if sentinels:
            counts[f"sentinels_to_missing:{column.header}"] = sentinels
        if column.type == "bool":
            parsed, invalid = parse_flags(text.fillna(""))
            rejects.reject(invalid, f"{column.header} is not yes, no or unknown")
        elif column.type == "float":
            parsed, invalid = parse_numbers(text.fillna(""))
            rejects.reject(invalid, f"{column.header} is not a number")
        elif column.type == "int":
            parsed, invalid = parse_whole_numbers(text.fillna(""))
            rejects.reject(invalid, f"{column.header} is not a whole number")
        else:
            parsed = text
        values[column.name] = parsed
        attributes.append(CustomAttribute(column.name, column.type, column.post_contact, column.description))
    return attributes, values
