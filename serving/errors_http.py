"""JSON error bodies for the service: every 4xx and 5xx response has the same shape.

An error body carries a stable ``code``, a ``message`` in the request's locale (en or zh-CN),
the ``field`` at fault, the ``value`` received and what is ``allowed`` there, the request id,
and under ``errors`` one entry per problem when a payload has several. Payload validation
errors (pydantic) become 422, a ``LeadscoreError`` gets its own ``http_status``, and anything
unexpected becomes a 500 that names only the request id.
"""

from __future__ import annotations

import logging
import math
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from leadscore.errors import ConflictError, DataValidationError, LeadscoreError
from leadscore.i18n import DEFAULT_LOCALE, SUPPORTED_LOCALES, Locale, register_messages, translate
from serving.input_types import (
    ATTRIBUTE_VALUE_ERROR,
    CONTROL_CHARACTER_ERROR,
    CONTROL_CHARACTERS,
    LONE_SURROGATE_ERROR,
    TIMESTAMP_YEAR_ERROR,
)

logger = logging.getLogger(__name__)

VALIDATION_CODE = "invalid_request"
UNREADABLE_BODY_CODE = "unreadable_body"
# The detail of the 400 that FastAPI (0.165) raises when request.json() fails with anything but a
# JSONDecodeError. The original error is its __cause__.
BODY_PARSE_DETAIL = "There was an error parsing the body"
INTERNAL_CODE = "internal_error"
DATABASE_CODE = "database_unavailable"
MAX_VALUE_CHARS = 120
# Problems listed under ``errors``. A body of a few hundred kilobytes can contain tens of thousands
# of mistakes: 20,000 unknown fields in a 318 kB body gave a 10.7 MB error body when all were listed.
MAX_LISTED_PROBLEMS = 100
# Top-level request parts that FastAPI puts first in an error location.
_LOCATION_ROOTS = frozenset({"body", "query", "path", "header"})
_QUOTED = re.compile(r"'([^']*)'")
# The last part of a pydantic location whose error is in a dict key, not its value.
_DICT_KEY_MARKER = "[key]"

