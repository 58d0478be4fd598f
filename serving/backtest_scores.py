"""Score records of replayed leads at arrival, from a scorer bundle or from the rule score.

Every replayed lead is scored at its ``created_at``. Features use only events strictly
before that moment, which is the information a router has when the lead arrives. Scores come from
the canonical tables alone and never from ground truth.

Without a trained model, ``fit_rule_fallback`` builds score records from the hand-made
points table of ``training.baselines.rules``. Its p_convert is the rule score mapped through
a sigmoid fitted on leads that arrived before the replay. Its ltv is the mean net revenue
that converted training leads of the same company size band brought in the
``ltv_window_days`` after their win.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.folder import CanonicalTables
from data.stages import WON
from features.config import FeatureConfig
from features.labels import attach_labels
from features.pipeline import build_features
from leadscore.errors import ConfigError, InsufficientDataError
from serving.policy import ScoredLead
from training.baselines.rules import RuleScoreModel, fit_rule_model, rule_points
from training.bundle import ScorerBundle
from training.scorer import score_tables

logger = logging.getLogger(__name__)

FALLBACK_MODEL_VERSION = "rule-score-fallback"
DEFAULT_LTV_WINDOW_DAYS = 180
MIN_LEADS_PER_SIZE_BAND = 20
MISSING_SIZE = "(missing)"


def arrival_spine(leads: pd.DataFrame) -> pd.DataFrame:
    """Return one spine row per lead with the cutoff at its arrival (created_at)."""
    return pd.DataFrame(
        {"lead_id": leads["lead_id"].to_numpy(), "cutoff": leads["created_at"].to_numpy()}
    ).astype({"lead_id": leads["lead_id"].dtype, "cutoff": leads["created_at"].dtype})


def intake_features(tables: CanonicalTables, leads: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """Return the feature frame of ``leads`` at arrival, one row per lead in the same order."""
    return build_features(arrival_spine(leads), tables, config)


def intake_rule_points(features: pd.DataFrame) -> dict[str, float]:
    """Return the summed points of the default rule table per lead_id."""
    totals = rule_points(features).sum(axis=1).to_numpy(dtype=np.float64)
    return dict(zip(features["lead_id"].astype(str), totals.tolist(), strict=True))


def score_with_bundle(
    bundle: ScorerBundle, tables: CanonicalTables, leads: pd.DataFrame
) -> dict[str, ScoredLead]:
    """Score ``leads`` at arrival with ``bundle`` through ``training.scorer.score_tables``."""
    records = score_tables(bundle, tables, arrival_spine(leads), top_reasons=0)
    return _scored_leads(records, leads)


def _scored_leads(records: pd.DataFrame, leads: pd.DataFrame) -> dict[str, ScoredLead]:
    locations = leads.set_index(leads["lead_id"].astype(str))[["region", "industry"]]
    scored: dict[str, ScoredLead] = {}
    for record in records.to_dict(orient="records"):
        lead_id = str(record["lead_id"])
        region, industry = locations.loc[lead_id]
        scored[lead_id] = ScoredLead(
            lead_id=lead_id,
            p_convert=float(record["p_convert"]),
            ltv=float(record["ltv"]),
            expected_value=float(record["expected_value"]),
            model_version=_text(record["model_version"]),
            segment=_text(record["segment"]),
            region=_text(region),
            industry=_text(industry),
        )
    return scored


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class RuleFallbackScorer:
    """Score records from the rule score: p_convert from a fitted sigmoid, ltv per size band.

    ``ltv_by_size`` maps a company size band to the mean net revenue of converted training
    leads of that band. Bands with fewer than ``MIN_LEADS_PER_SIZE_BAND`` such leads, and
    sizes not seen in training, get ``ltv_overall``.
    """

    rule_model: RuleScoreModel
    ltv_by_size: Mapping[str, float]
    ltv_overall: float
    trained_until: pd.Timestamp
    training_leads: int
    converted_training_leads: int
    ltv_leads: int
    ltv_window_days: int

    def score(self, features: pd.DataFrame) -> dict[str, ScoredLead]:
        """Return a score record per row of an intake feature frame, keyed by lead_id."""
        p_convert = np.clip(self.rule_model.predict_proba(features), 0.0, 1.0)
        sizes = features["company_size"].astype(object).where(features["company_size"].notna(), MISSING_SIZE)
        ltv = np.asarray(
            [self.ltv_by_size.get(str(size), self.ltv_overall) for size in sizes], dtype=np.float64
        )
        scored: dict[str, ScoredLead] = {}
        for position, lead_id in enumerate(features["lead_id"].astype(str)):
            scored[lead_id] = ScoredLead(
                lead_id=lead_id,
                p_convert=float(p_convert[position]),
                ltv=float(ltv[position]),
                expected_value=float(p_convert[position] * ltv[position]),
                model_version=FALLBACK_MODEL_VERSION,
                region=_text(features["region"].iloc[position]),
                industry=_text(features["industry"].iloc[position]),
            )
        return scored


def fit_rule_fallback(
    tables: CanonicalTables,
    train_until: pd.Timestamp,
    config: FeatureConfig,
    *,
    ltv_window_days: int = DEFAULT_LTV_WINDOW_DAYS,
) -> RuleFallbackScorer:
    """Fit the rule-score fallback on leads whose labels are complete by ``train_until``.

    Conversion labels need ``config.horizon_days`` after arrival and LTV labels need
    ``ltv_window_days`` after the win, both before ``train_until``. Raises
    InsufficientDataError when too few leads qualify.
    """
    if ltv_window_days <= 0:
        raise ConfigError(f"ltv_window_days must be at least 1; got {ltv_window_days}")
    leads = tables.leads
    horizon = pd.Timedelta(days=config.horizon_days)
    trainable = leads[(leads["created_at"] + horizon <= train_until).to_numpy()]
    if trainable.empty:
        raise InsufficientDataError(
            f"no lead arrived at least {config.horizon_days} days before {train_until.isoformat()}, "
            "so the rule-score fallback has nothing to fit on; start the replay later (--from) "
            "or shorten the warm-up"
        )
    spine = arrival_spine(trainable)
    labels = attach_labels(spine, tables, config, observed_until=train_until)
    complete = labels["label_complete"].to_numpy(dtype=bool)
    features = build_features(spine[complete].reset_index(drop=True), tables, config)
    converted = labels.loc[complete, "converted"].to_numpy(dtype=np.float64)
    rule_model = fit_rule_model(features, converted)

    ltv_by_size, overall, ltv_leads = _ltv_by_size(tables, train_until, config, ltv_window_days)
    logger.info(
        "fitted the rule-score fallback on %d leads (%d converted) before %s; LTV from %d won leads: "
        "overall %.0f, by size %s",
        len(features),
        int(converted.sum()),
        train_until.isoformat(),
        ltv_leads,
        overall,
        {size: round(value) for size, value in ltv_by_size.items()},
    )
    return RuleFallbackScorer(
        rule_model=rule_model,
        ltv_by_size=ltv_by_size,
        ltv_overall=overall,
        trained_until=train_until,
        training_leads=len(features),
        converted_training_leads=int(converted.sum()),
        ltv_leads=ltv_leads,
        ltv_window_days=ltv_window_days,
    )


def _ltv_by_size(
    tables: CanonicalTables, train_until: pd.Timestamp, config: FeatureConfig, window_days: int
) -> tuple[dict[str, float], float, int]:
    """Return mean net revenue after the win per size band, the overall mean and the lead count."""
    stages = tables.stage_changes
    wins = stages[(stages["stage"] == WON).to_numpy()].groupby("lead_id", sort=True)["changed_at"].min()
    window = pd.Timedelta(days=window_days)
    wins = wins[wins + window <= train_until]
    if wins.empty:
        raise InsufficientDataError(
            f"no lead was won at least {window_days} days before {train_until.isoformat()}, so the "
            "rule-score fallback cannot estimate LTV; start the replay later (--from)"
        )

    spine = pd.DataFrame({"lead_id": wins.index.to_numpy(), "cutoff": wins.to_numpy()}).astype(
        {"lead_id": tables.leads["lead_id"].dtype, "cutoff": tables.leads["created_at"].dtype}
    )
    value_config = FeatureConfig(
        horizon_days=config.horizon_days, ltv_horizon_days=window_days, timezone=config.timezone
    )
    values = attach_labels(spine, tables, value_config, observed_until=train_until)["value"].to_numpy()
    sizes = (
        tables.leads.set_index("lead_id")["company_size"]
        .reindex(spine["lead_id"].to_numpy())
        .astype(object)
        .fillna(MISSING_SIZE)
        .astype(str)
    )

    frame = pd.DataFrame({"size": sizes.to_numpy(), "value": np.maximum(values, 0.0)})
    overall = float(frame["value"].mean())
    grouped = frame.groupby("size")["value"].agg(["mean", "count"])
    by_size = {
        str(size): float(row["mean"])
        for size, row in grouped.iterrows()
        if row["count"] >= MIN_LEADS_PER_SIZE_BAND
    }
    return by_size, overall, len(frame)


def load_bundle(
    model_uri: str | None, tracking_uri: str | None, bundle_dir: Path | None, download_dir: Path
) -> ScorerBundle:
    """Load the scorer bundle from a bundle folder or a ``models:/lead-scorer@ALIAS`` / ``/VERSION`` URI.

    A registered version is downloaded into ``download_dir``, which the caller owns.
    """
    if bundle_dir is not None:
        return ScorerBundle.load(bundle_dir)
    if model_uri is None:
        raise ConfigError("give a model URI or a bundle folder to score with a trained model")
    from training.registry import MODEL_NAME, load_version_bundle
    from training.tracking import normalize_tracking_uri

    prefix = f"models:/{MODEL_NAME}"
    if tracking_uri is None:
        raise ConfigError(
            f"--model-uri {model_uri} needs --tracking-uri, the MLflow registry to read it from"
        )
    uri = normalize_tracking_uri(tracking_uri)
    if model_uri.startswith(prefix + "@"):
        from serving.model_loading import load_champion

        return load_champion(uri, model_uri[len(prefix) + 1 :]).bundle
    if model_uri.startswith(prefix + "/") and model_uri[len(prefix) + 1 :].isdigit():
        return load_version_bundle(uri, model_uri[len(prefix) + 1 :], download_dir)
    raise ConfigError(
        f"unsupported model URI {model_uri!r}; use {prefix}@ALIAS (for example @champion) or {prefix}/VERSION"
    )
