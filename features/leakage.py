"""Leakage probe run before training: features that give the label away are excluded.

Two rules, each applied to every feature:

* single-feature AUC: a feature that alone separates converted from not-converted rows
  with ROC AUC above ``threshold`` (default 0.95) almost always encodes the outcome (a
  "closed won" tag, a call duration known only afterwards). Numeric features are scored by
  their raw value, with missing values ranked first and then last (the higher AUC counts).
  Categorical features are scored by out-of-fold target encoding (each row's level rate
  from the other folds), so a high-cardinality id cannot score by memorising rows.
  AUC is direction-free: max(AUC, 1 - AUC).
* post-contact: a feature from a custom attribute declared ``post_contact`` is known only
  after sales contact, so it is excluded whatever its AUC.

A flagged feature is excluded unless its name is in ``allow``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from data.folder import CustomAttribute
from features.catalog import FeatureDef, attribute_feature_name
from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError
from leadscore.i18n import Locale, register_messages, translate

logger = logging.getLogger(__name__)

HIGH_AUC = "high_auc"
POST_CONTACT = "post_contact"
_FOLDS = 5
_SMOOTHING = 1.0  # pseudo-count pulling rare levels towards the overall rate
_MISSING_LEVEL = "\x00missing"

_MESSAGES = {
    "leakage.high_auc": {
        "en": "alone predicts the label with AUC {auc:.3f} (threshold {threshold:.2f})",
        "zh-CN": "单独预测标签的 AUC 为 {auc:.3f}（阈值 {threshold:.2f}）",
    },
    "leakage.post_contact": {
        "en": "declared post-contact: known only after sales contact",
        "zh-CN": "声明为接触后属性：仅在销售联系之后才可知",
    },
    "leakage.title": {"en": "Leakage probe", "zh-CN": "信息泄漏检查"},
    "leakage.summary": {
        "en": "{rows} rows, positive rate {rate:.3f}, {features} features; "
        "threshold {threshold:.2f}; {flagged} flagged, {excluded} excluded.",
        "zh-CN": "{rows} 行，正例比例 {rate:.3f}，{features} 个特征；阈值 {threshold:.2f}；"
        "标记 {flagged} 个，排除 {excluded} 个。",
    },
    "leakage.header": {
        "en": "| feature | label | AUC | reasons | action |",
        "zh-CN": "| 特征 | 名称 | AUC | 原因 | 处理 |",
    },
    "leakage.excluded": {"en": "excluded", "zh-CN": "已排除"},
    "leakage.allowed": {"en": "allowed", "zh-CN": "已放行"},
    "leakage.kept": {"en": "kept", "zh-CN": "保留"},
    "leakage.top": {"en": "Highest single-feature AUC:", "zh-CN": "单特征 AUC 最高的特征："},
}


def _register() -> None:
    register_messages(_MESSAGES)


@dataclass(frozen=True)
class LeakageFinding:
    """The probe's result for one feature."""

    feature: str
    kind: str
    auc: float
    reasons: tuple[str, ...]
    allowed: bool
    label_en: str = ""
    label_zh: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def excluded(self) -> bool:
        return self.flagged and not self.allowed

    def describe(self, threshold: float, locale: Locale = "en") -> str:
        """Return the reasons as one line of text in ``locale``."""
        _register()
        texts = []
        for reason in self.reasons:
            if reason == HIGH_AUC:
                texts.append(translate("leakage.high_auc", locale, auc=self.auc, threshold=threshold))
            else:
                texts.append(translate("leakage.post_contact", locale))
        return "; ".join(texts)


@dataclass
class LeakageReport:
    """Single-feature AUC of every feature, which ones were flagged and which were excluded."""

    threshold: float
    rows: int
    positive_rate: float
    findings: list[LeakageFinding] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        return [finding.feature for finding in self.findings if finding.flagged]

    @property
    def excluded(self) -> list[str]:
        return [finding.feature for finding in self.findings if finding.excluded]

    def finding(self, feature: str) -> LeakageFinding:
        """Return the finding of ``feature`` or raise naming the probed features."""
        for finding in self.findings:
            if finding.feature == feature:
                return finding
        raise KeyError(f"feature {feature!r} was not probed; probed: {[f.feature for f in self.findings]}")

    def kept(self, definitions: Sequence[FeatureDef]) -> list[FeatureDef]:
        """Return ``definitions`` without the excluded features, order kept."""
        excluded = set(self.excluded)
        return [definition for definition in definitions if definition.name not in excluded]

    def to_markdown(self, locale: Locale = "en", *, top: int = 15) -> str:
        """Render the flagged features and the ``top`` highest AUCs as a Markdown section."""
        _register()
        flagged = [finding for finding in self.findings if finding.flagged]
        lines = [
            translate(
                "leakage.summary",
                locale,
                rows=self.rows,
                rate=self.positive_rate,
                features=len(self.findings),
                threshold=self.threshold,
                flagged=len(flagged),
                excluded=len(self.excluded),
            ),
            "",
            translate("leakage.header", locale),
            "|---|---|---|---|---|",
        ]
        for finding in flagged:
            lines.append(self._row(finding, locale))
        lines += ["", translate("leakage.top", locale), "", translate("leakage.header", locale)]
        lines.append("|---|---|---|---|---|")
        for finding in sorted(self.findings, key=lambda item: -item.auc)[:top]:
            lines.append(self._row(finding, locale))
        return "\n".join(lines) + "\n"

    def _row(self, finding: LeakageFinding, locale: Locale) -> str:
        label = finding.label_zh if locale == "zh-CN" else finding.label_en
        if finding.excluded:
            action = translate("leakage.excluded", locale)
        elif finding.flagged:
            action = translate("leakage.allowed", locale)
        else:
            action = translate("leakage.kept", locale)
        reasons = finding.describe(self.threshold, locale) or "-"
        return f"| `{finding.feature}` | {label} | {finding.auc:.3f} | {reasons} | {action} |"