_MESSAGES: dict[str, dict[str, str]] = {
    "http.missing": {"en": "{field} is required", "zh-CN": "缺少必填字段 {field}"},
    "http.extra": {
        "en": "{field} is not an accepted field; accepted fields: {allowed}",
        "zh-CN": "{field} 不是可接受的字段；可接受的字段：{allowed}",
    },
    "http.null": {
        "en": "{field} must not be null; send {allowed}",
        "zh-CN": "{field} 不能为 null，应为{allowed}",
    },
    "http.type": {
        "en": "{field} has the invalid value {value}; expected {allowed}",
        "zh-CN": "{field} 的值 {value} 无效，应为{allowed}",
    },
    "http.choice": {
        "en": "{field} has the invalid value {value}; expected one of {allowed}",
        "zh-CN": "{field} 的值 {value} 无效，可选值：{allowed}",
    },
    "http.range": {
        "en": "{field}={value} is out of range; expected a value {allowed}",
        "zh-CN": "{field}={value} 超出范围，应 {allowed}",
    },
    "http.too_few_items": {
        "en": "{field} must contain at least {minimum} {noun}; it has {actual}",
        "zh-CN": "{field} 至少应包含 {minimum} 项，实际为 {actual} 项",
    },
    "http.too_many_items": {
        "en": "{field} has {actual} items, more than the maximum of {maximum}; send at most {maximum}",
        "zh-CN": "{field} 含 {actual} 项，超过上限 {maximum} 项",
    },
    "http.text_empty": {
        "en": "{field} must not be empty or blank",
        "zh-CN": "{field} 不能为空或只含空白",
    },
    "http.text_too_short": {
        "en": "{field} has {actual} characters; send at least {minimum}",
        "zh-CN": "{field} 长度为 {actual} 个字符，至少应为 {minimum} 个",
    },
    "http.text_too_long": {
        "en": "{field} has {actual} characters, more than the maximum of {maximum}; send at most {maximum}",
        "zh-CN": "{field} 长度为 {actual} 个字符，超过上限 {maximum} 个",
    },
    "http.lone_surrogate": {
        "en": "{field}={value} is not valid Unicode text because it contains a lone UTF-16 surrogate; "
        "send the text encoded as UTF-8",
        "zh-CN": "{field}={value} 含有单独的 UTF-16 代理码元，不是有效的 Unicode 文本，"
        "请发送 UTF-8 编码的文本",
    },
    "http.control_character": {
        "en": "{field}={value} contains the control or invisible character {character}; "
        "send the id as printable text without control characters, invisible characters or line breaks",
        "zh-CN": "{field}={value} 含有控制字符或不可见字符 {character}，"
        "请发送不含控制字符、不可见字符和换行符的可打印文本",
    },
    "http.timestamp_year": {
        "en": "{field}={value} is outside the supported years {first} to {last}; check the date",
        "zh-CN": "{field}={value} 超出支持的年份范围 {first} 至 {last}，请检查日期",
    },
    "http.naive_time": {
        "en": "{field}={value} has no UTC offset; expected {allowed}",
        "zh-CN": "{field}={value} 缺少时区偏移，应为{allowed}",
    },
    "http.not_json": {
        "en": "the request body is not JSON; send a JSON object with Content-Type: application/json",
        "zh-CN": "请求体不是 JSON，请以 Content-Type: application/json 发送 JSON 对象",
    },
    "http.json": {
        "en": "the request body is not valid JSON ({detail}); send a UTF-8 JSON object",
        "zh-CN": "请求体不是有效的 JSON（{detail}），请发送 UTF-8 编码的 JSON 对象",
    },
    "http.body_not_utf8": {
        "en": "the request body is not valid UTF-8 (byte {byte} at position {position}); "
        "send a JSON object encoded as UTF-8",
        "zh-CN": "请求体不是有效的 UTF-8（位置 {position} 的字节 {byte}），请发送 UTF-8 编码的 JSON 对象",
    },
    "http.body_not_utf8_encoding": {
        "en": "the request body is encoded as {encoding}, but JSON sent between systems must be "
        "UTF-8 (RFC 8259); send a JSON object encoded as UTF-8",
        "zh-CN": "请求体的编码为 {encoding}，而系统间传输的 JSON 必须使用 UTF-8 编码（RFC 8259），"
        "请发送 UTF-8 编码的 JSON 对象",
    },
    "http.body_too_deep": {
        "en": "the request body nests JSON arrays or objects too deeply to parse; "
        "send a UTF-8 JSON object as docs/api.md describes",
        "zh-CN": "请求体中 JSON 数组或对象的嵌套层数过多，无法解析，请按 API 文档发送 UTF-8 编码的 JSON 对象",
    },
    "http.body_unreadable": {
        "en": "the request body cannot be parsed as JSON ({detail}); send a UTF-8 JSON object",
        "zh-CN": "请求体无法解析为 JSON（{detail}），请发送 UTF-8 编码的 JSON 对象",
    },
    "http.trailing_slash": {
        "en": "no endpoint at {path}; send the request to {suggested}, without the trailing slash",
        "zh-CN": "不存在接口 {path}；请改为请求 {suggested}（去掉末尾的斜杠）",
    },
    "http.invalid": {"en": "{field} is invalid: {detail}", "zh-CN": "{field} 无效：{detail}"},
    "http.several": {
        "en": "{count} problems in the request; the first: {first}",
        "zh-CN": "请求中有 {count} 处问题，第一处：{first}",
    },
    "http.several_listed": {
        "en": "{count} problems in the request, of which errors lists the first {listed}; the first: {first}",
        "zh-CN": "请求中有 {count} 处问题，errors 列出前 {listed} 处；第一处：{first}",
    },
    "http.several_listed_more": {
        "en": "more than {listed} problems in the request, of which errors lists the first {listed}; "
        "the first: {first}",
        "zh-CN": "请求中有超过 {listed} 处问题，errors 列出前 {listed} 处；第一处：{first}",
    },
    "http.internal": {
        "en": "internal error while handling request {request_id}; the server log has the details",
        "zh-CN": "处理请求 {request_id} 时发生内部错误，详情见服务日志",
    },
    "http.status": {"en": "{detail}", "zh-CN": "{detail}"},
    "http.database": {
        "en": "the routing database is unavailable (request {request_id}); retry later",
        "zh-CN": "分配数据库暂时不可用（请求 {request_id}），请稍后重试",
    },
    "http.auth_missing": {
        "en": "missing bearer token; send the header 'Authorization: Bearer <token>'",
        "zh-CN": "缺少访问令牌，请发送请求头 'Authorization: Bearer <token>'",
    },
    "http.auth_malformed": {
        "en": "the Authorization header must have the form 'Bearer <token>'",
        "zh-CN": "Authorization 请求头格式应为 'Bearer <token>'",
    },
    "http.auth_invalid": {
        "en": "invalid bearer token; send the token the service was started with "
        "(LEADSCORE_API_TOKEN or --token-file)",
        "zh-CN": "访问令牌无效；请使用启动服务时设置的令牌（LEADSCORE_API_TOKEN 或 --token-file）",
    },
    "http.too_large": {
        "en": "the request body has {size} bytes, more than the limit of {limit} bytes; "
        "split the request into smaller batches, or score a large lead file with 'leadscore rescore'",
        "zh-CN": "请求体为 {size} 字节，超过上限 {limit} 字节；请拆分为更小的批次，"
        "大批线索文件请用 'leadscore rescore' 评分",
    },
    "http.too_large_streamed": {
        "en": "the request body is over the limit of {limit} bytes: the service stopped reading it "
        "after {size} bytes; split the request into smaller batches, or score a large lead file "
        "with 'leadscore rescore'",
        "zh-CN": "请求体超过上限 {limit} 字节：服务读到 {size} 字节时已停止读取；请拆分为更小的批次，"
        "大批线索文件请用 'leadscore rescore' 评分",
    },
    "http.unknown_path": {
        "en": "no endpoint at {path}; the endpoints are listed in the API description at /docs.json",
        "zh-CN": "不存在接口 {path}；全部接口见 API 说明 /docs.json",
    },
    "http.method_not_allowed": {
        "en": "{method} is not allowed on {path}; use {allowed}",
        "zh-CN": "{path} 不支持 {method} 请求；请使用 {allowed}",
    },
    # Summaries that precede the English detail of a LeadscoreError in zh-CN.
    "http.code.leadscore_error": {"en": "{detail}", "zh-CN": "请求无法处理：{detail}"},
    "http.code.invalid_config": {"en": "{detail}", "zh-CN": "配置无效：{detail}"},
    "http.code.unreadable_file": {"en": "{detail}", "zh-CN": "文件无法读取：{detail}"},
    "http.code.schema_mismatch": {"en": "{detail}", "zh-CN": "数据结构不符：{detail}"},
    "http.code.invalid_data": {"en": "{detail}", "zh-CN": "数据无效：{detail}"},
    "http.code.insufficient_data": {"en": "{detail}", "zh-CN": "数据不足：{detail}"},
    "http.code.model_not_found": {"en": "{detail}", "zh-CN": "模型不可用：{detail}"},
    "http.code.not_found": {"en": "{detail}", "zh-CN": "未找到：{detail}"},
    "http.code.conflict": {"en": "{detail}", "zh-CN": "与已有数据冲突：{detail}"},
    "http.code.unauthorized": {"en": "{detail}", "zh-CN": "身份验证失败：{detail}"},
    "http.code.payload_too_large": {"en": "{detail}", "zh-CN": "请求体过大：{detail}"},
    "http.code.overloaded": {"en": "{detail}", "zh-CN": "服务繁忙：{detail}"},
}

