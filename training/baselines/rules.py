"""The rule-score baseline: the points table a sales operations team keeps by hand.

Each factor awards points for one feature: acquisition channel, company size, declared budget,
how fast the first contact happened, recent inbound contacts, whether a demo or a quote took
place, and the funnel stage reached. The factor points are summed and rescaled to 0-100, where 0
is the lowest and 100 the highest total the table can give. ``fit_rule_model`` maps the score
to a conversion probability with a sigmoid fitted on the training fold, so the rule score can
be compared with the models on the same metrics and can serve as the cold-start prior.

A missing feature value earns a factor's zero-point level. Text values match case-insensitively,
either exactly or by containing one of the listed keywords, so "转介绍" and
"Referral (partner)" both count as a referral.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError
from training.calibration import fit_sigmoid, sigmoid

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
MatchMode = Literal["exact", "contains"]
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CategoryLevel:
    """Points for a text value equal to (``exact``) or containing (``contains``) one of ``values``."""

    values: tuple[str, ...]
    points: int
    match: MatchMode = "exact"

    def matches(self, normalized: pd.Series) -> npt.NDArray[np.bool_]:
        """Return which of the lower-cased, stripped values match this level."""
        keywords = [value.strip().casefold() for value in self.values]
        if self.match == "exact":
            return np.asarray(normalized.isin(keywords).to_numpy(dtype=bool))
        hits = np.zeros(len(normalized), dtype=bool)
        for keyword in keywords:
            hits |= normalized.str.contains(keyword, regex=False).fillna(False).to_numpy(dtype=bool)
        return hits


@dataclass(frozen=True)
class NumericBand:
    """Points for a number in ``[lower, upper)``; ``upper=None`` has no upper bound."""

    lower: float
    upper: float | None
    points: int

    def matches(self, values: FloatArray) -> npt.NDArray[np.bool_]:
        """Return which values fall into this band (NaN never does)."""
        upper = np.inf if self.upper is None else self.upper
        with np.errstate(invalid="ignore"):
            return np.asarray((values >= self.lower) & (values < upper), dtype=bool)


@dataclass(frozen=True)
class RuleFactor:
    """One row of the points table: a feature column and the points for its levels.

    Levels are checked in order and the first match wins. A value that matches no level,
    or is missing, earns 0 points. With ``only_if`` set, only rows where that numeric column
    is above 0 can earn points (for example response-speed points only for contacted leads).
    """

    name: str
    column: str
    levels: tuple[CategoryLevel, ...] | tuple[NumericBand, ...]
    label_en: str
    label_zh: str
    only_if: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The frame columns this factor reads."""
        return (self.column,) if self.only_if is None else (self.column, self.only_if)

    @property
    def is_numeric(self) -> bool:
        return isinstance(self.levels[0], NumericBand)

    @property
    def max_points(self) -> int:
        return max(0, *(level.points for level in self.levels))

    @property
    def min_points(self) -> int:
        return min(0, *(level.points for level in self.levels))

    def points(self, frame: pd.DataFrame) -> FloatArray:
        """Return the points each row of ``frame`` earns on this factor."""
        column = frame[self.column]
        hits_and_points: list[tuple[npt.NDArray[np.bool_], int]] = []
        if self.is_numeric:
            values = _numeric_values(column, self.column)
            hits_and_points = [
                (band.matches(values), band.points) for band in self.levels if isinstance(band, NumericBand)
            ]
        else:
            normalized = column.astype("string").str.strip().str.casefold()
            hits_and_points = [
                (level.matches(normalized), level.points)
                for level in self.levels
                if isinstance(level, CategoryLevel)
            ]
        result = np.zeros(len(column), dtype=np.float64)
        taken = np.zeros(len(column), dtype=bool)
        for hits, points in hits_and_points:
            new = hits & ~taken
            result[new] = points
            taken |= new
        if self.only_if is not None:
            with np.errstate(invalid="ignore"):
                result[~(_numeric_values(frame[self.only_if], self.only_if) > 0)] = 0.0
        return result


def _numeric_values(column: pd.Series, name: str) -> FloatArray:
    if isinstance(column.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
    ):
        raise SchemaError(f"rule score: column {name!r} must be numeric, got dtype {column.dtype}")
    return np.asarray(column.astype("float64").to_numpy(na_value=np.nan), dtype=np.float64)


