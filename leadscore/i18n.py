"""Texts shown to people (reasons, reports, API errors) in English and Simplified Chinese.

Code, identifiers and logs stay English; anything a sales team reads goes through
``translate`` with a ``locale`` of ``en`` (the default) or ``zh-CN``. Each stage keeps its own
catalog of message keys and registers it with ``register_messages``.

An error may be raised with a ``LocalizedText`` (a message key and its parameters) as its
only argument: ``str(error)`` is then English, and ``errors_in_locale`` re-raises it in the
reader's locale.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol, get_args, runtime_checkable

from leadscore.errors import ConfigError, LeadscoreError

Locale = Literal["en", "zh-CN"]
SUPPORTED_LOCALES: tuple[str, ...] = get_args(Locale)
DEFAULT_LOCALE: Locale = "en"

_CATALOG: dict[str, dict[str, str]] = {}


def register_messages(messages: dict[str, dict[str, str]]) -> None:
    """Add message templates keyed by message key, each with an ``en`` and a ``zh-CN`` text."""
    for key, texts in messages.items():
        missing = [locale for locale in SUPPORTED_LOCALES if locale not in texts]
        if missing:
            raise ConfigError(f"message {key!r} lacks a text for locale(s) {missing}")
        _CATALOG[key] = texts


def parse_locale(value: str | None) -> Locale:
    """Return a supported locale for ``value`` (None means the default) or raise naming the choices."""
    if value is None:
        return DEFAULT_LOCALE
    normalized = {"en": "en", "en-us": "en", "zh-cn": "zh-CN", "zh": "zh-CN", "zh-hans": "zh-CN"}.get(
        value.lower()
    )
    if normalized is None:
        raise ConfigError(f"unsupported locale {value!r}; use one of {', '.join(SUPPORTED_LOCALES)}")
    return normalized  # type: ignore[return-value]


def translate(key: str, locale: Locale = DEFAULT_LOCALE, **params: object) -> str:
    """Render message ``key`` in ``locale`` with ``params`` filled into its template."""
    try:
        template = _CATALOG[key][locale]
    except KeyError:
        raise ConfigError(f"no {locale} text registered for message {key!r}") from None
    return template.format(**params)


@runtime_checkable
class LocalizedText(Protocol):
    """A text that renders itself in a locale, such as ``data.import_messages.Message``."""

    def text(self, locale: Locale = DEFAULT_LOCALE) -> str: ...


def error_message(error: BaseException) -> LocalizedText | str:
    """Return what ``error`` was raised with: a ``LocalizedText``, or else its text."""
    if len(error.args) == 1 and isinstance(error.args[0], LocalizedText):
        return error.args[0]
    return str(error)


@contextmanager
def errors_in_locale(locale: Locale) -> Iterator[None]:
    """Re-raise a ``LeadscoreError`` of the block as the same class with its message in ``locale``.

    Only an error raised with a single ``LocalizedText`` argument can be translated. Any
    other error propagates unchanged, in the language it was written in.
    """
    try:
        yield
    except LeadscoreError as error:
        message = error_message(error)
        if isinstance(message, str):
            raise
        localized = copy.copy(error)
        localized.args = (message.text(locale),)
        raise localized from error