# Accepted values per kind of pydantic type error, as (text in en, text in zh-CN).
_EXPECTED: dict[str, tuple[str, str]] = {
    "int": ("an integer", "整数"),
    "float": ("a finite number", "有限数值"),
    "str": ("a string", "字符串"),
    "bool": ("true or false", "true 或 false"),
    "datetime": (
        "an ISO 8601 timestamp such as 2026-03-01T09:30:00+08:00",
        "ISO 8601 格式的时间，例如 2026-03-01T09:30:00+08:00",
    ),
    "list": ("a JSON array", "JSON 数组"),
    "object": ("a JSON object", "JSON 对象"),
    "attribute": (
        "a string, a finite number, true, false or null",
        "字符串、有限数值、true、false 或 null",
    ),
}
_TYPE_ERRORS: dict[str, str] = {
    "int_type": "int",
    "int_parsing": "int",
    "int_from_float": "int",
    "float_type": "float",
    "float_parsing": "float",
    "finite_number": "float",
    "string_type": "str",
    "bool_type": "bool",
    "bool_parsing": "bool",
    "datetime_type": "datetime",
    "datetime_parsing": "datetime",
    "datetime_from_date_parsing": "datetime",
    "datetime_object_invalid": "datetime",
    "list_type": "list",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    ATTRIBUTE_VALUE_ERROR: "attribute",
}
_RANGE_ERRORS: dict[str, tuple[str, str]] = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_LENGTH_ERRORS = frozenset({"too_short", "too_long", "string_too_short", "string_too_long"})
_CONTROL_ALLOWED = (
    "printable text without control characters (U+0000 to U+001F, U+007F to U+009F), "
    "line separators (U+2028, U+2029) or invisible format characters (U+200B to U+200F, "
    "U+202A to U+202E, U+2060 to U+2064, U+2066 to U+206F, U+FEFF)"
)
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


class RequestProblemsError(DataValidationError):
    """Problems found in a request by checks outside pydantic; returned as 422 like validation errors.

    ``body`` is the parsed request body when the endpoint never received it, so that its
    ``locale`` field still chooses the language of the messages. ``more_problems`` is True
    when the check stopped listing problems at ``MAX_LISTED_PROBLEMS``, so their total is unknown.
    """

    code = VALIDATION_CODE
    body: Any = None
    more_problems: bool = False

    def __init__(self, problems: Sequence[Problem], message: str | None = None) -> None:
        super().__init__(message or "; ".join(problem.message for problem in problems))
        self.problems = tuple(problems)

    def problems_in(self, locale: Locale) -> tuple[Problem, ...]:
        """Return the problems with messages in ``locale``; these were written when raised."""
        return self.problems


