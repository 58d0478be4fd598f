"""Hyperparameter search for the LightGBM models with Optuna.

Each trial trains one booster on the training fold and early-stops on the validation fold.
The trial's value is the validation metric at the best iteration. A TPE sampler with a fixed
seed proposes parameters, and ``optuna_integration.LightGBMPruningCallback`` reports the
metric every ``report_interval`` boosting rounds to a median pruner, which stops trials that
fall behind the median of earlier trials at the same round. Each report is a write to the
study storage, so reporting every round would make a SQLite-backed study spend more time in
database commits than in training. Studies live in an Optuna storage URL, normally
``sqlite:///path/to/optuna.db``, so a study can be inspected with ``optuna-dashboard`` and resumed.

Reproducibility: the same data, seed and trial budget give the same trials and the same best
trial, because the sampler is seeded and every booster is deterministic (``deterministic``,
``force_col_wise``, a fixed ``num_threads`` and seeds, see ``training.params``). A ``timeout``
breaks this, since the number of trials then depends on machine speed. Trials run one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna_integration import LightGBMPruningCallback
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from leadscore.errors import ConfigError, ConflictError
from training.boosting import VALID_NAME, Fold, train_booster
from training.conversion import conversion_params
from training.ltv import DEFAULT_CAP_QUANTILE, BoosterRole, label_report, role_fold, role_params
from training.params import DEFAULT_EARLY_STOPPING_ROUNDS, DEFAULT_NUM_BOOST_ROUND, DEFAULT_SEED

logger = logging.getLogger(__name__)

# LightGBM metrics where higher is better; every other metric used here is a loss.
MAXIMIZED_METRICS = frozenset({"auc", "average_precision"})
METRIC_BY_ROLE: dict[str, str] = {
    "occurrence": "binary_logloss",
    "gamma": "gamma_deviance",
    "log1p": "l2",
    "tweedie": "tweedie",
}


@dataclass(frozen=True)
class ParamRange:
    """One searched LightGBM parameter: its bounds, whether sampled on a log scale and whether integer."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> float | int:
        """Draw this parameter's value for ``trial``."""
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


TREE_SEARCH_SPACE: tuple[ParamRange, ...] = (
    ParamRange("learning_rate", 0.01, 0.2, log=True),
    ParamRange("num_leaves", 7, 127, log=True, integer=True),
    ParamRange("min_data_in_leaf", 10, 400, log=True, integer=True),
    ParamRange("feature_fraction", 0.5, 1.0),
    ParamRange("bagging_fraction", 0.5, 1.0),
    ParamRange("lambda_l1", 1e-8, 10.0, log=True),
    ParamRange("lambda_l2", 1e-8, 10.0, log=True),
)
CATEGORICAL_SEARCH_SPACE: tuple[ParamRange, ...] = (
    ParamRange("cat_smooth", 1.0, 50.0, log=True),
    ParamRange("min_data_per_group", 10, 200, log=True, integer=True),
)
CONVERSION_SEARCH_SPACE: tuple[ParamRange, ...] = TREE_SEARCH_SPACE + CATEGORICAL_SEARCH_SPACE
# The Tweedie variance power is not searched: the Tweedie deviance of different powers is
# measured on different scales, so trials could not be compared. Set it in base_params instead.
LTV_SEARCH_SPACE: tuple[ParamRange, ...] = TREE_SEARCH_SPACE + CATEGORICAL_SEARCH_SPACE


@dataclass(frozen=True)
class TuningResult:
    """The outcome of a study: the best trial's LightGBM overrides and validation metric."""

    best_params: dict[str, Any]
    best_value: float
    study_name: str
    n_trials: int
    metric: str
    best_iteration: int
    n_complete: int
    n_pruned: int
    storage_url: str


