"""A tiny ``lead-scorer`` champion in a temporary MLflow SQLite store, for service tests and benchmarks.

The history is the small synthetic one of the training tests (a known conversion signal),
written as a data folder and trained by ``training.train.train`` without tuning, so the
model is registered and promoted exactly as ``leadscore train`` does it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from data.folder import write_attributes, write_table
from features.config import FeatureConfig
from tests.training.canonical_history import make_history
from training.train import TrainOptions, train

logger = logging.getLogger(__name__)

N_LEADS = 1500
SEED = 7
TABLES = ("leads", "activities", "stage_changes", "orders", "reps")


@dataclass(frozen=True)
class TinyChampion:
    """Where the tiny model lives and what it is."""

    tracking_uri: str
    registry_version: str
    model_version: str
    data_dir: Path


def train_tiny_champion(root: Path, *, leads: int = N_LEADS, tracking_uri: str | None = None) -> TinyChampion:
    """Write a synthetic history under ``root``, train on it and return the promoted champion.

    ``tracking_uri`` defaults to a SQLite store under ``root``.
    """
    data_dir = root / "data"
    history = make_history(leads, seed=SEED)
    for table in TABLES:
        write_table(history.table(table), data_dir, table)
    write_attributes(data_dir, list(history.attributes))

    work_dir = root / "work"
    tracking_uri = tracking_uri or f"sqlite:///{(work_dir / 'mlflow.db').resolve()}"
    result = train(
        TrainOptions(
            data_dir=data_dir,
            work_dir=work_dir,
            tracking_uri=tracking_uri,
            trials=0,
            seed=11,
            num_threads=1,
            feature_config=FeatureConfig(ltv_horizon_days=365),
        )
    )
    if result.decision is None or not result.decision.promoted or result.model_version is None:
        raise RuntimeError(f"the tiny model was not promoted to champion: {result.decision}")
    logger.info("tiny champion: version %s, bundle %s", result.model_version, result.bundle.bundle_version)
    return TinyChampion(
        tracking_uri=tracking_uri,
        registry_version=str(result.model_version),
        model_version=result.bundle.bundle_version,
        data_dir=data_dir,
    )
