"""Score and feature drift against the training reference stored in the scorer bundle.

The population stability index of a variable over bins i with reference shares e_i and live
shares a_i is ``PSI = sum((a_i - e_i) * ln(a_i / e_i))``. Shares are floored at ``SHARE_FLOOR``
so that an empty bin gives a large but finite term. A common reading (Siddiqi, *Credit Risk
Scorecards*, 2006) is below 0.1 stable, 0.1 to 0.2 a moderate shift and above 0.2 a
significant one, which is why 0.2 is the default threshold.

Bins come from the bundle:

* Features: ``FeatureSpec.reference``. A numeric feature has decile edges from the training
  fold (values are binned with ``searchsorted(edges, value, side="left")``, as the spec does)
  plus a missing share. A categorical feature has the share of each fitted category, of
  ``__other__`` and of missing values.
* Scores (p_convert, ltv, expected_value): ``bundle.reference`` contains 21 quantiles (levels 0,
  0.05, ..., 1) of the calibration fold. The 19 inner quantiles are the bin edges, and the
  reference share below an edge is the lowest level whose quantile equals it. Repeated
  quantiles (a point mass) merge their bins.

Chunks count values into these bins independently and the counts are summed, so the report
is the same for any chunking and either engine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.spec import OTHER_LEVEL, FeatureSpec
from leadscore.i18n import Locale, register_messages, translate

logger = logging.getLogger(__name__)

SCORE_NAMES: tuple[str, ...] = ("p_convert", "expected_value", "ltv")
SHARE_FLOOR = 1e-4
DEFAULT_THRESHOLD = 0.2
MISSING_BIN = "(missing)"
REPORT_FORMAT = "leadscore.drift_report"

Counts = dict[str, Any]


@dataclass(frozen=True)
class BinLayout:
    """Bins of one variable: their labels and the reference share of each."""

    name: str
    kind: str  # "numeric", "categorical" or "score"
    labels: tuple[str, ...]
    expected: tuple[float, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def count(self, values: pd.Series) -> list[int]:
        """Return how many of ``values`` fall in each bin, in ``labels`` order."""
        if self.kind == "categorical":
            return self._count_categories(values)
        numbers = np.asarray(values, dtype=np.float64)
        missing = np.isnan(numbers)
        side: Literal["left", "right"] = "left" if self.kind == "numeric" else "right"
        edges = np.asarray(self.edges, dtype=np.float64)
        positions = np.asarray(np.searchsorted(edges, numbers[~missing], side=side), dtype=np.int64)
        counts = np.bincount(positions, minlength=len(self.edges) + 1).tolist()
        if self.kind == "numeric":
            counts.append(int(missing.sum()))
        return [int(count) for count in counts]

    def _count_categories(self, values: pd.Series) -> list[int]:
        text = values.astype(object)
        missing = text.isna().to_numpy()
        present = text[~missing].astype(str)
        tally = present.value_counts()
        counts = [int(tally.get(level, 0)) for level in self.categories]
        counts.append(int(len(present) - sum(counts)))  # outside the fitted set: __other__
        counts.append(int(missing.sum()))
        return counts


def feature_layouts(spec: FeatureSpec) -> list[BinLayout]:
    """Return a bin layout per feature that has a reference distribution in ``spec``."""
    layouts: list[BinLayout] = []
    for feature in spec.features:
        reference = spec.reference.get(feature.name)
        if not reference:
            continue
        if reference.get("type") == "quantile_bins":
            edges = tuple(float(edge) for edge in reference["edges"])
            proportions = [float(share) for share in reference["proportions"]]
            labels = _interval_labels(edges)
            layouts.append(
                BinLayout(
                    feature.name,
                    "numeric",
                    (*labels, MISSING_BIN),
                    (*proportions, float(reference.get("missing", 0.0))),
                    edges=edges,
                )
            )
        elif reference.get("type") == "categories":
            shares = {str(level): float(share) for level, share in reference["proportions"].items()}
            categories = tuple(level for level in shares if level != OTHER_LEVEL)
            expected = [shares[level] for level in categories]
            expected.append(shares.get(OTHER_LEVEL, 0.0))
            expected.append(float(reference.get("missing", 0.0)))
            layouts.append(
                BinLayout(
                    feature.name,
                    "categorical",
                    (*categories, OTHER_LEVEL, MISSING_BIN),
                    tuple(expected),
                    categories=categories,
                )
            )
    return layouts


def score_layouts(reference: Mapping[str, Any]) -> list[BinLayout]:
    """Return a bin layout per score in ``SCORE_NAMES`` that the bundle reference covers."""
    levels = [float(level) for level in reference.get("quantile_levels", [])]
    layouts: list[BinLayout] = []
    for name in SCORE_NAMES:
        entry = reference.get(name)
        if (
            not isinstance(entry, Mapping)
            or len(entry.get("quantiles", [])) != len(levels)
            or len(levels) < 3
        ):
            continue
        quantiles = [float(value) for value in entry["quantiles"]]
        edges = sorted(set(quantiles[1:-1]))
        below = [
            min(level for level, value in zip(levels, quantiles, strict=True) if value == edge)
            for edge in edges
        ]
        shares = np.diff([0.0, *below, 1.0])
        layouts.append(
            BinLayout(
                name,
                "score",
                tuple(_interval_labels(tuple(edges), closed_left=True)),
                tuple(shares),
                tuple(edges),
            )
        )
    return layouts


def _interval_labels(edges: tuple[float, ...], *, closed_left: bool = False) -> list[str]:
    """Return a label per bin: below the first edge, between each pair of edges, above the last."""
    if not edges:
        return ["all"]
    bounds = [f"{edge:.6g}" for edge in edges]
    if closed_left:
        inner = [f"[{low}, {high})" for low, high in pairwise(bounds)]
        return [f"< {bounds[0]}", *inner, f">= {bounds[-1]}"]
    inner = [f"({low}, {high}]" for low, high in pairwise(bounds)]
    return [f"<= {bounds[0]}", *inner, f"> {bounds[-1]}"]


class DriftCounter:
    """Counts live values into the reference bins of one bundle; one instance per process."""

    def __init__(self, spec: FeatureSpec, reference: Mapping[str, Any]) -> None:
        self.features = feature_layouts(spec)
        self.scores = score_layouts(reference)

    def count(self, matrix: pd.DataFrame, scores: pd.DataFrame) -> Counts:
        """Return the bin counts of a chunk: ``matrix`` is the spec's transform of its features."""
        return {
            "rows": len(scores),
            "features": {layout.name: layout.count(matrix[layout.name]) for layout in self.features},
            "scores": {layout.name: layout.count(scores[layout.name]) for layout in self.scores},
        }

    def empty(self) -> Counts:
        return {
            "rows": 0,
            "features": {layout.name: [0] * len(layout.labels) for layout in self.features},
            "scores": {layout.name: [0] * len(layout.labels) for layout in self.scores},
        }


