"""Texts of the data stage in ``en`` and ``zh-CN``: import reasons, coercions, summary and errors.

A text travels as a ``Message``, a message key plus its parameters, so the rejects file, the
summary and the ``leadscore data validate`` report render it in the reader's locale, and both
languages state the same row, value, accepted set and fix. The English templates are the
texts the importer and the validator have always written.

An error that stops an import (an undecodable file, a missing column, a bad mapping) is
raised with a ``Message`` as its only argument. ``str(error)`` is the English text, and the
CLI re-raises it in the chosen locale with ``leadscore.i18n.errors_in_locale``.

Coercion labels (``assumed Asia/Shanghai``, ``currency sign removed``) stay English in
``ImportSummary.coercions``, because callers count them by name. ``coercion_text`` renders
one in another locale by matching it against the English templates.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from data.error_messages import ERRORS
from leadscore.i18n import Locale, register_messages, translate

_REASONS: dict[str, dict[str, str]] = {
    # Ids, categories, stages (data.parsing)
    "import.reason.id_scientific": {
        "en": "id {value} is in scientific notation, so a spreadsheet rounded it; export the id column "
        "as text",
        "zh-CN": "编号 {value} 是科学计数法，说明表格软件已经把它舍入；请把编号列按文本导出",
    },
    "import.reason.id_float_rounded": {
        "en": "id {value} was written from a float column (trailing .0) and has more digits than a float "
        "holds exactly, so its last digits may be rounded; export the id column as text",
        "zh-CN": "编号 {value} 来自浮点数列（末尾带 .0），位数超出浮点数能精确表示的范围，末尾几位可能已被"
        "舍入；请把编号列按文本导出",
    },
    "import.reason.category_unknown": {
        "en": "unknown {column} {value}; expected one of {allowed}, or add it under {mapping_key} in the "
        "mapping file",
        "zh-CN": "{column} 的值 {value} 无法识别；可接受的值为 {allowed}，或在映射文件的 {mapping_key} "
        "下添加对应关系",
    },
    "import.reason.category_unknown_value": {
        "en": "unknown value {value}; expected one of {allowed}, or add it under {mapping_key} in the "
        "mapping file",
        "zh-CN": "值 {value} 无法识别；可接受的值为 {allowed}，或在映射文件的 {mapping_key} 下添加对应关系",
    },
    "import.reason.stage_unknown": {
        "en": "unknown stage {value}; expected one of {accepted}, or add it under "
        "[tables.stage_changes.values.stage] in the mapping file",
        "zh-CN": "阶段 {value} 无法识别；可接受的阶段为 {accepted}，或在映射文件的 "
        "[tables.stage_changes.values.stage] 下添加对应关系",
    },
    # Numbers, booleans, currencies (data.parsing)
    "import.reason.number_comma": {
        "en": "{value} is not a number (a comma is only accepted between groups of 3 digits)",
        "zh-CN": "{value} 不是数字（逗号只能作为每 3 位一组的千位分隔符）",
    },
    "import.reason.number_invalid": {"en": "{value} is not a number", "zh-CN": "{value} 不是数字"},
    "import.reason.number_not_finite": {
        "en": "{value} is not a finite number",
        "zh-CN": "{value} 不是有限的数字",
    },
    "import.reason.number_not_whole": {"en": "{value} is not a whole number", "zh-CN": "{value} 不是整数"},
    "import.reason.boolean_invalid": {
        "en": "{value} is not a yes/no value; use 是/否, Y/N, true/false or 1/0",
        "zh-CN": "{value} 不是“是/否”值；请填写 是/否、Y/N、true/false 或 1/0",
    },
    "import.reason.currency_unknown": {
        "en": "unknown currency {value}; use an ISO 4217 code such as CNY or USD",
        "zh-CN": "币种 {value} 无法识别；请使用 ISO 4217 代码，如 CNY 或 USD",
    },
    # Timestamps (data.parsing)
    "import.reason.time_nonexistent": {
        "en": "{value} does not exist in {zone} (clocks were set forward)",
        "zh-CN": "{value} 在时区 {zone} 中不存在（当时时钟向前拨快）",
    },
    "import.reason.time_repeated": {
        "en": "{value} occurs twice in {zone} (clocks were set back); add an offset",
        "zh-CN": "{value} 在时区 {zone} 中出现两次（当时时钟向后拨回）；请加上时区偏移",
    },
    "import.reason.date_out_of_range": {
        "en": "{value} is outside the accepted years {first_year}-{last_year}; a date such as 1900-01-01 "
        "or 9999-12-31 usually means 'unknown', so leave the cell blank",
        "zh-CN": "{value} 不在可接受的年份 {first_year}-{last_year} 之内；1900-01-01、9999-12-31 这类日期"
        "通常表示“未知”，请把该单元格留空",
    },
    "import.reason.meridiem_hour": {
        "en": "{value} has the hour {hour} after {marker}; a 12-hour time runs from 1 to 12",
        "zh-CN": "{value} 中“{marker}”后的小时为 {hour}；12 小时制的小时应在 1 到 12 之间",
    },
    "import.reason.date_unrecognized": {
        "en": "{value} is not a recognized date; expected formats such as 2024-03-05 14:02, "
        "2024/3/5 14:02, 2024年3月5日 14:02 or 20240305, or add date_formats to the mapping file",
        "zh-CN": "{value} 不是可识别的日期；可接受的格式如 2024-03-05 14:02、2024/3/5 14:02、"
        "2024年3月5日 14:02 或 20240305，或在映射文件的 date_formats 中添加格式",
    },
    "import.reason.date_invalid": {"en": "{value} is not a valid date", "zh-CN": "{value} 不是有效的日期"},
    "import.reason.date_ambiguous": {
        "en": "ambiguous date {value}: {month_first} if the month comes first, {day_first} if the day "
        "comes first; add the format to date_formats in the mapping file or --date-format (e.g. %d/%m/%Y)",
        "zh-CN": "日期 {value} 有两种解读：月份在前为 {month_first}，日在前为 {day_first}；请把格式加到映射"
        "文件的 date_formats 或 --date-format 中（例如 %d/%m/%Y）",
    },
    "import.reason.serial_not_xlsx": {
        "en": "{value} is a number, not a date (Excel serial dates are read only from XLSX files)",
        "zh-CN": "{value} 是数字而不是日期（只有 XLSX 文件中的数字才按 Excel 日期序列号读取）",
    },
    "import.reason.serial_out_of_range": {
        "en": "{value} is not a date (Excel serial numbers for {first_year}-{last_year} are accepted)",
        "zh-CN": "{value} 不是日期（只接受 {first_year}-{last_year} 年的 Excel 日期序列号）",
    },
    # File structure (data.readers, data.importer)
    "import.reason.malformed_row": {
        "en": "row has {fields} fields but the header has {columns} columns",
        "zh-CN": "该行有 {fields} 个字段，但表头只有 {columns} 列",
    },
    "import.reason.formula_without_result": {
        "en": "cell {cell} is a formula saved without its result; open the workbook in Excel and save it "
        "again, or export values instead of formulas",
        "zh-CN": "单元格 {cell} 是未保存计算结果的公式；请在 Excel 中打开工作簿后重新保存，或导出数值"
        "而不是公式",
    },
    "import.reason.placeholder": {
        "en": "required value is a placeholder ({value}), treated as missing",
        "zh-CN": "必填值是占位值（{value}），按缺失处理",
    },
    # Findings of data.validate on parsed values, by problem code
    "import.reason.missing_required": {"en": "required value is missing", "zh-CN": "缺少必填值"},
    "import.reason.below_minimum": {
        "en": "below the minimum {minimum}",
        "zh-CN": "小于最小值 {minimum}",
    },
    "import.reason.not_allowed": {
        "en": "not one of {allowed}",
        "zh-CN": "不是可接受的值之一（{allowed}）",
    },
    "import.reason.unknown_stage_code": {
        "en": "unknown stage (store the code {suggestion}); expected one of {codes}",
        "zh-CN": "阶段代码无法识别（应存为代码 {suggestion}）；可接受的代码为 {codes}",
    },
    "import.reason.unknown_stage_no_hint": {
        "en": "unknown stage; expected one of {codes}",
        "zh-CN": "阶段代码无法识别；可接受的代码为 {codes}",
    },
    "import.reason.invalid_id": {"en": "id has surrounding whitespace", "zh-CN": "编号前后带有空白字符"},
    "import.reason.naive_timestamp": {
        "en": "naive timestamp without time zone",
        "zh-CN": "时间没有时区信息",
    },
    "import.reason.wrong_type": {
        "en": "expected a {kind} value, found {found}",
        "zh-CN": "应为 {kind} 类型的值，读到的是 {found} 类型",
    },
    "import.reason.validation_other": {
        "en": "{detail}",
        "zh-CN": "未通过校验（问题代码 {code}）：{detail}",
    },
    # Duplicate keys (data.governance)
    "import.reason.duplicate_merged": {
        "en": "duplicate of {label} (merged): kept {kept} ({rule}){differences}",
        "zh-CN": "与 {label} 重复（已合并）：保留{kept}（{rule}）{differences}",
    },
    "import.origin.row": {"en": "row {row}", "zh-CN": "第 {row} 行"},
    "import.origin.existing_row": {"en": "existing row {row}", "zh-CN": "数据目录中原有的第 {row} 行"},
    "import.merge_rule.time": {
        "en": "earliest {time_column}, then most complete",
        "zh-CN": "{time_column} 最早者优先，其次是信息最完整者",
    },
    "import.merge_rule.complete": {"en": "most complete", "zh-CN": "信息最完整者优先"},
    "import.duplicate.differences": {"en": "; differing values: {items}", "zh-CN": "；不同的值：{items}"},
    "import.duplicate.difference": {
        "en": "{column}={value} (kept {kept})",
        "zh-CN": "{column}={value}（保留 {kept}）",
    },
    "import.duplicate.more": {"en": "and {count} more", "zh-CN": "另有 {count} 处"},
    "import.list_separator": {"en": ", ", "zh-CN": "、"},
    "import.clause_separator": {"en": "; ", "zh-CN": "；"},
    "import.line_separator": {"en": "\n", "zh-CN": "\n"},
}

# Coercion labels of data.parsing and data.importer. Each English text is a counter key.
_COERCIONS: dict[str, dict[str, str]] = {
    "import.coercion.full_width": {"en": "full-width characters", "zh-CN": "全角字符转为半角"},
    "import.coercion.trailing_zero": {"en": "trailing .0 removed", "zh-CN": "去掉末尾的 .0"},
    "import.coercion.value_translated": {"en": "value translated", "zh-CN": "类别值已转换"},
    "import.coercion.case_width": {"en": "case or width normalized", "zh-CN": "大小写或全半角已统一"},
    "import.coercion.stage_translated": {"en": "stage name translated", "zh-CN": "阶段名称已转换"},
    "import.coercion.accounting_negative": {"en": "accounting negative", "zh-CN": "会计括号负数"},
    "import.coercion.currency_sign": {"en": "currency sign removed", "zh-CN": "去掉货币符号"},
    "import.coercion.multiplier": {"en": "{unit} multiplier", "zh-CN": "按“{unit}”换算"},
    "import.coercion.thousands": {"en": "thousands separators removed", "zh-CN": "去掉千位分隔符"},
    "import.coercion.boolean_word": {"en": "boolean word translated", "zh-CN": "是/否词语已转换"},
    "import.coercion.default_currency": {
        "en": "default currency {currency}",
        "zh-CN": "币种为空，按默认币种 {currency}",
    },
    "import.coercion.currency_name": {"en": "currency name translated", "zh-CN": "币种名称已转为代码"},
    "import.coercion.excel_serial": {"en": "Excel serial date", "zh-CN": "Excel 日期序列号"},
    "import.coercion.assumed_zone": {"en": "assumed {zone}", "zh-CN": "按时区 {zone} 解读"},
    "import.coercion.merged_cell": {"en": "merged cell value copied", "zh-CN": "复制合并单元格的值"},
    "import.coercion.text_formula": {
        "en": "Excel text formula unwrapped",
        "zh-CN": "还原 Excel 文本公式",
    },
}

# Lines and fragments of the summary that ``leadscore data import`` prints.
_SUMMARY: dict[str, dict[str, str]] = {
    "import.summary.imported": {
        "en": "Imported {source} ({details}) into {output}",
        "zh-CN": "已将 {source}（{details}）导入 {output}",
    },
    "import.summary.encoding": {"en": ", encoding {encoding}", "zh-CN": "，编码 {encoding}"},
    "import.summary.delimiter": {"en": ", delimiter {delimiter}", "zh-CN": "，分隔符 {delimiter}"},
    "import.summary.rows_read": {"en": "  rows read:         {count}", "zh-CN": "  读取行数：    {count}"},
    "import.summary.blank_rows": {
        "en": " ({count} blank rows skipped)",
        "zh-CN": "（跳过 {count} 个空行）",
    },
    "import.summary.accepted": {"en": "  accepted:          {count}", "zh-CN": "  接受行数：    {count}"},
    "import.summary.rejected": {"en": "  rejected:          {count}", "zh-CN": "  拒绝行数：    {count}"},
    "import.summary.rejects_path": {"en": " -> {path}", "zh-CN": " -> {path}"},
    "import.summary.coerced": {"en": "  coerced values:    {count}", "zh-CN": "  改写的值：    {count}"},
    "import.summary.column_detail": {"en": "    {column}: {detail}", "zh-CN": "    {column}：{detail}"},
    "import.summary.count_times": {"en": "{label} x{count}", "zh-CN": "{label} x{count}"},
    "import.summary.placeholders": {
        "en": "  placeholders:      {count} (treated as missing)",
        "zh-CN": "  占位值：      {count}（按缺失处理）",
    },
    "import.summary.duplicates": {
        "en": "  duplicates:        {collapsed} identical collapsed, {merged} merged and rejected, "
        "{filled} missing values filled",
        "zh-CN": "  重复键：      {collapsed} 行完全相同已合并，{merged} 行合并后被拒绝，"
        "补齐 {filled} 个缺失值",
    },
    "import.summary.merge_policy": {
        "en": "    merge policy: keep the earliest event time, then the most complete row, then the row seen "
        "first; fill its missing values from the others",
        "zh-CN": "    合并规则：保留事件时间最早的行，其次是信息最完整的行，再次是最先出现的行；"
        "保留行的缺失值从其他行补齐",
    },
    "import.summary.ignored": {"en": "  ignored columns:   {columns}", "zh-CN": "  忽略的列：    {columns}"},
    "import.summary.none": {"en": "none", "zh-CN": "无"},
    "import.summary.attributes": {
        "en": "  custom attributes: {attributes}",
        "zh-CN": "  自定义属性：  {attributes}",
    },
    "import.summary.attribute": {"en": "{name} ({type})", "zh-CN": "{name}（{type}）"},
    "import.summary.attribute_post_contact": {
        "en": "{name} ({type}, post-contact)",
        "zh-CN": "{name}（{type}，销售接触后才有的值）",
    },
    "import.summary.attributes_missing": {
        "en": "  declared attributes not in the file: {attributes}",
        "zh-CN": "  已声明但文件中没有的属性：{attributes}",
    },
    "import.summary.existing": {
        "en": "  existing rows:     {existing} before this import, {replaced} replaced",
        "zh-CN": "  原有行数：    本次导入前 {existing} 行，其中 {replaced} 行被取代",
    },
    "import.summary.rows_written": {
        "en": "  rows in table:     {count}",
        "zh-CN": "  表中行数：    {count}",
    },
    "import.summary.rejects_heading": {
        "en": "  rejects by column and problem:",
        "zh-CN": "  按列和问题代码统计的拒绝：",
    },
    "import.summary.reject_count": {
        "en": "    {column}: {problem} x{count}",
        "zh-CN": "    {column}：{problem} x{count}",
    },
    "import.summary.whole_row": {"en": "(row)", "zh-CN": "（整行）"},
    "import.summary.problem": {"en": "{code}", "zh-CN": "{code}（{name}）"},
}

# Names of the problem codes in the rejects file's ``code`` column. zh-CN summaries show them.
_PROBLEMS: dict[str, dict[str, str]] = {
    "import.problem.malformed_row": {"en": "row with more fields than the header", "zh-CN": "字段数多于表头"},
    "import.problem.unparseable": {"en": "cell cannot be parsed", "zh-CN": "无法解析"},
    "import.problem.formula_without_result": {
        "en": "formula without a saved result",
        "zh-CN": "公式没有保存结果",
    },
    "import.problem.placeholder": {"en": "required value is a placeholder", "zh-CN": "必填值为占位值"},
    "import.problem.duplicate_merged": {"en": "duplicate key merged", "zh-CN": "重复键已合并"},
    "import.problem.missing_required": {"en": "required value missing", "zh-CN": "缺少必填值"},
    "import.problem.below_minimum": {"en": "below the minimum", "zh-CN": "小于最小值"},
    "import.problem.not_allowed": {"en": "value not allowed", "zh-CN": "不是可接受的值"},
    "import.problem.unknown_stage": {"en": "unknown stage code", "zh-CN": "阶段代码无法识别"},
    "import.problem.invalid_id": {"en": "invalid id", "zh-CN": "编号无效"},
    "import.problem.naive_timestamp": {"en": "timestamp without time zone", "zh-CN": "时间没有时区"},
    "import.problem.wrong_type": {"en": "wrong value type", "zh-CN": "类型不符"},
}
PROBLEM_CODES: tuple[str, ...] = tuple(key.removeprefix("import.problem.") for key in _PROBLEMS)
"""Every problem code the importer writes into the ``code`` column of a rejects file."""

# The report of ``leadscore data validate`` (data.validate). Findings that the importer also
# writes reuse its ``import.reason`` texts.
_VALIDATION: dict[str, dict[str, str]] = {
    "validate.report.clean": {
        "en": "{table}: {rows} rows, no problems",
        "zh-CN": "{table}：{rows} 行，没有问题",
    },
    "validate.report.status": {
        "en": "{table}: {rows} rows, {problems} problems in {problem_rows} rows",
        "zh-CN": "{table}：{rows} 行，其中 {problem_rows} 行共有 {problems} 个问题",
    },
    "validate.report.count": {
        "en": "  {column}: {problem} x{count}",
        "zh-CN": "  {column}：{problem} x{count}",
    },
    "validate.report.example": {
        "en": "  {where}, {column}={value}: {reason}",
        "zh-CN": "  {where}，{column}={value}：{reason}",
    },
    "validate.report.whole_table": {"en": "table", "zh-CN": "整张表"},
    "validate.report.more": {"en": "  ... and {count} more problems", "zh-CN": "  ……另有 {count} 个问题"},
    "validate.summary.problems": {"en": "{count} problems found", "zh-CN": "共发现 {count} 个问题"},
    "validate.summary.clean": {"en": "no problems found", "zh-CN": "没有发现问题"},
    "validate.error.no_tables": {
        "en": "{directory} has no table files ({files}); create them with 'leadscore data import' or "
        "'leadscore data generate'",
        "zh-CN": "{directory} 中没有数据表文件（{files}）；请用 'leadscore data import' 或 "
        "'leadscore data generate' 生成",
    },
    "validate.error.unreadable": {
        "en": "cannot read a table of the data folder {directory} ({detail}); import that table again or "
        "move the damaged file away",
        "zh-CN": "无法读取数据目录 {directory} 中的数据表（{detail}）；请重新导入该表，或把损坏的文件移走",
    },
    "validate.reason.expected_bool": {
        "en": "expected true or false, found {found}",
        "zh-CN": "应为 true 或 false，读到的是 {found} 类型",
    },
    "validate.reason.expected_list": {"en": "expected a list of strings", "zh-CN": "应为字符串列表"},
    "validate.reason.expected_text": {
        "en": "expected text, found {found}{hint}",
        "zh-CN": "应为文本，读到的是 {found} 类型{hint}",
    },
    "validate.reason.id_as_text": {"en": "; ids must be read as strings", "zh-CN": "；编号必须按字符串读取"},
    "validate.reason.expected_timestamp": {
        "en": "expected a timestamp, found {found}",
        "zh-CN": "应为时间，读到的是 {found} 类型",
    },
    "validate.reason.expected_number": {
        "en": "expected a number, found {found}",
        "zh-CN": "应为数字，读到的是 {found} 类型",
    },
    "validate.reason.infinite": {"en": "infinite number", "zh-CN": "数字为无穷大"},
    "validate.reason.expected_whole": {"en": "expected a whole number", "zh-CN": "应为整数"},
    "validate.reason.duplicate_key": {
        "en": "duplicate key {values} (first at row {first_row})",
        "zh-CN": "键 {values} 重复（首次出现在第 {first_row} 行）",
    },
    "validate.reason.no_attributes": {
        "en": "table {table} takes no custom attributes",
        "zh-CN": "表 {table} 不接受自定义属性",
    },
    "validate.reason.attribute_without_column": {
        "en": "declared custom attribute has no column",
        "zh-CN": "已声明的自定义属性没有对应的列",
    },
    "validate.reason.undeclared_column": {
        "en": "column is not part of table {table} and is not a declared custom attribute",
        "zh-CN": "该列不属于表 {table}，也不是已声明的自定义属性",
    },
    "validate.reason.unknown_reference": {
        "en": "{column} not found in {target}",
        "zh-CN": "{column} 的值在 {target} 中不存在",
    },
    "validate.reason.orders_unlinked": {
        "en": "no lead carries a customer_id, so orders cannot be linked to leads",
        "zh-CN": "没有任何线索带有 customer_id，因此订单无法关联到线索",
    },
    # Names of the validator's problem codes that the importer never writes. zh-CN reports show them.
    "validate.problem.duplicate_key": {"en": "duplicate key", "zh-CN": "键重复"},
    "validate.problem.unknown_reference": {"en": "unknown reference", "zh-CN": "引用的编号不存在"},
    "validate.problem.schema": {"en": "attribute declaration", "zh-CN": "属性声明问题"},
    "validate.problem.undeclared_column": {"en": "undeclared column", "zh-CN": "未声明的列"},
}

_registered = False


def register_import_messages() -> None:
    """Register the data stage's texts with ``leadscore.i18n`` (idempotent)."""
    global _registered  # noqa: PLW0603 - a once-only flag; the catalog itself lives in leadscore.i18n
    if not _registered:
        register_messages(_REASONS)
        register_messages(_COERCIONS)
        register_messages(_SUMMARY)
        register_messages(_PROBLEMS)
        register_messages(ERRORS)
        register_messages(_VALIDATION)
        _registered = True


