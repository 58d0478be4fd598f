"""Optuna tuning: seeded TPE, median pruning through LightGBM, SQLite storage, reproducibility."""

from __future__ import annotations

import sqlite3

import numpy as np
import optuna
import pandas as pd
import pytest

from leadscore.errors import ConfigError, ConflictError
from tests.training.modelling_data import make_lead_frame, to_matrix
from training.boosting import Fold
from training.conversion import fit_conversion
from training.ltv import fit_ltv
from training.split import time_split
from training.tuning import CONVERSION_SEARCH_SPACE, TuningResult, tune_conversion, tune_ltv

# Small budgets keep each study to a few seconds; one thread avoids OpenMP waits on busy cores.
BUDGET = {"num_boost_round": 150, "early_stopping_rounds": 15, "num_threads": 1}


@pytest.fixture(scope="module")
def data() -> dict[str, Fold]:
    """Training and validation folds with the conversion label and with net revenue."""
    frame = make_lead_frame(3_000, seed=31)
    split = time_split(frame, purge=pd.Timedelta(0), calibration_fraction=0.0)
    matrix = to_matrix(frame)
    folds: dict[str, Fold] = {}
    for label in ("converted", "value"):
        y = frame[label].to_numpy()
        for name, rows in (("train", split.train), ("valid", split.valid)):
            folds[f"{name}_{label}"] = Fold(matrix.iloc[rows].reset_index(drop=True), y[rows])
    return folds


def run_conversion_study(data, storage_url: str, **options) -> TuningResult:
    arguments = {"n_trials": 5, "seed": 7, "study_name": "conversion", **BUDGET, **options}
    return tune_conversion(
        data["train_converted"], data["valid_converted"], storage_url=storage_url, **arguments
    )


@pytest.fixture(scope="module")
def twin_studies(data, tmp_path_factory) -> dict[str, dict]:
    """The same 5-trial study run twice, into two SQLite files (one in a folder yet to be created)."""
    folder = tmp_path_factory.mktemp("studies")
    paths = {"first": folder / "nested" / "first.db", "second": folder / "second.db"}
    results = {name: run_conversion_study(data, f"sqlite:///{path}") for name, path in paths.items()}
    return {"paths": paths, "results": results}


def test_same_seed_gives_same_best_trial(twin_studies):
    first, second = twin_studies["results"]["first"], twin_studies["results"]["second"]
    assert first.best_params == second.best_params
    assert first.best_value == second.best_value
    assert first.best_iteration == second.best_iteration
    assert first.n_trials == 5
    assert first.n_complete == 5


def test_same_seed_gives_same_trial_sequence(twin_studies):
    studies = [
        optuna.load_study(study_name="conversion", storage=f"sqlite:///{path}")
        for path in twin_studies["paths"].values()
    ]
    assert [trial.params for trial in studies[0].trials] == [trial.params for trial in studies[1].trials]
    assert [trial.value for trial in studies[0].trials] == [trial.value for trial in studies[1].trials]


def test_other_seed_explores_other_params(data, twin_studies, tmp_path):
    other = run_conversion_study(data, f"sqlite:///{tmp_path / 'other.db'}", n_trials=1, seed=8)
    first = optuna.load_study(study_name="conversion", storage=f"sqlite:///{twin_studies['paths']['first']}")
    assert first.trials[0].params != other.best_params


def test_study_is_stored_in_sqlite(twin_studies):
    path = twin_studies["paths"]["first"]
    result = twin_studies["results"]["first"]
    assert path.is_file()
    with sqlite3.connect(path) as connection:
        names = [row[0] for row in connection.execute("SELECT study_name FROM studies")]
    assert names == ["conversion"]
    study = optuna.load_study(study_name="conversion", storage=f"sqlite:///{path}")
    assert len(study.trials) == 5
    assert study.best_value == result.best_value
    assert all(trial.user_attrs["best_iteration"] >= 1 for trial in study.trials)
    assert result.storage_url == f"sqlite:///{path}"


def test_best_params_come_from_search_space(twin_studies):
    result = twin_studies["results"]["first"]
    ranges = {space.name: space for space in CONVERSION_SEARCH_SPACE}
    assert set(result.best_params) == set(ranges)
    for name, value in result.best_params.items():
        assert ranges[name].low <= value <= ranges[name].high
    assert result.metric == "binary_logloss"
    assert 0.0 < result.best_value < 0.7


