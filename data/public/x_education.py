"""X Education leads (Leads.csv of the upGrad lead-scoring case study) onto the canonical model.

One row is one lead. The file has no timestamp of any kind, so ``created_at`` is a proxy:
leads are ordered by ``Lead Number`` (a sequential id) and spaced one hour apart from a fixed
start. Time-of-day, weekday and seasonality features are meaningless on this dataset; only
the order is informative, and even that is unverified.

``Converted`` becomes stage changes: ``lead`` at ``created_at`` and then ``won`` (Converted=1)
or ``lost`` (Converted=0) a fixed ``OUTCOME_OFFSET`` later. The file is a closed snapshot, so
a lead that did not convert is recorded as lost, and both outcomes sit at the same offset so
their timing carries no information about the label.
"""

from __future__ import annotations

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
from data.public.values import first_position_of, parse_flags, parse_numbers, parse_whole_numbers, to_missing
from data.schema import LEADS

logger = logging.getLogger(__name__)

NAME = names.X_EDUCATION
DEFAULT_FILE = "Leads.csv"
CREATED_START = pd.Timestamp("2017-01-01 00:00", tz="Asia/Kolkata")  # X Education is an Indian company
CREATED_SPACING = pd.Timedelta(hours=1)
OUTCOME_OFFSET = pd.Timedelta(days=14)
SELECT = "Select"  # the web form's default option, meaning "not answered"


@dataclass(frozen=True)
class SourceColumn:
    """A column of Leads.csv kept as a custom lead attribute."""

    header: str
    name: str
    type: AttributeType
    post_contact: bool
    description: str
    placeholders: tuple[str, ...] = ()


# Columns filled in by the sales team after contact, or assigned by the company, are
# post_contact: their conversion rates (Tags "Closed by Horizzon" 99 %, Lead Profile
# "Potential Lead" 79 % against "Student of SomeSchool" 4 %) show they encode the outcome.
# The web-engagement counts accumulate after intake, but lead-scoring practice treats them
# as intake-time web behaviour, so they stay available at intake.
ATTRIBUTE_COLUMNS: tuple[SourceColumn, ...] = (
    SourceColumn("Lead Number", "lead_number", "int", False, "Sequential lead number; orders created_at."),
    SourceColumn("Do Not Email", "do_not_email", "bool", False, "The lead opted out of e-mail."),
    SourceColumn("Do Not Call", "do_not_call", "bool", False, "The lead opted out of calls."),
    SourceColumn("TotalVisits", "total_visits", "float", False, "Website visits (web behaviour)."),
    SourceColumn(
        "Total Time Spent on Website",
        "time_on_website",
        "float",
        False,
        "Total time on the website (web behaviour).",
    ),
    SourceColumn(
        "Page Views Per Visit", "page_views_per_visit", "float", False, "Pages per visit (web behaviour)."
    ),
    SourceColumn("Last Activity", "last_activity", "category", True, "Last activity logged for the lead."),
    SourceColumn("Country", "country", "category", False, "Country of the lead.", ("unknown",)),
    SourceColumn(
        "How did you hear about X Education",
        "heard_about_from",
        "category",
        False,
        "Stated referral source.",
        (SELECT,),
    ),
    SourceColumn("What is your current occupation", "occupation", "category", False, "Stated occupation."),
    SourceColumn(
        "What matters most to you in choosing a course",
        "course_priority",
        "category",
        False,
        "Stated main motive.",
    ),
    SourceColumn("Search", "saw_search_ad", "bool", False, "Saw the ad in search."),
    SourceColumn("Magazine", "saw_magazine_ad", "bool", False, "Saw the ad in a magazine."),
    SourceColumn("Newspaper Article", "saw_newspaper_article", "bool", False, "Saw a newspaper article."),
    SourceColumn("X Education Forums", "saw_forum_post", "bool", False, "Saw the ad in X Education forums."),
    SourceColumn("Newspaper", "saw_newspaper_ad", "bool", False, "Saw the ad in a newspaper."),
    SourceColumn("Digital Advertisement", "saw_digital_ad", "bool", False, "Saw a digital advertisement."),
    SourceColumn(
        "Through Recommendations", "came_by_recommendation", "bool", False, "Came through a recommendation."
    ),
    SourceColumn(
        "Receive More Updates About Our Courses",
        "wants_course_updates",
        "bool",
        False,
        "Asked for course updates.",
    ),
    SourceColumn("Tags", "tags", "category", True, "Status tag set by the sales team."),
    SourceColumn(
        "Lead Quality", "lead_quality", "category", True, "Quality judged by the assigned employee."
    ),
    SourceColumn(
        "Update me on Supply Chain Content",
        "wants_supply_chain_updates",
        "bool",
        False,
        "Asked for supply-chain content.",
    ),
    SourceColumn(
        "Get updates on DM Content", "wants_dm_updates", "bool", False, "Asked for digital-marketing content."
    ),
    SourceColumn(
        "Lead Profile", "lead_profile", "category", True, "Lead level assigned by the company.", (SELECT,)
    ),
    SourceColumn(
        "Asymmetrique Activity Index",
        "asymmetrique_activity_index",
        "category",
        True,
        "Activity index assigned by the company.",
    ),
    SourceColumn(
        "Asymmetrique Profile Index",
        "asymmetrique_profile_index",
        "category",
        True,
        "Profile index assigned by the company.",
    ),
    SourceColumn(
        "Asymmetrique Activity Score",
        "asymmetrique_activity_score",
        "float",
        True,
        "Activity score assigned by the company.",
    ),
    SourceColumn(
        "Asymmetrique Profile Score",
        "asymmetrique_profile_score",
        "float",
        True,
        "Profile score assigned by the company.",
    ),
    SourceColumn(
        "I agree to pay the amount through cheque",
        "pays_by_cheque",
        "bool",
        False,
        "Agreed to pay by cheque.",
    ),
    SourceColumn(
        "A free copy of Mastering The Interview",
        "wants_free_interview_book",
        "bool",
        False,
        "Asked for the free book.",
    ),
    SourceColumn(
        "Last Notable Activity", "last_notable_activity", "category", True, "Last notable activity logged."
    ),
)
CANONICAL_SOURCES: dict[str, str] = {
    "lead_id": "Prospect ID",
    "created_at": "rank of Lead Number (proxy; see timestamps)",
    "channel": "Lead Source (spellings differing only in case merged)",
    "campaign": "Lead Origin",
    "region": "City ('Select' is missing), else Country",
    "industry": "Specialization ('Select' is missing)",
}
EXPECTED_COLUMNS: tuple[str, ...] = (
    "Prospect ID",
    "Converted",
    "Lead Origin",
    "Lead Source",
    "Specialization",
    "City",
    *(column.header for column in ATTRIBUTE_COLUMNS),
)