class ConflictProblemsError(ConflictError):
    """Items of a request that clash with stored data; returned as 409 listing each item."""

    def __init__(self, problems: Sequence[Problem], message: str) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@cache
def register_error_messages() -> None:
    """Register the error texts with ``leadscore.i18n`` once per process."""
    register_messages(_MESSAGES)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where, what was received, what is allowed, and a sentence."""

    field: str | None
    value: Any
    allowed: Any
    message: str
    type: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": utf8_safe(self.field) if self.field else None,
            "value": self.value,
            "allowed": self.allowed,
            "message": utf8_safe(self.message),
            "type": self.type,
        }


def routing_error_text(
    status: int, locale: Locale, method: str, path: str, allow: str
) -> tuple[str | None, str]:
    """Return the code and message for an unknown path (404) or method (405); (None, "") otherwise."""
    register_error_messages()
    if status == 404:
        return "not_found", translate("http.unknown_path", locale, path=path)
    if status == 405:
        allowed = allow or "-"
        return "method_not_allowed", translate(
            "http.method_not_allowed", locale, method=method, path=path, allowed=allowed
        )
    return None, ""


def error_body(
    code: str,
    message: str,
    *,
    request_id: str | None,
    problems: Sequence[Problem] = (),
) -> dict[str, Any]:
    """Build the JSON error body; ``field``, ``value`` and ``allowed`` repeat the first problem.

    At most ``MAX_LISTED_PROBLEMS`` problems are listed.
    """
    first = problems[0] if problems else None
    return {
        "code": code,
        "message": utf8_safe(message),
        "field": utf8_safe(first.field) if first and first.field else None,
        "value": first.value if first else None,
        "allowed": first.allowed if first else None,
        "request_id": request_id,
        "errors": [problem.to_dict() for problem in problems[:MAX_LISTED_PROBLEMS]],
    }


def leadscore_error_body(error: LeadscoreError, locale: Locale, request_id: str | None) -> dict[str, Any]:
    """Build the error body of a LeadscoreError; the zh-CN message prefixes a summary to the detail."""
    register_error_messages()
    key = f"http.code.{error.code}"
    detail = str(error)
    try:
        message = translate(key, locale, detail=detail)
    except LeadscoreError:
        # A subclass with a code this module has no summary for keeps its English detail.
        message = detail
    return error_body(error.code, message, request_id=request_id)


def internal_error_body(locale: Locale, request_id: str | None) -> dict[str, Any]:
    """Build the body of a 500 response, which names the request id and nothing about the cause."""
    register_error_messages()
    message = translate("http.internal", locale, request_id=request_id or "-")
    return error_body(INTERNAL_CODE, message, request_id=request_id)


def validation_error_body(
    errors: Sequence[Mapping[str, Any]],
    *,
    locale: Locale,
    request_id: str | None,
    body_model: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """Build the 422 body from pydantic error dicts, one problem per error.

    ``body_model`` is the request's body model; with it an unknown field lists the fields
    accepted at its position.
    """
    listed = errors[:MAX_LISTED_PROBLEMS]
    problems = [describe_problem(error, locale=locale, body_model=body_model) for error in listed]
    message = problems_message(problems, len(errors), locale)
    return error_body(VALIDATION_CODE, message, request_id=request_id, problems=problems)


def problems_message(problems: Sequence[Problem], count: int, locale: Locale, *, more: bool = False) -> str:
    """Return the message of an error body: the one problem, or the count of ``count`` and the first.

    ``more`` True means that the request has more problems than the ``count`` found.
    """
    register_error_messages()
    if more:
        return translate("http.several_listed_more", locale, listed=len(problems), first=problems[0].message)
    if count == 1:
        return problems[0].message
    if count > len(problems):
        return translate(
            "http.several_listed", locale, count=count, listed=len(problems), first=problems[0].message
        )
    return translate("http.several", locale, count=count, first=problems[0].message)


@dataclass(frozen=True)
class _ErrorView:
    """One pydantic error dict, unpacked for the describers below."""

    error_type: str
    location: tuple[Any, ...]
    field: str | None
    raw_input: Any
    value: Any
    context: Mapping[str, Any]
    locale: Locale
    body_model: type[BaseModel] | None

    @property
    def shown_field(self) -> str:
        return self.field or "request"

    def expected(self, kind: str) -> tuple[str, str]:
        """Return (English text, text in the request locale) for what a field of ``kind`` accepts."""
        expected_en, expected_zh = _EXPECTED[kind]
        return expected_en, expected_zh if self.locale == "zh-CN" else expected_en


def describe_problem(
    error: Mapping[str, Any], *, locale: Locale = DEFAULT_LOCALE, body_model: type[BaseModel] | None = None
) -> Problem:
    """Turn one pydantic error dict into a Problem with a sentence in ``locale``."""
    register_error_messages()
    location = tuple(error.get("loc", ()))
    view = _ErrorView(
        error_type=str(error.get("type", "value_error")),
        location=location,
        field=format_location(location),
        raw_input=error.get("input"),
        value=displayable_value(error.get("input")),
        context=error.get("ctx") or {},
        locale=locale,
        body_model=body_model,
    )
    describer = _DESCRIBERS.get(view.error_type)
    if describer is None and view.error_type in _TYPE_ERRORS:
        describer = _describe_type
    elif describer is None and view.error_type in _RANGE_ERRORS:
        describer = _describe_range
    elif describer is None and view.error_type in _LENGTH_ERRORS:
        describer = _describe_length
    if describer is None:
        detail = str(view.context.get("error") or error.get("msg") or view.error_type)
        message = translate("http.invalid", locale, field=view.shown_field, detail=detail)
        return Problem(view.field, view.value, None, message, view.error_type)
    return describer(view)


def _describe_missing(view: _ErrorView) -> Problem:
    message = translate("http.missing", view.locale, field=view.shown_field)
    return Problem(view.field, None, None, message, view.error_type)


def _describe_extra(view: _ErrorView) -> Problem:
    accepted = accepted_fields(view.body_model, _model_path(view.location)[:-1])
    accepted_text = ", ".join(accepted) if accepted else "-"
    message = translate("http.extra", view.locale, field=view.shown_field, allowed=accepted_text)
    return Problem(view.field, view.value, accepted or None, message, view.error_type)


def _describe_json(view: _ErrorView) -> Problem:
    detail = str(view.context.get("error", "malformed JSON"))
    message = translate("http.json", view.locale, detail=detail)
    return Problem(None, None, "a UTF-8 JSON object", message, view.error_type)


def _describe_type(view: _ErrorView) -> Problem:
    if isinstance(view.raw_input, bytes):
        # FastAPI hands over the raw bytes when the Content-Type is not JSON.
        message = translate("http.not_json", view.locale)
        return Problem(None, None, "a JSON object", message, view.error_type)
    expected_en, expected = view.expected(_TYPE_ERRORS[view.error_type])
    key = "http.null" if view.raw_input is None else "http.type"
    message = translate(key, view.locale, field=view.shown_field, value=_quoted(view.value), allowed=expected)
    return Problem(view.field, view.value, expected_en, message, view.error_type)


def _describe_naive_time(view: _ErrorView) -> Problem:
    expected_en, expected = view.expected("datetime")
    message = translate(
        "http.naive_time", view.locale, field=view.shown_field, value=view.value, allowed=expected
    )
    return Problem(view.field, view.value, expected_en, message, view.error_type)


def _describe_choice(view: _ErrorView) -> Problem:
    choices = _QUOTED.findall(str(view.context.get("expected", "")))
    message = translate(
        "http.choice",
        view.locale,
        field=view.shown_field,
        value=_quoted(view.value),
        allowed=", ".join(choices),
    )
    return Problem(view.field, view.value, choices, message, view.error_type)


def _describe_range(view: _ErrorView) -> Problem:
    bound_key, operator = _RANGE_ERRORS[view.error_type]
    allowed = f"{operator} {view.context.get(bound_key)}"
    message = translate("http.range", view.locale, field=view.shown_field, value=view.value, allowed=allowed)
    return Problem(view.field, view.value, allowed, message, view.error_type)


def _describe_length(view: _ErrorView) -> Problem:
    """Describe a list, object or text of the wrong length, counting what was received."""
    actual = _received_length(view)
    minimum = view.context.get("min_length")
    maximum = view.context.get("max_length")
    is_text = view.error_type.startswith("string_")
    too_short = view.error_type.endswith("too_short")
    if is_text and too_short and minimum == 1:
        message = translate("http.text_empty", view.locale, field=view.shown_field)
    elif is_text:
        key = "http.text_too_short" if too_short else "http.text_too_long"
        message = translate(
            key, view.locale, field=view.shown_field, actual=actual, minimum=minimum, maximum=maximum
        )
    elif too_short:
        noun = _item_noun(view.location, minimum)
        message = translate(
            "http.too_few_items",
            view.locale,
            field=view.shown_field,
            minimum=minimum,
            noun=noun,
            actual=actual,
        )
    else:
        message = translate(
            "http.too_many_items", view.locale, field=view.shown_field, actual=actual, maximum=maximum
        )
    value = view.value if is_text else None
    return Problem(view.field, value, _length_bounds(view.context, "en"), message, view.error_type)


def _received_length(view: _ErrorView) -> int | str:
    """Return the length of the received value. Pydantic reports it for lists but not for text."""
    if isinstance(view.raw_input, str | list | tuple | dict):
        return len(view.raw_input)
    return str(view.context.get("actual_length", "?"))


def _item_noun(location: Sequence[Any], count: object) -> str:
    """Return the word for one item of the list at ``location``: leads -> lead, activities -> activity."""
    names = [part for part in location if isinstance(part, str) and part not in _LOCATION_ROOTS]
    name = names[-1] if names else "item"
    if count != 1:
        return name if names else "items"
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def _describe_lone_surrogate(view: _ErrorView) -> Problem:
    # repr() writes the surrogate as one escape, but the cut ``view.value`` already contains escapes.
    quoted_input = repr(str(view.raw_input)[:MAX_VALUE_CHARS])
    message = translate("http.lone_surrogate", view.locale, field=view.shown_field, value=quoted_input)
    return Problem(view.field, view.value, "valid Unicode text", message, view.error_type)


def _describe_control_character(view: _ErrorView) -> Problem:
    escaped = escape_control_characters(_cut_text(str(view.raw_input)))
    message = translate(
        "http.control_character",
        view.locale,
        field=view.shown_field,
        value=f"'{escaped}'",
        character=view.context.get("character", "?"),
    )
    return Problem(view.field, escaped, _CONTROL_ALLOWED, message, view.error_type)


def _describe_timestamp_year(view: _ErrorView) -> Problem:
    first, last = view.context.get("first"), view.context.get("last")
    message = translate(
        "http.timestamp_year", view.locale, field=view.shown_field, value=view.value, first=first, last=last
    )
    return Problem(view.field, view.value, f"a year from {first} to {last}", message, view.error_type)


_DESCRIBERS: dict[str, Callable[[_ErrorView], Problem]] = {
    "missing": _describe_missing,
    "extra_forbidden": _describe_extra,
    "json_invalid": _describe_json,
    "timezone_aware": _describe_naive_time,
    "literal_error": _describe_choice,
    "enum": _describe_choice,
    LONE_SURROGATE_ERROR: _describe_lone_surrogate,
    CONTROL_CHARACTER_ERROR: _describe_control_character,
    TIMESTAMP_YEAR_ERROR: _describe_timestamp_year,
}


def format_location(location: Sequence[Any]) -> str | None:
    """Render a pydantic location as a JSON path: ``("body", "leads", 0, "type")`` -> ``leads[0].type``.

    Names come from the request (unknown fields, attribute names), so their control
    characters are escaped. Pydantic's ``[key]`` marker after a dict key is dropped, so an
    invalid attribute name reads ``leads[0].attributes.<name>``.
    """
    parts = list(location)
    if parts and parts[0] in _LOCATION_ROOTS:
        parts = parts[1:]
    text = ""
    for part in parts:
        if part == _DICT_KEY_MARKER:
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = escape_control_characters(_cut_text(str(part)))
            text += f".{name}" if text else name
    return text or None


def escape_control_characters(text: str) -> str:
    """Return ``text`` with each control character or line separator written as an escape, such as ``\\n``."""
    return CONTROL_CHARACTERS.sub(_escape_character, text)


def _escape_character(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _NAMED_ESCAPES.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _cut_text(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def displayable_value(value: Any) -> Any:
    """Return a received value safe to put in JSON: scalars as is, long text and long numbers cut.

    Containers are summarized. A cut number becomes text that ends in "…", and a lone UTF-16
    surrogate becomes its escape, such as ``\\ud800``, so the body can be encoded as UTF-8.
    """
    if value is None or isinstance(value, bool | float | int):
        return _displayable_number(value)
    if isinstance(value, str):
        return utf8_safe(_cut_text(value))
    if isinstance(value, Mapping):
        return f"<object with {len(value)} keys>"
    if isinstance(value, list | tuple):
        return f"<array of {len(value)} items>"
    return f"<{type(value).__name__}>"


def _displayable_number(value: bool | float | int | None) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, bool):
        return value
    digits = str(value)
    if len(digits) <= MAX_VALUE_CHARS:
        return value
    return f"{digits[:MAX_VALUE_CHARS]}… ({len(digits)} digits)"


def accepted_fields(model: type[BaseModel] | None, path: Sequence[Any]) -> list[str]:
    """Return the field names accepted at ``path`` inside ``model`` (empty when it is not a model)."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field_info = current.model_fields.get(str(part))
        if field_info is None:
            return []
        current = field_info.annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Optional and Annotated from a type annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else annotation
    return annotation


