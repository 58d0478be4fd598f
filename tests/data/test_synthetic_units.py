"""Unit tests of the synthetic generator's building blocks: random draws, clock, config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from data.synthetic.config import GeneratorConfig, load_generator_config
from data.synthetic.randomness import CounterRandom, Stream, categorical_from_uniform, poisson_from_uniform
from data.synthetic.timeline import (
    MICROS_PER_HOUR,
    ArrivalCurve,
    HistoryWindow,
    add_months,
    local_hour,
    local_midnight_micros,
    local_weekday,
    to_working_hours,
)
from leadscore.errors import ConfigError


def test_uniform_open_interval_and_reproducible() -> None:
    index = np.arange(200_000)
    first = CounterRandom(11).uniform(Stream.CHANNEL, index)
    again = CounterRandom(11).uniform(Stream.CHANNEL, index)
    assert np.array_equal(first, again)
    assert first.min() > 0.0
    assert first.max() < 1.0
    assert abs(first.mean() - 0.5) < 0.005
    assert abs(first.var() - 1 / 12) < 0.002


def test_uniform_depends_on_every_key_part() -> None:
    index = np.arange(50_000)
    base = CounterRandom(1).uniform(Stream.CHANNEL, index)
    for other in (
        CounterRandom(2).uniform(Stream.CHANNEL, index),
        CounterRandom(1).uniform(Stream.REGION, index),
        CounterRandom(1).uniform(Stream.CHANNEL, index, draw=1),
        CounterRandom(1).uniform(Stream.CHANNEL, index + 1),
    ):
        assert abs(np.corrcoef(base, other)[0, 1]) < 0.02
        assert not np.array_equal(base, other)


def test_uniform_of_one_index_ignores_neighbours() -> None:
    random = CounterRandom(5)
    alone = random.uniform(Stream.OUTCOME, np.array([1234]))
    in_batch = random.uniform(Stream.OUTCOME, np.arange(1000, 2000))
    assert alone[0] == in_batch[234]


def test_seed_out_of_range_rejected() -> None:
    with pytest.raises(ValueError, match="seed must be in"):
        CounterRandom(-1)


def test_poisson_matches_mean_and_variance() -> None:
    random = CounterRandom(3)
    for mean in (0.3, 4.0, 35.0, 500.0):
        counts = random.poisson(Stream.ACTIVITY_COUNT, np.arange(100_000), mean)
        assert abs(counts.mean() - mean) < 0.02 * mean + 0.01
        assert abs(counts.var() - mean) < 0.06 * mean + 0.02
        assert counts.min() >= 0


def test_poisson_zero_mean_gives_zero() -> None:
    counts = poisson_from_uniform(np.array([0.01, 0.5, 0.999]), np.zeros(3))
    assert counts.tolist() == [0, 0, 0]


def test_categorical_follows_weights() -> None:
    uniforms = CounterRandom(4).uniform(Stream.REGION, np.arange(200_000))
    codes = categorical_from_uniform(uniforms, np.array([1.0, 3.0, 0.0, 6.0]))
    shares = np.bincount(codes, minlength=4) / len(codes)
    assert np.allclose(shares, [0.1, 0.3, 0.0, 0.6], atol=0.005)


def test_categorical_rowwise_weights() -> None:
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 5.0]])
    codes = categorical_from_uniform(np.array([0.99, 0.01, 0.5]), weights)
    assert codes.tolist() == [0, 1, 1]


def test_add_months_clips_short_months() -> None:
    assert add_months(dt.date(2024, 1, 31), 1) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2024, 11, 15), 18) == dt.date(2026, 5, 15)
    assert add_months(dt.date(2024, 3, 31), -1) == dt.date(2024, 2, 29)


def _micros(text: str) -> int:
    """UTC microseconds of a China Standard Time wall-clock text 'YYYY-MM-DD HH:MM'."""
    local = dt.datetime.strptime(text, "%Y-%m-%d %H:%M")
    return local_midnight_micros(local.date()) + (local.hour * 60 + local.minute) * 60_000_000


def test_working_hours_keep_inside_times() -> None:
    inside = np.array([_micros("2024-03-05 10:15"), _micros("2024-03-09 19:59")])  # Tuesday, Saturday
    assert np.array_equal(to_working_hours(inside, np.array([0.3, 0.9])), inside)


def test_working_hours_move_night_and_sunday() -> None:
    times = np.array(
        [
            _micros("2024-03-05 22:00"),  # Tuesday night -> Wednesday morning
            _micros("2024-03-06 06:30"),  # Wednesday dawn -> same morning
            _micros("2024-03-10 11:00"),  # Sunday -> Monday
            _micros("2024-03-09 21:00"),  # Saturday night -> Monday, Sunday skipped
        ]
    )
    moved = to_working_hours(times, np.zeros(4))
    expected = [
        _micros("2024-03-06 09:00"),
        _micros("2024-03-06 09:00"),
        _micros("2024-03-11 09:00"),
        _micros("2024-03-11 09:00"),
    ]
    assert moved.tolist() == expected
    assert (moved >= times).all()


def test_working_hours_spread_stays_in_day() -> None:
    times = np.full(1000, _micros("2024-03-05 23:00"))
    moved = to_working_hours(times, np.linspace(0, 0.999, 1000), spread_hours=11.0)
    hours = local_hour(moved)
    assert hours.min() == 9
    assert hours.max() == 19
    assert (local_weekday(moved) == 2).all()  # Wednesday


def test_arrivals_monotone_and_inside_window() -> None:
    config = GeneratorConfig(leads=5000, seed=1, months=6)
    window = HistoryWindow.from_config(config)
    curve = ArrivalCurve(config, window)
    created = curve.arrival_times(CounterRandom(1), np.arange(5000), 5000)
    assert (np.diff(created) >= 0).all()
    assert created.min() >= window.start
    assert created.max() < window.end


def test_arrivals_follow_hour_profile() -> None:
    config = GeneratorConfig(leads=50_000, seed=2, months=3)
    window = HistoryWindow.from_config(config)
    created = ArrivalCurve(config, window).arrival_times(CounterRandom(2), np.arange(50_000), 50_000)
    hours = np.bincount(local_hour(created), minlength=24)
    assert hours[10] > 5 * hours[3]
    weekdays = np.bincount(local_weekday(created), minlength=7)
    assert weekdays[1] > 2 * weekdays[6]


def test_spring_festival_dips_intake() -> None:
    config = GeneratorConfig(leads=60_000, seed=3, start=dt.date(2024, 1, 1), months=3)
    window = HistoryWindow.from_config(config)
    created = ArrivalCurve(config, window).arrival_times(CounterRandom(3), np.arange(60_000), 60_000)
    day = (created - window.start) // (24 * MICROS_PER_HOUR)
    festival = (dt.date(2024, 2, 10) - config.start).days
    during = np.isin(day, np.arange(festival, festival + 5)).sum()
    week_before = np.isin(day, np.arange(festival - 14, festival - 9)).sum()
    assert during < 0.4 * week_before


def test_drift_weight_ramps() -> None:
    config = GeneratorConfig(leads=10, seed=0, months=10)
    window = HistoryWindow.from_config(config)
    assert config.drift_start_month == 6
    times = np.array(
        [window.start, window.drift_start - 1, window.drift_start + window.drift_ramp // 2, window.end]
    )
    assert window.drift_weight(times).tolist() == [0.0, 0.0, 0.5, 1.0]
    still = HistoryWindow.from_config(GeneratorConfig(leads=10, seed=0, drift={"enabled": False}))
    assert still.drift_weight(times).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_config_rejects_unknown_key() -> None:
    with pytest.raises(ConfigError, match="bogus: Extra inputs are not permitted"):
        load_generator_config(None, leads=10, bogus=1)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="months: Input should be less than or equal to 120"):
        load_generator_config(None, leads=10, months=121)
    with pytest.raises(ConfigError, match="leads: Field required"):
        load_generator_config(None)
    with pytest.raises(ConfigError, match=r"drift\.start_month 20 is outside a history of 18 months"):
        load_generator_config(None, leads=10, drift={"start_month": 20})
    with pytest.raises(ConfigError, match="tiers must be exactly"):
        load_generator_config(None, leads=10, tiers={"senior": GeneratorConfig(leads=1).tiers["senior"]})
    with pytest.raises(ConfigError, match=r"funnel\.thresholds must increase"):
        load_generator_config(
            None,
            leads=10,
            funnel={"thresholds": {"qualified": -1.0, "proposal": -2.0, "negotiation": -0.5, "won": 0.0}},
        )


def test_config_file_and_overrides(tmp_path: Path) -> None:
    yaml_file = tmp_path / "generator.yaml"
    yaml_file.write_text("leads: 500\nseed: 9\nmonths: 12\ndrift:\n  conversion_shift: -0.5\n", "utf-8")
    config = load_generator_config(yaml_file, months=6, chunk_size=None)
    assert config.leads == 500
    assert config.seed == 9
    assert config.months == 6
    assert config.chunk_size == 50_000
    assert config.drift.conversion_shift == -0.5

    toml_file = tmp_path / "generator.toml"
    toml_file.write_text('leads = 7\nstart = "2023-06-01"\n', "utf-8")
    assert load_generator_config(toml_file).start == dt.date(2023, 6, 1)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_generator_config(tmp_path / "missing.yaml")
    text_file = tmp_path / "generator.txt"
    text_file.write_text("leads: 3", "utf-8")
    with pytest.raises(ConfigError, match=r"must end in \.yaml, \.yml, \.toml or \.json"):
        load_generator_config(text_file)
    list_file = tmp_path / "generator.yaml"
    list_file.write_text("- 1\n- 2\n", "utf-8")
    with pytest.raises(ConfigError, match="must hold a mapping of settings, not list"):
        load_generator_config(list_file)
    broken = tmp_path / "broken.json"
    broken.write_text("{leads: ", "utf-8")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_generator_config(broken)


def test_team_size_scales_with_leads() -> None:
    assert GeneratorConfig(leads=100).team_size == 8
    assert GeneratorConfig(leads=1_000_000).team_size == 4000
    assert GeneratorConfig(leads=1_000_000, reps=12).team_size == 12


def test_index_and_draw_ranges_checked() -> None:
    random = CounterRandom(1)
    with pytest.raises(ValueError, match=r"index must be in \[0, 2\*\*40\)"):
        random.uniform(Stream.CHANNEL, np.array([2**40]))
    with pytest.raises(ValueError, match=r"index must be in \[0, 2\*\*40\), got values from -1"):
        random.uniform(Stream.CHANNEL, np.array([-1, 3]))
    with pytest.raises(ValueError, match=r"draw must be in \[0, 2\*\*24\)"):
        random.uniform(Stream.CHANNEL, np.array([1]), draw=2**24)