@dataclass(frozen=True)
class Message:
    """A text as a message key and its parameters, rendered in the reader's locale.

    A parameter may itself be a ``Message``, a ``MessageList``, or a tuple of messages that
    renders as a list, so a composed reason (a duplicate naming the kept row and the values
    that differed) is translated part by part. ``str()`` renders the English text, so an
    exception raised with a message reads as before.
    """

    key: str
    params: Mapping[str, object] = field(default_factory=dict)

    def text(self, locale: Locale = "en") -> str:
        """Render the message in ``locale``."""
        register_import_messages()
        rendered = {name: _render_param(value, locale) for name, value in self.params.items()}
        return translate(self.key, locale, **rendered)

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True)
class MessageList:
    """Messages rendered in a row, joined by the text of the message key ``separator``."""

    items: tuple[Message, ...]
    separator: str = "import.list_separator"


def _render_param(value: object, locale: Locale) -> object:
    if isinstance(value, Message):
        return value.text(locale)
    if isinstance(value, tuple) and value and all(isinstance(item, Message) for item in value):
        value = MessageList(value)
    if isinstance(value, MessageList):
        separator = translate(value.separator, locale)
        return separator.join(item.text(locale) for item in value.items)
    return value


def reason(name: str, /, **params: object) -> Message:
    """Return the reject reason ``import.reason.<name>`` with ``params``."""
    return Message(f"import.reason.{name}", params)