def adapt(path: Path) -> AdaptedDataset:
    """Read Leads.csv at ``path`` and map it onto the canonical tables."""
    raw = read_text_table(path, separator=",", expected=EXPECTED_COLUMNS)
    rejects = RejectCollector(raw)
    counts: dict[str, int] = {}

    lead_id, _ = to_missing(raw["Prospect ID"])
    rejects.reject(lead_id.isna(), "Prospect ID is missing")
    _reject_duplicates(rejects, lead_id)
    converted, bad_converted = parse_whole_numbers(raw["Converted"])
    rejects.reject(
        bad_converted | ~converted.isin([0, 1]).fillna(False).to_numpy(), "Converted is not 0 or 1"
    )
    lead_number, bad_number = parse_whole_numbers(raw["Lead Number"])
    rejects.reject(bad_number | lead_number.isna().to_numpy(), "Lead Number is missing or not a whole number")

    attributes, attribute_values = _parse_attributes(raw, rejects, counts)
    unknown = [column for column in raw.columns if column not in EXPECTED_COLUMNS]
    taken = {*LEADS.column_names, *(attribute.name for attribute in attributes)}
    for column in unknown:
        name = _snake_case(column)
        name = f"extra_{name}" if name in taken else name
        taken.add(name)
        logger.warning("x-education: unexpected column %r kept as text attribute %r", column, name)
        attributes.append(CustomAttribute(name, "text", False, f"Unexpected source column {column!r}."))
        attribute_values[name], _ = to_missing(raw[column])

    kept = rejects.accepted
    leads = _lead_frame(raw, kept, lead_id, lead_number, counts)
    for attribute in attributes:
        leads[attribute.name] = attribute_values[attribute.name][kept].to_numpy()
    stage_changes = outcome_stage_changes(leads, (converted[kept] == 1).to_numpy(), OUTCOME_OFFSET)

    counts["converted"] = int((converted[kept] == 1).sum())
    tables = canonical_tables({"leads": leads, "stage_changes": stage_changes}, attributes)
    return AdaptedDataset(
        tables=tables,
        entity_table="leads",
        rows_read=len(raw),
        rejects=rejects.frame(),
        timestamps=(
            f"Leads.csv has no timestamps. created_at is a proxy: leads sorted by Lead Number (ties in "
            f"file order) get {CREATED_START.isoformat()} plus {CREATED_SPACING} times their rank. The "
            f"terminal stage (won for Converted=1, lost for Converted=0) is at created_at + "
            f"{OUTCOME_OFFSET.days} days."
        ),
        mapping=CANONICAL_SOURCES,
        counts=counts,
        notes=[
            "Time-of-day, weekday and seasonality features are meaningless: created_at only keeps the order.",
            "Tags, Lead Quality, Lead Profile, Last Activity, Last Notable Activity and the Asymmetrique "
            "columns are post_contact attributes: they are set after contact and leak the outcome.",
            "activities, orders and reps are empty: the file has no such records.",
        ],
    )


