"""The ``lead-scorer`` MLflow model, logged as code (MLflow "models from code").

``mlflow.pyfunc.log_model(python_model=<path of this file>, artifacts={"bundle": DIR})`` stores
this file's source instead of a cloudpickled object. When MLflow loads the model it runs this
file, takes the model object passed to ``mlflow.models.set_model`` below, and calls
``load_context``, which reads the scorer bundle (JSON and LightGBM text files) from the
``bundle`` artifact. Nothing in the logged model is pickled.

``predict`` takes raw lead records: a DataFrame with one row per lead (or a list of dicts),
each with the lead's attributes and nested ``activities``, ``stage_changes`` and ``orders``
lists. Optional per-row ``as_of`` and ``locale`` columns, or the same names as inference
params, set the scoring time and the language of the reasons. It returns the score records
of ``training.scorer`` as a DataFrame in input order. p_convert is a probability, never a 0/1
label.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from leadscore.errors import DataValidationError
from training.bundle import BUNDLE_ARTIFACT, ScorerBundle
from training.scorer import DEFAULT_TOP_REASONS, NESTED_KEYS, SCORE_COLUMNS, score_payload

logger = logging.getLogger(__name__)

REQUEST_KEYS: tuple[str, ...] = ("as_of", "locale")


class LeadScorerModel(PythonModel):
    """MLflow pyfunc wrapper of a ScorerBundle: raw lead records in, score records out."""

    def __init__(self) -> None:
        self.bundle: ScorerBundle | None = None

    def load_context(self, context: Any) -> None:
        """Load the scorer bundle from the model's ``bundle`` artifact."""
        path = Path(context.artifacts[BUNDLE_ARTIFACT])
        self.bundle = ScorerBundle.load(path)
        logger.info("lead-scorer pyfunc loaded bundle %s", self.bundle.bundle_version)

    # The input hint is a DataFrame because MLflow 3.17 skips its type-hint validation for that
    # type. A list of dicts is accepted too and read the same way.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score raw lead records and return one score record per lead, in input order."""
        if self.bundle is None:
            raise RuntimeError("the scorer bundle is not loaded; MLflow calls load_context before predict")
        records = records_from_input(model_input)
        options = dict(params or {})
        requested = options.get("top_reasons")
        top_reasons = DEFAULT_TOP_REASONS if requested is None else int(requested)

        groups: dict[tuple[Any, Any], list[int]] = {}
        for position, record in enumerate(records):
            as_of = record.pop("as_of", None)
            locale = record.pop("locale", None)
            key = (
                _blank_to_none(as_of) or options.get("as_of"),
                _blank_to_none(locale) or options.get("locale"),
            )
            groups.setdefault(key, []).append(position)

        scored: list[dict[str, Any] | None] = [None] * len(records)
        for (as_of, locale), positions in groups.items():
            results = score_payload(
                self.bundle,
                [records[position] for position in positions],
                as_of=as_of,
                locale=locale or "en",
                top_reasons=top_reasons,
            )
            for position, result in zip(positions, results, strict=True):
                scored[position] = result
        return pd.DataFrame(scored, columns=list(SCORE_COLUMNS))


def _blank_to_none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return value


def records_from_input(model_input: Any) -> list[dict[str, Any]]:
    """Return the lead records of a pyfunc input: DataFrame rows, a list of dicts or one dict.

    Missing values in a DataFrame (NaN, None, NaT) become absent fields, so a column that only
    some leads fill does not send NaN for the others. Nested lists that arrive as numpy arrays
    (from Spark or Parquet) become Python lists.
    """
    if isinstance(model_input, pd.DataFrame):
        rows = [
            {str(key): value for key, value in row.items()} for row in model_input.to_dict(orient="records")
        ]
    elif isinstance(model_input, Mapping):
        rows = [dict(model_input)]
    elif isinstance(model_input, list | tuple):
        rows = []
        for number, item in enumerate(model_input, start=1):
            if not isinstance(item, Mapping):
                raise DataValidationError(
                    f"input item {number} is a {type(item).__name__}; send one object per lead"
                )
            rows.append(dict(item))
    else:
        raise DataValidationError(
            f"lead-scorer takes a DataFrame or a list of lead objects; got {type(model_input).__name__}"
        )
    return [_clean_record(row) for row in rows]


def _clean_record(row: Mapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, raw in row.items():
        value = raw.tolist() if isinstance(raw, np.ndarray) else raw
        if key in NESTED_KEYS and isinstance(value, list):
            cleaned[key] = [_clean_nested(item) for item in value]
        elif not _is_missing_scalar(value):
            cleaned[key] = value
    return cleaned


def _clean_nested(item: Any) -> Any:
    if isinstance(item, Mapping):
        return {str(key): value for key, value in item.items() if not _is_missing_scalar(value)}
    return item


def _is_missing_scalar(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


# NOTE: MLflow's models-from-code loader runs this file and reads the model registered here, so
# the call must stay at module level. Importing the module only stores the object in MLflow.
mlflow.models.set_model(LeadScorerModel())