def _model_path(location: Sequence[Any]) -> list[Any]:
    parts = list(location)
    return parts[1:] if parts and parts[0] in _LOCATION_ROOTS else parts


def _length_bounds(context: Mapping[str, Any], locale: Locale) -> str:
    low = context.get("min_length")
    high = context.get("max_length")
    chinese = locale == "zh-CN"
    if low is not None and high is not None:
        return f"{low} 到 {high}" if chinese else f"{low} to {high}"
    if low is not None:
        return f"至少 {low}" if chinese else f"at least {low}"
    return f"至多 {high}" if chinese else f"at most {high}"


def _quoted(value: Any) -> str:
    """Return ``value`` as it reads in JSON for null and booleans, else as its Python repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def utf8_safe(text: str) -> str:
    """Return ``text`` with each character UTF-8 cannot encode written as an escape such as ``\\ud800``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- routing and body-parsing errors -----------------------------------------------------------

_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: Any, scope: Mapping[str, Any]) -> list[str]:
    """Return the methods that some route of ``app`` fully matches at the scope's path.

    Each method is tried through the public ``matches`` of the routes, because FastAPI 0.165
    wraps its routes in one router object that has no ``methods`` of its own.
    """
    routes = list(getattr(app, "routes", ()))
    allowed = []
    for method in _METHOD_ORDER:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def trailing_slash_text(locale: Locale, path: str, suggested: str) -> str:
    """Return the 404 message for ``path`` that only differs from the endpoint ``suggested`` by a slash."""
    register_error_messages()
    return translate("http.trailing_slash", locale, path=path, suggested=suggested)


