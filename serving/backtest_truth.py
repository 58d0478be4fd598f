"""Ground truth of a synthetic history, read only to evaluate routing outcomes.

``leadscore data generate`` writes ``ground_truth/`` beside the canonical tables: per lead
the true conversion probability with an average rep of each tier, per rep its own conversion
effect, and in ``generator.json`` the response-speed penalty and the skill-match effect.
The backtest combines them into the probability that the assigned rep converts the lead:

    logit P = logit(p_convert_<tier>) + rep_effect + skill_match_effect * (rep lists the lead's industry)
              - speed_penalty * (log(1 + d + w) - log(1 + d))

where d is the lead's first-contact delay in hours and w the hours it waited in the queue.
A lead that no rep ever contacts has probability 0 with every rep, as in the generator.

The value of a won lead is known only for leads that converted (``order_value_24m``). The
backtest therefore needs it for every lead and estimates it with ``estimate_won_value``.
Nothing in this module is passed to a routing strategy.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import PoissonRegressor

from data.schema import TIERS
from data.synthetic.generate import TRUTH_DIR
from leadscore.errors import DataValidationError, InputFileError, InsufficientDataError, SchemaError

logger = logging.getLogger(__name__)

TRUTH_LEAD_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "latent_quality",
    "first_contact_delay_hours",
    "converted",
    "order_value_24m",
    *(f"p_convert_{tier}" for tier in TIERS),
)
TRUTH_REP_COLUMNS: tuple[str, ...] = ("rep_id", "rep_effect")
MIN_CONVERTED_FOR_VALUE = 30
# Code of the won-value estimate of ``estimate_won_value``; the report renders it as text.
VALUE_SOURCE_POISSON = "poisson_regression"
_VALUE_MODEL_ALPHA = 1e-4
_VALUE_MODEL_MAX_ITER = 500


@dataclass(frozen=True)
class GroundTruth:
    """Evaluation inputs per lead and rep, never passed to a strategy.

    ``leads`` is indexed by lead_id with columns ``p_convert_<tier>`` for each tier,
    ``first_contact_delay_hours`` (NaN when never contacted) and ``won_value`` (CNY
    earned in the 24 months after a win). ``value_source`` is ``VALUE_SOURCE_POISSON`` or a
    free-text description of where ``won_value`` came from. ``rep_effects`` maps rep ids to their logit
    effect; a rep missing from it counts as average (0). ``generate_command`` is the
    ``leadscore data generate`` command that reproduces the history, when it is known.
    """

    leads: pd.DataFrame
    rep_effects: Mapping[str, float]
    speed_penalty: float
    skill_match_effect: float
    value_source: str
    generate_command: str | None = None

    def __post_init__(self) -> None:
        required = [*(f"p_convert_{tier}" for tier in TIERS), "first_contact_delay_hours", "won_value"]
        missing = [column for column in required if column not in self.leads.columns]
        if missing:
            raise SchemaError(f"ground truth lacks column(s) {missing}; expected {required}")
        if not self.leads.index.is_unique:
            raise DataValidationError("ground truth lists a lead_id twice; lead ids must be unique")
        for name, value in (
            ("speed_penalty", self.speed_penalty),
            ("skill_match_effect", self.skill_match_effect),
        ):
            if not math.isfinite(value):
                raise DataValidationError(f"ground truth {name} must be a finite number, got {value!r}")

    def conversion_probability(
        self,
        lead_ids: pd.Series,
        tiers: pd.Series,
        rep_ids: pd.Series,
        skill_match: pd.Series,
        wait_hours: pd.Series,
    ) -> np.ndarray:
        """Return P(convert) of each lead with its assigned rep, after its queue wait (see module doc)."""
        missing = sorted(set(lead_ids) - set(self.leads.index))
        if missing:
            raise DataValidationError(
                f"ground truth has no row for {len(missing)} replayed lead(s), e.g. {missing[:5]}; "
                "use the ground_truth folder written with these tables"
            )
        rows = self.leads.loc[lead_ids.to_numpy()]
        base = np.zeros(len(rows), dtype=np.float64)
        tier_values = tiers.to_numpy()
        for tier in TIERS:
            chosen = tier_values == tier
            base[chosen] = rows[f"p_convert_{tier}"].to_numpy(dtype=np.float64)[chosen]
        effects = np.asarray(
            [float(self.rep_effects.get(rep_id, 0.0)) for rep_id in rep_ids], dtype=np.float64
        )
        delay = np.nan_to_num(rows["first_contact_delay_hours"].to_numpy(dtype=np.float64), nan=0.0)
        wait = np.maximum(wait_hours.to_numpy(dtype=np.float64), 0.0)
        shift = effects + self.skill_match_effect * skill_match.to_numpy(dtype=np.float64)
        shift -= self.speed_penalty * (np.log1p(delay + wait) - np.log1p(delay))
        with np.errstate(divide="ignore"):
            logit = np.log(base) - np.log1p(-base)
        probability = 1.0 / (1.0 + np.exp(-(logit + shift)))
        result: np.ndarray = np.where(base > 0.0, probability, 0.0)
        return result


def read_ground_truth(data_dir: Path, leads: pd.DataFrame) -> GroundTruth:
    """Read ``data_dir/ground_truth`` and estimate each lead's won value (see ``estimate_won_value``).

    ``leads`` is the canonical leads table; its declared_budget, company_size and industry
    feed the value estimate. Raises InputFileError when the folder has no ground truth and
    SchemaError naming missing columns or keys.
    """
    truth_dir = Path(data_dir) / TRUTH_DIR
    leads_path = truth_dir / "leads.parquet"
    reps_path = truth_dir / "reps.parquet"
    config_path = truth_dir / "generator.json"
    for path in (leads_path, reps_path, config_path):
        if not path.is_file():
            raise InputFileError(
                f"{path} not found; the routing backtest needs a synthetic history with ground truth, "
                "written by 'leadscore data generate --out DIR'"
            )
    truth_leads = pd.read_parquet(leads_path)
    _require(truth_leads, TRUTH_LEAD_COLUMNS, leads_path)
    truth_reps = pd.read_parquet(reps_path)
    _require(truth_reps, TRUTH_REP_COLUMNS, reps_path)
    generator = json.loads(config_path.read_text("utf-8"))
    speed_penalty = _config_number(generator, ("config", "response", "speed_penalty"), config_path)
    skill_effect = _config_number(generator, ("config", "skill_match_effect"), config_path)

    values = estimate_won_value(truth_leads, leads)
    frame = truth_leads.set_index("lead_id")
    frame = frame[[*(f"p_convert_{tier}" for tier in TIERS), "first_contact_delay_hours"]].copy()
    frame["won_value"] = values.reindex(frame.index).to_numpy()
    effects = dict(zip(truth_reps["rep_id"].astype(str), truth_reps["rep_effect"].astype(float), strict=True))
    logger.info(
        "read ground truth of %d leads and %d reps from %s (speed penalty %.3f, skill-match effect %.3f)",
        len(frame),
        len(effects),
        truth_dir,
        speed_penalty,
        skill_effect,
    )
    return GroundTruth(
        leads=frame,
        rep_effects=effects,
        speed_penalty=speed_penalty,
        skill_match_effect=skill_effect,
        value_source=VALUE_SOURCE_POISSON,
        generate_command=_generate_command(generator),
    )


def _generate_command(generator: Mapping[str, Any]) -> str | None:
    """Return the ``leadscore data generate`` command of the history, or None if the keys are missing."""
    config = generator.get("config")
    if not isinstance(config, Mapping) or not all(
        key in config for key in ("leads", "seed", "months", "start")
    ):
        return None
    return (
        f"leadscore data generate --leads {config['leads']} --seed {config['seed']} "
        f"--months {config['months']} --start {config['start']} --out DIR"
    )


def estimate_won_value(truth_leads: pd.DataFrame, leads: pd.DataFrame) -> pd.Series:
    """Return E[24-month order value | lead won] for every lead, indexed by lead_id.

    The generator draws a won lead's orders from its declared budget (or company size band
    and industry), its latent quality and noise that has nothing to do with who owns the
    lead. A Poisson regression (log link) on those inputs, fitted to the converted leads'
    ``order_value_24m``, therefore estimates the value of every lead had it been won. The
    fit serves the evaluation alone and uses truth columns that no strategy receives.
    """
    merged = leads[["lead_id", "declared_budget", "company_size", "industry"]].merge(
        truth_leads[["lead_id", "latent_quality", "converted", "order_value_24m"]],
        on="lead_id",
        how="inner",
        validate="one_to_one",
    )
    if merged.empty:
        raise DataValidationError(
            "no lead of the leads table appears in the ground truth; use the ground_truth folder "
            "written with these tables"
        )
    design = _value_design(merged)
    converted = merged["converted"].to_numpy(dtype=bool) & merged["order_value_24m"].notna().to_numpy()
    if converted.sum() < MIN_CONVERTED_FOR_VALUE:
        raise InsufficientDataError(
            f"the ground truth has {int(converted.sum())} converted leads with an order value; the value "
            f"estimate needs at least {MIN_CONVERTED_FOR_VALUE}. Generate a longer or larger history"
        )
    observed = np.maximum(merged.loc[converted, "order_value_24m"].to_numpy(dtype=np.float64), 0.0)
    scale = float(observed.mean())
    if scale <= 0.0:
        raise InsufficientDataError(
            "every converted lead has an order value of 0; the value estimate needs revenue"
        )
    model = PoissonRegressor(
        alpha=_VALUE_MODEL_ALPHA, solver="newton-cholesky", max_iter=_VALUE_MODEL_MAX_ITER
    )
    model.fit(design[converted], observed / scale)
    estimate = np.asarray(model.predict(design), dtype=np.float64) * scale
    logger.info(
        "estimated won value of %d leads from %d converted leads: mean %.0f, median %.0f CNY",
        len(estimate),
        int(converted.sum()),
        float(estimate.mean()),
        float(np.median(estimate)),
    )
    return pd.Series(
        estimate, index=pd.Index(merged["lead_id"].astype(str), name="lead_id"), name="won_value"
    )


def _value_design(merged: pd.DataFrame) -> pd.DataFrame:
    """Return the regression inputs: log budget when stated, size band when not, industry, quality."""
    budget = merged["declared_budget"].astype("float64").to_numpy()
    stated = np.isfinite(budget) & (budget > 0)
    log_budget = np.where(stated, np.log(np.where(stated, budget, 1.0)), 0.0)
    centre = float(log_budget[stated].mean()) if stated.any() else 0.0
    columns: dict[str, Any] = {
        "budget_stated": stated.astype(np.float64),
        "log_budget": np.where(stated, log_budget - centre, 0.0),
        "latent_quality": merged["latent_quality"].astype("float64").to_numpy(),
    }
    sizes = merged["company_size"].astype(object).where(merged["company_size"].notna(), "(missing)")
    for name, indicator in pd.get_dummies(sizes, prefix="size", dtype=np.float64).items():
        columns[str(name)] = indicator.to_numpy() * (~stated)
    industries = merged["industry"].astype(object).where(merged["industry"].notna(), "(missing)")
    for name, indicator in pd.get_dummies(industries, prefix="industry", dtype=np.float64).items():
        columns[str(name)] = indicator.to_numpy()
    return pd.DataFrame(columns)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SchemaError(
            f"{path} lacks column(s) {missing}; regenerate the history with this leadscore version"
        )


def _config_number(payload: Mapping[str, Any], keys: tuple[str, ...], path: Path) -> float:
    value: Any = payload
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise SchemaError(
                f"{path} lacks the key {'.'.join(keys)}; regenerate the history with this leadscore version"
            )
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"{path}: {'.'.join(keys)} must be a number, got {value!r}")
    return float(value)