def test_tuned_params_train_a_model(data, twin_studies):
    result = twin_studies["results"]["first"]
    model = fit_conversion(
        data["train_converted"],
        data["valid_converted"],
        params=result.best_params,
        seed=7,
        num_boost_round=150,
        early_stopping_rounds=15,
        num_threads=1,
    )
    for name, value in result.best_params.items():
        assert model.params[name] == value


def test_median_pruner_stops_weak_trials(data, tmp_path):
    result = run_conversion_study(
        data,
        f"sqlite:///{tmp_path / 'pruned.db'}",
        n_trials=8,
        pruner_startup_trials=2,
        pruner_warmup_steps=0,
        report_interval=5,
    )
    assert result.n_pruned > 0
    assert result.n_complete + result.n_pruned == 8


def test_auc_metric_is_maximized(data, tmp_path):
    result = run_conversion_study(data, f"sqlite:///{tmp_path / 'auc.db'}", n_trials=1, metric="auc")
    study = optuna.load_study(study_name="conversion", storage=f"sqlite:///{tmp_path / 'auc.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert 0.6 < result.best_value <= 1.0


def test_existing_study_conflicts_unless_resumed(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    run_conversion_study(data, url, n_trials=1)
    with pytest.raises(ConflictError, match=r"study 'conversion' already exists in sqlite:///.*resume=True"):
        run_conversion_study(data, url, n_trials=1)
    resumed = run_conversion_study(data, url, n_trials=2, resume=True)
    assert resumed.n_trials == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_trials": 0}, "n_trials must be a positive integer, got 0"),
        ({"timeout": -1}, "timeout must be a positive number of seconds"),
        ({"storage_url": "sqlite://"}, "has no database file"),
        ({"storage_url": "not a url"}, "storage_url is not a database URL"),
        ({"report_interval": 0}, "report_interval must be a positive number of boosting rounds"),
        ({"base_params": {"scale_pos_weight": 3}}, r"contain \['scale_pos_weight'\]"),
    ],
)
def test_invalid_arguments_raise(data, tmp_path, options, message):
    options = {"storage_url": f"sqlite:///{tmp_path / 'bad.db'}", **options}
    with pytest.raises(ConfigError, match=message):
        run_conversion_study(data, **options)


def test_tune_ltv_role_is_reproducible(data, tmp_path):
    def study(name: str) -> TuningResult:
        return tune_ltv(
            data["train_value"],
            data["valid_value"],
            role="tweedie",
            n_trials=3,
            seed=5,
            storage_url=f"sqlite:///{tmp_path / name}",
            study_name="ltv-tweedie",
            **BUDGET,
        )

    first = study("ltv1.db")
    second = study("ltv2.db")
    assert first.metric == "tweedie"
    assert first.best_params == second.best_params
    assert first.best_value == second.best_value
    model = fit_ltv(
        data["train_value"],
        data["valid_value"],
        candidates=["tweedie"],
        params={"tweedie": first.best_params},
        seed=5,
        **BUDGET,
    )
    assert model.params["tweedie"]["num_leaves"] == first.best_params["num_leaves"]
    assert np.all(model.predict(data["valid_value"].matrix) >= 0)


def test_tune_ltv_amount_role_uses_buyers_only(data, tmp_path):
    result = tune_ltv(
        data["train_value"],
        data["valid_value"],
        role="log1p",
        n_trials=2,
        seed=5,
        storage_url=f"sqlite:///{tmp_path / 'log1p.db'}",
        study_name="ltv-log1p",
        **BUDGET,
    )
    assert result.metric == "l2"
    # The study scores log1p(revenue) of buyers only: its error beats the variance of the buyers'
    # values, and a model of every row (mostly zeros) would face a variance several times larger.
    valid = data["valid_value"].y
    buyers_variance = np.var(np.log1p(valid[valid > 0]))
    assert result.best_value < buyers_variance
    assert np.var(np.log1p(np.maximum(valid, 0.0))) > 5 * buyers_variance


def test_tune_ltv_rejects_unknown_role(data, tmp_path):
    with pytest.raises(ConfigError, match="LTV role 'poisson' is invalid"):
        tune_ltv(
            data["train_value"],
            data["valid_value"],
            role="poisson",  # type: ignore[arg-type]
            n_trials=1,
            storage_url=f"sqlite:///{tmp_path / 'x.db'}",
            study_name="x",
        )