def merge_counts(parts: Iterable[Counts]) -> Counts:
    """Sum chunk counts bin by bin."""
    total: Counts | None = None
    for part in parts:
        if total is None:
            total = {"rows": 0, "features": {}, "scores": {}}
        total["rows"] += int(part["rows"])
        for group in ("features", "scores"):
            for name, counts in part[group].items():
                current = total[group].setdefault(name, [0] * len(counts))
                total[group][name] = [a + b for a, b in zip(current, counts, strict=True)]
    return total or {"rows": 0, "features": {}, "scores": {}}


def population_stability_index(expected: Sequence[float], actual_counts: Sequence[int]) -> float:
    """Return the PSI of live counts against reference shares over the same bins."""
    total = float(sum(actual_counts))
    if total == 0:
        return math.nan
    reference = np.maximum(np.asarray(expected, dtype=np.float64), SHARE_FLOOR)
    live = np.maximum(np.asarray(actual_counts, dtype=np.float64) / total, SHARE_FLOOR)
    return float(np.sum((live - reference) * np.log(live / reference)))


@dataclass(frozen=True)
class DriftItem:
    """PSI of one score or feature with its bins."""

    name: str
    group: str  # "score" or "feature"
    psi: float
    drifted: bool
    labels: tuple[str, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "psi": None if math.isnan(self.psi) else round(self.psi, 6),
            "drifted": self.drifted,
            "bins": [
                {"bin": label, "expected": round(expected, 6), "actual": round(actual, 6)}
                for label, expected, actual in zip(self.labels, self.expected, self.actual, strict=True)
            ],
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of every score and feature of one run, against one bundle's reference."""

    model_version: str
    rows: int
    threshold: float
    items: tuple[DriftItem, ...]

    @property
    def drifted(self) -> list[str]:
        return [item.name for item in self.items if item.drifted]

    @property
    def max_psi(self) -> float | None:
        values = [item.psi for item in self.items if not math.isnan(item.psi)]
        return max(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "model_version": self.model_version,
            "rows": self.rows,
            "threshold": self.threshold,
            "share_floor": SHARE_FLOOR,
            "drifted": self.drifted,
            "max_psi": None if self.max_psi is None else round(self.max_psi, 6),
            "scores": [item.to_dict() for item in self.items if item.group == "score"],
            "features": [item.to_dict() for item in self.items if item.group == "feature"],
        }


def build_report(
    counter: DriftCounter, counts: Counts, *, threshold: float, model_version: str
) -> DriftReport:
    """Compute the PSI of every binned variable and flag those above ``threshold``."""
    items: list[DriftItem] = []
    for group, layouts, key in (
        ("score", counter.scores, "scores"),
        ("feature", counter.features, "features"),
    ):
        for layout in layouts:
            live = counts[key].get(layout.name, [0] * len(layout.labels))
            psi = population_stability_index(layout.expected, live)
            total = sum(live)
            shares = tuple(count / total if total else 0.0 for count in live)
            drifted = not math.isnan(psi) and psi > threshold
            items.append(DriftItem(layout.name, group, psi, drifted, layout.labels, layout.expected, shares))
    report = DriftReport(model_version, int(counts["rows"]), threshold, tuple(items))
    flagged = sorted((item for item in items if item.drifted), key=lambda item: item.psi, reverse=True)
    if flagged:
        logger.warning(
            "drift: %d of %d scores and features have PSI above %.2f against the training reference of "
            "model %s: %s",
            len(flagged),
            len(items),
            threshold,
            model_version,
            ", ".join(f"{item.name} {item.psi:.3f}" for item in flagged),
        )
    return report


_MESSAGES: dict[str, dict[str, str]] = {
    "rescore.drift.title": {"en": "Drift report", "zh-CN": "漂移报告"},
    "rescore.drift.intro": {
        "en": "{rows:,} scored leads compared with the training reference of model {model}. "
        "Population stability index (PSI) above {threshold:g} is flagged.",
        "zh-CN": "将 {rows:,} 条已评分线索与模型 {model} 的训练参考分布比较；"
        "群体稳定性指数（PSI）高于 {threshold:g} 时标记为漂移。",
    },
    "rescore.drift.none_drifted": {
        "en": "No score or feature is above the threshold.",
        "zh-CN": "没有评分或特征超过阈值。",
    },
    "rescore.drift.drifted": {
        "en": "Above the threshold: {names}.",
        "zh-CN": "超过阈值：{names}。",
    },
    "rescore.drift.no_rows": {
        "en": "No lead was scored, so drift was not computed.",
        "zh-CN": "没有线索被评分，未计算漂移。",
    },
    "rescore.drift.scores": {"en": "Scores", "zh-CN": "评分"},
    "rescore.drift.features": {"en": "Features", "zh-CN": "特征"},
    "rescore.drift.header": {
        "en": "| name | PSI | flagged |\n|---|---:|---|",
        "zh-CN": "| 名称 | PSI | 是否漂移 |\n|---|---:|---|",
    },
    "rescore.drift.yes": {"en": "yes", "zh-CN": "是"},
    "rescore.drift.no": {"en": "", "zh-CN": ""},
    "rescore.drift.reading": {
        "en": "Reading: PSI below 0.1 is usually stable and 0.1 to 0.2 a moderate shift. The reference "
        "is the calibration fold of training snapshots, taken at several lead ages, so features that "
        "depend on lead age can differ from a one-day population of open leads without any change "
        "in the leads themselves.",
        "zh-CN": "解读：PSI 低于 0.1 通常视为稳定，0.1 到 0.2 为中度变化。参考分布来自训练快照的校准集，"
        "覆盖不同线索年龄，因此与线索年龄相关的特征即使线索本身未变，也可能与某一时点的在跟线索分布不同。",
    },
}


@cache
def _register_texts() -> None:
    register_messages(_MESSAGES)


def render_markdown(report: DriftReport, locale: Locale) -> str:
    """Return the report as Markdown in ``locale``: PSI per score and feature, highest first."""
    _register_texts()
    lines = [f"# {translate('rescore.drift.title', locale)}", ""]
    if report.rows == 0:
        lines += [translate("rescore.drift.no_rows", locale), ""]
        return "\n".join(lines)
    lines += [
        translate(
            "rescore.drift.intro",
            locale,
            rows=report.rows,
            model=report.model_version,
            threshold=report.threshold,
        ),
        "",
    ]
    drifted = report.drifted
    if drifted:
        lines.append(translate("rescore.drift.drifted", locale, names=", ".join(drifted)))
    else:
        lines.append(translate("rescore.drift.none_drifted", locale))
    lines.append("")
    for group, title in (("score", "rescore.drift.scores"), ("feature", "rescore.drift.features")):
        items = sorted(
            (item for item in report.items if item.group == group),
            key=lambda item: -1.0 if math.isnan(item.psi) else item.psi,
            reverse=True,
        )
        lines += [f"## {translate(title, locale)}", "", translate("rescore.drift.header", locale)]
        for item in items:
            flag = translate("rescore.drift.yes" if item.drifted else "rescore.drift.no", locale)
            value = "n/a" if math.isnan(item.psi) else f"{item.psi:.4f}"
            lines.append(f"| {item.name} | {value} | {flag} |")
        lines.append("")
    lines += [translate("rescore.drift.reading", locale), ""]
    return "\n".join(lines)
