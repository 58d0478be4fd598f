"""The history's clock: its window, when leads arrive, working hours and the drift ramp.

Times are int64 microseconds since the Unix epoch in UTC, the unit of the canonical
``datetime64[us, UTC]`` columns. Local time is China Standard Time, UTC+8 all year (China
has had no daylight saving time since 1991).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np

from data.synthetic import catalog
from data.synthetic.config import GeneratorConfig
from data.synthetic.randomness import CounterRandom, Stream

logger = logging.getLogger(__name__)

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
LOCAL_OFFSET = 8 * MICROS_PER_HOUR
WORK_START_HOUR = 9
WORK_END_HOUR = 20
WORKING_DAY_HOURS = float(WORK_END_HOUR - WORK_START_HOUR)
_EPOCH = dt.date(1970, 1, 1)
_EPOCH_WEEKDAY = _EPOCH.weekday()  # 1970-01-01 was a Thursday
_SUNDAY = 6
_SPRING_FESTIVAL_DAYS = range(-1, 7)  # the eve through the sixth day
_FIXED_HOLIDAYS = ((5, range(1, 6)), (10, range(1, 8)))  # Labour Day week, National Day week


def add_months(day: dt.date, months: int) -> dt.date:
    """Return ``day`` moved by whole calendar months, clipped to the end of a shorter month."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    next_month = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def local_midnight_micros(day: dt.date) -> int:
    """Return the UTC microseconds of local midnight at the start of ``day``."""
    return (day - _EPOCH).days * MICROS_PER_DAY - LOCAL_OFFSET


@dataclass(frozen=True)
class HistoryWindow:
    """Start and end of the history and of the drift, in UTC microseconds."""

    start: int
    end: int
    drift_start: int
    drift_ramp: int
    drift_enabled: bool

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> HistoryWindow:
        end_day = add_months(config.start, config.months)
        drift_day = add_months(config.start, config.drift_start_month)
        return cls(
            start=local_midnight_micros(config.start),
            end=local_midnight_micros(end_day),
            drift_start=local_midnight_micros(drift_day),
            drift_ramp=round(config.drift.ramp_days * MICROS_PER_DAY),
            drift_enabled=config.drift.enabled,
        )

    def drift_weight(self, times: np.ndarray) -> np.ndarray:
        """Return how far the drift has ramped in at each time: 0 before it starts, 1 once full."""
        if not self.drift_enabled:
            return np.zeros(times.shape, dtype=np.float64)
        result: np.ndarray = np.clip((times - self.drift_start) / self.drift_ramp, 0.0, 1.0)
        return result


class ArrivalCurve:
    """The cumulative share of leads over the hours of the history.

    Lead ``i`` of ``n`` arrives where the curve reaches ``(i + u) / n`` for a uniform ``u``,
    so lead numbers follow arrival order, as auto-increment CRM ids do, and the arrival time
    of a lead depends only on its number.
    """

    def __init__(self, config: GeneratorConfig, window: HistoryWindow) -> None:
        hours = (window.end - window.start) // MICROS_PER_HOUR
        hour = np.arange(hours, dtype=np.int64)
        day = hour // 24
        weekday = (config.start.weekday() + day) % 7
        intensity = (
            np.asarray(config.arrivals.hour_weights)[hour % 24]
            * np.asarray(config.arrivals.weekday_weights)[weekday]
            * (1.0 + config.arrivals.monthly_growth) ** (day / 30.4375)
        )
        holidays = _holiday_day_numbers(config.start, config.months)
        start_day_number = (config.start - _EPOCH).days
        intensity[np.isin(start_day_number + day, holidays)] *= config.arrivals.holiday_factor
        if intensity.sum() <= 0:
            raise ValueError("arrival weights are all zero; give some hours and weekdays a positive weight")
        self._start = window.start
        self._share = intensity / intensity.sum()
        self._cumulative = np.cumsum(self._share)
        self._cumulative[-1] = 1.0

    def arrival_times(self, random: CounterRandom, lead_index: np.ndarray, n_leads: int) -> np.ndarray:
        """Return the arrival time of each lead number in ``lead_index`` out of ``n_leads``."""
        position = (lead_index + random.uniform(Stream.ARRIVAL, lead_index)) / n_leads
        hour = np.searchsorted(self._cumulative, position, side="right")
        hour = np.minimum(hour, len(self._cumulative) - 1)
        before = np.where(hour > 0, self._cumulative[hour - 1], 0.0)
        within = np.clip((position - before) / self._share[hour], 0.0, 1.0 - 1e-9)
        offset = ((hour + within) * MICROS_PER_HOUR).astype(np.int64)
        result: np.ndarray = self._start + offset
        return result


def _holiday_day_numbers(start: dt.date, months: int) -> np.ndarray:
    end = add_months(start, months)
    days: list[int] = []
    festival_years = {festival.year for festival in catalog.SPRING_FESTIVAL}
    for year in range(start.year, end.year + 1):
        if year not in festival_years:
            # NOTE: the Spring Festival table covers 2015-2030; other years get no festival dip.
            logger.warning("no Spring Festival date for %d; that year's intake has no festival dip", year)
        for month, month_days in _FIXED_HOLIDAYS:
            days.extend((dt.date(year, month, day) - _EPOCH).days for day in month_days)
    for festival in catalog.SPRING_FESTIVAL:
        days.extend((festival - _EPOCH).days + offset for offset in _SPRING_FESTIVAL_DAYS)
    return np.asarray(days, dtype=np.int64)


def local_weekday(times: np.ndarray) -> np.ndarray:
    """Return the local weekday of each time, Monday 0 to Sunday 6."""
    result: np.ndarray = ((times + LOCAL_OFFSET) // MICROS_PER_DAY + _EPOCH_WEEKDAY) % 7
    return result


def local_hour(times: np.ndarray) -> np.ndarray:
    """Return the local hour of day (0-23) of each time."""
    result: np.ndarray = ((times + LOCAL_OFFSET) % MICROS_PER_DAY) // MICROS_PER_HOUR
    return result


def to_working_hours(times: np.ndarray, uniforms: np.ndarray, spread_hours: float = 1.5) -> np.ndarray:
    """Move each time outside working hours to the start of the next working period.

    Reps work 09:00-20:00 local time, Monday to Saturday. A moved time lands within the first
    ``spread_hours`` of the next working period (``uniforms`` places it), so it never moves
    earlier: a short spread for a reply owed since the night, the whole working day (see
    ``WORKING_DAY_HOURS``) for a task merely due. Public holidays are not skipped.
    """
    local = times + LOCAL_OFFSET
    day = local // MICROS_PER_DAY
    time_of_day = local - day * MICROS_PER_DAY
    weekday = (day + _EPOCH_WEEKDAY) % 7
    working_day = weekday != _SUNDAY
    opens = WORK_START_HOUR * MICROS_PER_HOUR
    closes = WORK_END_HOUR * MICROS_PER_HOUR
    inside = working_day & (time_of_day >= opens) & (time_of_day < closes)

    next_day = np.where(working_day & (time_of_day < opens), day, day + 1)
    next_day = np.where((next_day + _EPOCH_WEEKDAY) % 7 == _SUNDAY, next_day + 1, next_day)
    jitter = (uniforms * min(spread_hours, WORKING_DAY_HOURS) * MICROS_PER_HOUR).astype(np.int64)
    moved = next_day * MICROS_PER_DAY + opens + jitter - LOCAL_OFFSET
    result: np.ndarray = np.where(inside, times, moved)
    return result