def _reject_duplicates(rejects: RejectCollector, lead_id: pd.Series) -> None:
    first = first_position_of(lead_id)
    duplicated = lead_id.duplicated(keep="first").to_numpy() & lead_id.notna().to_numpy()
    rejects.reject(
        duplicated,
        lambda position: f"duplicate Prospect ID (first at row {first[lead_id.iloc[position]] + 1})",
    )


def _parse_attributes(
    raw: pd.DataFrame, rejects: RejectCollector, counts: dict[str, int]
) -> tuple[list[CustomAttribute], dict[str, pd.Series]]:
    attributes: list[CustomAttribute] = []
    values: dict[str, pd.Series] = {}
    for column in ATTRIBUTE_COLUMNS:
        series = raw[column.header]
        if column.type == "bool":
            parsed, invalid = parse_flags(series)
            rejects.reject(invalid, f"{column.header} is not Yes or No")
        elif column.type == "float":
            parsed, invalid = parse_numbers(series)
            rejects.reject(invalid, f"{column.header} is not a number")
        elif column.type == "int":
            parsed, invalid = parse_whole_numbers(series)
            rejects.reject(invalid, f"{column.header} is not a whole number")
        else:
            parsed, placeholders = to_missing(series, column.placeholders)
            if placeholders:
                counts[f"placeholders_to_missing:{column.header}"] = placeholders
        values[column.name] = parsed
        attributes.append(CustomAttribute(column.name, column.type, column.post_contact, column.description))
    return attributes, values


def _lead_frame(
    raw: pd.DataFrame, kept: np.ndarray, lead_id: pd.Series, lead_number: pd.Series, counts: dict[str, int]
) -> pd.DataFrame:
    rank = np.empty(int(kept.sum()), dtype=np.int64)
    rank[np.argsort(lead_number[kept].to_numpy(dtype=np.int64), kind="stable")] = np.arange(len(rank))
    created = CREATED_START + pd.to_timedelta(rank, unit="h") * (CREATED_SPACING / pd.Timedelta(hours=1))

    specialization, select_specialization = to_missing(raw["Specialization"], (SELECT,))
    city, select_city = to_missing(raw["City"], (SELECT,))
    country, _ = to_missing(raw["Country"], ("unknown",))
    counts["placeholders_to_missing:Specialization"] = select_specialization
    counts["placeholders_to_missing:City"] = select_city
    region = city.fillna(country)
    counts["region_from_country"] = int((city.isna() & country.notna())[kept].sum())
    channel, merged = _merge_case_variants(to_missing(raw["Lead Source"])[0][kept])
    counts["lead_source_case_merged"] = merged
    campaign, _ = to_missing(raw["Lead Origin"])

    return pd.DataFrame(
        {
            "lead_id": lead_id[kept].to_numpy(),
            "created_at": pd.DatetimeIndex(created).tz_convert("UTC"),
            "channel": channel.to_numpy(),
            "campaign": campaign[kept].to_numpy(),
            "region": region[kept].to_numpy(),
            "industry": specialization[kept].to_numpy(),
        }
    ).astype({"lead_id": "str", "channel": "str", "campaign": "str", "region": "str", "industry": "str"})


def _merge_case_variants(values: pd.Series) -> tuple[pd.Series, int]:
    """Return values with spellings that differ only in case replaced by the most frequent one.

    'google' (5 rows) becomes 'Google' (2,868 rows); ties keep the first spelling seen.
    """
    present = values.dropna()
    counts = present.value_counts(sort=False)
    canonical: dict[str, str] = {}
    for spelling, count in counts.items():
        key = str(spelling).lower()
        current = canonical.get(key)
        if current is None or count > counts[current]:
            canonical[key] = str(spelling)
    mapped = values.map(lambda value: canonical[value.lower()] if isinstance(value, str) else value)
    changed = int((values.notna() & (mapped != values)).sum())
    return mapped, changed


def _snake_case(header: str) -> str:
    words = "".join(character if character.isalnum() else " " for character in header.lower()).split()
    return "_".join(words) or "column"