# The default points table. Column names are those of the lead features in features.catalog
# with the default look-back windows (30 and 90 days). Points follow the common shape of
# hand-made B2B scoring sheets: fit (size, budget) and intent (inbound contacts, demo, quote,
# stage reached) weigh most. A fast first contact earns points and a breached first-contact
# SLA costs them.
DEFAULT_RULES: tuple[RuleFactor, ...] = (
    RuleFactor(
        "channel",
        "channel",
        (
            CategoryLevel(("referral", "转介绍", "推荐"), 20, "contains"),
            CategoryLevel(("trade show", "trade_show", "tradeshow", "展会", "exhibition"), 15, "contains"),
            CategoryLevel(("web form", "web_form", "官网", "表单"), 5, "contains"),
        ),
        "Acquisition channel",
        "来源渠道",
    ),
    RuleFactor(
        "company_size",
        "company_size",
        (
            CategoryLevel(("500+", "500人以上", ">500"), 15),
            CategoryLevel(("101-500",), 10),
            CategoryLevel(("21-100",), 5),
        ),
        "Company size",
        "公司规模",
    ),
    RuleFactor(
        "budget",
        "declared_budget",
        (NumericBand(500_000, None, 15), NumericBand(100_000, 500_000, 10), NumericBand(20_000, 100_000, 5)),
        "Declared budget (CNY)",
        "声明预算（元）",
    ),
    RuleFactor(
        "first_contact_speed",
        "hours_to_first_contact",
        (NumericBand(0, 1, 10), NumericBand(1, 24, 5)),
        "Hours from creation to first contact",
        "从创建到首次联系的小时数",
        only_if="contacted",
    ),
    RuleFactor(
        "first_contact_sla",
        "first_contact_sla_breached",
        (NumericBand(1, None, -10),),
        "First-contact SLA breached",
        "首次联系超时",
    ),
    RuleFactor(
        "inbound_activity",
        "activities_inbound_30d",
        (NumericBand(3, None, 15), NumericBand(1, 3, 8)),
        "Inbound contacts in the last 30 days",
        "最近 30 天客户主动联系次数",
    ),
    RuleFactor(
        "demo_done",
        "activities_demo_90d",
        (NumericBand(1, None, 10),),
        "Demos in the last 90 days",
        "最近 90 天演示次数",
    ),
    RuleFactor(
        "quote_sent",
        "activities_quote_90d",
        (NumericBand(1, None, 10),),
        "Quotes in the last 90 days",
        "最近 90 天报价次数",
    ),
    RuleFactor(
        "stage_reached",
        "furthest_stage_order",
        (NumericBand(4, None, 25), NumericBand(3, 4, 20), NumericBand(2, 3, 10)),
        "Furthest funnel stage reached (2 = qualified, 3 = proposal, 4 = negotiation or later)",
        "到达的最远阶段（2 = 需求确认，3 = 方案呈现，4 = 成交准备及以后）",
    ),
)


def score_range(rules: Sequence[RuleFactor]) -> tuple[int, int]:
    """Return the lowest and highest point totals the table can give."""
    return sum(rule.min_points for rule in rules), sum(rule.max_points for rule in rules)


def _check_rules(rules: Sequence[RuleFactor]) -> None:
    if not rules:
        raise ConfigError("the rule table is empty; give at least one factor")
    for rule in rules:
        if not rule.levels:
            raise ConfigError(f"rule factor {rule.name!r} has no levels")
        kinds = {type(level) for level in rule.levels}
        if len(kinds) > 1:
            raise ConfigError(f"rule factor {rule.name!r} mixes text levels and numeric bands")
    low, high = score_range(rules)
    if low == high:
        raise ConfigError("every factor of the rule table gives 0 points, so no score can be scaled")


def rule_points(
    frame: pd.DataFrame, rules: Sequence[RuleFactor] = DEFAULT_RULES, *, allow_missing_columns: bool = False
) -> pd.DataFrame:
    """Return the points each row earns on each factor, one column per factor name.

    Raises SchemaError naming every rule column missing from ``frame``. With
    ``allow_missing_columns=True`` such factors give 0 points and a warning lists them.
    """
    _check_rules(rules)
    missing = sorted({column for rule in rules for column in rule.columns if column not in frame.columns})
    if missing and not allow_missing_columns:
        raise SchemaError(
            f"rule score: missing column(s) {missing} of the points table; build the lead features "
            "first, or pass allow_missing_columns=True to score those factors as 0"
        )
    if missing:
        logger.warning("rule score: column(s) %s are missing and score 0 points", missing)
    points = {
        rule.name: rule.points(frame)
        if all(column in frame.columns for column in rule.columns)
        else np.zeros(len(frame))
        for rule in rules
    }
    return pd.DataFrame(points, index=frame.index)


