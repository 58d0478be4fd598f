"""import_file end to end on tiny hand-made CRM exports."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.importer import ImportSummary, import_file
from data.mapping import parse_mapping
from data.validate import empty_table, validate_table
from leadscore.errors import ConfigError, InputFileError, SchemaError

if TYPE_CHECKING:
    from tests.data.conftest import CrmFiles


def rejects(out: Path, table: str) -> list[dict[str, str]]:
    """Return the rows of TABLE.rejects.csv, checking that it starts with a UTF-8 BOM."""
    raw = (out / f"{table}.rejects.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


def assert_counts_add_up(summary: ImportSummary, out: Path) -> None:
    assert summary.read == summary.accepted + summary.rejected
    rejected_rows = {
        row["row"] for row in rejects(out, summary.table) if not row["source"].startswith("existing")
    }
    assert len(rejected_rows) == summary.rejected


def assert_storage_dtypes(out: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(out / f"{table}.parquet")
    expected = empty_table(table).dtypes.astype(str).to_dict()
    actual = {column: str(dtype) for column, dtype in frame.dtypes.items() if column in expected}
    assert actual == expected
    return frame


LEADS_GB = """线索ID,创建时间,来源渠道,所属区域,预算,客户名称
00123,2024/3/5 14:02,百度,华东,"¥1,234.50",上海某某科技
1234567890123456789,2024-03-05T14:02:00+08:00,微信,华南,N/A,
L-7,2024年3月5日 14:02,转介绍,华北,1.5万,北京某某
"""


def test_gb18030_with_chinese_headers(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", LEADS_GB, "gb18030"), "leads", out)
    assert summary.encoding == "gb18030"
    assert (summary.read, summary.accepted, summary.rejected) == (3, 3, 0)
    frame = assert_storage_dtypes(out, "leads")
    assert frame["lead_id"].tolist() == ["00123", "1234567890123456789", "L-7"]
    assert frame["channel"].tolist() == ["百度", "微信", "转介绍"]
    assert frame["declared_budget"].tolist()[0] == 1234.5
    assert pd.isna(frame["declared_budget"].tolist()[1])
    assert frame["declared_budget"].tolist()[2] == 15000.0
    assert (frame["created_at"] == pd.Timestamp("2024-03-05 06:02", tz="UTC")).all()
    assert summary.placeholders == {"declared_budget": 1}
    assert summary.coercions["created_at"]["assumed Asia/Shanghai"] == 2
    assert validate_table("leads", frame).ok
    assert_counts_add_up(summary, out)


def test_utf8_bom_header(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA1,2024-03-05\n", "utf-8-sig")
    summary = import_file(path, "leads", tmp_path / "out")
    assert summary.encoding == "utf-8-sig"
    assert summary.accepted == 1
    assert summary.ignored_columns == []


def test_undecodable_file_names_offset(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n")
    path.write_bytes(path.read_bytes() + b"A1,2024\xff\xfe\n")
    with pytest.raises(InputFileError, match=r"byte offset 26 \(line 2\)"):
        import_file(path, "leads", tmp_path / "out")
    assert not (tmp_path / "out" / "leads.parquet").exists()


def test_mixed_date_formats(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "lead_id,created_at\n"
        "A1,2024-03-05 14:02\n"
        "A2,2024/3/5 14:02\n"
        "A3,2024年3月5日 14:02\n"
        "A4,2024-03-05T06:02:00Z\n"
        "A5,03/05/2024\n"
        "A6,25/03/2024\n"
        "A7,sometime\n"
    )
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert (summary.accepted, summary.rejected) == (5, 2)
    frame = pd.read_parquet(out / "leads.parquet")
    assert frame["lead_id"].tolist() == ["A1", "A2", "A3", "A4", "A6"]
    assert frame["created_at"].tolist()[:4] == [pd.Timestamp("2024-03-05 06:02", tz="UTC")] * 4
    reasons = {row["row"]: row for row in rejects(out, "leads")}
    assert reasons["5"]["value"] == "03/05/2024"
    assert reasons["5"]["reason"].startswith("ambiguous date '03/05/2024'")
    assert "not a recognized date" in reasons["7"]["reason"]
    assert_counts_add_up(summary, out)


def test_date_format_option_resolves_ambiguity(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA5,03/05/2024\n")
    out = tmp_path / "out"
    summary = import_file(path, "leads", out, date_formats=["%d/%m/%Y"], timezone="UTC")
    assert summary.accepted == 1
    assert pd.read_parquet(out / "leads.parquet")["created_at"].tolist() == [
        pd.Timestamp("2024-05-03", tz="UTC")
    ]


IDS_CSV = """lead_id,created_at,customer_id,owner_rep_id
00123,2024-03-05,,0007
1234567890123456789,2024-03-05,9876543210987654321,
,2024-03-05,00001,
0000000000000000001,2024-03-05,,
"""


def test_ids_survive_in_csv(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", IDS_CSV), "leads", out)
    frame = assert_storage_dtypes(out, "leads")
    assert frame["lead_id"].tolist() == ["00123", "1234567890123456789", "0000000000000000001"]
    assert frame["customer_id"].tolist()[1] == "9876543210987654321"
    assert frame["owner_rep_id"].tolist()[0] == "0007"
    assert summary.rejected == 1
    [reject] = rejects(out, "leads")
    assert (reject["row"], reject["column"], reject["reason"]) == (
        "3",
        "lead_id",
        "required value is missing",
    )


def test_ids_survive_in_xlsx(crm_files: CrmFiles, tmp_path: Path) -> None:
    rows = [
        ["线索ID", "创建时间", "客户ID"],
        ["00123", dt.datetime(2024, 3, 5, 14, 2), None],
        ["1234567890123456789", "2024-03-05 14:02", "9876543210987654321"],
        [None, 45356.5, "1"],
        [123, 45356.5, 456.0],
        [1.234567890123457e18, 45356.5, None],
    ]
    out = tmp_path / "out"
    summary = import_file(crm_files.xlsx("leads.xlsx", rows), "leads", out)
    frame = assert_storage_dtypes(out, "leads")
    assert frame["lead_id"].tolist() == ["00123", "1234567890123456789", "123"]
    assert frame["customer_id"].tolist()[1:] == ["9876543210987654321", "456"]
    assert frame["created_at"].tolist()[0] == pd.Timestamp("2024-03-05 06:02", tz="UTC")
    assert frame["created_at"].tolist()[2] == pd.Timestamp("2024-03-05 04:00", tz="UTC")
    reasons = {row["row"]: row["reason"] for row in rejects(out, "leads")}
    assert reasons["3"] == "required value is missing"
    assert "scientific notation" in reasons["5"]
    assert summary.coercions["created_at"]["Excel serial date"] == 3  # rejected rows count too
    assert_counts_add_up(summary, out)


def test_parquet_input(tmp_path: Path) -> None:
    source = tmp_path / "export.parquet"
    pd.DataFrame(
        {
            "Lead ID": pd.array([1234567890123456789, 42], dtype="Int64"),
            "Created At": pd.to_datetime(["2024-03-05 14:02", "2024-03-05 06:02"]).tz_localize(
                "Asia/Shanghai"
            ),
            "Source": ["百度", None],
        }
    ).to_parquet(source)
    out = tmp_path / "out"
    summary = import_file(source, "leads", out)
    assert summary.file_format == "parquet"
    frame = assert_storage_dtypes(out, "leads")
    assert frame["lead_id"].tolist() == ["1234567890123456789", "42"]
    assert frame["created_at"].tolist() == [
        pd.Timestamp("2024-03-05 06:02", tz="UTC"),
        pd.Timestamp("2024-03-04 22:02", tz="UTC"),
    ]
    assert summary.coercions == {}


def test_parquet_naive_timestamps_get_timezone(tmp_path: Path) -> None:
    source = tmp_path / "export.parquet"
    pd.DataFrame({"lead_id": ["A1"], "created_at": pd.to_datetime(["2024-03-05 14:02"])}).to_parquet(source)
    out = tmp_path / "out"
    summary = import_file(source, "leads", out)
    assert pd.read_parquet(out / "leads.parquet")["created_at"].tolist() == [
        pd.Timestamp("2024-03-05 06:02", tz="UTC")
    ]
    assert summary.coercions["created_at"]["assumed Asia/Shanghai"] == 1


def test_duplicates_from_two_exports(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = crm_files.csv(
        "crm.csv",
        "线索ID,创建时间,来源渠道,所属区域\nL1,2024-03-05 10:00,百度,\nL2,2024-03-06 10:00,微信,华东\n"
        "L2,2024-03-06 10:00,微信,华东\n",
    )
    second = crm_files.csv(
        "forms.csv",
        "lead_id,created_at,channel,region,industry\nL1,2024-03-01 09:00,表单,华南,制造\n"
        "L2,2024-03-06 10:00,微信,华东,\nL3,2024-03-07 10:00,表单,华北,\n",
    )

    summary_one = import_file(first, "leads", out)
    assert (summary_one.read, summary_one.accepted, summary_one.rejected) == (3, 3, 0)
    assert summary_one.duplicates_collapsed == 1
    assert summary_one.rows_written == 2

    summary_two = import_file(second, "leads", out)
    assert summary_two.existing_rows == 2
    assert (summary_two.read, summary_two.accepted, summary_two.rejected) == (3, 3, 0)
    assert summary_two.duplicates_collapsed == 1
    assert summary_two.existing_replaced == 1
    assert summary_two.rows_written == 3

    frame = pd.read_parquet(out / "leads.parquet").set_index("lead_id")
    assert frame.loc["L1", "created_at"] == pd.Timestamp("2024-03-01 01:00", tz="UTC")
    assert frame.loc["L1", "channel"] == "表单"
    assert frame.loc["L1", "industry"] == "制造"
    [replaced] = rejects(out, "leads")
    assert replaced["source"] == "existing leads.parquet"
    assert replaced["reason"].startswith("duplicate of lead_id L1 (merged): kept row 1")
    assert "channel='百度' (kept '表单')" in replaced["reason"]
    assert "merge policy" in summary_two.format()


def test_later_duplicate_is_rejected(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    text = "lead_id,created_at,channel\nL1,2024-03-01,百度\nL1,2024-03-09,微信\n"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert (summary.accepted, summary.rejected, summary.duplicates_merged) == (1, 1, 1)
    [reject] = rejects(out, "leads")
    assert reject["row"] == "2"
    assert reject["reason"].startswith("duplicate of lead_id L1 (merged)")
    assert_counts_add_up(summary, out)


def test_placeholder_names(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "工号,姓名,级别,容量,在岗,负责区域,擅长行业\n"
        "R1,张伟,资深,20,在岗,华东;华南,制造、零售\n"
        "R2,张经理,普通,10,是,华东,\n"
        "R3,N/A,新人,5,离职,,\n"
        'R4,王芳,regular,8,否,"华北,华中",\n'
    )
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("reps.csv", text), "reps", out)
    assert (summary.read, summary.accepted, summary.rejected) == (4, 2, 2)
    assert summary.placeholders == {"name": 2}
    frame = assert_storage_dtypes(out, "reps")
    assert frame["rep_id"].tolist() == ["R1", "R4"]
    assert frame["tier"].tolist() == ["senior", "regular"]
    assert frame["active"].tolist() == [True, False]
    assert [list(value) for value in frame["regions"]] == [["华东", "华南"], ["华北", "华中"]]
    assert [list(value) for value in frame["skills"]] == [["制造", "零售"], []]
    reasons = {row["row"]: row for row in rejects(out, "reps")}
    assert reasons["2"]["value"] == "张经理"
    assert reasons["2"]["reason"] == "required value is a placeholder ('张经理'), treated as missing"
    assert reasons["3"]["value"] == "N/A"
    assert_counts_add_up(summary, out)


def test_missing_required_column(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "线索ID,渠道\n1,百度\n")
    with pytest.raises(SchemaError) as raised:
        import_file(path, "leads", tmp_path / "out")
    message = str(raised.value)
    assert "created_at" in message
    assert "创建时间" in message
    assert "Created At" in message


MAPPING = {
    "placeholders": ["待跟进"],
    "tables": {
        "leads": {
            "columns": {"客户编码": "lead_id"},
            "attributes": [
                {"name": "budget_band", "type": "category", "source": "预算区间"},
                {"name": "visit_count", "type": "int", "post_contact": True, "source": "拜访次数"},
                {"name": "score_from_crm", "type": "float"},
            ],
        }
    },
}


def test_declared_and_undeclared_columns(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "客户编码,创建时间,预算区间,拜访次数,备注,手机号\n"
        "A1,2024-03-05,10-50万,3,老客户推荐,13800000000\n"
        "A2,2024-03-05,待跟进,,,\n"
    )
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out, mapping=parse_mapping(MAPPING))
    assert summary.ignored_columns == ["备注", "手机号"]
    assert [attribute.name for attribute in summary.attributes_kept] == ["budget_band", "visit_count"]
    assert summary.attributes_missing == ["score_from_crm"]
    assert summary.placeholders == {"budget_band": 1}
    frame = pd.read_parquet(out / "leads.parquet")
    assert "备注" not in frame.columns
    assert "手机号" not in frame.columns
    assert frame["budget_band"].tolist()[0] == "10-50万"
    assert str(frame["visit_count"].dtype) == "Int64"
    assert frame["visit_count"].tolist()[0] == 3
    declared = json.loads((out / "leads.attributes.json").read_text("utf-8"))
    assert declared == [
        {"name": "budget_band", "type": "category", "post_contact": False, "description": ""},
        {"name": "visit_count", "type": "int", "post_contact": True, "description": ""},
    ]
    text_summary = summary.format()
    assert "ignored columns:   备注, 手机号" in text_summary
    assert "visit_count (int, post-contact)" in text_summary


def test_conflicting_attribute_declaration(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = crm_files.csv("leads.csv", "客户编码,创建时间,预算区间\nA1,2024-03-05,1\n")
    import_file(path, "leads", out, mapping=parse_mapping(MAPPING))
    changed = {
        "tables": {
            "leads": {
                "columns": {"客户编码": "lead_id"},
                "attributes": [{"name": "budget_band", "type": "float", "source": "预算区间"}],
            }
        }
    }
    with pytest.raises(ConfigError, match="'budget_band' is declared as float"):
        import_file(path, "leads", out, mapping=parse_mapping(changed))


def test_chinese_stage_names(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "线索编号;销售阶段;变更时间\n"
        "L1;线索获取;2024-03-01 09:00\n"
        "L1;初步沟通;2024-03-02 09:00\n"
        "L1;签约执行;2024-03-09 09:00\n"
        "L2;丢单;2024-03-03 09:00\n"
        "L2;Negotiation;2024-03-02 09:00\n"
        "L3;意向;2024-03-02 09:00\n"
    )
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("stages.csv", text), "stage_changes", out)
    assert summary.delimiter == ";"
    frame = assert_storage_dtypes(out, "stage_changes")
    assert frame["stage"].tolist() == ["lead", "contacted", "won", "lost", "negotiation"]
    [reject] = rejects(out, "stage_changes")
    assert reject["reason"].startswith("unknown stage '意向'")
    assert summary.coercions["stage"]["stage name translated"] == 5


def test_activities_with_value_maps(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "跟进ID\t线索ID\t跟进人\t跟进时间\t跟进方式\t方向\t跟进结果\n"
        "A1\tL1\tR1\t2024-03-05 10:00\t电话\t呼出\t有意向\n"
        "A2\tL1\tR1\t2024-03-05 11:00\t微信\t呼入\t\n"
        "A3\tL1\tR1\t2024-03-05 12:00\t钉钉\t呼出\t\n"
        "A4\tL1\tR1\t2024-03-05 13:00\t传真\t呼出\t\n"
    )
    mapping = parse_mapping({"tables": {"activities": {"values": {"type": {"钉钉": "other"}}}}})
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("acts.csv", text), "activities", out, mapping=mapping)
    assert summary.delimiter == "\t"
    frame = assert_storage_dtypes(out, "activities")
    assert frame["type"].tolist() == ["call", "wechat", "other"]
    assert frame["direction"].tolist() == ["outbound", "inbound", "outbound"]
    [reject] = rejects(out, "activities")
    assert (reject["row"], reject["column"], reject["value"]) == ("4", "type", "传真")
    assert "[tables.activities.values.type]" in reject["reason"]


def test_orders_amounts(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "订单号,客户ID,下单时间,实付金额,币种\n"
        'O1,C1,2024-03-05,"¥1,234.50",\n'
        'O2,C1,2024-03-06,"1,234.5元",人民币\n'
        "O3,C1,2024-03-07,-300,CNY\n"
        "O4,C2,2024-03-08,１２３,美元\n"
        "O5,C2,2024-03-08,面议,\n"
    )
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("orders.csv", text), "orders", out)
    frame = assert_storage_dtypes(out, "orders")
    assert frame["amount"].tolist() == [1234.5, 1234.5, -300.0, 123.0]
    assert frame["currency"].tolist() == ["CNY", "CNY", "CNY", "USD"]
    [reject] = rejects(out, "orders")
    assert reject["reason"] == "required value is a placeholder ('面议'), treated as missing"
    assert summary.coerced > 0


def test_orders_without_currency_column(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_file(
        crm_files.csv("orders.csv", "order_id,customer_id,ordered_at,amount\nO1,C1,2024-03-05,10\n"),
        "orders",
        out,
    )
    assert pd.read_parquet(out / "orders.parquet")["currency"].tolist() == ["CNY"]


def test_malformed_rows_are_rejected(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = "lead_id,created_at\nA1,2024-03-05\nA2,2024-03-05,extra\n\nA3,2024-03-05\n"
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert (summary.read, summary.blank_rows, summary.accepted, summary.rejected) == (3, 1, 2, 1)
    [reject] = rejects(out, "leads")
    assert reject["row"] == "2"
    assert "3 fields" in reject["reason"]


def test_invalid_timezone(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA1,2024-03-05\n")
    with pytest.raises(ConfigError, match="unknown time zone 'Shanghai'"):
        import_file(path, "leads", tmp_path / "out", timezone="Shanghai")


def test_mapping_file_path(crm_files: CrmFiles, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("timezone: UTC\ntables:\n  leads:\n    columns:\n      编号: lead_id\n", "utf-8")
    out = tmp_path / "out"
    import_file(crm_files.csv("leads.csv", "编号,created_at\nA1,2024-03-05\n"), "leads", out, mapping=mapping)
    assert pd.read_parquet(out / "leads.parquet")["created_at"].tolist() == [
        pd.Timestamp("2024-03-05", tz="UTC")
    ]


CELLS = st.sampled_from(["L1", "L2", "L3", "", "N/A", "张经理", "00L9"])
TIMES = st.sampled_from(["2024-03-05", "2024/3/6 10:00", "03/05/2024", "", "bad", "2024-03-05T01:00:00Z"])
BUDGETS = st.sampled_from(["", "¥1,000", "-5", "abc", "1.5万", "无"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELLS, TIMES, BUDGETS), min_size=1, max_size=12), twice=st.booleans())
def test_counts_always_add_up(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, ...]], twice: bool
) -> None:
    folder = tmp_path_factory.mktemp("counts")
    path = folder / "leads.csv"
    path.write_text(
        "lead_id,created_at,declared_budget\n" + "".join(",".join(row) + "\n" for row in rows), "utf-8"
    )
    out = folder / "out"
    summaries = [import_file(path, "leads", out)]
    if twice:
        summaries.append(import_file(path, "leads", out))
    for summary in summaries:
        assert summary.read + summary.blank_rows == len(rows)
        assert summary.read == summary.accepted + summary.rejected
    final = pd.read_parquet(out / "leads.parquet")
    assert final["lead_id"].is_unique
    assert len(final) == summaries[-1].rows_written
    assert_counts_add_up(summaries[-1], out)