def _display_url(storage_url: str) -> str:
    """Return ``storage_url`` with any password masked, for messages and logs."""
    try:
        return make_url(storage_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def _check_storage_url(storage_url: str) -> str:
    """Validate an Optuna storage URL and create the parent folder of a SQLite file."""
    try:
        url = make_url(storage_url)
    except ArgumentError:
        raise ConfigError("storage_url is not a database URL; use sqlite:///path/to/optuna.db") from None
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"storage_url {_display_url(storage_url)!r} has no database file; an in-memory SQLite "
                "study cannot be resumed or inspected, so use sqlite:///path/to/optuna.db"
            )
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return storage_url


def _check_budget(n_trials: int, timeout: float | None, report_interval: int) -> None:
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"n_trials must be a positive integer, got {n_trials!r}")
    if isinstance(report_interval, bool) or not isinstance(report_interval, int) or report_interval < 1:
        raise ConfigError(
            f"report_interval must be a positive number of boosting rounds, got {report_interval!r}"
        )
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def _open_study(
    storage_url: str,
    study_name: str,
    *,
    direction: Literal["minimize", "maximize"],
    seed: int,
    resume: bool,
    pruner_startup_trials: int,
    pruner_warmup_steps: int,
) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=pruner_startup_trials, n_warmup_steps=pruner_warmup_steps
    )
    try:
        return optuna.create_study(
            storage=_check_storage_url(storage_url),
            study_name=study_name,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=resume,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ConflictError(
            f"study {study_name!r} already exists in {_display_url(storage_url)}; "
            "choose another study_name, or pass resume=True to continue it"
        ) from None


def _run_study(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout: float | None,
    metric: str,
    storage_url: str,
) -> TuningResult:
    finished = [trial for trial in study.trials if trial.state.is_finished()]
    remaining = n_trials - len(finished)
    if remaining > 0:
        logger.info("study %s: running %d trial(s), metric %s", study.study_name, remaining, metric)
        study.optimize(objective, n_trials=remaining, timeout=timeout, n_jobs=1)
    else:
        logger.info("study %s already has %d finished trials; no trial run", study.study_name, len(finished))

    states = [trial.state for trial in study.trials]
    n_complete = states.count(optuna.trial.TrialState.COMPLETE)
    if n_complete == 0:
        raise ConfigError(
            f"study {study.study_name!r} has no complete trial ({len(states)} pruned or failed); "
            "raise n_trials or the pruner's startup trials"
        )
    best = study.best_trial
    result = TuningResult(
        best_params=dict(best.params),
        best_value=float(best.value) if best.value is not None else float("nan"),
        study_name=study.study_name,
        n_trials=len(states),
        metric=metric,
        best_iteration=int(best.user_attrs["best_iteration"]),
        n_complete=n_complete,
        n_pruned=states.count(optuna.trial.TrialState.PRUNED),
        storage_url=_display_url(storage_url),
    )
    logger.info(
        "study %s: best trial %d, %s=%.6f after %d rounds (%d complete, %d pruned)",
        study.study_name,
        best.number,
        metric,
        result.best_value,
        result.best_iteration,
        result.n_complete,
        result.n_pruned,
    )
    return result


def _booster_objective(
    train: Fold,
    valid: Fold,
    *,
    search_space: Sequence[ParamRange],
    make_params: Callable[[dict[str, Any]], dict[str, Any]],
    metric: str,
    num_boost_round: int,
    early_stopping_rounds: int,
    report_interval: int,
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        suggested = {space.name: space.suggest(trial) for space in search_space}
        params = make_params(suggested)
        params["metric"] = metric
        booster = train_booster(
            params,
            train,
            valid,
            num_boost_round=num_boost_round,
            early_stopping_rounds=early_stopping_rounds,
            callbacks=[
                LightGBMPruningCallback(trial, metric, valid_name=VALID_NAME, report_interval=report_interval)
            ],
        )
        trial.set_user_attr("best_iteration", int(booster.best_iteration or booster.current_iteration()))
        return float(booster.best_score[VALID_NAME][metric])

    return objective


def tune_conversion(
    train: Fold,
    valid: Fold,
    *,
    n_trials: int,
    seed: int = DEFAULT_SEED,
    storage_url: str,
    study_name: str,
    timeout: float | None = None,
    metric: str = "binary_logloss",
    base_params: Mapping[str, Any] | None = None,
    num_threads: int | None = None,
    num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS,
    resume: bool = False,
    pruner_startup_trials: int = 5,
    pruner_warmup_steps: int = 10,
    report_interval: int = 10,
) -> TuningResult:
    """Search conversion-booster parameters on ``valid`` and return the best trial.

    The default metric is validation log loss, which rewards ranking and the probability scale
    together. Use ``metric="auc"`` to tune for ranking alone. ``base_params`` are fixed
    overrides applied under the searched ones. ``n_trials`` is the total budget of the study,
    including trials from an earlier run when ``resume=True``.
    """
    _check_budget(n_trials, timeout, report_interval)

    def make_params(suggested: dict[str, Any]) -> dict[str, Any]:
        return conversion_params({**(base_params or {}), **suggested}, seed=seed, num_threads=num_threads)

    objective = _booster_objective(
        train,
        valid,
        search_space=CONVERSION_SEARCH_SPACE,
        make_params=make_params,
        metric=metric,
        num_boost_round=num_boost_round,
        early_stopping_rounds=early_stopping_rounds,
        report_interval=report_interval,
    )
    study = _open_study(
        storage_url,
        study_name,
        direction="maximize" if metric in MAXIMIZED_METRICS else "minimize",
        seed=seed,
        resume=resume,
        pruner_startup_trials=pruner_startup_trials,
        pruner_warmup_steps=pruner_warmup_steps,
    )
    return _run_study(
        study, objective, n_trials=n_trials, timeout=timeout, metric=metric, storage_url=storage_url
    )


def tune_ltv(
    train: Fold,
    valid: Fold,
    *,
    role: BoosterRole,
    n_trials: int,
    seed: int = DEFAULT_SEED,
    storage_url: str,
    study_name: str,
    timeout: float | None = None,
    base_params: Mapping[str, Any] | None = None,
    num_threads: int | None = None,
    num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS,
    cap_quantile: float | None = DEFAULT_CAP_QUANTILE,
    resume: bool = False,
    pruner_startup_trials: int = 5,
    pruner_warmup_steps: int = 10,
    report_interval: int = 10,
) -> TuningResult:
    """Search the parameters of one LTV booster role on ``valid`` and return the best trial.

    ``train.y`` and ``valid.y`` are net revenue. The role's labels and rows are derived as in
    ``training.ltv.fit_ltv`` (buyers only for ``gamma`` and ``log1p``, negatives as 0 for
    ``tweedie``). Each role is tuned on its own objective's deviance: Tweedie deviance, gamma
    deviance, squared error on log1p(revenue) or log loss. Pass ``best_params`` to ``fit_ltv``
    as ``params={role: best_params}``.
    """
    _check_budget(n_trials, timeout, report_interval)
    if role not in METRIC_BY_ROLE:
        raise ConfigError(f"LTV role {role!r} is invalid; choose one of {list(METRIC_BY_ROLE)}")
    metric = METRIC_BY_ROLE[role]
    cap_value = label_report(train.y, cap_quantile).cap_value
    role_train = role_fold(train, role, cap_value)
    role_valid = role_fold(valid, role, cap_value)

    def make_params(suggested: dict[str, Any]) -> dict[str, Any]:
        return role_params(role, {**(base_params or {}), **suggested}, seed=seed, num_threads=num_threads)

    objective = _booster_objective(
        role_train,
        role_valid,
        search_space=LTV_SEARCH_SPACE,
        make_params=make_params,
        metric=metric,
        num_boost_round=num_boost_round,
        early_stopping_rounds=early_stopping_rounds,
        report_interval=report_interval,
    )
    study = _open_study(
        storage_url,
        study_name,
        direction="minimize",
        seed=seed,
        resume=resume,
        pruner_startup_trials=pruner_startup_trials,
        pruner_warmup_steps=pruner_warmup_steps,
    )
    return _run_study(
        study, objective, n_trials=n_trials, timeout=timeout, metric=metric, storage_url=storage_url
    )
