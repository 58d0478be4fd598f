"""The feature spec: fit-time facts about the model matrix, enforced on every scoring call.

LightGBM (checked with 4.7.0) predicts from column positions and category codes. Given a
DataFrame with columns in another order it silently predicts from the wrong features, and
it scores a category it never saw as a missing value. ``FeatureSpec`` removes both failure
modes:

* ``transform`` selects the features by name and returns them in the fitted order. It
  raises SchemaError listing the missing columns and the extra ones.
* Each categorical feature has a fixed category list plus the level ``__other__``. A value
  outside the list (unseen, or rarer than ``min_category_count`` at fit time) becomes
  ``__other__``, and the transform returns the count per feature and a per-row mask.
* Missing values stay missing: NaN for numeric features and the missing code (-1) for
  categorical ones, which LightGBM handles natively.

The spec also keeps a reference distribution per feature (quantile bins or category shares)
for population stability index (PSI) drift checks. It serialises to plain JSON, never pickle.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import FeatureDef
from leadscore.errors import ConfigError, SchemaError

logger = logging.getLogger(__name__)

OTHER_LEVEL = "__other__"
SPEC_FORMAT = "leadscore.feature_spec"
SPEC_VERSION = 1
REFERENCE_QUANTILES = tuple(q / 10 for q in range(1, 10))
MISSING_POLICY = {
    "numeric": "NaN is passed to the model as missing",
    "categorical": "missing is passed as the missing code -1",
}
_SHOWN = 5


@dataclass
class TransformResult:
    """A model matrix plus the values that fell outside the fitted category sets.

    ``matrix`` has the spec's columns in spec order, float64 for numeric features and
    pd.Categorical with the fitted categories for categorical ones. ``unseen_counts``
    gives, per categorical feature, how many rows were mapped to ``__other__``, and
    ``unseen_mask`` marks the rows with at least one such value.
    """

    matrix: pd.DataFrame
    unseen_counts: dict[str, int]
    unseen_mask: pd.Series


class FeatureSpec:
    """Feature names and order, kinds, category sets and reference distributions of one model."""

    def __init__(
        self,
        features: Sequence[FeatureDef],
        categories: Mapping[str, Sequence[str]],
        reference: Mapping[str, dict[str, Any]],
        *,
        min_category_count: int = 1,
    ) -> None:
        names = [feature.name for feature in features]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"feature names must be unique; repeated: {repeated}")
        categorical = {feature.name for feature in features if feature.kind == "categorical"}
        if set(categories) != categorical:
            raise ConfigError(
                f"category lists must be given for exactly the categorical features {sorted(categorical)}; "
                f"got lists for {sorted(categories)}"
            )
        self.features: tuple[FeatureDef, ...] = tuple(features)
        self.categories: dict[str, tuple[str, ...]] = {
            name: tuple(levels) for name, levels in categories.items()
        }
        self.reference: dict[str, dict[str, Any]] = dict(reference)
        self.min_category_count = min_category_count

    @property
    def feature_names(self) -> list[str]:
        """Feature names in model order."""
        return [feature.name for feature in self.features]

    @property
    def categorical_features(self) -> list[str]:
        """Names of the categorical features, in model order."""
        return [feature.name for feature in self.features if feature.kind == "categorical"]

    def model_categories(self, name: str) -> list[str]:
        """Return the full category list of a categorical feature, ``__other__`` last."""
        return [*self.categories[name], OTHER_LEVEL]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, definitions: Sequence[FeatureDef], *, min_category_count: int = 1
    ) -> FeatureSpec:
        """Learn category sets and reference distributions from a training feature frame.

        Categories seen fewer than ``min_category_count`` times are left out of the set, so
        they map to ``__other__`` like unseen ones.
        """
        if not isinstance(min_category_count, int) or min_category_count < 1:
            raise ConfigError(f"min_category_count must be a whole number >= 1; got {min_category_count!r}")
        _check_columns(frame, [definition.name for definition in definitions], strict=False)
        categories: dict[str, list[str]] = {}
        reference: dict[str, dict[str, Any]] = {}
        for definition in definitions:
            column = frame[definition.name]
            if definition.kind == "numeric":
                reference[definition.name] = _numeric_reference(_as_floats(column, definition.name))
                continue
            values = _as_strings(column, definition.name)
            if (values == OTHER_LEVEL).any():
                raise SchemaError(
                    f"feature {definition.name!r} contains the reserved value {OTHER_LEVEL!r}; "
                    "rename that category in the data"
                )
            counts = values.value_counts(dropna=True)
            kept = sorted(str(level) for level, count in counts.items() if count >= min_category_count)
            categories[definition.name] = kept
            reference[definition.name] = _categorical_reference(values, kept)
        spec = cls(definitions, categories, reference, min_category_count=min_category_count)
        logger.info(
            "fitted feature spec: %d features (%d categorical) on %d rows",
            len(spec.features),
            len(categories),
            len(frame),
        )
        return spec

    def transform(self, frame: pd.DataFrame, *, strict: bool = False) -> TransformResult:
        """Return the model matrix of ``frame``: spec columns in spec order with fitted categories.

        Columns are matched by name, in any order. Missing spec columns raise SchemaError
        listing them and the extra columns. Extra columns (lead_id, cutoff, labels) are
        ignored unless ``strict`` is set, in which case they raise too.
        """
        _check_columns(frame, self.feature_names, strict=strict)
        unseen_counts: dict[str, int] = {}
        unseen_mask = np.zeros(len(frame), dtype=bool)
        columns: dict[str, pd.Series] = {}
        for feature in self.features:
            column = frame[feature.name]
            if feature.kind == "numeric":
                columns[feature.name] = pd.Series(_as_floats(column, feature.name), index=frame.index)
                continue
            values = _as_strings(column, feature.name)
            known = values.isin(self.categories[feature.name]).to_numpy()
            unseen = values.notna().to_numpy() & ~known
            values = values.where(~unseen, OTHER_LEVEL)
            categorical = pd.Categorical(values, categories=self.model_categories(feature.name))
            columns[feature.name] = pd.Series(categorical, index=frame.index)
            unseen_counts[feature.name] = int(unseen.sum())
            unseen_mask |= unseen
        if any(unseen_counts.values()):
            logger.warning(
                "values outside the fitted categories mapped to %s: %s",
                OTHER_LEVEL,
                {name: count for name, count in unseen_counts.items() if count},
            )
        matrix = pd.DataFrame(columns, index=frame.index)
        return TransformResult(matrix, unseen_counts, pd.Series(unseen_mask, index=frame.index))

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as JSON-compatible data (no NaN, no pickled objects)."""
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "other_level": OTHER_LEVEL,
            "min_category_count": self.min_category_count,
            "missing_policy": MISSING_POLICY,
            "features": [
                {
                    **asdict(feature),
                    "dtype": "category" if feature.kind == "categorical" else "float64",
                    "categories": list(self.categories[feature.name])
                    if feature.kind == "categorical"
                    else None,
                }
                for feature in self.features
            ],
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec from ``to_dict`` output, raising ConfigError on a malformed payload."""
        if not isinstance(payload, Mapping) or payload.get("format") != SPEC_FORMAT:
            raise ConfigError(f"not a feature spec: expected a mapping with format {SPEC_FORMAT!r}")
        if payload.get("version") != SPEC_VERSION:
            raise ConfigError(
                f"feature spec version {payload.get('version')!r} is not supported; "
                f"this leadscore reads version {SPEC_VERSION}"
            )
        if payload.get("other_level") != OTHER_LEVEL:
            raise ConfigError(f"feature spec other_level must be {OTHER_LEVEL!r}")
        try:
            features = [_feature_from_dict(item) for item in payload["features"]]
            categories = {
                item["name"]: [str(level) for level in item["categories"]]
                for item in payload["features"]
                if item["kind"] == "categorical"
            }
            reference = {str(name): dict(value) for name, value in payload["reference"].items()}
            min_count = int(payload["min_category_count"])
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"malformed feature spec: {error!r}") from None
        return cls(features, categories, reference, min_category_count=min_count)


def _feature_from_dict(item: Mapping[str, Any]) -> FeatureDef:
    kind = item["kind"]
    if kind not in ("numeric", "categorical"):
        raise ConfigError(f"feature {item.get('name')!r} has unknown kind {kind!r}")
    return FeatureDef(
        name=str(item["name"]),
        kind=kind,
        label_en=str(item["label_en"]),
        label_zh=str(item["label_zh"]),
        description=str(item["description"]),
        attribute=item.get("attribute"),
        post_contact=bool(item.get("post_contact", False)),
    )


def _check_columns(frame: pd.DataFrame, names: Sequence[str], *, strict: bool) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame of features; got {type(frame).__name__}")
    present = [str(column) for column in frame.columns]
    repeated = sorted({column for column in present if present.count(column) > 1})
    if repeated:
        raise SchemaError(f"feature frame has repeated column names {repeated}; keep one of each")
    expected = set(names)
    missing = [name for name in names if name not in frame.columns]
    extra = [column for column in present if column not in expected]
    if missing or (strict and extra):
        problems = [f"missing {len(missing)} column(s) {missing}"] if missing else []
        if extra:
            problems.append(f"extra column(s) {extra}")
        raise SchemaError(
            f"feature frame does not match the feature spec: {'; '.join(problems)}. Build features "
            "with the FeatureConfig and custom attributes the model was trained with."
        )


def _as_floats(column: pd.Series, name: str) -> np.ndarray:
    """Return numeric feature values as float64, raising on values that are not numbers."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        raise SchemaError(f"numeric feature {name!r} has dtype {dtype}; expected numbers")
    if pd.api.types.is_object_dtype(dtype):
        converted = pd.Series([_number(value) for value in column], index=column.index, dtype=np.float64)
    else:
        converted = pd.to_numeric(column, errors="coerce")
    invalid = converted.isna().to_numpy() & column.notna().to_numpy()
    if invalid.any():
        examples = column[invalid].astype(str).unique()[:_SHOWN].tolist()
        raise SchemaError(
            f"numeric feature {name!r} has {int(invalid.sum())} value(s) that are not numbers, "
            f"for example {examples}; send numbers or null"
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _number(value: object) -> float:
    """Return a number from an object cell; NaN for missing values and for text that is no number."""
    if value is None or value is pd.NA:
        return math.nan
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _as_strings(column: pd.Series, name: str) -> pd.Series:
    """Return categorical feature values as strings (missing kept), whatever the input dtype.

    Integer-valued numbers are written without a decimal point, so 50, 50.0 and "50" are
    the same category.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    if pd.api.types.is_string_dtype(column.dtype) and not pd.api.types.is_object_dtype(column.dtype):
        return column.astype(object).where(column.notna(), None)
    return column.astype(object).map(lambda value: _category_text(value, name))


def _category_text(value: object, name: str) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    raise SchemaError(
        f"categorical feature {name!r} has a value of type {type(value).__name__}; expected text or numbers"
    )


def _numeric_reference(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    missing = float(np.isnan(values).mean()) if len(values) else 0.0
    if len(finite) == 0:
        return {"type": "quantile_bins", "edges": [], "proportions": [1.0 - missing], "missing": missing}
    edges = np.unique(np.quantile(finite, REFERENCE_QUANTILES))
    present = values[~np.isnan(values)]
    bins = np.searchsorted(edges, present, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return {
        "type": "quantile_bins",
        "edges": [float(edge) for edge in edges],
        "proportions": [float(count) / len(values) for count in counts],
        "missing": missing,
    }


def _categorical_reference(values: pd.Series, kept: Sequence[str]) -> dict[str, Any]:
    total = len(values)
    if total == 0:
        return {"type": "categories", "proportions": {}, "missing": 0.0}
    counts = values.value_counts(dropna=True)
    proportions = {level: float(counts.get(level, 0)) / total for level in kept}
    other = float(counts[~counts.index.isin(kept)].sum()) / total
    proportions[OTHER_LEVEL] = other
    return {"type": "categories", "proportions": proportions, "missing": float(values.isna().mean())}