def wrong_encoding_message(encoding: str, locale: Locale) -> str:
    """Return the message for a JSON body sent in ``encoding`` (such as UTF-16LE) instead of UTF-8."""
    register_error_messages()
    return translate("http.body_not_utf8_encoding", locale, encoding=encoding)


def choice_problem(field: str, value: str, choices: Sequence[str], locale: Locale) -> Problem:
    """Return the Problem of a value outside ``choices`` found outside the body model, such as a query."""
    register_error_messages()
    shown = displayable_value(value)
    message = translate("http.choice", locale, field=field, value=_quoted(shown), allowed=", ".join(choices))
    return Problem(field, shown, list(choices), message, "literal_error")


def unreadable_body_message(cause: BaseException | None, locale: Locale) -> str:
    """Return what made a request body unreadable as JSON and what to send instead."""
    register_error_messages()
    if isinstance(cause, UnicodeDecodeError):
        byte = f"0x{cause.object[cause.start]:02x}"
        return translate("http.body_not_utf8", locale, byte=byte, position=cause.start)
    if isinstance(cause, RecursionError):
        return translate("http.body_too_deep", locale)
    detail = utf8_safe(str(cause))[:MAX_VALUE_CHARS] if cause is not None else "unknown error"
    return translate("http.body_unreadable", locale, detail=detail)


