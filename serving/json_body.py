"""Request bodies parsed as JSON with a check that no object contains a key twice.

A JSON parser keeps only the last value of a repeated key, so a CRM that sends
``{"lead_id": "a", "lead_id": "b"}`` would have one of its values dropped without notice.
``JsonBodyRoute`` makes every API route parse its body with ``parse_json_body``, which
raises a 422 naming each repeated key and its path.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from leadscore.i18n import Locale, register_messages, translate
from serving.errors_http import (
    MAX_LISTED_PROBLEMS,
    Problem,
    RequestProblemsError,
    displayable_value,
    escape_control_characters,
    format_location,
    register_error_messages,
)

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
}


@cache
def _register() -> None:
    register_error_messages()
    register_messages(_MESSAGES)


class _RepeatedKeyFoundError(Exception):
    """The signal that stops the JSON parser at the first object that contains a key twice."""


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
