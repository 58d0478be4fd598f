"""Reason sentences say durations the way people do in each locale."""

from __future__ import annotations

import pytest

from training.reasons import _duration, register_reason_messages


@pytest.mark.parametrize(
    ("days", "english", "chinese"),
    [
        (0.2, "less than a day", "不到 1 天"),
        (1.0, "1 day", " 1 天"),
        (1.4, "1 day", " 1 天"),
        (3.0, "3 days", " 3 天"),
    ],
)
def test_duration_wording(days: float, english: str, chinese: str) -> None:
    register_reason_messages()
    assert _duration(days, "en") == english
    assert _duration(days, "zh-CN") == chinese