def probe(
    frame: pd.DataFrame,
    labels: pd.Series | np.ndarray,
    definitions: Sequence[FeatureDef],
    attributes: Sequence[CustomAttribute],
    threshold: float = 0.95,
    allow: Sequence[str] = (),
    *,
    seed: int = 0,
) -> LeakageReport:
    """Score every defined feature alone against ``labels`` and flag the leaky ones.

    ``labels`` are 0/1 per frame row (positionally aligned). ``allow`` names features to
    keep even when flagged. Raises SchemaError for defined features absent from ``frame``
    and InsufficientDataError when the labels have a single class.
    """
    if not 0.5 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0.5, 1.0]; got {threshold!r}")
    target = _binary_labels(labels, len(frame))
    missing = [definition.name for definition in definitions if definition.name not in frame.columns]
    if missing:
        raise SchemaError(
            f"feature frame lacks defined feature(s) {missing}; probe the frame build_features made"
        )
    unknown_allowed = sorted(set(allow) - {definition.name for definition in definitions})
    if unknown_allowed:
        raise ConfigError(f"allow names feature(s) {unknown_allowed} that are not defined features")

    post_contact = _post_contact_features(definitions, attributes)
    report = LeakageReport(threshold=threshold, rows=len(frame), positive_rate=float(target.mean()))
    for definition in definitions:
        column = frame[definition.name]
        if definition.kind == "categorical":
            auc = categorical_auc(column, target, seed=seed)
        else:
            auc = numeric_auc(column, target)
        reasons: list[str] = []
        if auc > threshold:
            reasons.append(HIGH_AUC)
        if definition.name in post_contact:
            reasons.append(POST_CONTACT)
        finding = LeakageFinding(
            feature=definition.name,
            kind=definition.kind,
            auc=auc,
            reasons=tuple(reasons),
            allowed=definition.name in allow,
            label_en=definition.label_en,
            label_zh=definition.label_zh,
        )
        report.findings.append(finding)
        if finding.excluded:
            logger.warning("leakage probe excludes %s: %s", definition.name, finding.describe(threshold))
        elif finding.flagged:
            logger.warning("leakage probe flags %s but it is allowed", definition.name)
    return report


def _post_contact_features(
    definitions: Sequence[FeatureDef], attributes: Sequence[CustomAttribute]
) -> set[str]:
    declared = {attribute_feature_name(a.name) for a in attributes if a.post_contact}
    declared |= {a.name for a in attributes if a.post_contact}
    return {d.name for d in definitions if d.post_contact or d.name in declared}


def _binary_labels(labels: pd.Series | np.ndarray, rows: int) -> np.ndarray:
    values = pd.Series(np.asarray(labels))
    if len(values) != rows:
        raise DataValidationError(f"{len(values)} labels for {rows} feature rows; give one label per row")
    if values.isna().any():
        raise DataValidationError(f"labels contain {int(values.isna().sum())} missing value(s)")
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() or not numeric.isin([0, 1]).all():
        shown = values[~numeric.isin([0, 1])].unique()[:5].tolist()
        raise DataValidationError(f"labels must be 0 or 1; found {shown}")
    target = numeric.to_numpy(dtype=np.int64)
    if target.min() == target.max():
        raise InsufficientDataError(
            f"all {rows} labels are {int(target[0]) if rows else 'absent'}; the probe needs both classes"
        )
    return target


def numeric_auc(column: pd.Series, target: np.ndarray) -> float:
    """Return the direction-free AUC of a numeric feature, missing values ranked first or last."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.where(np.isposinf(values), np.finfo(np.float64).max, values)
    values = np.where(np.isneginf(values), np.finfo(np.float64).min, values)
    missing = np.isnan(values)
    if missing.all():
        return 0.5
    if not missing.any():
        return _direction_free_auc(target, values)
    low, high = np.nanmin(values), np.nanmax(values)
    missing_first = np.where(missing, low - 1.0 - abs(low), values)
    missing_last = np.where(missing, high + 1.0 + abs(high), values)
    return max(_direction_free_auc(target, missing_first), _direction_free_auc(target, missing_last))


def categorical_auc(column: pd.Series, target: np.ndarray, *, seed: int = 0) -> float:
    """Return the direction-free AUC of out-of-fold target encoding of a categorical feature."""
    levels = column.astype(object).where(column.notna(), _MISSING_LEVEL).astype(str).to_numpy()
    encoded = np.empty(len(levels), dtype=np.float64)
    minority = int(np.bincount(target).min())
    if minority < 2:
        raise InsufficientDataError(
            f"the rarer label class has {minority} row(s); out-of-fold encoding needs at least 2"
        )
    folds = StratifiedKFold(n_splits=min(_FOLDS, minority), shuffle=True, random_state=seed)
    for train, held_out in folds.split(levels, target):
        prior = target[train].mean()
        stats = (
            pd.DataFrame({"level": levels[train], "y": target[train]})
            .groupby("level")["y"]
            .agg(["sum", "count"])
        )
        rates = (stats["sum"] + _SMOOTHING * prior) / (stats["count"] + _SMOOTHING)
        encoded[held_out] = pd.Series(levels[held_out]).map(rates).fillna(prior).to_numpy(dtype=np.float64)
    return _direction_free_auc(target, encoded)


def _direction_free_auc(target: np.ndarray, scores: np.ndarray) -> float:
    auc = float(roc_auc_score(target, scores))
    return max(auc, 1.0 - auc)
