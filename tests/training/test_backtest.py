"""Walk-forward backtest: spans, steps, drift options, no training on scored rows, refits, CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import CanonicalTables, write_table
from features.catalog import FeatureDef
from features.config import FeatureConfig
from leadscore.cli.backtest_cmd import DEFAULT_CALIBRATE_ON_TEXT, DEFAULT_RETRAIN_EVERY_TEXT
from leadscore.cli.backtest_cmd import backtest as backtest_command
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError
from tests.training.canonical_history import make_history
from tests.training.scorer_setup import empty_tracking_uri
from training.backtest import (
    DEFAULT_CALIBRATION_SLICE,
    DEFAULT_RETRAIN_EVERY,
    BacktestOptions,
    BacktestResult,
    History,
    evaluate_scores,
    fit_step,
    load_history,
    plan_steps,
    resolve_start,
    run_backtest,
    score_rows,
    screen_features,
    split_retrain_rows,
    training_rows,
)
from training.backtest_report import render_html, render_markdown, steps_frame
from training.boosting import Fold
from training.conversion import fit_conversion
from training.drift_options import (
    ChangeFeatures,
    DriftOptions,
    Span,
    add_change_features,
    fit_weighted_conversion,
    parse_span,
    recency_weights,
    select_window,
)
from training.tracking import tracking_client

HORIZON_DAYS = 30
LTV_HORIZON_DAYS = 60
CONFIG = FeatureConfig(horizon_days=HORIZON_DAYS, ltv_horizon_days=LTV_HORIZON_DAYS, max_snapshots=0)


def _options(tmp: Path, **changes: object) -> BacktestOptions:
    values: dict[str, object] = {
        "data_dir": tmp / "data",
        "retrain_every": Span(duration=pd.Timedelta(days=180)),
        "start_fraction": 0.65,
        "trials": 0,
        "num_threads": 1,
        "feature_config": CONFIG,
        "work_dir": tmp / "work",
    }
    values.update(changes)
    return BacktestOptions.model_validate(values)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backtest")


@pytest.fixture(scope="module")
def tables() -> CanonicalTables:
    return make_history(900, seed=5)


@pytest.fixture(scope="module")
def run(workspace: Path, tables: CanonicalTables) -> BacktestResult:
    return run_backtest(_options(workspace), tables=tables)


@pytest.fixture(scope="module")
def history(workspace: Path, tables: CanonicalTables) -> History:
    return load_history(_options(workspace), tables)


def _frame(cutoffs: list[str], **columns: list[object]) -> pd.DataFrame:
    times = pd.to_datetime(pd.Series(cutoffs)).dt.tz_localize("UTC")
    frame = pd.DataFrame({"lead_id": [f"L{index}" for index in range(len(cutoffs))], "cutoff": times})
    for name, values in columns.items():
        frame[name] = values
    return frame


# --- spans --------------------------------------------------------------------------------------


def test_parse_span_rows_and_durations() -> None:
    assert parse_span("1000", option="--retrain-every") == Span(rows=1000)
    assert parse_span(" 14D ", option="--retrain-every") == Span(duration=pd.Timedelta(days=14))
    assert parse_span("2W", option="--window").time() == pd.Timedelta(days=14)
    assert parse_span("36h", option="--window").time() == pd.Timedelta(hours=36)
    assert parse_span("14D", option="--window").to_text() == "14D"
    assert parse_span("36h", option="--window").to_text() == "36h"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", r"--window must be at least 1 row; got '0'"),
        ("-5", r"--window must be longer than 0; got '-5'"),
        ("soon", r"--window value 'soon' is invalid; use a whole number of rows"),
        ("0D", r"--window must be longer than 0; got '0D'"),
    ],
)
def test_parse_span_rejects_bad_values(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_span(text, option="--window")


def test_span_needs_exactly_one_length() -> None:
    with pytest.raises(ConfigError, match="exactly one of rows or duration"):
        Span()
    with pytest.raises(ConfigError, match="has no duration"):
        Span(rows=5).time()


# --- steps --------------------------------------------------------------------------------------


def test_row_steps_keep_equal_cutoffs_together() -> None:
    frame = _frame(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-03", "2024-01-04", "2024-01-05"])
    plan = plan_steps(frame, pd.Timestamp("2024-01-02", tz="UTC"), Span(rows=2))
    assert [step.positions.tolist() for step in plan.steps] == [[1], [2, 3, 4], [5]]
    assert plan.steps[1].start == pd.Timestamp("2024-01-03", tz="UTC")
    assert plan.steps[0].end == plan.steps[1].start
    assert plan.steps[-1].end is None


def test_plan_steps_by_duration_counts_empty_periods() -> None:
    frame = _frame(["2024-01-01", "2024-01-02", "2024-01-20", "2024-01-21"])
    plan = plan_steps(frame, pd.Timestamp("2024-01-02", tz="UTC"), Span(duration=pd.Timedelta(days=7)))
    assert [step.positions.tolist() for step in plan.steps] == [[1], [2, 3]]
    assert plan.empty_periods == 1
    assert plan.steps[1].start == pd.Timestamp("2024-01-16", tz="UTC")


def test_plan_steps_once_is_one_step() -> None:
    frame = _frame(["2024-01-01", "2024-01-02", "2024-01-20"])
    plan = plan_steps(frame, pd.Timestamp("2024-01-02", tz="UTC"), None)
    assert len(plan.steps) == 1
    assert plan.steps[0].positions.tolist() == [1, 2]


def test_resolve_start_rejects_naive_and_outside_times(workspace: Path) -> None:
    frame = _frame(["2024-01-01", "2024-01-02", "2024-01-20"])
    with pytest.raises(ConfigError, match="has no timezone"):
        resolve_start(frame, _options(workspace, start=pd.Timestamp("2024-01-02")))
    with pytest.raises(ConfigError, match="must lie after the first labelled cutoff"):
        resolve_start(frame, _options(workspace, start=pd.Timestamp("2025-01-01", tz="UTC")))
    assert resolve_start(frame, _options(workspace, start_fraction=0.5)) == frame["cutoff"].iloc[1]


# --- drift options ------------------------------------------------------------------------------


def test_recency_weights_halve_per_half_life() -> None:
    frame = _frame(["2024-01-01", "2024-01-11", "2024-01-21", "2024-01-21"])
    as_of = pd.Timestamp("2024-01-21", tz="UTC")
    by_time = recency_weights(frame["cutoff"], as_of, Span(duration=pd.Timedelta(days=10)))
    assert by_time.mean() == pytest.approx(1.0)
    assert by_time[0] / by_time[2] == pytest.approx(0.25)
    assert by_time[1] / by_time[2] == pytest.approx(0.5)
    by_rows = recency_weights(frame["cutoff"], as_of, Span(rows=1))
    assert by_rows[2] == by_rows[3]
    assert by_rows[1] / by_rows[2] == pytest.approx(0.25)


def test_select_window_by_rows_and_duration() -> None:
    frame = _frame(["2024-01-01", "2024-01-05", "2024-01-05", "2024-01-09"])
    as_of = pd.Timestamp("2024-01-10", tz="UTC")
    assert select_window(frame, None, as_of).index.tolist() == [0, 1, 2, 3]
    assert select_window(frame, Span(rows=2), as_of).index.tolist() == [1, 2, 3]
    assert select_window(frame, Span(duration=pd.Timedelta(days=5)), as_of).index.tolist() == [1, 2, 3]
    assert select_window(frame, Span(rows=10), as_of).index.tolist() == [0, 1, 2, 3]


def test_change_features_read_only_older_rows() -> None:
    frame = _frame(
        ["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-20"],
        rate=[4.0, 3.5, 2.0, 1.0],
        age=[30.0, 40.0, 50.0, 60.0],
    )
    definitions = [
        FeatureDef("rate", "numeric", "Rate", "利率", "Interest rate."),
        FeatureDef("age", "numeric", "Age", "年龄", "Age in years."),
    ]
    change = ChangeFeatures(("rate",), pd.Timedelta(days=30))
    changed, changed_definitions = add_change_features(frame, definitions, change)
    column = "rate_change_30d"
    assert [definition.name for definition in changed_definitions] == ["age", column]
    assert np.isnan(changed[column].iloc[0])
    assert np.isnan(changed[column].iloc[1])
    assert changed[column].iloc[2] == pytest.approx(2.0 - 4.0)
    assert changed[column].iloc[3] == pytest.approx(1.0 - 3.5)

    later_moved = frame.assign(rate=[4.0, 3.5, 2.0, 99.0])
    moved, _ = add_change_features(later_moved, definitions, change)
    assert moved[column].iloc[:3].equals(changed[column].iloc[:3])


def test_change_features_reject_unknown_column() -> None:
    frame = _frame(["2024-01-01"], rate=[1.0])
    definitions = [FeatureDef("rate", "numeric", "Rate", "利率", "rate")]
    with pytest.raises(ConfigError, match=r"unknown: \['euribor'\]"):
        add_change_features(frame, definitions, ChangeFeatures(("euribor",), pd.Timedelta(days=30)))


def test_split_retrain_rows_orders_folds_with_purge() -> None:
    cutoffs = [str(day.date()) for day in pd.date_range("2024-01-01", periods=100, freq="D")]
    frame = _frame(cutoffs, converted=[index % 3 == 0 for index in range(100)])
    purge = pd.Timedelta(days=5)
    folds = split_retrain_rows(
        frame, valid_fraction=0.2, calibration_fraction=0.1, calibration_slice=None, purge=purge
    )
    assert len(folds.calibration) == 10
    assert len(folds.valid) == 20
    assert folds.valid["cutoff"].max() < folds.calibration["cutoff"].min()
    assert folds.train["cutoff"].max() < folds.valid["cutoff"].min() - purge
    assert folds.excluded["in_purge_gap"] == 5
    sliced = split_retrain_rows(
        frame,
        valid_fraction=0.2,
        calibration_fraction=0.1,
        calibration_slice=Span(duration=pd.Timedelta(days=30)),
        purge=purge,
    )
    assert len(sliced.calibration) == 31
    with pytest.raises(InsufficientDataError, match="calibration slice of the newest 95 rows takes 95 of"):
        split_retrain_rows(
            frame, valid_fraction=0.2, calibration_fraction=0.1, calibration_slice=Span(rows=95), purge=purge
        )


# --- walk-forward -------------------------------------------------------------------------------


def test_backtest_scores_every_row_after_start(run: BacktestResult) -> None:
    assert len(run.steps) >= 2
    assert run.counts["rows_scored"] + run.counts["rows_in_skipped_steps"] == (
        run.counts["snapshots_label_complete"] - run.counts["rows_before_start"]
    )
    assert set(run.overall) == {"model", "logistic", "rules"}
    assert 0.5 < run.overall["model"]["conversion_auc"] <= 1.0
    assert run.overall["model"]["conversion_alift"] == pytest.approx(
        run.predictions["converted"].mean() / 2
        + (1 - run.predictions["converted"].mean()) * run.overall["model"]["conversion_auc"]
    )


def test_walk_forward_never_trains_on_scored_rows(
    workspace: Path, history: History, run: BacktestResult
) -> None:
    options = _options(workspace)
    plan = plan_steps(history.frame, run.start, options.retrain_every)
    screen = screen_features(history, plan.steps[0], options)
    horizon = pd.Timedelta(days=HORIZON_DAYS)
    for step in plan.steps:
        scored = history.frame.iloc[step.positions]
        assert scored["cutoff"].min() >= step.start
        fit = fit_step(history, step, options, screen)
        used = fit.folds.used()
        assert (used["cutoff"] + horizon < step.start).all()
        assert used["cutoff"].max() < scored["cutoff"].min()
        assert fit.ltv is not None
        ltv_rows = pd.concat([fit.ltv.train_rows, fit.ltv.test_rows])
        assert (ltv_rows["cutoff"] + pd.Timedelta(days=LTV_HORIZON_DAYS) < step.start).all()

    for result in run.steps:
        assert result.train_last_cutoff is not None
        assert result.train_last_cutoff + horizon < result.start
        in_step = run.predictions.loc[run.predictions["step"] == result.number, "cutoff"]
        assert in_step.min() >= result.start


def test_later_labels_do_not_change_a_step(workspace: Path, history: History, run: BacktestResult) -> None:
    options = _options(workspace)
    step = plan_steps(history.frame, run.start, options.retrain_every).steps[1]
    screen = screen_features(history, step, options)
    rows = history.frame.iloc[step.positions]
    before = score_rows(fit_step(history, step, options, screen), rows)

    frame = history.frame.copy()
    label_open = (frame["cutoff"] + pd.Timedelta(days=HORIZON_DAYS) >= step.start).to_numpy()
    value_open = (frame["cutoff"] + pd.Timedelta(days=LTV_HORIZON_DAYS) >= step.start).to_numpy()
    frame.loc[label_open, "converted"] = 1 - frame.loc[label_open, "converted"]
    frame.loc[value_open, "value"] = frame.loc[value_open, "value"] * 10 + 1_000
    poisoned = dataclasses.replace(history, frame=frame)
    after = score_rows(fit_step(poisoned, step, options, screen), rows)
    pd.testing.assert_frame_equal(before, after)


def test_step_refit_reproduces_run(workspace: Path, history: History, run: BacktestResult) -> None:
    options = _options(workspace)
    plan = plan_steps(history.frame, run.start, options.retrain_every)
    step = plan.steps[-1]
    screen = screen_features(history, plan.steps[0], options)
    rows = history.frame.iloc[step.positions]
    refit = score_rows(fit_step(history, step, options, screen), rows)
    in_run = run.predictions.loc[run.predictions["step"] == step.number]
    np.testing.assert_array_equal(refit["p_model"].to_numpy(), in_run["p_model"].to_numpy())
    np.testing.assert_array_equal(refit["p_logistic"].to_numpy(), in_run["p_logistic"].to_numpy())
    assert run.steps[-1].seed == options.seed

    other_seed = options.model_copy(update={"seed": options.seed + 1})
    reseeded = score_rows(fit_step(history, step, other_seed, screen), rows)
    assert not np.array_equal(reseeded["p_model_raw"].to_numpy(), refit["p_model_raw"].to_numpy())


def test_training_rows_end_before_step(history: History, run: BacktestResult) -> None:
    step = plan_steps(history.frame, run.start, Span(rows=50)).steps[0]
    rows = training_rows(history, step, HORIZON_DAYS)
    assert (rows["cutoff"] + pd.Timedelta(days=HORIZON_DAYS) < step.start).all()
    later = history.frame.loc[~history.frame.index.isin(rows.index)]
    assert (later["cutoff"] + pd.Timedelta(days=HORIZON_DAYS) >= step.start).all()


def test_evaluate_scores_notes_single_class_step() -> None:
    predictions = pd.DataFrame(
        {"converted": [0] * 30, "p_model": 0.1, "p_logistic": 0.2, "p_rules": 0.3, "value": 0.0}
    )
    results, notes = evaluate_scores(predictions)
    assert results == {"model": {}, "logistic": {}, "rules": {}}
    assert notes == ["conversion metrics undefined: all 30 rows have converted=0"]


def test_backtest_skips_step_without_history(workspace: Path, tables: CanonicalTables) -> None:
    first_cutoff = load_history(_options(workspace), tables).frame["cutoff"].iloc[0]
    options = _options(
        workspace,
        start=first_cutoff + pd.Timedelta(days=1),
        retrain_every=Span(duration=pd.Timedelta(days=400)),
    )
    result = run_backtest(options, tables=tables)
    assert result.steps[0].skipped is not None
    assert "no row has a complete label window" in result.steps[0].skipped
    assert result.counts["rows_in_skipped_steps"] == result.steps[0].test_rows
    assert not result.steps[-1].skipped


def test_unit_weights_match_unweighted_fit() -> None:
    rng = np.random.default_rng(0)
    matrix = pd.DataFrame({"x": rng.normal(size=3000), "z": rng.normal(size=3000)})
    y = (rng.random(3000) < 1 / (1 + np.exp(-(matrix["x"] - 1.5)))).astype(np.float64)
    train, valid, calibration = (
        Fold(matrix.iloc[part].reset_index(drop=True), y[part])
        for part in (slice(0, 2000), slice(2000, 2500), slice(2500, 3000))
    )
    plain = fit_conversion(train, valid, calibration, seed=3, num_threads=1)
    weighted = fit_weighted_conversion(train, valid, calibration, np.ones(2000), seed=3, num_threads=1)
    np.testing.assert_allclose(weighted.predict(valid.matrix), plain.predict(valid.matrix))
    with pytest.raises(DataValidationError, match="5 sample weights for 2000 training rows"):
        fit_weighted_conversion(train, valid, calibration, np.ones(5), seed=3, num_threads=1)


def test_drift_options_change_the_model(
    workspace: Path, tables: CanonicalTables, run: BacktestResult
) -> None:
    drift = DriftOptions(
        window=Span(rows=400),
        recency_half_life=Span(duration=pd.Timedelta(days=120)),
        calibration_slice=Span(rows=80),
    )
    result = run_backtest(_options(workspace, drift=drift), tables=tables)
    assert [step.train_rows <= 400 for step in result.steps] == [True] * len(result.steps)
    assert [step.calibration_rows for step in result.steps] == [80] * len(result.steps)
    assert not np.allclose(result.predictions["p_model"], run.predictions["p_model"])


# --- report and CLI -----------------------------------------------------------------------------


def test_reports_contain_every_step(run: BacktestResult) -> None:
    markdown = render_markdown(run, title="Backtest", chart="chart.png")
    page = render_html(run, title="Backtest", chart="chart.png")
    for step in run.steps:
        assert f"| {step.number} | {step.start:%Y-%m-%d} |" in markdown
        assert f"<tr><td>{step.number}</td><td>{step.start:%Y-%m-%d}</td>" in page
    assert "![Metrics per step](chart.png)" in markdown
    assert '<img src="chart.png"' in page
    frame = steps_frame(run)
    assert frame["model.conversion_auc"].notna().all()
    assert len(frame) == len(run.steps)


def test_command_writes_report_and_mlflow_run(tmp_path: Path, tables: CanonicalTables) -> None:
    data_dir = tmp_path / "data"
    for name in ("leads", "activities", "stage_changes", "orders"):
        write_table(tables.table(name), data_dir, name)
    report = tmp_path / "out" / "backtest.md"
    tracking_uri = empty_tracking_uri(tmp_path / "store")
    arguments = [
        "backtest",
        "--data",
        str(data_dir),
        "--retrain-every",
        "once",
        "--calibrate-on",
        "fraction",
        "--start-fraction",
        "0.7",
        "--trials",
        "0",
        "--num-threads",
        "1",
        "--horizon-days",
        str(HORIZON_DAYS),
        "--ltv-horizon-days",
        str(LTV_HORIZON_DAYS),
        "--max-snapshots",
        "0",
        "--report",
        str(report),
        "--work-dir",
        str(tmp_path / "work"),
        "--tracking-uri",
        tracking_uri,
    ]
    outcome = CliRunner().invoke(cli, arguments)
    assert outcome.exit_code == 0, outcome.output
    assert "step   1" in outcome.output
    for suffix in (".md", ".html", ".png", ".steps.csv", ".predictions.parquet"):
        assert Path(f"{tmp_path / 'out' / 'backtest'}{suffix}").is_file()
    assert "once (no retraining)" in report.read_text(encoding="utf-8")

    run_id = outcome.output.split("MLflow run: ", 1)[1].split()[0]
    client = tracking_client(tracking_uri)
    logged = client.get_run(run_id)
    assert logged.data.params["retrain_every"] == "once"
    assert logged.data.params["calibration_slice"] == "off"
    assert 0.0 < logged.data.metrics["overall.model.conversion_auc"] <= 1.0
    assert [point.step for point in client.get_metric_history(run_id, "model.conversion_auc")] == [1]
    artifacts = {item.path for item in client.list_artifacts(run_id, "backtest")}
    assert "backtest/backtest.md" in artifacts


def test_command_defaults_are_backtest_policy() -> None:
    assert parse_span(DEFAULT_RETRAIN_EVERY_TEXT, option="--retrain-every") == DEFAULT_RETRAIN_EVERY
    assert parse_span(DEFAULT_CALIBRATE_ON_TEXT, option="--calibrate-on") == DEFAULT_CALIBRATION_SLICE
    defaults = {parameter.name: parameter.default for parameter in backtest_command.params}
    assert defaults["retrain_every"] == DEFAULT_RETRAIN_EVERY_TEXT
    assert defaults["calibrate_on"] == DEFAULT_CALIBRATE_ON_TEXT
    assert defaults["window"] == "expanding"
    assert defaults["recency_half_life"] is None


def test_command_rejects_bad_cadence(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    outcome = CliRunner().invoke(
        cli, ["backtest", "--data", str(tmp_path / "data"), "--retrain-every", "weekly"]
    )
    assert outcome.exit_code == 2
    assert "--retrain-every value 'weekly' is invalid" in outcome.output


def test_fit_step_needs_rows_of_both_classes(workspace: Path, history: History, run: BacktestResult) -> None:
    options = _options(workspace)
    step = plan_steps(history.frame, run.start, options.retrain_every).steps[0]
    screen = screen_features(history, step, options)
    frame = history.frame.assign(converted=np.int8(0))
    with pytest.raises(InsufficientDataError, match="all have converted=0"):
        fit_step(dataclasses.replace(history, frame=frame), step, options, screen)