# --- FastAPI exception handlers ----------------------------------------------------------------


@dataclass(frozen=True)
class ErrorHooks:
    """Hooks into the running service for the handlers: its default locale and a metrics callback."""

    default_locale: Callable[[], Locale]
    on_validation_error: Callable[[str], None]


def install_error_handlers(app: FastAPI, hooks: ErrorHooks) -> None:
    """Register handlers that turn every error of ``app`` into a response with the JSON error body."""

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        validation = typing.cast(RequestValidationError, error)
        body = getattr(validation, "body", None)
        locale = _request_locale(request, hooks, body)
        hooks.on_validation_error(request.url.path)
        problems_body = validation_error_body(
            validation.errors(),
            locale=locale,
            request_id=_request_id(request),
            body_model=_body_model(request),
        )
        _remember_error(request, VALIDATION_CODE)
        return _json(422, problems_body)

    async def on_request_problems(request: Request, error: Exception) -> JSONResponse:
        failure = typing.cast(RequestProblemsError, error)
        locale = _request_locale(request, hooks, failure.body)
        problems = failure.problems_in(locale)
        hooks.on_validation_error(request.url.path)
        _remember_error(request, VALIDATION_CODE)
        listed = problems[:MAX_LISTED_PROBLEMS]
        message = problems_message(listed, len(problems), locale, more=failure.more_problems)
        return _json(
            failure.http_status,
            error_body(failure.code, message, request_id=_request_id(request), problems=problems),
        )

    async def on_conflict_problems(request: Request, error: Exception) -> JSONResponse:
        failure = typing.cast(ConflictProblemsError, error)
        _remember_error(request, failure.code)
        body = error_body(
            failure.code, str(failure), request_id=_request_id(request), problems=failure.problems
        )
        return _json(failure.http_status, body)

    async def on_leadscore_error(request: Request, error: Exception) -> JSONResponse:
        failure = typing.cast(LeadscoreError, error)
        locale = _request_locale(request, hooks, None)
        if failure.http_status == 422:
            hooks.on_validation_error(request.url.path)
        logger.info(
            "request %s failed with %s: %s", _request_id(request), failure.code, type(failure).__name__
        )
        _remember_error(request, failure.code)
        return _json(failure.http_status, leadscore_error_body(failure, locale, _request_id(request)))

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(RequestProblemsError, on_request_problems)
    app.add_exception_handler(ConflictProblemsError, on_conflict_problems)
    app.add_exception_handler(LeadscoreError, on_leadscore_error)
    _install_http_error_handler(app, hooks, on_request_problems)
    _install_server_error_handlers(app, hooks)


