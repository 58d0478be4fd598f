"""Field types of request bodies that accept exactly what docs/api.md promises, with no silent coercion.

Pydantic's lax mode would read ``true`` as 1.0, ``"200000"`` or ``"1e3"`` as numbers and
``1700000000`` as a Unix time. These types reject such values, so a 422 names the field, the
value received and the form it accepts.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, Strict
from pydantic_core import PydanticCustomError

from data.records import FIRST_SUPPORTED_YEAR, LAST_SUPPORTED_YEAR

# Error types the service's 422 describer has a sentence for (serving.errors_http).
LONE_SURROGATE_ERROR = "string_unicode"
TIMESTAMP_YEAR_ERROR = "timestamp_year"
CONTROL_CHARACTER_ERROR = "control_character"
ATTRIBUTE_VALUE_ERROR = "attribute_value_type"

# Control characters (Unicode category Cc), the line and paragraph separators, and invisible
# format characters: zero-width spaces and joiners, bidirectional controls and the byte order
# mark. Ids are logged and shown to people. The first two can end a log line or forge a new
# one, and the last make two different ids look the same or reorder the text around them.
_UNSAFE_IN_IDS = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
CONTROL_CHARACTERS = re.compile(f"[{_UNSAFE_IN_IDS}]")
# The same rule as a JSON Schema pattern, for the API description.
CONTROL_FREE_PATTERN = f"^[^{_UNSAFE_IN_IDS}]*$"


def check_unicode(value: str) -> str:
    """Reject text with a lone UTF-16 surrogate such as ``"\\ud800"``, which has no UTF-8 form.

    JSON can spell such a character as an escape, and Python keeps it in a ``str``, but it
    cannot be logged, stored or returned as UTF-8.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            LONE_SURROGATE_ERROR, "Input contains a lone UTF-16 surrogate, which is not valid Unicode"
        ) from None
    return value


def reject_control_characters(value: Any) -> Any:
    """Reject text with a control, line separator or invisible format character anywhere, even at either end.

    Runs before whitespace is stripped, so an id with a trailing newline is an error instead
    of being quietly shortened. Other types pass unchanged for the string validator to reject.
    """
    if not isinstance(value, str):
        return value
    found = CONTROL_CHARACTERS.search(value)
    if found is not None:
        raise PydanticCustomError(
            CONTROL_CHARACTER_ERROR,
            "Input contains the control or invisible character {character}",
            {"character": f"U+{ord(found.group()):04X}"},
        )
    return value


def attribute_value_validator(max_text_chars: int) -> PlainValidator:
    """Return the validator of a custom lead attribute value: text, a finite number, a boolean or null.

    One plain validator replaces a union of those types, because a union reports one error
    per member type, each under a made-up location such as ``attributes.x.bool``.
    """

    def check(value: Any) -> bool | int | float | str | None:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise PydanticCustomError("finite_number", "Input should be a finite number")
            return value
        if isinstance(value, str):
            if len(value) > max_text_chars:
                raise PydanticCustomError(
                    "string_too_long",
                    "String should have at most {max_length} characters",
                    {"max_length": max_text_chars},
                )
            return check_unicode(value)
        raise PydanticCustomError(
            ATTRIBUTE_VALUE_ERROR, "Input should be a string, a finite number, true, false or null"
        )

    return PlainValidator(check, json_schema_input_type=bool | int | float | str | None)


def parse_iso_timestamp(value: Any) -> Any:
    """Read an ISO 8601 string into a datetime, rejecting numbers, other text and unsupported years.

    A datetime passes unchanged, for models built in Python. Years outside
    ``FIRST_SUPPORTED_YEAR`` to ``LAST_SUPPORTED_YEAR`` are rejected here, so the error names
    the field, because pandas cannot hold them.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(check_unicode(value).strip())
        except ValueError:
            raise PydanticCustomError("datetime_parsing", "Input is not an ISO 8601 timestamp") from None
    else:
        raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 timestamp string")

    if not FIRST_SUPPORTED_YEAR <= parsed.year <= LAST_SUPPORTED_YEAR:
        raise PydanticCustomError(
            TIMESTAMP_YEAR_ERROR,
            "Input is outside the supported years {first} to {last}",
            {"first": FIRST_SUPPORTED_YEAR, "last": LAST_SUPPORTED_YEAR},
        )
    return parsed


Timestamp = Annotated[datetime, BeforeValidator(parse_iso_timestamp)]
UnicodeText = Annotated[str, AfterValidator(check_unicode)]
# Strict numbers take JSON numbers only. A float field takes integers too, but no booleans or strings.
StrictFiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
StrictNonNegativeFloat = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0.0)]
StrictNonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
