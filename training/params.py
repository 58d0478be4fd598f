"""LightGBM parameter sets for the conversion and lifetime-value models.

Every parameter set built here is deterministic: ``deterministic=True``, ``force_col_wise=True``,
one seed fanned out to every LightGBM seed parameter, and an explicit ``num_threads``. LightGBM
otherwise starts one thread per core, which oversubscribes the machine when Optuna, Dask workers
or the scoring service run beside the trainer, and changes results between machines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from leadscore.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_NUM_THREADS = 2
"""Training threads unless the caller sets more; capped at the cores this process may use.

NOTE: when other processes keep the cores busy, 1 thread can be many times faster than 2,
because LightGBM's OpenMP threads spin while they wait for each other. Pass num_threads=1
for small boosters trained beside other work.
"""

DEFAULT_SEED = 20240601

DEFAULT_NUM_BOOST_ROUND = 2000
DEFAULT_EARLY_STOPPING_ROUNDS = 100

# Parameters that reweight the classes. They raise recall at the price of a distorted
# probability scale, and the conversion probability is multiplied into expected value,
# so these parameters are rejected for the conversion model (aliases as of LightGBM 4.7).
PROBABILITY_DISTORTING_PARAMS: tuple[str, ...] = (
    "is_unbalance",
    "unbalance",
    "unbalanced_sets",
    "scale_pos_weight",
)

# The LightGBM aliases of the parameters that ``deterministic_params`` sets. A caller passing
# an alias would silently override (or be overridden by) the canonical name, so aliases are rejected.
_CONTROLLED_ALIASES: dict[str, str] = {
    "num_thread": "num_threads",
    "nthread": "num_threads",
    "nthreads": "num_threads",
    "n_jobs": "num_threads",
    "random_seed": "seed",
    "random_state": "seed",
}

CONVERSION_DEFAULTS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "min_data_per_group": 50,
    "max_cat_to_onehot": 4,
}

OCCURRENCE_DEFAULTS: dict[str, Any] = {**CONVERSION_DEFAULTS}
"""The hurdle model's P(any revenue) classifier: the same shape as the conversion model."""

GAMMA_DEFAULTS: dict[str, Any] = {
    "objective": "gamma",
    "metric": "gamma_deviance",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 30,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "min_data_per_group": 30,
}

LOG1P_DEFAULTS: dict[str, Any] = {**GAMMA_DEFAULTS, "objective": "regression", "metric": "l2"}

TWEEDIE_DEFAULTS: dict[str, Any] = {
    **GAMMA_DEFAULTS,
    "objective": "tweedie",
    "metric": "tweedie",
    "tweedie_variance_power": 1.5,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "min_data_per_group": 50,
}


def available_cores() -> int:
    """Return the number of cores this process may run on (its CPU affinity where supported)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_num_threads(requested: int | None) -> int:
    """Return the LightGBM thread count: ``requested`` (default 2) capped at the available cores."""
    if requested is None:
        requested = DEFAULT_NUM_THREADS
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ConfigError(f"num_threads must be a positive integer, got {requested!r}")
    cores = available_cores()
    if requested > cores:
        logger.warning("num_threads=%d exceeds the %d available cores; using %d", requested, cores, cores)
        return cores
    return requested


def deterministic_params(seed: int, num_threads: int | None) -> dict[str, Any]:
    """Return the LightGBM parameters that make training reproducible for ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return {
        "deterministic": True,
        "force_col_wise": True,
        "seed": seed,
        "bagging_seed": seed,
        "feature_fraction_seed": seed,
        "data_random_seed": seed,
        "extra_seed": seed,
        "drop_seed": seed,
        "objective_seed": seed,
        "num_threads": resolve_num_threads(num_threads),
        "verbosity": -1,
    }


def build_params(
    defaults: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    *,
    seed: int,
    num_threads: int | None,
) -> dict[str, Any]:
    """Merge ``overrides`` over ``defaults`` and add the deterministic parameters.

    Raises ConfigError when an override uses an alias of a parameter set here (``n_jobs``,
    ``random_state`` ...), because LightGBM would then resolve the conflict silently.
    """
    overrides = dict(overrides or {})
    aliases = sorted(name for name in overrides if name in _CONTROLLED_ALIASES)
    if aliases:
        fixes = ", ".join(f"{name} -> {_CONTROLLED_ALIASES[name]}" for name in aliases)
        raise ConfigError(
            f"LightGBM parameter alias(es) {aliases} are not accepted; use the canonical names ({fixes})"
        )
    controlled = deterministic_params(seed, overrides.pop("num_threads", num_threads))
    for name in ("seed", "deterministic", "force_col_wise"):
        if name in overrides and overrides[name] != controlled[name]:
            logger.warning(
                "ignoring LightGBM override %s=%r; training keeps %r", name, overrides[name], controlled[name]
            )
        overrides.pop(name, None)
    return {**defaults, **overrides, **controlled}


def check_probability_params(params: Mapping[str, Any]) -> None:
    """Raise ConfigError when ``params`` contains a class-reweighting parameter.

    ``is_unbalance`` and ``scale_pos_weight`` inflate the predicted probability of the minority
    class, so a conversion probability from such a model no longer matches observed rates.
    """
    present = [name for name in PROBABILITY_DISTORTING_PARAMS if name in params]
    if present:
        raise ConfigError(
            f"conversion parameters contain {present}, which distort the probability scale; "
            "remove them and let calibration handle the class imbalance"
        )
