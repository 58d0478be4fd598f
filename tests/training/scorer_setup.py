"""Shared, cached setup of the scorer tests: a small history, a fitted scorer, an MLflow store.

Fitting takes a few seconds, so each fitted scorer is built once per test session and shared
by the bundle, scorer, pyfunc and registry tests. Tests must not modify what they get here.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from data.folder import CanonicalTables
from features.config import FeatureConfig
from tests.training.canonical_history import make_history
from training.bundle import ScorerBundle
from training.train import FittedScorer, TrainOptions, _Stopwatch, fit_scorer

N_LEADS = 1500
FEATURE_CONFIG = FeatureConfig(ltv_horizon_days=365)
CREATED = pd.Timestamp("2025-01-01T00:00:00Z")
TRACKING_DB = "mlflow.db"


@functools.cache
def history() -> CanonicalTables:
    """Return the shared canonical history (1,500 leads over three years, with a conversion signal)."""
    return make_history(N_LEADS, seed=7)


@functools.cache
def fitted(*, shuffled: bool = False) -> FittedScorer:
    """Return a scorer fitted on ``history()`` without tuning; ``shuffled`` fits on permuted labels."""
    options = TrainOptions(
        data_dir=Path("in-memory-history"),
        trials=0,
        feature_config=FEATURE_CONFIG,
        shuffle_training_labels=shuffled,
        seed=11,
    )
    return fit_scorer(options, history(), CREATED, _Stopwatch())


def bundle(*, shuffled: bool = False) -> ScorerBundle:
    """Return the bundle of ``fitted``."""
    return fitted(shuffled=shuffled).bundle


def holdout(*, shuffled: bool = False) -> pd.DataFrame:
    """Return the gate holdout of ``fitted`` (its test folds, with real labels)."""
    from training.train import make_holdout

    scorer = fitted(shuffled=shuffled)
    return make_holdout(scorer.parts["test"], scorer.ltv.test_rows)


def open_lead(lead_id: str = "NEW-1", **fields: Any) -> dict[str, Any]:
    """Return a raw lead record with two activities, created shortly before ``AS_OF``."""
    record: dict[str, Any] = {
        "lead_id": lead_id,
        "created_at": "2025-03-01T09:00:00+08:00",
        "channel": "referral",
        "region": "华东",
        "industry": "软件",
        "company_size": "101-500",
        "declared_budget": 150000.0,
        "customer_id": f"C-{lead_id}",
        "activities": [
            {"occurred_at": "2025-03-01T10:00:00+08:00", "type": "call", "direction": "outbound"},
            {"occurred_at": "2025-03-02T15:30:00+08:00", "type": "wechat", "direction": "inbound"},
        ],
    }
    record.update(fields)
    return record


AS_OF = "2025-03-05T09:00:00+08:00"


@functools.cache
def _template_store() -> Path:
    """Create one initialized MLflow SQLite store per session; it is removed at interpreter exit."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="leadscore-mlflow-template-"))
    atexit.register(shutil.rmtree, folder, True)
    MlflowClient(tracking_uri=f"sqlite:///{folder / TRACKING_DB}").search_experiments()
    return folder / TRACKING_DB


def empty_tracking_uri(target_dir: Path) -> str:
    """Return a SQLite tracking URI on a fresh MLflow store in ``target_dir``.

    Creating MLflow's schema takes seconds, so one store is initialized per session and copied.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_store(), target_dir / TRACKING_DB)
    return f"sqlite:///{target_dir / TRACKING_DB}"
