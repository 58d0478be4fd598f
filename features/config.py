"""Settings of the point-in-time feature pipelines: label horizons, snapshot cadence, windows."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from data.schema import DEFAULT_TIMEZONE
from leadscore.errors import ConfigError


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of spines, labels and features. Training and scoring must use equal configs.

    Durations are in the unit their name states. ``windows_days`` are the look-back windows
    of activity counts, shortest first. The first two windows also define the engagement
    trend (recent rate minus earlier rate). ``timezone`` sets the calendar used for
    creation hour and weekday and for purchase days in the CLV features.
    """

    horizon_days: int = 90
    ltv_horizon_days: int = 365
    first_cutoff_hours: float = 1.0
    snapshot_every_days: int = 30
    max_snapshots: int = 6
    windows_days: tuple[int, ...] = (7, 30, 90)
    first_contact_sla_hours: float = 48.0
    include_post_contact: bool = False
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        _require_positive("horizon_days", self.horizon_days)
        _require_positive("ltv_horizon_days", self.ltv_horizon_days)
        _require_positive("snapshot_every_days", self.snapshot_every_days)
        _require_positive("first_contact_sla_hours", self.first_contact_sla_hours)
        if not self.first_cutoff_hours >= 0:
            raise ConfigError(
                f"first_cutoff_hours must be 0 or more; got {self.first_cutoff_hours!r}. "
                "Use a small value such as 1.0 to score leads shortly after creation."
            )
        if self.first_cutoff_hours >= self.snapshot_every_days * 24:
            raise ConfigError(
                f"first_cutoff_hours ({self.first_cutoff_hours}) must be shorter than "
                f"snapshot_every_days ({self.snapshot_every_days} days), "
                "otherwise the first snapshot would come after the periodic ones"
            )
        if self.max_snapshots < 0:
            raise ConfigError(
                f"max_snapshots must be 0 or more; got {self.max_snapshots}. "
                "Use 0 to keep only the snapshot shortly after creation."
            )
        self._validate_windows()
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown timezone {self.timezone!r}; use an IANA name such as Asia/Shanghai"
            ) from None

    def _validate_windows(self) -> None:
        windows = tuple(self.windows_days)
        if not windows:
            raise ConfigError("windows_days is empty; give at least one look-back window such as (7, 30, 90)")
        if any(not isinstance(days, int) or days <= 0 for days in windows):
            raise ConfigError(f"windows_days must hold positive whole days; got {windows!r}")
        if list(windows) != sorted(set(windows)):
            raise ConfigError(
                f"windows_days must be strictly increasing without repeats; got {windows!r}, "
                f"for example {tuple(sorted(set(windows)))!r}"
            )


def _require_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0; got {value!r}")
