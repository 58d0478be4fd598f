"""The public-dataset adapters on the real files: documented counts, no lost rows, valid tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from data.folder import CanonicalTables, read_data_dir
from data.public import PUBLIC_DATASETS, adapt_public_dataset
from data.public.source import REJECTS_FILE, SOURCE_FILE
from data.validate import validate_tables

FOLDERS = {"x-education": "x-education-leads", "bank-marketing": "uci-bank-marketing", "cdnow": "cdnow"}
# sha256 of each file as recorded in the datasets' SOURCE.md
SHA256 = {
    "x-education": "d8818a52ac4ea59da1574d6d2ab622623245b1b5c94bac337151c6225cbaae0d",
    "bank-marketing": "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8",
    "cdnow": "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef",
}


@dataclass
class Adapted:
    """An adapted data folder, its source record and its tables read back."""

    folder: Path
    record: dict[str, object]
    tables: CanonicalTables


def _adapt(name: str, shared_datasets: Path, out: Path) -> Adapted:
    record = adapt_public_dataset(name, shared_datasets / FOLDERS[name], out)
    return Adapted(out, record, read_data_dir(out))


@pytest.fixture(scope="module")
def x_education(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Adapted:
    return _adapt("x-education", shared_datasets, tmp_path_factory.mktemp("public") / "x")


@pytest.fixture(scope="module")
def bank(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Adapted:
    return _adapt("bank-marketing", shared_datasets, tmp_path_factory.mktemp("public") / "bank")


@pytest.fixture(scope="module")
def cdnow(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Adapted:
    return _adapt("cdnow", shared_datasets, tmp_path_factory.mktemp("public") / "cdnow")


def _check_source_record(record: dict[str, object], name: str, rows: int) -> None:
    assert record["name"] == name
    assert record["sha256"] == SHA256[name]
    assert record["rows_read"] == rows
    assert record["rows_accepted"] == rows
    assert record["rows_rejected"] == 0
    assert record["rows_read"] == record["rows_accepted"] + record["rows_rejected"]  # type: ignore[operator]
    assert "timestamps" in record
    assert str(record["file"]).endswith(PUBLIC_DATASETS[name].default_file)


def _check_folder(folder: Path, record: dict[str, object]) -> None:
    on_disk = json.loads((folder / SOURCE_FILE).read_text("utf-8"))
    assert on_disk == json.loads(json.dumps(record))
    rejects = pd.read_csv(folder / REJECTS_FILE)
    assert list(rejects.columns) == ["source_row", "reason", "record"]
    assert len(rejects) == record["rows_rejected"]


def test_x_education_counts(x_education: Adapted) -> None:
    record, tables = x_education.record, x_education.tables
    _check_source_record(record, "x-education", 9240)
    _check_folder(x_education.folder, record)
    assert len(tables.leads) == 9240
    assert tables.leads["lead_id"].is_unique
    won = tables.stage_changes.query("stage == 'won'")
    lost = tables.stage_changes.query("stage == 'lost'")
    assert len(won) == 3561
    assert len(lost) == 9240 - 3561
    assert tables.activities.empty
    assert tables.orders.empty
    assert all(report.ok for report in validate_tables(tables).values())


def test_x_education_mapping(x_education: Adapted) -> None:
    record, tables = x_education.record, x_education.tables
    leads = tables.leads
    assert "Select" not in set(leads["industry"].dropna())
    assert "Select" not in set(leads["region"].dropna())
    assert "google" not in set(leads["channel"].dropna())
    assert (leads["channel"] == "Google").sum() == 2873
    assert set(leads["campaign"].dropna()) == {
        "API",
        "Landing Page Submission",
        "Lead Add Form",
        "Lead Import",
        "Quick Add Form",
    }

    post_contact = {attribute.name for attribute in tables.attributes if attribute.post_contact}
    assert post_contact == {
        "tags",
        "lead_quality",
        "lead_profile",
        "last_activity",
        "last_notable_activity",
        "asymmetrique_activity_index",
        "asymmetrique_profile_index",
        "asymmetrique_activity_score",
        "asymmetrique_profile_score",
    }
    assert record["post_contact_attributes"] == [a.name for a in tables.attributes if a.post_contact]

    intake = {attribute.name for attribute in tables.attributes if not attribute.post_contact}
    assert {"total_visits", "time_on_website", "page_views_per_visit", "lead_number"} <= intake
    assert len(tables.attributes) == 31
    counts = record["counts"]
    assert isinstance(counts, dict)
    assert counts["placeholders_to_missing:Specialization"] == 1942
    assert counts["placeholders_to_missing:City"] == 2249


def test_x_education_created_at_follows_lead_number(x_education: Adapted) -> None:
    tables = x_education.tables
    ordered = tables.leads.sort_values("lead_number")
    assert ordered["created_at"].is_monotonic_increasing
    gaps = ordered["created_at"].diff().dropna().unique()
    assert list(gaps) == [pd.Timedelta(hours=1)]
    stages = tables.stage_changes.merge(tables.leads[["lead_id", "created_at"]], on="lead_id")
    terminal = stages[stages["stage"] != "lead"]
    assert ((terminal["changed_at"] - terminal["created_at"]) == pd.Timedelta(days=14)).all()


def test_bank_counts(bank: Adapted) -> None:
    record, tables = bank.record, bank.tables
    _check_source_record(record, "bank-marketing", 41188)
    _check_folder(bank.folder, record)
    assert len(tables.leads) == 41188
    assert len(tables.stage_changes.query("stage == 'won'")) == 4640
    assert all(report.ok for report in validate_tables(tables).values())
    assert "CC BY 4.0" in str(record["licence"])
    assert "Moro" in str(record["citation"])


def test_bank_dates_end_in_november_2010(bank: Adapted) -> None:
    record, tables = bank.record, bank.tables
    created = tables.leads["created_at"]
    local = created.dt.tz_convert("Europe/Lisbon")
    assert created.is_monotonic_increasing
    assert local.min().strftime("%Y-%m") == "2008-05"
    assert local.max().strftime("%Y-%m") == "2010-11"
    months = local.dt.strftime("%b").str.lower()
    assert (months == tables.leads["contact_month"]).all()
    weekdays = local.dt.strftime("%a").str.lower()
    assert (weekdays == tables.leads["contact_weekday"]).all()
    assert local.dt.hour.between(9, 17).all()
    counts = record["counts"]
    assert isinstance(counts, dict)
    assert counts["month_runs"] == 26
    assert counts["month_runs_spread_evenly"] == 0


def test_bank_sentinels_and_post_contact(bank: Adapted) -> None:
    tables = bank.tables
    leads = tables.leads
    attributes = {attribute.name: attribute for attribute in tables.attributes}
    assert attributes["last_call_seconds"].post_contact
    assert [name for name, attribute in attributes.items() if attribute.post_contact] == ["last_call_seconds"]
    assert leads["days_since_previous_campaign"].isna().sum() == 39673
    assert leads["previous_outcome"].isna().sum() == 35563
    assert leads["credit_in_default"].isna().sum() == 8597
    assert leads["industry"].isna().sum() == 330
    assert "unknown" not in set(leads["education"].dropna())
    assert set(leads["channel"]) == {"cellular", "telephone"}
    assert str(leads["employment_variation_rate"].dtype) == "float64"


def test_cdnow_counts(cdnow: Adapted) -> None:
    record, tables = cdnow.record, cdnow.tables
    _check_source_record(record, "cdnow", 69659)
    _check_folder(cdnow.folder, record)
    assert len(tables.orders) == 69659
    assert len(tables.leads) == 23570
    assert tables.orders["order_id"].is_unique
    counts = record["counts"]
    assert isinstance(counts, dict)
    assert counts["customers"] == 23570
    assert counts["zero_value_purchases"] == 80
    assert counts["exact_duplicate_lines"] == 255
    assert counts["header_lines_skipped"] == 1
    assert (tables.orders["amount"] == 0).sum() == 80
    assert round(tables.orders["amount"].sum(), 2) == 2500315.63
    assert all(report.ok for report in validate_tables(tables).values())


def test_cdnow_customers_and_dates(cdnow: Adapted) -> None:
    tables = cdnow.tables
    orders = tables.orders
    assert orders["customer_id"].str.fullmatch(r"\d{5}").all()
    assert (orders["currency"] == "USD").all()
    local = orders["ordered_at"].dt.tz_convert("America/New_York")
    assert (local.dt.hour == 0).all()
    assert local.min().strftime("%Y-%m-%d") == "1997-01-01"
    assert local.max().strftime("%Y-%m-%d") == "1998-06-30"
    first = orders.groupby("customer_id")["ordered_at"].min()
    leads = tables.leads.set_index("customer_id")
    assert (leads.loc[first.index, "created_at"] == first).all()
    assert (tables.leads["lead_id"] == tables.leads["customer_id"]).all()
    leads_local = tables.leads["created_at"].dt.tz_convert("America/New_York")
    assert leads_local.max() < pd.Timestamp("1997-04-01", tz="America/New_York")
