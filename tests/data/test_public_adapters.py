"""The public-dataset adapters on small hand-built files: rejects, reconstruction, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import read_data_dir
from data.public import PUBLIC_DATASETS, adapt_public_dataset
from data.public.bank_marketing import EXPECTED_COLUMNS as BANK_COLUMNS
from data.public.bank_marketing import contact_times, reconstruct_contact_dates
from data.public.names import PUBLIC_DATASET_NAMES
from data.public.source import REJECTS_FILE, SOURCE_FILE
from data.public.x_education import EXPECTED_COLUMNS as X_COLUMNS
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, InputFileError


def _x_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(X_COLUMNS, "No")
    row.update(
        {
            "Prospect ID": "p-1",
            "Lead Number": "1000",
            "Converted": "0",
            "Lead Origin": "API",
            "Lead Source": "Google",
            "Specialization": "Finance Management",
            "City": "Mumbai",
            "Country": "India",
            "TotalVisits": "3",
            "Total Time Spent on Website": "120",
            "Page Views Per Visit": "1.5",
            "Last Activity": "Email Opened",
            "How did you hear about X Education": "Select",
            "What is your current occupation": "Student",
            "What matters most to you in choosing a course": "Better Career Prospects",
            "Tags": "Ringing",
            "Lead Quality": "",
            "Lead Profile": "Select",
            "Asymmetrique Activity Index": "02.Medium",
            "Asymmetrique Profile Index": "01.High",
            "Asymmetrique Activity Score": "14",
            "Asymmetrique Profile Score": "17",
            "Last Notable Activity": "Modified",
        }
    )
    row.update(values)
    return row


def _write_csv(path: Path, rows: list[dict[str, str]], separator: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=separator)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_x_education_rejects_with_reasons(tmp_path: Path) -> None:
    rows = [
        _x_row(**{"Prospect ID": "a", "Lead Number": "3", "Converted": "1", "Lead Source": "google"}),
        _x_row(**{"Prospect ID": "", "Lead Number": "4"}),
        _x_row(**{"Prospect ID": "a", "Lead Number": "5"}),
        _x_row(**{"Prospect ID": "c", "Lead Number": "6", "Converted": "2"}),
        _x_row(**{"Prospect ID": "d", "Lead Number": "7", "TotalVisits": "many"}),
        _x_row(**{"Prospect ID": "e", "Lead Number": "8", "Do Not Email": "Maybe"}),
        _x_row(**{"Prospect ID": "f", "Lead Number": "1", "City": "Select", "Country": "Singapore"}),
        _x_row(**{"Prospect ID": "g", "Lead Number": "x2"}),
    ]
    source = _write_csv(tmp_path / "Leads.csv", rows)
    record = adapt_public_dataset("x-education", source, tmp_path / "out")

    assert record["rows_read"] == 8
    assert record["rows_accepted"] == 2
    assert record["rows_rejected"] == 6
    rejects = pd.read_csv(tmp_path / "out" / REJECTS_FILE)
    reasons = dict(zip(rejects["source_row"], rejects["reason"], strict=True))
    assert reasons == {
        2: "Prospect ID is missing",
        3: "duplicate Prospect ID (first at row 1)",
        4: "Converted is not 0 or 1",
        5: "TotalVisits is not a number",
        6: "Do Not Email is not Yes or No",
        8: "Lead Number is missing or not a whole number",
    }
    assert json.loads(rejects.loc[rejects["source_row"] == 5, "record"].iloc[0])["TotalVisits"] == "many"

    tables = read_data_dir(tmp_path / "out")
    leads = tables.leads.set_index("lead_id")
    assert leads.loc["a", "channel"] == "google"  # no other spelling to merge with
    assert leads.loc["f", "region"] == "Singapore"
    assert leads.loc["f", "created_at"] < leads.loc["a", "created_at"]
    assert pd.isna(leads.loc["a", "heard_about_from"])
    assert pd.isna(leads.loc["a", "lead_profile"])
    stages = tables.stage_changes
    assert stages.query("lead_id == 'a'")["stage"].tolist() == ["lead", "won"]
    assert stages.query("lead_id == 'f'")["stage"].tolist() == ["lead", "lost"]


def test_x_education_merges_case_variants(tmp_path: Path) -> None:
    rows = [
        _x_row(**{"Prospect ID": f"p{number}", "Lead Number": str(number), "Lead Source": source})
        for number, source in enumerate(["Google", "Google", "google", "bing"])
    ]
    record = adapt_public_dataset("x-education", _write_csv(tmp_path / "Leads.csv", rows), tmp_path / "out")
    leads = read_data_dir(tmp_path / "out").leads
    assert leads["channel"].tolist() == ["Google", "Google", "Google", "bing"]
    assert record["counts"]["lead_source_case_merged"] == 1  # type: ignore[index]


def test_x_education_unexpected_column_kept(tmp_path: Path) -> None:
    rows = [_x_row(**{"Campaign Code": "Q3-A"})]
    adapt_public_dataset("x-education", _write_csv(tmp_path / "Leads.csv", rows), tmp_path / "out")
    tables = read_data_dir(tmp_path / "out")
    assert tables.leads["campaign_code"].tolist() == ["Q3-A"]
    assert any(
        attribute.name == "campaign_code" and attribute.type == "text" for attribute in tables.attributes
    )


def test_x_education_missing_column(tmp_path: Path) -> None:
    row = _x_row()
    del row["Converted"]
    with pytest.raises(InputFileError, match=r"lacks the column\(s\) \['Converted'\]; is it the right file"):
        adapt_public_dataset("x-education", _write_csv(tmp_path / "Leads.csv", [row]), tmp_path / "out")


def _bank_row(**values: str) -> dict[str, str]:
    row = {
        "age": "40",
        "job": "admin.",
        "marital": "married",
        "education": "university.degree",
        "default": "no",
        "housing": "unknown",
        "loan": "yes",
        "contact": "cellular",
        "month": "may",
        "day_of_week": "mon",
        "duration": "120",
        "campaign": "2",
        "pdays": "999",
        "previous": "0",
        "poutcome": "nonexistent",
        "emp.var.rate": "1.1",
        "cons.price.idx": "93.994",
        "cons.conf.idx": "-36.4",
        "euribor3m": "4.857",
        "nr.employed": "5191",
        "y": "no",
    }
    assert set(row) == set(BANK_COLUMNS)
    row.update(values)
    return row


def test_bank_rejects_and_dates(tmp_path: Path) -> None:
    rows = [
        _bank_row(day_of_week="mon", y="yes"),
        _bank_row(day_of_week="tue"),
        _bank_row(month="xyz"),
        _bank_row(day_of_week="mon", pdays="6", poutcome="success"),
        _bank_row(age="old"),
        _bank_row(month="jun", day_of_week="wed", y="maybe"),
        _bank_row(month="jun", day_of_week="wed"),
        _bank_row(month="mar", day_of_week="fri"),
    ]
    source = _write_csv(tmp_path / "bank-additional-full.csv", rows, separator=";")
    record = adapt_public_dataset("bank-marketing", source, tmp_path / "out")
    assert (record["rows_read"], record["rows_accepted"], record["rows_rejected"]) == (8, 5, 3)
    rejects = pd.read_csv(tmp_path / "out" / REJECTS_FILE)
    assert dict(zip(rejects["source_row"], rejects["reason"], strict=True)) == {
        3: "month is not one of jan, feb, mar, apr, may, jun, jul, aug, sep, oct, nov, dec",
        5: "age is not a whole number",
        6: "y is not yes or no",
    }

    leads = read_data_dir(tmp_path / "out").leads
    assert leads["lead_id"].tolist() == ["00001", "00002", "00004", "00007", "00008"]
    local = leads["created_at"].dt.tz_convert("Europe/Lisbon").dt.strftime("%Y-%m-%d %H:%M")
    # May 2008 starts on a Thursday, so the first Monday-to-Tuesday week is 5-6 May; the
    # weekday falling back to Monday starts the next week. June's Wednesday lands on 4 June.
    # March after June is a new year: Friday 6 March 2009.
    assert local.tolist() == [
        "2008-05-05 13:30",
        "2008-05-06 13:30",
        "2008-05-12 13:30",
        "2008-06-04 13:30",
        "2009-03-06 13:30",
    ]
    assert leads["days_since_previous_campaign"].tolist()[:3] == [pd.NA, pd.NA, 6]
    assert leads["previous_outcome"].isna().tolist()[:3] == [True, True, False]
    assert leads["housing_loan"].isna().all()
    assert leads["personal_loan"].all()


def test_reconstruction_rolls_years() -> None:
    month = np.array([11, 11, 12, 3, 3, 11])
    weekday = np.array([0, 4, 2, 1, 1, 3])
    result = reconstruct_contact_dates(month, weekday, 2008)
    assert result.month_runs == 4
    assert result.evenly_spread_runs == 0
    assert [str(day) for day in result.dates] == [
        "2008-11-03",
        "2008-11-07",
        "2008-12-03",
        "2009-03-03",
        "2009-03-03",
        "2009-11-05",
    ]


def test_reconstruction_falls_back_to_even_spread() -> None:
    weekday = np.array([4, 3, 2, 1, 0, 4, 3, 2])  # seven week breaks cannot fit in one month
    result = reconstruct_contact_dates(np.full(8, 2), weekday, 2009)
    assert result.evenly_spread_runs == 1
    assert str(result.dates[0]) == "2009-02-01"
    assert (np.diff(result.dates.astype(np.int64)) >= 0).all()
    assert str(result.dates[-1]) <= "2009-02-28"


def test_contact_times_spread_over_day() -> None:
    dates = np.array(["2009-07-01", "2009-07-01", "2009-07-02"], dtype="datetime64[D]")
    times = contact_times(dates).tz_convert("Europe/Lisbon").strftime("%Y-%m-%d %H:%M").tolist()
    assert times == ["2009-07-01 11:15", "2009-07-01 15:45", "2009-07-02 13:30"]


def test_cdnow_rejects_and_orders(tmp_path: Path) -> None:
    lines = [
        " customer_id  date number_of_cds  dollar_value",
        " 00001 19970101  1   11.77",
        " 00002 19970112  1   12.00",
        " 00001 19970101  1   11.77",
        " 00001 19970102  2    0.00",
        " 00003 19970101  1",
        " 0000x 19970101  1    3.00",
        " 00004 19971301  1    3.00",
        " 00005 19970105  1    abc",
        " 00006 19970105  1    2.00  extra",
        "",
    ]
    source = tmp_path / "CDNOW_master.txt"
    source.write_bytes("\r\n".join(lines).encode("ascii"))
    record = adapt_public_dataset("cdnow", tmp_path, tmp_path / "out")

    assert (record["rows_read"], record["rows_accepted"], record["rows_rejected"]) == (9, 4, 5)
    rejects = pd.read_csv(tmp_path / "out" / REJECTS_FILE, dtype={"record": "str"})
    assert dict(zip(rejects["source_row"], rejects["reason"], strict=True)) == {
        5: "line has fewer than 4 fields",
        6: "customer_id is not a string of digits",
        7: "date is not a valid YYYYMMDD date",
        8: "dollar_value is not a number",
        9: "line has more than 4 fields",
    }

    counts = record["counts"]
    assert counts == {  # type: ignore[comparison-overlap]
        "header_lines_skipped": 1,
        "customers": 2,
        "zero_value_purchases": 1,
        "same_day_repeat_lines": 1,
        "exact_duplicate_lines": 1,
    }

    tables = read_data_dir(tmp_path / "out")
    assert tables.orders["order_id"].tolist() == ["00001-001", "00002-001", "00001-002", "00001-003"]
    assert tables.orders["amount"].tolist() == [11.77, 12.0, 11.77, 0.0]
    leads = tables.leads.set_index("lead_id")
    assert leads.loc["00001", "created_at"] == pd.Timestamp("1997-01-01 05:00", tz="UTC")
    assert tables.stage_changes.query("lead_id == '00002'")["stage"].tolist() == ["lead", "won"]


def test_cdnow_without_header(tmp_path: Path) -> None:
    source = tmp_path / "CDNOW_master.txt"
    source.write_text(" 00007 19980630  3   35.50\n 00008 19970301  1   9.99\n", "ascii")
    record = adapt_public_dataset("cdnow", source, tmp_path / "out")
    assert record["rows_read"] == 2
    assert record["counts"]["header_lines_skipped"] == 0  # type: ignore[index]


def test_cdnow_rejects_unknown_header(tmp_path: Path) -> None:
    source = tmp_path / "CDNOW_master.txt"
    source.write_text("id when cds value\n00001 19970101 1 1.00\n", "ascii")
    with pytest.raises(InputFileError, match="neither data nor the header customer_id date number_of_cds"):
        adapt_public_dataset("cdnow", source, tmp_path / "out")


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown public dataset 'titanic'; expected one of x-education"):
        adapt_public_dataset("titanic", tmp_path, tmp_path / "out")


def test_missing_file_in_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"Leads\.csv not found; pass --path"):
        adapt_public_dataset("x-education", tmp_path, tmp_path / "out")


def test_refuses_folder_with_tables(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "Leads.csv", [_x_row()])
    adapt_public_dataset("x-education", source, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"already contains leads\.parquet.*--overwrite"):
        adapt_public_dataset("x-education", source, tmp_path / "out")
    record = adapt_public_dataset("x-education", source, tmp_path / "out", overwrite=True)
    assert record["rows_accepted"] == 1


def test_registry_matches_names() -> None:
    assert tuple(PUBLIC_DATASETS) == PUBLIC_DATASET_NAMES
    for name, dataset in PUBLIC_DATASETS.items():
        assert dataset.name == name
        assert dataset.licence
        assert dataset.citation


def test_cli_public(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "Leads.csv", [_x_row(), _x_row(**{"Prospect ID": ""})])
    runner = CliRunner()
    result = runner.invoke(
        cli, ["data", "public", "x-education", "--path", str(source), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "x-education: 2 rows read, 1 accepted, 1 rejected" in result.output
    assert json.loads((tmp_path / "o" / SOURCE_FILE).read_text("utf-8"))["rows_rejected"] == 1

    again = runner.invoke(
        cli, ["data", "public", "x-education", "--path", str(source), "--out", str(tmp_path / "o")]
    )
    assert again.exit_code == 2
    assert "already contains" in again.output

    unknown = runner.invoke(
        cli, ["data", "public", "titanic", "--path", str(source), "--out", str(tmp_path / "p")]
    )
    assert unknown.exit_code == 2
    assert "'titanic' is not one of 'x-education', 'bank-marketing', 'cdnow'" in unknown.output


def test_x_education_extra_column_renamed(tmp_path: Path) -> None:
    rows = [_x_row(Region="West", Tags2="x")]
    adapt_public_dataset("x-education", _write_csv(tmp_path / "Leads.csv", rows), tmp_path / "out")
    tables = read_data_dir(tmp_path / "out")
    assert tables.leads["extra_region"].tolist() == ["West"]
    assert tables.leads["region"].tolist() == ["Mumbai"]
    assert tables.leads["tags2"].tolist() == ["x"]