def _install_http_error_handler(
    app: FastAPI,
    hooks: ErrorHooks,
    on_request_problems: Callable[[Request, Exception], Awaitable[JSONResponse]],
) -> None:
    """Register the handler of Starlette's HTTP errors: unknown path or method, unreadable body.

    FastAPI turns every error of the JSON parser into a 400 with that error as its cause. When
    the cause is a RequestProblemsError (a key repeated in an object), the response is its 422.
    """

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        http_error = typing.cast(StarletteHTTPException, error)
        cause = http_error.__cause__
        if http_error.status_code == 400 and isinstance(cause, RequestProblemsError):
            return await on_request_problems(request, cause)
        locale = _request_locale(request, hooks, None)
        status = http_error.status_code
        allow = (http_error.headers or {}).get("Allow", "")
        if status == 405:
            # Starlette names only the methods of the first route with this path (GET of GET /reps
            # when PUT /reps exists too), so the methods of every matching route are collected.
            allow = ", ".join(allowed_methods(request.app, request.scope)) or allow
        code, message = routing_error_text(status, locale, request.method, request.url.path, allow)
        if status == 400 and http_error.detail == BODY_PARSE_DETAIL:
            code, message = UNREADABLE_BODY_CODE, unreadable_body_message(http_error.__cause__, locale)
        if code is None:
            code = f"http_{status}"
            register_error_messages()
            message = translate("http.status", locale, detail=str(http_error.detail))
        _remember_error(request, code)
        response = _json(status, error_body(code, message, request_id=_request_id(request)))
        if allow:
            response.headers["Allow"] = allow
        return response

    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _install_server_error_handlers(app: FastAPI, hooks: ErrorHooks) -> None:
    """Register the 503 (database unavailable) and 500 (anything unexpected) handlers."""

    async def on_database_error(request: Request, error: Exception) -> JSONResponse:
        locale = _request_locale(request, hooks, None)
        logger.error(
            "request %s: routing database unavailable (%s)", _request_id(request), type(error).__name__
        )
        _remember_error(request, DATABASE_CODE)
        register_error_messages()
        message = translate("http.database", locale, request_id=_request_id(request) or "-")
        return _json(503, error_body(DATABASE_CODE, message, request_id=_request_id(request)))

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        locale = _request_locale(request, hooks, None)
        logger.exception(
            "request %s failed with an unexpected %s", _request_id(request), type(error).__name__
        )
        # Starlette re-raises the error after this response is sent; the request guard catches
        # it there and must not log it a second time.
        request.state.error_logged = True
        _remember_error(request, INTERNAL_CODE)
        return _json(500, internal_error_body(locale, _request_id(request)))

    app.add_exception_handler(OperationalError, on_database_error)
    app.add_exception_handler(InterfaceError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


def _request_locale(request: Request, hooks: ErrorHooks, body: Any) -> Locale:
    """Return the locale an endpoint chose for this request, else the one named by ``body`` or headers."""
    from serving.request_locale import locale_from_body, locale_from_headers

    chosen = getattr(request.state, "locale", None)
    if chosen in SUPPORTED_LOCALES:
        return typing.cast(Locale, chosen)
    from_body = locale_from_body(body)
    if from_body is not None:
        return from_body
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        default = hooks.default_locale()
    except Exception:
        # An error response must render even while the service is still starting.
        default = DEFAULT_LOCALE
    return locale_from_headers(request.scope.get("query_string", b""), headers, default)


def _request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return str(value) if value is not None else None


def _remember_error(request: Request, code: str) -> None:
    request.state.error_code = code


def _body_model(request: Request) -> type[BaseModel] | None:
    """Return the body model of the matched FastAPI route, or None."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    for param in getattr(dependant, "body_params", None) or []:
        annotation = getattr(getattr(param, "field_info", None), "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
    return None


def _json(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)
