"""Conversions between API bodies and the scorer: JSON bytes in, lead records, score records out.

The checks here are the ones pydantic cannot make alone: a key repeated inside one JSON
object, which a JSON parser would silently reduce to its last value, and checks that depend
on the loaded model or on the whole batch (repeated lead ids, custom attributes the model
does not know). Each problem becomes a ``Problem`` naming its JSON path, so the response is
a 422 like any other validation error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from data.folder import CustomAttribute
from data.records import timestamp_in_utc
from data.schema import LEADS
from leadscore.errors import DataValidationError
from leadscore.i18n import Locale, translate
from serving.api_models import LeadScore, ScoreFlags
from serving.errors_http import (
    MAX_LISTED_PROBLEMS,
    Problem,
    RequestProblemsError,
    displayable_value,
    escape_control_characters,
    format_location,
    register_error_messages,
)

_ATTRIBUTE_TYPES: dict[str, tuple[type, ...]] = {
    "category": (str,),
    "text": (str,),
    "float": (int, float),
    "int": (int,),
    "bool": (bool,),
    "timestamp": (str,),
}

_MESSAGES: dict[str, dict[str, str]] = {
    "http.repeated_key": {
        "en": "{object} contains the key {name} {count} times; send each key of a JSON object once, "
        "because only one of the values would be read",
        "zh-CN": "{object} 中的键 {name} 出现了 {count} 次；"
        "JSON 对象中的每个键只能出现一次，否则只会读取其中一个值",
    },
    "http.repeated_key_top": {
        "en": "the request body contains the key {name} {count} times; send each key of a JSON object "
        "once, because only one of the values would be read",
        "zh-CN": "请求体中的键 {name} 出现了 {count} 次；"
        "JSON 对象中的每个键只能出现一次，否则只会读取其中一个值",
    },
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


# --- JSON bodies with repeated keys ------------------------------------------------------------


class _RepeatedKeyFoundError(Exception):
    """Raised inside the JSON parser at the first object that contains a key twice."""


def _object_with_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # NOTE: a pairs hook makes json.loads about 1.5 times slower. Measured with timeit on a 2-CPU VM,
    # a 64-lead /score body of 30 kB took 76 µs more, 7 % of parsing plus validation. The standard
    # library offers no cheaper check that finds every repeat.
    result = dict(pairs)
    if len(result) < len(pairs):
        raise _RepeatedKeyFoundError
    return result


@dataclass(frozen=True)
class RepeatedKey:
    """A key that one JSON object of a request contains more than once."""

    object_path: tuple[str | int, ...]
    key: str
    count: int
    second_value: Any


class RepeatedKeysError(RequestProblemsError):
    """The 422 error that names each key repeated inside one object of a JSON body.

    ``more_problems`` is True when the body repeats more keys than ``repeats`` lists.
    """

    def __init__(self, repeats: Sequence[RepeatedKey], *, more_problems: bool, body: Any) -> None:
        self.repeats = tuple(repeats)
        self.more_problems = more_problems
        self.body = body
        super().__init__(self.problems_in("en"))

    def problems_in(self, locale: Locale) -> tuple[Problem, ...]:
        _register()
        return tuple(_repeated_key_problem(repeat, locale) for repeat in self.repeats)


def parse_json_body(body: bytes) -> Any:
    """Parse a request body as JSON, raising RepeatedKeysError when an object contains a key twice.

    Other parser errors (json.JSONDecodeError, UnicodeDecodeError, RecursionError) pass
    through unchanged. A body without repeats is parsed once. A body with repeats is parsed
    a second time, with every object kept as a tuple of its key-value pairs, to find where
    the repeats are.
    """
    try:
        return json.loads(body, object_pairs_hook=_object_with_unique_keys)
    except _RepeatedKeyFoundError:
        pass
    document = json.loads(body, object_pairs_hook=tuple)
    repeats = repeated_keys(document, limit=MAX_LISTED_PROBLEMS + 1)
    top_level = dict(document) if isinstance(document, tuple) else None
    raise RepeatedKeysError(
        repeats[:MAX_LISTED_PROBLEMS], more_problems=len(repeats) > MAX_LISTED_PROBLEMS, body=top_level
    ) from None


def repeated_keys(document: Any, *, limit: int) -> list[RepeatedKey]:
    """Return up to ``limit`` keys repeated inside one object of ``document``, outer objects first.

    ``document`` is parsed with ``object_pairs_hook=tuple``, so each JSON object is a tuple of
    its key-value pairs (repeats kept) and each array a list. The walk stops at ``limit``, and
    it keeps a stack of iterators rather than recursing, because the parser accepts deeper
    nesting than a recursive walk could reach within Python's recursion limit.
    """
    found: list[RepeatedKey] = []
    stack: list[tuple[tuple[str | int, ...], Iterator[tuple[Any, Any]]]] = []
    if isinstance(document, tuple):
        found.extend(_repeats_in_object((), document))
        stack.append(((), iter(document)))
    elif isinstance(document, list):
        stack.append(((), enumerate(document)))
    while stack and len(found) < limit:
        path, entries = stack[-1]
        for name, value in entries:
            if isinstance(value, tuple):
                found.extend(_repeats_in_object((*path, name), value))
                stack.append(((*path, name), iter(value)))
                break
            if isinstance(value, list):
                stack.append(((*path, name), enumerate(value)))
                break
        else:
            # Every entry of this container has been visited.
            stack.pop()
    return found[:limit]


def _repeats_in_object(path: tuple[str | int, ...], pairs: tuple[tuple[str, Any], ...]) -> list[RepeatedKey]:
    """Return one RepeatedKey per key that occurs more than once in the object, at its second occurrence."""
    if len(dict(pairs)) == len(pairs):
        return []
    counts = Counter(key for key, _ in pairs)
    seen: set[str] = set()
    repeats: list[RepeatedKey] = []
    for key, value in pairs:
        if key not in seen:
            seen.add(key)
        elif counts[key] > 1:
            repeats.append(RepeatedKey(path, key, counts[key], _as_json_value(value)))
            counts[key] = 0  # listed once; its later occurrences are in the count
    return repeats


def _as_json_value(value: Any) -> Any:
    """Return a value of the tuple-parsed document with an object as a dict, so that it is shown as one."""
    return dict(value) if isinstance(value, tuple) else value


def _repeated_key_problem(repeat: RepeatedKey, locale: Locale) -> Problem:
    field = format_location(("body", *repeat.object_path, repeat.key))
    where = format_location(("body", *repeat.object_path))
    name = f"'{escape_control_characters(displayable_value(repeat.key))}'"
    if where is None:
        message = translate("http.repeated_key_top", locale, name=name, count=repeat.count)
    else:
        message = translate("http.repeated_key", locale, object=where, name=name, count=repeat.count)
    allowed = "a key not used earlier in the same object"
    return Problem(field, displayable_value(repeat.second_value), allowed, message, "repeated_key")


class JsonBodyRequest(Request):
    """A request whose JSON body is read by ``parse_json_body``, which rejects repeated keys."""

    _parsed_body: Any

    async def json(self) -> Any:
        if not hasattr(self, "_parsed_body"):
            self._parsed_body = parse_json_body(await self.body())
        return self._parsed_body


class JsonBodyRoute(APIRoute):
    """A FastAPI route that reads its request body through ``JsonBodyRequest``.

    FastAPI turns the parser's RepeatedKeysError into a 400 with that error as its cause, and
    ``serving.errors_http`` returns a 422 for such a cause.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_json_body(request: Request) -> Response:
            return await handle(JsonBodyRequest(request.scope, request.receive))

        return handle_json_body


# --- leads ---------------------------------------------------------------------------------------


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
