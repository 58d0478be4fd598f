"""Feature matrices with labels, their checks, and one LightGBM training call shared by all models.

A feature matrix is the ``matrix`` of ``features.spec.FeatureSpec.transform``: one column per
feature in spec order, numeric columns as floats or integers and categorical columns as
``pd.Categorical`` with the fitted category list. LightGBM reads the categorical columns as
categorical features (``categorical_feature="auto"``) and stores the category lists in the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from features.spec import FeatureSpec
from leadscore.errors import DataValidationError, InsufficientDataError, SchemaError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

TRAIN_NAME = "train"
VALID_NAME = "valid"


@dataclass(frozen=True)
class Fold:
    """One fold of a time split: a feature matrix and the labels of its rows, aligned by position."""

    matrix: pd.DataFrame
    y: FloatArray

    def __post_init__(self) -> None:
        labels = np.asarray(self.y, dtype=np.float64)
        if labels.ndim != 1:
            raise DataValidationError(f"fold labels must be one-dimensional; got shape {labels.shape}")
        if len(self.matrix) != labels.size:
            raise DataValidationError(
                f"fold matrix has {len(self.matrix)} rows but {labels.size} labels; align them by row"
            )
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise DataValidationError(
                f"fold labels contain {bad.size} missing or infinite value(s) at rows {bad[:5].tolist()}; "
                "drop those rows (for example rows whose label window is incomplete) before training"
            )
        object.__setattr__(self, "y", labels)

    def __len__(self) -> int:
        return int(self.y.size)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Fold:
        """Return the rows where ``mask`` is true, as a new fold."""
        return Fold(self.matrix.loc[mask].reset_index(drop=True), self.y[mask])


@dataclass(frozen=True)
class MatrixLayout:
    """The column names, order and category lists a model was trained on."""

    feature_names: tuple[str, ...]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, matrix: pd.DataFrame) -> MatrixLayout:
        """Record the layout of ``matrix`` after checking its column types."""
        check_column_types(matrix)
        categories = {
            str(name): [str(value) for value in matrix[name].cat.categories]
            for name in matrix.columns
            if isinstance(matrix[name].dtype, pd.CategoricalDtype)
        }
        return cls(tuple(str(name) for name in matrix.columns), categories)

    def check(self, matrix: pd.DataFrame, *, context: str) -> None:
        """Raise SchemaError unless ``matrix`` has exactly this layout.

        LightGBM would otherwise score columns by position and map an unknown category to the
        missing-value code, both without a warning.
        """
        names = tuple(str(name) for name in matrix.columns)
        if names != self.feature_names:
            missing = [name for name in self.feature_names if name not in names]
            extra = [name for name in names if name not in self.feature_names]
            detail = (
                f"missing {missing}, extra {extra}" if missing or extra else "same names in another order"
            )
            raise SchemaError(
                f"{context}: the matrix columns differ from the trained features ({detail}); "
                "transform the frame with the model's feature spec"
            )
        check_column_types(matrix)
        for name, expected in self.categories.items():
            column = matrix[name]
            if not isinstance(column.dtype, pd.CategoricalDtype):
                raise SchemaError(
                    f"{context}: column {name!r} must be categorical with categories {expected[:10]}, "
                    f"got dtype {column.dtype}"
                )
            actual = [str(value) for value in column.cat.categories]
            if actual != expected:
                unknown = [value for value in actual if value not in expected]
                raise SchemaError(
                    f"{context}: column {name!r} has categories {actual[:10]} but the model was trained on "
                    f"{expected[:10]} (unknown: {unknown[:10]}); map unseen categories with the feature spec"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"feature_names": list(self.feature_names), "categories": self.categories}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> MatrixLayout:
        return cls(
            tuple(str(name) for name in payload["feature_names"]),
            {str(name): [str(value) for value in values] for name, values in payload["categories"].items()},
        )


def check_column_types(matrix: pd.DataFrame) -> None:
    """Raise SchemaError listing every column that is neither numeric, boolean nor categorical."""
    if matrix.shape[1] == 0:
        raise SchemaError("the feature matrix has no columns; pass at least one feature")
    bad = [
        f"{name} ({dtype})"
        for name, dtype in matrix.dtypes.items()
        if not (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
        )
    ]
    if bad:
        raise SchemaError(
            f"feature matrix columns must be numeric, boolean or categorical; invalid: {', '.join(bad)}. "
            "Build the matrix with FeatureSpec.transform, which converts text columns to categoricals"
        )


def as_lightgbm_input(matrix: pd.DataFrame) -> pd.DataFrame:
    """Return ``matrix`` with nullable integer and boolean columns as float64 (NA becomes NaN).

    LightGBM 4.7 rejects pandas extension dtypes such as ``Int64`` and ``boolean``.
    """
    converted: dict[str, pd.Series] = {}
    for name, dtype in matrix.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            continue
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) or pd.api.types.is_bool_dtype(dtype):
            converted[str(name)] = matrix[name].astype("float64")
    if not converted:
        return matrix
    return matrix.assign(**converted)


def train_booster(
    params: Mapping[str, Any],
    train: Fold,
    valid: Fold | None,
    *,
    num_boost_round: int,
    early_stopping_rounds: int | None,
    callbacks: Sequence[Callable[..., None]] = (),
    init_score: FloatArray | None = None,
    valid_init_score: FloatArray | None = None,
) -> lgb.Booster:
    """Train one LightGBM booster with the native API, early-stopped on ``valid`` when given.

    The returned booster predicts with its best iteration by default (LightGBM keeps
    ``best_iteration`` after early stopping).
    """
    if len(train) == 0:
        raise InsufficientDataError(
            "the training fold is empty; widen the data window or lower the holdout fractions"
        )
    layout = MatrixLayout.of(train.matrix)
    train_set = lgb.Dataset(
        as_lightgbm_input(train.matrix),
        label=train.y,
        init_score=init_score,
        categorical_feature="auto",
        free_raw_data=True,
    )
    valid_sets: list[lgb.Dataset] = []
    valid_names: list[str] = []
    all_callbacks = list(callbacks)
    if valid is not None:
        layout.check(valid.matrix, context="validation fold")
        if len(valid) == 0:
            raise InsufficientDataError("the validation fold is empty; it is needed for early stopping")
        valid_sets.append(
            lgb.Dataset(
                as_lightgbm_input(valid.matrix),
                label=valid.y,
                init_score=valid_init_score,
                reference=train_set,
            )
        )
        valid_names.append(VALID_NAME)
        if early_stopping_rounds:
            all_callbacks.append(
                lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
            )
    booster = lgb.train(
        dict(params),
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=valid_sets or None,
        valid_names=valid_names or None,
        callbacks=all_callbacks,
    )
    logger.info(
        "trained %s booster: %d rows, best iteration %d of %d",
        params.get("objective"),
        len(train),
        booster.best_iteration,
        booster.current_iteration(),
    )
    return booster


def predict_booster(booster: lgb.Booster, matrix: pd.DataFrame, *, raw_score: bool = False) -> FloatArray:
    """Predict with the booster's best iteration (all iterations when it was not early-stopped)."""
    iteration = booster.best_iteration if booster.best_iteration > 0 else None
    predictions = booster.predict(as_lightgbm_input(matrix), num_iteration=iteration, raw_score=raw_score)
    return np.asarray(predictions, dtype=np.float64)


def fold_of(spec: FeatureSpec, frame: pd.DataFrame, label: str = "converted") -> Fold:
    """Return the fold of ``frame``: its rows transformed by ``spec`` and the ``label`` column as targets."""
    return Fold(spec.transform(frame).matrix.reset_index(drop=True), frame[label].to_numpy(dtype=np.float64))
