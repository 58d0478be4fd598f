"""The logistic-regression baseline on the same lead features as the LightGBM model.

A scikit-learn Pipeline: numeric features get median imputation with a missing-value indicator
per column, then standardization. Categorical features get a ``(missing)`` level for empty
values, then one-hot encoding. Levels seen fewer than ``min_category_count`` times in training
are merged into one infrequent column, and unseen levels at prediction time map to that column
(or to no column when every level was frequent). An L2-penalized logistic regression follows.
No class weights, so its probabilities stay on the observed conversion scale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
MISSING_LEVEL = "(missing)"


class FeatureDefinition(Protocol):
    """The parts of ``features.catalog.FeatureDef`` this baseline reads."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class LogisticBaseline:
    """A fitted logistic-regression pipeline and the feature columns it reads."""

    pipeline: Pipeline
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Return the conversion probability of each row of ``frame``."""
        prepared = prepare_frame(frame, self.numeric, self.categorical)
        return np.asarray(self.pipeline.predict_proba(prepared)[:, 1], dtype=np.float64)


def _split_definitions(definitions: Sequence[FeatureDefinition]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    numeric: list[str] = []
    categorical: list[str] = []
    for definition in definitions:
        if definition.kind == "numeric":
            numeric.append(definition.name)
        elif definition.kind == "categorical":
            categorical.append(definition.name)
        else:
            raise ConfigError(
                f"feature {definition.name!r} has kind {definition.kind!r}; "
                "expected 'numeric' or 'categorical'"
            )
    if not numeric and not categorical:
        raise ConfigError("no feature definitions given; the logistic baseline needs at least one feature")
    return tuple(numeric), tuple(categorical)


def prepare_frame(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """Return the feature columns as float64 (numeric) and Python strings (categorical).

    Raises SchemaError naming missing columns and numeric columns that contain text.
    """
    missing = [name for name in (*numeric, *categorical) if name not in frame.columns]
    if missing:
        raise SchemaError(f"logistic baseline: missing feature column(s) {missing}")
    columns: dict[str, object] = {}
    not_numeric: list[str] = []
    for name in numeric:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
        ):
            not_numeric.append(f"{name} ({column.dtype})")
            continue
        columns[name] = column.astype("float64").to_numpy(na_value=np.nan)
    if not_numeric:
        raise SchemaError(
            f"logistic baseline: numeric feature(s) contain non-numeric data: {', '.join(not_numeric)}"
        )
    for name in categorical:
        text = frame[name].astype("string").fillna(MISSING_LEVEL)
        columns[name] = text.to_numpy(dtype=object)
    return pd.DataFrame(columns, index=frame.index)


def build_pipeline(
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    inverse_regularization: float,
    min_category_count: int,
    max_iter: int,
    seed: int,
) -> Pipeline:
    """Return the unfitted preprocessing and logistic-regression pipeline."""
    numeric_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical_steps = OneHotEncoder(
        handle_unknown="infrequent_if_exist", min_frequency=min_category_count, sparse_output=False
    )
    transformers = []
    if numeric:
        transformers.append(("numeric", numeric_steps, list(numeric)))
    if categorical:
        transformers.append(("categorical", categorical_steps, list(categorical)))
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers, remainder="drop")),
            ("model", LogisticRegression(C=inverse_regularization, max_iter=max_iter, random_state=seed)),
        ]
    )


def fit_logistic(
    train_frame: pd.DataFrame,
    definitions: Sequence[FeatureDefinition],
    *,
    label_column: str = "converted",
    inverse_regularization: float = 1.0,
    min_category_count: int = 5,
    max_iter: int = 2000,
    seed: int = 0,
) -> LogisticBaseline:
    """Fit the logistic baseline on the training fold's feature frame and its 0/1 label column.

    ``inverse_regularization`` is scikit-learn's ``C``, the inverse of the L2 penalty strength.
    Returns a model whose ``predict_proba(frame)`` scores any frame with the same feature columns.
    """
    if label_column not in train_frame.columns:
        raise SchemaError(
            f"logistic baseline: the training frame is missing the label column {label_column!r}"
        )
    if not inverse_regularization > 0:
        raise ConfigError(f"inverse_regularization must be positive, got {inverse_regularization!r}")
    numeric, categorical = _split_definitions(definitions)
    labels = train_frame[label_column].astype("float64").to_numpy(na_value=np.nan)
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise DataValidationError(
            f"logistic baseline: {label_column!r} must be 0 or 1; {bad.size} row(s) are not, first positions "
            f"{bad[:5].tolist()}"
        )
    n_positive = int(labels.sum())
    if n_positive in (0, labels.size):
        raise InsufficientDataError(
            "logistic baseline: the training frame needs both classes; "
            f"it has {n_positive} converted of {labels.size}"
        )

    pipeline = build_pipeline(
        numeric,
        categorical,
        inverse_regularization=inverse_regularization,
        min_category_count=min_category_count,
        max_iter=max_iter,
        seed=seed,
    )
    pipeline.fit(prepare_frame(train_frame, numeric, categorical), labels.astype(np.int64))
    model = pipeline.named_steps["model"]
    if int(model.n_iter_[0]) >= max_iter:
        logger.warning("logistic baseline did not converge in %d iterations; raise max_iter", max_iter)
    logger.info(
        "fitted logistic baseline on %d rows: %d numeric, %d categorical features",
        labels.size,
        len(numeric),
        len(categorical),
    )
    return LogisticBaseline(pipeline, numeric, categorical)
