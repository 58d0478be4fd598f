"""Fit the lifetime-value model of a training run, or choose the constant LTV served without one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from features.spec import FeatureSpec
from leadscore.errors import InsufficientDataError
from training.boosting import fold_of
from training.ltv import LtvModel, fit_ltv
from training.split import SplitIndices, time_split

if TYPE_CHECKING:
    from training.train import TrainOptions

logger = logging.getLogger(__name__)

LTV_HINT_STEP_DAYS = 30
"""The LTV window suggested when the configured one does not fit is a multiple of this many days."""


@dataclass
class LtvFit:
    """The LTV model (None when the history cannot support one), its split and test rows."""

    model: LtvModel | None
    fallback: float
    test_rows: pd.DataFrame
    train_rows: pd.DataFrame
    note: str = ""
    purge_days: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    fallback_basis: str = ""


def fallback_ltv(frame: pd.DataFrame) -> tuple[float, str]:
    """Return the constant LTV used without an LTV model, and what it is based on.

    The mean net revenue of converted leads with a complete LTV window comes first. Without
    such leads it is the revenue observed so far, which underestimates because the windows
    are cut short. Without any revenue it is 1, so expected value ranks leads by p_convert.
    """
    converted = frame.loc[frame["converted"] == 1]
    complete = converted.loc[converted["value_complete"].to_numpy(dtype=bool), "value"].clip(lower=0)
    if len(complete) and complete.mean() > 0:
        return float(
            complete.mean()
        ), f"mean net revenue of {len(complete)} converted leads with a complete window"
    observed = converted["value"].clip(lower=0)
    if len(observed) and observed.mean() > 0:
        basis = (
            f"mean net revenue observed so far of {len(observed)} converted leads; their LTV windows are "
            "incomplete, so it underestimates"
        )
        return float(observed.mean()), basis
    return 1.0, "no revenue recorded, so ltv is 1 and expected value equals p_convert"


def ltv_window_hint(frame: pd.DataFrame, horizon_days: int) -> str:
    """Return a hint naming an LTV window that fits the history of ``frame``, for the no-model note.

    A split with full purges needs the window once for the newest labels to complete and twice
    for the gaps between folds, with room left for the folds: about two sevenths of the history.
    """
    cutoffs = pd.to_datetime(frame["cutoff"])
    span_days = int((cutoffs.max() - cutoffs.min()) / pd.Timedelta(days=1)) if len(frame) else 0
    fitting = (span_days * 2 // 7) // LTV_HINT_STEP_DAYS * LTV_HINT_STEP_DAYS
    if fitting < LTV_HINT_STEP_DAYS or fitting >= horizon_days:
        return (
            f"the lead history spans {span_days} days; supply a longer history to train an LTV model "
            f"with a {horizon_days}-day window"
        )
    return (
        f"the lead history spans {span_days} days, too short for a {horizon_days}-day window; "
        f"train with --ltv-horizon-days {fitting} (ltv_horizon_days in the settings file) "
        "or supply a longer history"
    )


def fit_ltv_model(options: TrainOptions, frame: pd.DataFrame, spec: FeatureSpec) -> LtvFit:
    """Fit the LTV model on converted leads with a complete LTV window, on its own time split.

    The split purges ``ltv_horizon_days`` so that no training label overlaps later folds. When
    the history is too short for that, it retries with the conversion horizon and records that
    in the fit's note. Without an LTV model, every lead gets ``fallback_ltv``.
    """
    config = options.feature_config
    complete = frame.loc[frame["value_complete"].to_numpy(dtype=bool)].reset_index(drop=True)
    buyers = complete.loc[complete["converted"] == 1]
    fallback, basis = fallback_ltv(frame)
    empty = complete.iloc[0:0]
    if len(buyers) == 0:
        hint = ltv_window_hint(frame, config.ltv_horizon_days)
        note = f"no converted lead has a complete {config.ltv_horizon_days}-day LTV window; {hint}"
        logger.warning("no LTV model: %s; ltv is %.2f, the %s", note, fallback, basis)
        return LtvFit(None, fallback, empty, empty, note, fallback_basis=basis)

    split: SplitIndices | None = None
    note = ""
    purge_days = config.ltv_horizon_days
    for purge_days in (config.ltv_horizon_days, config.horizon_days):
        try:
            split = time_split(
                complete,
                "cutoff",
                valid_fraction=options.valid_fraction,
                test_fraction=options.test_fraction,
                purge=pd.Timedelta(days=purge_days),
                calibration_fraction=0.0,
            )
            break
        except InsufficientDataError as error:
            note = f"LTV split with a {purge_days}-day purge failed: {error}"
            logger.info("%s", note)
    if split is None:
        note = f"{note}; {ltv_window_hint(frame, config.ltv_horizon_days)}"
        logger.warning("no LTV model; ltv is %.2f, the %s. %s", fallback, basis, note)
        return LtvFit(None, fallback, empty, empty, note, fallback_basis=basis)
    if purge_days != config.ltv_horizon_days:
        note = (
            f"the history is too short to purge the {config.ltv_horizon_days}-day LTV window between folds, "
            f"so the LTV split purges {purge_days} days and training labels overlap later folds"
        )

    parts = {name: complete.iloc[getattr(split, name)] for name in ("train", "valid", "test")}
    buyer_parts = {name: part.loc[part["converted"] == 1] for name, part in parts.items()}
    counts = {f"ltv_{name}_buyers": len(part) for name, part in buyer_parts.items()}
    try:
        model = fit_ltv(
            fold_of(spec, buyer_parts["train"], "value"),
            fold_of(spec, buyer_parts["valid"], "value"),
            seed=options.seed,
            num_threads=options.num_threads,
        )
    except InsufficientDataError as error:
        logger.warning("no LTV model: %s; ltv is %.2f, the %s", error, fallback, basis)
        note = f"no LTV model: {error}"
        return LtvFit(None, fallback, parts["test"], parts["train"], note, purge_days, counts, basis)
    return LtvFit(model, fallback, parts["test"], parts["train"], note, purge_days, counts)
