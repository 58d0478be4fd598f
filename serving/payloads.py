"""Conversions between API bodies and the scorer: lead records in, score records out.

The checks here are the ones pydantic cannot make alone because they depend on the loaded
model or on the whole batch: repeated lead ids and custom attributes the model does not
know. Each problem becomes a ``Problem`` naming its JSON path, so the response is a 422 like
any other validation error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from data.folder import CustomAttribute
from data.records import timestamp_in_utc
from data.schema import LEADS
from leadscore.errors import DataValidationError
from leadscore.i18n import Locale, translate
from serving.api_models import LeadScore, ScoreFlags
from serving.errors_http import Problem, displayable_value, register_error_messages

_ATTRIBUTE_TYPES: dict[str, tuple[type, ...]] = {
    "category": (str,),
    "text": (str,),
    "float": (int, float),
    "int": (int,),
    "bool": (bool,),
    "timestamp": (str,),
}

_MESSAGES: dict[str, dict[str, str]] = {
    "http.repeated_lead": {
        "en": "{field}={value} repeats the lead_id of leads[{first}]; send each lead once per request",
        "zh-CN": "{field}={value} 与 leads[{first}] 的 lead_id 重复，每条线索在一个请求中只能出现一次",
    },
    "http.unknown_attribute": {
        "en": "{field} is not a custom attribute of the model; accepted attributes: {allowed}",
        "zh-CN": "{field} 不是模型的自定义属性；可接受的属性：{allowed}",
    },
    "http.attribute_type": {
        "en": "{field} has the invalid value {value}; the model declares it as {kind}, so send {expected}",
        "zh-CN": "{field} 的值 {value} 无效，模型中该属性的类型为 {kind}，请发送{expected}",
    },
    "http.attribute_expected.category": {"en": "a string", "zh-CN": "字符串"},
    "http.attribute_expected.text": {"en": "a string", "zh-CN": "字符串"},
    "http.attribute_expected.float": {"en": "a number", "zh-CN": "数字"},
    "http.attribute_expected.int": {"en": "a whole number", "zh-CN": "整数"},
    "http.attribute_expected.bool": {"en": "true or false", "zh-CN": "true 或 false"},
    "http.attribute_expected.timestamp": {
        "en": "an ISO 8601 timestamp string such as 2025-03-01T09:00:00+08:00",
        "zh-CN": "ISO 8601 时间字符串，例如 2025-03-01T09:00:00+08:00",
    },
}
_registered = False


def _register() -> None:
    global _registered  # noqa: PLW0603 - a once-only flag; the catalog lives in leadscore.i18n
    if not _registered:
        register_error_messages()
        from leadscore.i18n import register_messages

        register_messages(_MESSAGES)
        _registered = True


def lead_problems(
    leads: Sequence[BaseModel], attributes: Sequence[CustomAttribute], locale: Locale
) -> list[Problem]:
    """Return a Problem for each repeated lead_id and each custom attribute the model rejects."""
    _register()
    problems: list[Problem] = []
    first_position: dict[str, int] = {}
    declared = {attribute.name: attribute for attribute in attributes}
    allowed = sorted(declared)
    canonical = set(LEADS.column_names)
    for position, lead in enumerate(leads):
        lead_id = str(getattr(lead, "lead_id"))  # noqa: B009 - field of a model built by create_model
        if lead_id in first_position:
            field = f"leads[{position}].lead_id"
            message = translate(
                "http.repeated_lead", locale, field=field, value=repr(lead_id), first=first_position[lead_id]
            )
            problems.append(
                Problem(field, lead_id, "a lead_id not used earlier in the request", message, "repeated")
            )
        else:
            first_position[lead_id] = position
        for name, value in (getattr(lead, "attributes", None) or {}).items():
            field = f"leads[{position}].attributes.{name}"
            attribute = declared.get(name)
            if attribute is None or name in canonical:
                message = translate(
                    "http.unknown_attribute", locale, field=field, allowed=", ".join(allowed) or "-"
                )
                problems.append(
                    Problem(field, displayable_value(value), allowed, message, "unknown_attribute")
                )
                continue
            if value is not None and not _matches_type(value, attribute.type):
                message = translate(
                    "http.attribute_type",
                    locale,
                    field=field,
                    value=repr(displayable_value(value)),
                    kind=attribute.type,
                    expected=translate(f"http.attribute_expected.{attribute.type}", locale),
                )
                problems.append(
                    Problem(field, displayable_value(value), attribute.type, message, "attribute_type")
                )
    return problems


def _matches_type(value: Any, kind: str) -> bool:
    expected = _ATTRIBUTE_TYPES.get(kind, (str,))
    if isinstance(value, bool) and bool not in expected:
        return False
    if not isinstance(value, expected):
        return False
    if kind == "timestamp":
        try:
            dt.datetime.fromisoformat(str(value))
        except ValueError:
            return False
    return True


def lead_records(leads: Sequence[BaseModel], attributes: Sequence[CustomAttribute]) -> list[dict[str, Any]]:
    """Return scorer records: the fields the client set, with the model's custom attributes flattened in.

    A declared attribute that a lead leaves out is sent as null, which the model reads as a
    missing value, exactly like an optional canonical field that is left out.
    """
    records: list[dict[str, Any]] = []
    for lead in leads:
        record = lead.model_dump(exclude_none=True, exclude={"attributes"})
        for key in ("activities", "stage_changes", "orders"):
            if not record.get(key):
                record.pop(key, None)
        sent = getattr(lead, "attributes", None) or {}
        for attribute in attributes:
            record[attribute.name] = sent.get(attribute.name)
        records.append(record)
    return records


def to_lead_score(record: Mapping[str, Any]) -> LeadScore:
    """Convert one score record of ``training.scorer`` to the API's LeadScore."""
    flags = record.get("flags") or {}
    unseen = {str(key): str(value) for key, value in (flags.get("unseen_categories") or {}).items()}
    return LeadScore(
        lead_id=str(record["lead_id"]),
        p_convert=float(record["p_convert"]),
        ltv=float(record["ltv"]),
        expected_value=float(record["expected_value"]),
        grade=record["grade"],
        segment=record["segment"],
        reasons_positive=list(record.get("reasons_positive") or []),
        reasons_negative=list(record.get("reasons_negative") or []),
        model_version=str(record["model_version"]),
        flags=ScoreFlags(
            unseen_category=bool(unseen),
            unseen_categories=unseen,
            insufficient_data=bool(flags.get("insufficient_data", False)),
        ),
    )


def as_aware(value: dt.datetime, timezone: str) -> dt.datetime:
    """Return ``value`` tz-aware in UTC; a naive value is read in ``timezone``.

    Converts through ``data.records.timestamp_in_utc``, so a naive value that a daylight-saving
    change skips or repeats raises DataValidationError as it does for lead records.
    """
    timestamp = timestamp_in_utc(value, timezone)
    if timestamp is None:
        raise DataValidationError(f"{value!r} is not a datetime")
    return timestamp.to_pydatetime()


def as_aware_field(value: dt.datetime, timezone: str, field: str) -> dt.datetime:
    """Return ``as_aware(value, timezone)``, or raise its DataValidationError prefixed with ``field``."""
    try:
        return as_aware(value, timezone)
    except DataValidationError as error:
        raise DataValidationError(f"{field}: {error}") from None
