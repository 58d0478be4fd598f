"""The baseline of ``bench_service.py``: a bare one-model BentoML endpoint.

It loads one LightGBM booster (text format) from ``BENCH_BOOSTER_FILE``, and ``POST /predict``
returns the booster's raw prediction for one prebuilt feature row. There is no
validation, no feature building, no calibration, no reasons and no authentication, so it
is the floor of what a BentoML endpoint around the same booster costs per request.

Started by the benchmark as ``bentoml serve experiments.bench_bare_service:BareBooster``.
"""

from __future__ import annotations

import os

import bentoml
import lightgbm as lgb
import numpy as np

BOOSTER_ENV = "BENCH_BOOSTER_FILE"


@bentoml.service(name="bare-booster", workers=1, logging={"access": {"enabled": False}})
class BareBooster:
    """One LightGBM booster behind one endpoint."""

    def __init__(self) -> None:
        self.booster = lgb.Booster(model_file=os.environ[BOOSTER_ENV])

    @bentoml.api
    def predict(self, features: list[float | None]) -> float:
        """Return the booster's prediction for one feature row (null = missing)."""
        row = np.array([[np.nan if value is None else value for value in features]], dtype=np.float64)
        return float(self.booster.predict(row, num_threads=1)[0])
