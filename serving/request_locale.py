"""The locale of a request's texts (reasons, error messages): en or zh-CN.

Precedence, highest first: the ``locale`` field of the JSON body, the ``locale`` query
parameter, the ``Accept-Language`` header, the service default (``Settings.locale``). An
unsupported value in the body or query is a validation error of that field: the body model
rejects the body's, and the request guard rejects the query's with ``invalid_query_locale``.
An ``Accept-Language`` header without a supported language is ignored.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from leadscore.errors import ConfigError
from leadscore.i18n import Locale, parse_locale

QUERY_LOCALE = "locale"


def invalid_query_locale(query_string: bytes) -> str | None:
    """Return the first ``locale`` query value that names no supported locale (blank included), or None."""
    query = urllib.parse.parse_qs(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    for value in query.get(QUERY_LOCALE, []):
        try:
            parse_locale(value)
        except ConfigError:
            return value
    return None


def locale_from_headers(query_string: bytes, headers: Mapping[str, str], default: Locale) -> Locale:
    """Return the locale named by the ``locale`` query parameter or ``Accept-Language``, else ``default``."""
    query = urllib.parse.parse_qs(query_string.decode("utf-8", "replace"))
    for value in query.get(QUERY_LOCALE, []):
        try:
            return parse_locale(value)
        except ConfigError:
            break
    return locale_from_accept_language(headers.get("accept-language"), default)


def locale_from_accept_language(header: str | None, default: Locale) -> Locale:
    """Return the supported language the header prefers most (by q-value), or ``default``."""
    if not header:
        return default
    ranked: list[tuple[float, int, Locale]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = _quality(params)
        locale = _supported(tag.strip())
        if locale is not None and quality > 0:
            ranked.append((-quality, position, locale))
    return min(ranked)[2] if ranked else default


def locale_from_body(body: Any) -> Locale | None:
    """Return the valid ``locale`` field of a parsed JSON body, or None when absent or invalid."""
    if not isinstance(body, Mapping):
        return None
    value = body.get("locale")
    if not isinstance(value, str):
        return None
    try:
        return parse_locale(value)
    except ConfigError:
        return None


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _supported(tag: str) -> Locale | None:
    primary = tag.lower().split("-")[0]
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None
