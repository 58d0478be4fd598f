"""Parse cell texts into canonical values: ids, timestamps, numbers, booleans, lists, categories.

Each ``parse_*`` function takes one column of cleaned cell texts (``None`` for missing) and
returns a ``ParsedColumn``: the parsed values, a reason for each cell that cannot be
parsed, and counts of the coercions applied (a currency sign removed, a time zone assumed,
...). Nothing is guessed silently: a cell that could mean two things is an error. Reasons
are ``Message`` objects (``data.import_messages``), so the importer can write them in
English or Chinese.

Timestamps
    Tried in order: the caller's explicit formats, ISO 8601 (with or without an offset;
    ``20240305`` too), the built-in formats in ``BUILTIN_DATE_FORMATS``, then day/month
    orders such as ``03/05/2024``. Those are parsed only when one reading is possible
    (``25/03/2024`` is day first, ``03/25/2024`` month first); ``03/05/2024`` is rejected as
    ambiguous. In XLSX files a number in a date column is an Excel serial day number.
    A 12-hour time marked 上午/下午 (a.m./p.m., as Chinese Windows writes it:
    ``2024/3/5 下午 2:02:00``) is read as the 24-hour time. Values without an offset are
    local times in the given time zone. Every value is returned as a tz-aware UTC
    ``pandas.Timestamp``, so naive and aware values are never compared. Dates before 1950
    or after 2099 are rejected: CRM exports use ones such as 1900-01-01, 0001-01-01 or
    9999-12-31 to mean "unknown".
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
import zoneinfo
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from data.import_messages import Message, reason
from data.stages import ALL_STAGES, normalize_stage

Cells = Sequence[str | None]


@dataclass
class ParsedColumn:
    """Parsed values of one column (None where missing or invalid), reasons by position, coercions."""

    values: list[object]
    messages: dict[int, Message] = field(default_factory=dict)
    coercions: Counter[str] = field(default_factory=Counter)

    @property
    def coerced(self) -> int:
        return sum(self.coercions.values())

    @property
    def errors(self) -> dict[int, str]:
        """Return the English reason of each cell that cannot be parsed, by position."""
        return {position: message.text() for position, message in self.messages.items()}


def canonical_text(text: str) -> str:
    """Return ``text`` in NFKC form (full-width letters and digits as ASCII), stripped."""
    return unicodedata.normalize("NFKC", text).strip()


def _lookup_key(text: str) -> str:
    return " ".join(canonical_text(text).casefold().split())


_MAX_QUOTED_CHARS = 80  # cell texts quoted in error reasons are cut to this length


def quote_cell(text: str) -> str:
    """Return ``text`` quoted for an error reason, cut to 80 characters so a huge cell stays readable."""
    if len(text) > _MAX_QUOTED_CHARS:
        text = text[: _MAX_QUOTED_CHARS - 1] + "…"
    return repr(text)


# ---------------------------------------------------------------------------------------
# Ids and text

_SCIENTIFIC_ID = re.compile(r"^\d(\.\d+)?[eE][+]?\d+$")
_FLOAT_ID = re.compile(r"^(\d+)\.0+$")
_MAX_EXACT_FLOAT_ID = 2**53  # a double represents every whole number up to this one exactly


def parse_ids(cells: Cells) -> ParsedColumn:
    """Parse ids as exact strings: leading zeros and long digit strings are kept.

    Full-width digits become ASCII. ``123.0`` (an id written by a float column) becomes
    ``123``. Scientific notation such as ``1.23457E+18`` is rejected, because the
    spreadsheet that wrote it already rounded the id, and so is a ``.0`` id above 2**53,
    whose float may have rounded its last digits.
    """
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(None)
            continue
        text = canonical_text(cell)
        if text != cell.strip():
            parsed.coercions["full-width characters"] += 1
        if _SCIENTIFIC_ID.match(text):
            parsed.messages[position] = reason("id_scientific", value=quote_cell(text))
            parsed.values.append(None)
            continue
        whole = _FLOAT_ID.match(text)
        if whole and int(whole.group(1)) > _MAX_EXACT_FLOAT_ID:
            parsed.messages[position] = reason("id_float_rounded", value=quote_cell(text))
            parsed.values.append(None)
            continue
        if whole:
            text = whole.group(1)
            parsed.coercions["trailing .0 removed"] += 1
        parsed.values.append(text)
    return parsed


def parse_text(cells: Cells) -> ParsedColumn:
    """Keep free text as it is (cells are already stripped)."""
    return ParsedColumn(values=list(cells))


# ---------------------------------------------------------------------------------------
# Categories and stages

ACTIVITY_TYPE_SYNONYMS: dict[str, str] = {
    "电话": "call",
    "电话沟通": "call",
    "通话": "call",
    "去电": "call",
    "来电": "call",
    "外呼": "call",
    "phone": "call",
    "phone call": "call",
    "微信": "wechat",
    "企业微信": "wechat",
    "企微": "wechat",
    "微信沟通": "wechat",
    "wecom": "wechat",
    "邮件": "email",
    "电子邮件": "email",
    "邮箱": "email",
    "e-mail": "email",
    "mail": "email",
    "拜访": "visit",
    "上门拜访": "visit",
    "上门": "visit",
    "面谈": "visit",
    "meeting": "visit",
    "演示": "demo",
    "产品演示": "demo",
    "线上演示": "demo",
    "报价": "quote",
    "发送报价": "quote",
    "quotation": "quote",
    "表单": "form",
    "留资": "form",
    "表单提交": "form",
    "web form": "form",
    "其他": "other",
    "其它": "other",
}
DIRECTION_SYNONYMS: dict[str, str] = {
    "呼入": "inbound",
    "来电": "inbound",
    "客户主动": "inbound",
    "主动咨询": "inbound",
    "in": "inbound",
    "呼出": "outbound",
    "去电": "outbound",
    "外呼": "outbound",
    "销售主动": "outbound",
    "out": "outbound",
}
TIER_SYNONYMS: dict[str, str] = {
    "资深": "senior",
    "高级": "senior",
    "普通": "regular",
    "中级": "regular",
    "新人": "newcomer",
    "新手": "newcomer",
    "初级": "newcomer",
    "junior": "newcomer",
}
BUILTIN_SYNONYMS: dict[str, dict[str, str]] = {
    "type": ACTIVITY_TYPE_SYNONYMS,
    "direction": DIRECTION_SYNONYMS,
    "tier": TIER_SYNONYMS,
}


def translate_category(value: str, allowed: Sequence[str], synonyms: Mapping[str, str]) -> str | None:
    """Return the allowed category ``value`` names, directly or through ``synonyms``; None otherwise.

    The lookup ignores case, full-width forms and repeated spaces, as the file import does.
    """
    key = _lookup_key(value)
    allowed_keys = {_lookup_key(category): category for category in allowed}
    if key in allowed_keys:
        return allowed_keys[key]
    mapped = {_lookup_key(name): category for name, category in synonyms.items()}
    return mapped.get(key)


def parse_categories(
    cells: Cells,
    *,
    allowed: Sequence[str] | None = None,
    value_map: Mapping[str, str] | None = None,
    synonyms: Mapping[str, str] | None = None,
    column: str = "",
    table: str = "",
) -> ParsedColumn:
    """Parse category values, translating through ``value_map`` (mapping file) then ``synonyms``.

    Lookups ignore case, full-width forms and repeated spaces. With ``allowed`` (a closed
    category) a value that is not in the set after translation is an error naming the set
    and the mapping-file key that would translate it.
    """
    mapped = {_lookup_key(key): value for key, value in (synonyms or {}).items()}
    mapped.update({_lookup_key(key): value for key, value in (value_map or {}).items()})
    allowed_keys = {_lookup_key(value): value for value in allowed or ()}
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(None)
            continue
        key = _lookup_key(cell)
        value = mapped.get(key)
        if value is not None:
            parsed.coercions["value translated"] += 1
        elif allowed is not None:
            value = allowed_keys.get(key)
            if value is None:
                parsed.messages[position] = _unknown_category(cell, allowed, column, table)
            elif value != cell:
                parsed.coercions["case or width normalized"] += 1
        else:
            value = canonical_text(cell)
            if value != cell:
                parsed.coercions["full-width characters"] += 1
        parsed.values.append(value)
    return parsed


def _unknown_category(cell: str, allowed: Sequence[str], column: str, table: str) -> Message:
    params = {
        "value": quote_cell(cell),
        "allowed": ", ".join(allowed),
        "mapping_key": f"[tables.{table or 'TABLE'}.values.{column or 'COLUMN'}]",
    }
    if column:
        return reason("category_unknown", column=column, **params)
    return reason("category_unknown_value", **params)


def parse_stages(cells: Cells, *, value_map: Mapping[str, str] | None = None) -> ParsedColumn:
    """Parse stage names in Chinese or English into stage codes (see ``data.stages``)."""
    mapped = {_lookup_key(key): value for key, value in (value_map or {}).items()}
    accepted = ", ".join(f"{stage.code}/{stage.name_zh}" for stage in ALL_STAGES)
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(None)
            continue
        code = mapped.get(_lookup_key(cell)) or normalize_stage(canonical_text(cell))
        if code is None:
            parsed.messages[position] = reason("stage_unknown", value=quote_cell(cell), accepted=accepted)
        elif code != cell:
            parsed.coercions["stage name translated"] += 1
        parsed.values.append(code)
    return parsed


# ---------------------------------------------------------------------------------------
# Numbers, booleans, lists, currencies

_CURRENCY_AFFIXES = re.compile(r"^(?:¥|RMB|CNY|人民币)\s*|\s*(?:元|RMB|CNY|人民币)$", re.IGNORECASE)
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_MULTIPLIERS = {"万": 1e4, "亿": 1e8}


def parse_number_text(text: str) -> tuple[float | None, list[str], str | None]:
    """Parse one amount or number; return (value, coercions applied, English error reason).

    Accepts ``¥1,234.50``, ``1,234.5元``, ``-300``, ``(300)`` (accounting negative),
    ``1.5万`` and full-width digits. A comma that is not a thousands separator (``1,5``)
    is an error, because it may be a decimal comma.
    """
    value, coercions, error = _parse_number(text)
    return value, coercions, None if error is None else error.text()


def _parse_number(text: str) -> tuple[float | None, list[str], Message | None]:
    coercions: list[str] = []
    cleaned = canonical_text(text)
    if cleaned != text.strip():
        coercions.append("full-width characters")
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    if negative:
        cleaned = cleaned[1:-1].strip()
        coercions.append("accounting negative")
    without_currency = _CURRENCY_AFFIXES.sub("", cleaned)
    if without_currency != cleaned:
        coercions.append("currency sign removed")
        cleaned = without_currency.strip()
    multiplier = 1.0
    if cleaned[-1:] in _MULTIPLIERS:
        multiplier = _MULTIPLIERS[cleaned[-1]]
        coercions.append(f"{cleaned[-1]} multiplier")
        cleaned = cleaned[:-1].strip()
    if "," in cleaned:
        if not _THOUSANDS.match(cleaned):
            return None, coercions, reason("number_comma", value=quote_cell(text))
        cleaned = cleaned.replace(",", "")
        coercions.append("thousands separators removed")
    if not _PLAIN_NUMBER.match(cleaned):
        return None, coercions, reason("number_invalid", value=quote_cell(text))
    value = float(cleaned) * multiplier
    if not math.isfinite(value):
        return None, coercions, reason("number_not_finite", value=quote_cell(text))
    return (-value if negative else value), coercions, None


def parse_numbers(cells: Cells, *, integer: bool = False) -> ParsedColumn:
    """Parse numbers and amounts (see ``parse_number_text``); ``integer`` requires whole numbers."""
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(None)
            continue
        value, coercions, error = _parse_number(cell)
        if error is None and integer and value is not None and not value.is_integer():
            error = reason("number_not_whole", value=quote_cell(cell))
        if error is not None:
            parsed.messages[position] = error
            parsed.values.append(None)
            continue
        parsed.coercions.update(coercions)
        parsed.values.append(int(value) if integer and value is not None else value)
    return parsed


TRUE_WORDS = frozenset(
    {"true", "t", "yes", "y", "1", "是", "对", "在岗", "在职", "启用", "有效", "√", "✓", "on"}
)
FALSE_WORDS = frozenset(
    {"false", "f", "no", "n", "0", "否", "不", "离职", "离岗", "停用", "无效", "×", "✗", "off"}
)


def parse_booleans(cells: Cells) -> ParsedColumn:
    """Parse 是/否, Y/N, yes/no, true/false, 1/0, 在岗/离职 and similar pairs."""
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(None)
            continue
        key = _lookup_key(cell)
        if key in TRUE_WORDS or key in FALSE_WORDS:
            if key not in ("true", "false"):
                parsed.coercions["boolean word translated"] += 1
            parsed.values.append(key in TRUE_WORDS)
        else:
            parsed.messages[position] = reason("boolean_invalid", value=quote_cell(cell))
            parsed.values.append(None)
    return parsed


_LIST_SEPARATORS = re.compile(r"[;；、,，|\n]+")


def parse_lists(cells: Cells) -> ParsedColumn:
    """Split cells like ``华东;华南``, ``华东、华南`` or ``华东,华南`` into lists (duplicates dropped)."""
    parsed = ParsedColumn(values=[])
    for cell in cells:
        if cell is None:
            parsed.values.append([])
            continue
        items = [item.strip() for item in _LIST_SEPARATORS.split(cell)]
        parsed.values.append(list(dict.fromkeys(item for item in items if item)))
    return parsed


CURRENCY_SYNONYMS: dict[str, str] = {
    "¥": "CNY",
    "RMB": "CNY",
    "人民币": "CNY",
    "元": "CNY",
    "$": "USD",
    "US$": "USD",
    "美元": "USD",
    "HK$": "HKD",
    "港币": "HKD",
    "港元": "HKD",
    "€": "EUR",
    "欧元": "EUR",
}
DEFAULT_CURRENCY = "CNY"
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


def parse_currencies(cells: Cells, *, default: str = DEFAULT_CURRENCY) -> ParsedColumn:
    """Parse currency names and signs into ISO 4217 codes; a missing currency becomes ``default``."""
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(default)
            parsed.coercions[f"default currency {default}"] += 1
            continue
        text = canonical_text(cell).upper()
        code = CURRENCY_SYNONYMS.get(text, text)
        if not _CURRENCY_CODE.match(code):
            parsed.messages[position] = reason("currency_unknown", value=quote_cell(cell))
            parsed.values.append(None)
            continue
        if code != cell:
            parsed.coercions["currency name translated"] += 1
        parsed.values.append(code)
    return parsed


# ---------------------------------------------------------------------------------------
# Timestamps

BUILTIN_DATE_FORMATS: tuple[str, ...] = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%Y.%m.%d",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H:%M",
    "%Y年%m月%d日 %H时%M分",
    "%Y年%m月%d日",
    "%Y%m%d%H%M%S",
)
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{8}$|^\d{8}T")
_DAY_MONTH = re.compile(r"^(\d{1,2})([/-])(\d{1,2})\2(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_SERIAL = re.compile(r"^\d+(\.\d+)?$")
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
# Serial numbers of 1950-01-01 and 2100-01-01: outside this range a number is more likely a
# count or an id than a date.
_SERIAL_RANGE = (18264.0, 73051.0)
_YEAR_RANGE = (1950, 2100)  # accepted years, end excluded; the same span as _SERIAL_RANGE
_MERIDIEM = re.compile(r"(上午|下午)\s*(\d{1,2})(:\d{2}(?::\d{2})?)")


def parse_timestamps(
    cells: Cells,
    *,
    timezone: str,
    formats: Sequence[str] = (),
    excel_serial: bool = False,
) -> ParsedColumn:
    """Parse date and time texts into tz-aware UTC timestamps (see the module docstring).

    ``timezone`` is the IANA zone of values without an offset; a local time that does not
    exist or occurs twice there (a daylight-saving change) is an error.
    """
    zone = zoneinfo.ZoneInfo(timezone)
    cache: dict[str, tuple[pd.Timestamp | None, tuple[str, ...], Message | None]] = {}
    parsed = ParsedColumn(values=[])
    for position, cell in enumerate(cells):
        if cell is None:
            parsed.values.append(None)
            continue
        if cell not in cache:
            cache[cell] = _parse_one_timestamp(cell, zone, timezone, formats, excel_serial)
        value, coercions, error = cache[cell]
        if error is not None:
            parsed.messages[position] = error
        parsed.coercions.update(coercions)
        parsed.values.append(value)
    return parsed


def _parse_one_timestamp(
    cell: str, zone: zoneinfo.ZoneInfo, zone_name: str, formats: Sequence[str], excel_serial: bool
) -> tuple[pd.Timestamp | None, tuple[str, ...], Message | None]:
    text = canonical_text(cell)
    reading, error = _read_accepted_datetime(cell, text, formats, excel_serial)
    if reading is None:
        return None, (), error
    coercions = ("Excel serial date",) if _SERIAL.match(text) and excel_serial else ()
    if reading.tzinfo is not None:
        return pd.Timestamp(reading).tz_convert("UTC"), coercions, None

    local = reading.replace(tzinfo=zone)
    round_trip = local.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != reading:
        return None, (), reason("time_nonexistent", value=quote_cell(cell), zone=zone_name)
    if local.utcoffset() != reading.replace(tzinfo=zone, fold=1).utcoffset():
        return None, (), reason("time_repeated", value=quote_cell(cell), zone=zone_name)
    return pd.Timestamp(local).tz_convert("UTC"), (*coercions, f"assumed {zone_name}"), None


def _read_accepted_datetime(
    cell: str, text: str, formats: Sequence[str], excel_serial: bool
) -> tuple[dt.datetime | None, Message | None]:
    """Read ``text`` like ``_read_datetime``, after converting 上午/下午 times.

    A date outside ``_YEAR_RANGE`` is rejected.
    """
    text, error = _replace_meridiem(text)
    if error is not None:
        return None, error
    reading, error = _read_datetime(text, formats, excel_serial)
    first_year, end_year = _YEAR_RANGE
    if reading is not None and not first_year <= reading.year < end_year:
        return None, reason(
            "date_out_of_range", value=quote_cell(cell), first_year=first_year, last_year=end_year - 1
        )
    return reading, error


def _replace_meridiem(text: str) -> tuple[str, Message | None]:
    """Rewrite a 12-hour time after 上午/下午 as a 24-hour time; return (text, error reason)."""
    match = _MERIDIEM.search(text)
    if match is None:
        return text, None
    hour = int(match[2])
    if not 1 <= hour <= 12:
        return text, reason("meridiem_hour", value=quote_cell(text), hour=hour, marker=match[1])
    hour = hour % 12 + (12 if match[1] == "下午" else 0)
    return f"{text[: match.start()]}{hour:02d}{match[3]}{text[match.end() :]}", None


def _read_datetime(
    text: str, formats: Sequence[str], excel_serial: bool
) -> tuple[dt.datetime | None, Message | None]:
    for date_format in formats:
        try:
            return dt.datetime.strptime(text, date_format), None
        except ValueError:
            continue

    if _ISO_START.match(text):
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")), None
        except ValueError:
            pass
    for date_format in BUILTIN_DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, date_format), None
        except ValueError:
            continue

    day_month = _DAY_MONTH.match(text)
    if day_month:
        return _read_day_month(text, day_month)
    if _SERIAL.match(text):
        return _read_serial(text, excel_serial)
    return None, reason("date_unrecognized", value=quote_cell(text))


def _read_day_month(text: str, match: re.Match[str]) -> tuple[dt.datetime | None, Message | None]:
    first, second, year = int(match.group(1)), int(match.group(3)), int(match.group(4))
    hour, minute, second_of_minute = (int(match.group(index) or 0) for index in (5, 6, 7))
    readings = []
    for month, day in ((first, second), (second, first)):
        try:
            readings.append(dt.datetime(year, month, day, hour, minute, second_of_minute))
        except ValueError:
            continue
    distinct = sorted(set(readings))
    if len(distinct) == 1:
        return distinct[0], None
    if not distinct:
        return None, reason("date_invalid", value=quote_cell(text))
    month_first, day_first = (f"{reading:%Y-%m-%d}" for reading in readings)
    return None, reason(
        "date_ambiguous", value=quote_cell(text), month_first=month_first, day_first=day_first
    )


def _read_serial(text: str, excel_serial: bool) -> tuple[dt.datetime | None, Message | None]:
    if not excel_serial:
        return None, reason("serial_not_xlsx", value=quote_cell(text))
    serial = float(text)
    low, high = _SERIAL_RANGE
    if not low <= serial < high:
        first_year, end_year = _YEAR_RANGE
        return None, reason(
            "serial_out_of_range", value=quote_cell(text), first_year=first_year, last_year=end_year - 1
        )
    # Microsecond rounding keeps 45356.6 from landing a hair before 14:24.
    return _EXCEL_EPOCH + dt.timedelta(microseconds=round(serial * 86_400_000_000)), None
