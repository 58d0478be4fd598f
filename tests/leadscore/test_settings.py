"""Settings: file, environment and override precedence; strict keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.errors import ConfigError
from leadscore.settings import load_settings


def test_settings_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.timezone == "Asia/Shanghai"
    assert settings.resolved_tracking_uri().startswith("sqlite:///")
    assert settings.resolved_tracking_uri().endswith(".leadscore/mlflow.db")


def test_settings_unknown_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "leadscore.toml"
    path.write_text('timezon = "Asia/Shanghai"\n', "utf-8")
    with pytest.raises(ConfigError, match=r"timezon: Extra inputs are not permitted"):
        load_settings(path)


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "leadscore.toml"
    path.write_text('port = 4000\nhorizon_days = 60\nlocale = "zh-CN"\n', "utf-8")
    monkeypatch.setenv("LEADSCORE_HORIZON_DAYS", "30")
    settings = load_settings(path, locale="en", port=None)
    assert settings.port == 4000
    assert settings.horizon_days == 30
    assert settings.locale == "en"


def test_settings_bad_timezone_named(tmp_path: Path) -> None:
    path = tmp_path / "leadscore.toml"
    path.write_text('timezone = "Mars/Olympus"\n', "utf-8")
    with pytest.raises(ConfigError, match=r"unknown timezone 'Mars/Olympus'"):
        load_settings(path)