def import_error(name: str, /, **params: object) -> Message:
    """Return the error ``import.error.<name>`` with ``params``, to raise as an exception's argument."""
    return Message(f"import.error.{name}", params)


def validation_text(name: str, /, **params: object) -> Message:
    """Return the text ``validate.<name>`` of ``leadscore data validate`` with ``params``."""
    return Message(f"validate.{name}", params)


def summary_text(line: str, locale: Locale, /, **params: object) -> str:
    """Render the summary line or fragment ``import.summary.<line>`` in ``locale``."""
    return Message(f"import.summary.{line}", params).text(locale)


def problem_label(code: str, locale: Locale) -> str:
    """Return a problem code as summaries and reports show it: the code, in zh-CN followed by its name.

    Codes of the importer and of the validator have names. Any other code is shown alone.
    """
    if locale == "en":
        return code
    names = [key for key in (f"import.problem.{code}", f"validate.problem.{code}") if key in catalog()]
    if not names:
        return code
    return summary_text("problem", locale, code=code, name=Message(names[0]).text(locale))


def list_text(items: list[str], locale: Locale) -> str:
    """Join names such as column names with the list separator of ``locale``."""
    register_import_messages()
    return translate("import.list_separator", locale).join(items)


def coercion_text(label: str, locale: Locale) -> str:
    """Render the English coercion ``label`` in ``locale``.

    A label that matches no template is returned as it is.
    """
    if locale == "en":
        return label
    register_import_messages()
    for key, pattern in _coercion_patterns():
        match = pattern.fullmatch(label)
        if match is not None:
            return translate(key, locale, **match.groupdict())
    return label


@cache
def _coercion_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Return each coercion key with a regular expression of its English template."""
    patterns = []
    for key, texts in _COERCIONS.items():
        pattern = ""
        for literal, field_name, _spec, _conversion in string.Formatter().parse(texts["en"]):
            pattern += re.escape(literal)
            if field_name is not None:
                pattern += f"(?P<{field_name}>.+)"
        patterns.append((key, re.compile(pattern)))
    return tuple(patterns)


def catalog() -> dict[str, dict[str, str]]:
    """Return every template of the data stage by message key, for tests and docs."""
    return {**_REASONS, **_COERCIONS, **_SUMMARY, **_PROBLEMS, **ERRORS, **_VALIDATION}