def rule_score(
    frame: pd.DataFrame, rules: Sequence[RuleFactor] = DEFAULT_RULES, *, allow_missing_columns: bool = False
) -> FloatArray:
    """Return the rule score of each row on a 0-100 scale (0 = the table's lowest total)."""
    totals = rule_points(frame, rules, allow_missing_columns=allow_missing_columns).sum(axis=1).to_numpy()
    low, high = score_range(rules)
    return np.asarray((totals - low) / (high - low) * 100.0, dtype=np.float64)


@dataclass(frozen=True)
class RuleScoreModel:
    """The rule score with a sigmoid mapping it to a conversion probability."""

    rules: tuple[RuleFactor, ...]
    slope: float
    intercept: float
    allow_missing_columns: bool = False

    def score(self, frame: pd.DataFrame) -> FloatArray:
        """Return the 0-100 rule score of each row."""
        return rule_score(frame, self.rules, allow_missing_columns=self.allow_missing_columns)

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Return the conversion probability of each row implied by its rule score."""
        return sigmoid(self.slope * self.score(frame) / 100.0 + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        """Return the model, its points table included, as JSON-ready data."""
        return {
            "format_version": FORMAT_VERSION,
            "slope": self.slope,
            "intercept": self.intercept,
            "allow_missing_columns": self.allow_missing_columns,
            "rules": [_rule_to_dict(rule) for rule in self.rules],
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RuleScoreModel:
        """Rebuild a model from ``to_dict`` output."""
        if payload.get("format_version") != FORMAT_VERSION:
            version = payload.get("format_version")
            raise ConfigError(
                f"rule model format_version {version!r} is not supported; expected {FORMAT_VERSION}"
            )
        rules = tuple(_rule_from_dict(item) for item in payload["rules"])
        _check_rules(rules)
        return cls(
            rules,
            float(payload["slope"]),
            float(payload["intercept"]),
            bool(payload["allow_missing_columns"]),
        )


def _rule_to_dict(rule: RuleFactor) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    for level in rule.levels:
        if isinstance(level, NumericBand):
            levels.append({"lower": level.lower, "upper": level.upper, "points": level.points})
        else:
            levels.append({"values": list(level.values), "points": level.points, "match": level.match})
    return {
        "name": rule.name,
        "column": rule.column,
        "label_en": rule.label_en,
        "label_zh": rule.label_zh,
        "only_if": rule.only_if,
        "levels": levels,
    }


def _rule_from_dict(item: Mapping[str, Any]) -> RuleFactor:
    raw_levels = item["levels"]
    if not raw_levels:
        raise ConfigError(f"rule factor {item.get('name')!r} has no levels")
    levels: tuple[CategoryLevel, ...] | tuple[NumericBand, ...]
    if "lower" in raw_levels[0]:
        levels = tuple(NumericBand(float(x["lower"]), x["upper"], int(x["points"])) for x in raw_levels)
    else:
        levels = tuple(CategoryLevel(tuple(x["values"]), int(x["points"]), x["match"]) for x in raw_levels)
    return RuleFactor(
        str(item["name"]),
        str(item["column"]),
        levels,
        str(item["label_en"]),
        str(item["label_zh"]),
        only_if=item.get("only_if"),
    )


def fit_rule_model(
    train_frame: pd.DataFrame,
    y: npt.ArrayLike,
    rules: Sequence[RuleFactor] = DEFAULT_RULES,
    *,
    allow_missing_columns: bool = False,
) -> RuleScoreModel:
    """Fit the sigmoid from rule score to conversion probability on the training fold (Platt scaling)."""
    labels = np.asarray(y, dtype=np.float64)
    if labels.shape != (len(train_frame),):
        raise DataValidationError(f"{labels.size} labels for {len(train_frame)} rows; align them by row")
    if np.any((labels != 0) & (labels != 1)):
        raise DataValidationError("rule model labels must be 0 or 1 (converted)")
    n_positive = int(labels.sum())
    if n_positive in {0, labels.size}:
        raise InsufficientDataError(
            f"the rule model needs both converted and non-converted rows; the training fold has "
            f"{n_positive} converted of {labels.size}"
        )
    scores = rule_score(train_frame, rules, allow_missing_columns=allow_missing_columns)
    slope, intercept = fit_sigmoid(scores / 100.0, labels)
    return RuleScoreModel(tuple(rules), slope, intercept, allow_missing_columns)
