"""The scorer bundle: everything scoring needs, saved as a directory of text files without pickle.

Layout of a bundle directory::

    bundle.json              manifest: format, bundle version, flags, SHA-256 of every other file
    feature_config.json      FeatureConfig used for spines and features
    feature_spec.json        feature names, order, dtypes, category sets, unseen policy, reference
    feature_definitions.json feature labels in en and zh-CN (for reasons)
    attributes.json          custom lead attributes the model reads (accepted in raw records)
    conversion/              conversion booster (LightGBM text format) + calibrator and cold-start JSON
    ltv/                     LTV boosters (LightGBM text format) + metadata JSON; absent without LTV
    rule_prior.json          rule-score model, present when cold start blends it into p_convert
    thresholds.json          grade bands and segment thresholds fitted at training
    reference.json           score distributions at training, for drift monitoring
    model_card.json          the model card

Every file is JSON or LightGBM's own text format, so loading a bundle never unpickles
anything. The manifest's checksums are verified on load, so a bundle edited or cut short
after training raises instead of scoring with mixed parts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.folder import CustomAttribute
from features.catalog import FeatureDef
from features.config import FeatureConfig
from features.spec import FeatureSpec
from leadscore.errors import ConfigError, InputFileError
from training.baselines.rules import RuleScoreModel
from training.conversion import ConversionModel
from training.ltv import LtvModel

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

BUNDLE_FORMAT_VERSION = 1
BUNDLE_ARTIFACT = "bundle"
"""Name of the MLflow model artifact that contains the bundle directory."""
MANIFEST_FILE = "bundle.json"
FEATURE_CONFIG_FILE = "feature_config.json"
FEATURE_SPEC_FILE = "feature_spec.json"
FEATURE_DEFINITIONS_FILE = "feature_definitions.json"
ATTRIBUTES_FILE = "attributes.json"
CONVERSION_DIR = "conversion"
LTV_DIR = "ltv"
RULE_PRIOR_FILE = "rule_prior.json"
THRESHOLDS_FILE = "thresholds.json"
REFERENCE_FILE = "reference.json"
MODEL_CARD_FILE = "model_card.json"

GRADES: tuple[str, ...] = ("A", "B", "C", "D")
SEGMENTS: tuple[str, ...] = ("high_value", "standard", "nurture")
# Share of leads at or above each grade's lower bound: A is the top 20 % by expected value,
# B the next 30 %, C the next 30 % and D the bottom 20 %.
DEFAULT_GRADE_QUANTILES: tuple[float, float, float] = (0.80, 0.50, 0.20)
REFERENCE_QUANTILES: tuple[float, ...] = tuple(round(q, 2) for q in np.linspace(0.0, 1.0, 21))


@dataclass(frozen=True)
class GradeBands:
    """Expected-value lower bounds of grades A, B and C; anything below C's bound is D."""

    a_min: float
    b_min: float
    c_min: float
    quantiles: tuple[float, float, float] = DEFAULT_GRADE_QUANTILES

    def __post_init__(self) -> None:
        if not self.a_min >= self.b_min >= self.c_min:
            raise ConfigError(
                "grade bands must be non-increasing from A to C; "
                f"got A {self.a_min}, B {self.b_min}, C {self.c_min}"
            )

    @classmethod
    def fit(
        cls, expected_value: npt.ArrayLike, quantiles: tuple[float, float, float] = DEFAULT_GRADE_QUANTILES
    ) -> GradeBands:
        """Place the bounds at ``quantiles`` of the expected values of a reference set of leads."""
        values = np.asarray(expected_value, dtype=np.float64)
        if values.size == 0 or not np.isfinite(values).all():
            raise ConfigError("grade bands need a non-empty array of finite expected values")
        if not 1.0 > quantiles[0] > quantiles[1] > quantiles[2] > 0.0:
            raise ConfigError(f"grade quantiles must be strictly decreasing inside (0, 1); got {quantiles}")
        a_min, b_min, c_min = (float(np.quantile(values, q)) for q in quantiles)
        return cls(a_min, b_min, c_min, quantiles)

    def grade(self, expected_value: npt.ArrayLike) -> npt.NDArray[np.str_]:
        """Return the grade letter of each expected value."""
        values = np.asarray(expected_value, dtype=np.float64)
        conditions = [values >= self.a_min, values >= self.b_min, values >= self.c_min]
        return np.asarray(np.select(conditions, list(GRADES[:3]), default=GRADES[3]), dtype=np.str_)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a_min": self.a_min,
            "b_min": self.b_min,
            "c_min": self.c_min,
            "quantiles": list(self.quantiles),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> GradeBands:
        quantiles = tuple(float(q) for q in payload["quantiles"])
        if len(quantiles) != 3:
            raise ConfigError(f"grade bands need three quantiles; got {list(quantiles)}")
        return cls(
            float(payload["a_min"]),
            float(payload["b_min"]),
            float(payload["c_min"]),
            (quantiles[0], quantiles[1], quantiles[2]),
        )


@dataclass(frozen=True)
class SegmentRule:
    """Minimums a lead must reach on both expected value and p_convert to enter a segment."""

    min_expected_value: float
    min_p_convert: float


@dataclass(frozen=True)
class SegmentThresholds:
    """high_value when both high_value minimums are reached, else standard when both standard ones are,
    else nurture. The routing policy applies the same rule with its own numbers when configured to."""

    high_value: SegmentRule
    standard: SegmentRule
    quantiles: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, expected_value: npt.ArrayLike, p_convert: npt.ArrayLike) -> SegmentThresholds:
        """Fit the minimums at quantiles of a reference set of leads.

        high_value: expected value in the top 20 % and p_convert in the top half.
        standard: expected value above the bottom 30 % and p_convert above the bottom 20 %.
        """
        values = np.asarray(expected_value, dtype=np.float64)
        probabilities = np.asarray(p_convert, dtype=np.float64)
        levels = {
            "high_value": {"expected_value": 0.80, "p_convert": 0.50},
            "standard": {"expected_value": 0.30, "p_convert": 0.20},
        }
        rules = {
            name: SegmentRule(
                float(np.quantile(values, level["expected_value"])),
                float(np.quantile(probabilities, level["p_convert"])),
            )
            for name, level in levels.items()
        }
        return cls(rules["high_value"], rules["standard"], levels)

    def segment(self, expected_value: npt.ArrayLike, p_convert: npt.ArrayLike) -> npt.NDArray[np.str_]:
        """Return the segment of each lead."""
        values = np.asarray(expected_value, dtype=np.float64)
        probabilities = np.asarray(p_convert, dtype=np.float64)
        high = (values >= self.high_value.min_expected_value) & (
            probabilities >= self.high_value.min_p_convert
        )
        standard = (values >= self.standard.min_expected_value) & (
            probabilities >= self.standard.min_p_convert
        )
        return np.asarray(
            np.select([high, standard], ["high_value", "standard"], default="nurture"), dtype=np.str_
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "high_value": dataclasses.asdict(self.high_value),
            "standard": dataclasses.asdict(self.standard),
            "quantiles": self.quantiles,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> SegmentThresholds:
        return cls(
            SegmentRule(**payload["high_value"]),
            SegmentRule(**payload["standard"]),
            dict(payload.get("quantiles", {})),
        )


def score_reference(
    p_convert: npt.ArrayLike, ltv: npt.ArrayLike, expected_value: npt.ArrayLike
) -> dict[str, Any]:
    """Summarize score distributions (quantiles and mean) for later drift checks against live scores."""
    reference: dict[str, Any] = {"quantile_levels": list(REFERENCE_QUANTILES)}
    for name, values in (("p_convert", p_convert), ("ltv", ltv), ("expected_value", expected_value)):
        array = np.asarray(values, dtype=np.float64)
        reference[name] = {
            "count": int(array.size),
            "mean": float(array.mean()) if array.size else None,
            "quantiles": [float(v) for v in np.quantile(array, REFERENCE_QUANTILES)] if array.size else [],
        }
    return reference


def feature_config_to_dict(config: FeatureConfig) -> dict[str, Any]:
    payload = dataclasses.asdict(config)
    payload["windows_days"] = list(config.windows_days)
    return payload


def feature_config_from_dict(payload: Mapping[str, Any]) -> FeatureConfig:
    """Rebuild a FeatureConfig, raising ConfigError on unknown keys (a bundle from another version)."""
    known = {item.name for item in dataclasses.fields(FeatureConfig)}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ConfigError(
            f"feature config in the bundle has unknown key(s) {unknown}; "
            "it was written by another leadscore version"
        )
    values = dict(payload)
    if "windows_days" in values:
        values["windows_days"] = tuple(values["windows_days"])
    return FeatureConfig(**values)


@dataclass(frozen=True)
class ScorerBundle:
    """A trained scorer: feature pipeline settings and spec, both models, thresholds and card.

    ``ltv_model`` is None when the history had too few orders for an LTV model; ``ltv_fallback``
    is then the mean value of converted training leads. ``rule_prior`` is set when cold start
    blends the rule-score probability into p_convert (``conversion.prior_weight`` > 0).
    """

    bundle_version: str
    created_at: str
    feature_config: FeatureConfig
    feature_spec: FeatureSpec
    feature_definitions: tuple[FeatureDef, ...]
    conversion: ConversionModel
    ltv_model: LtvModel | None
    grade_bands: GradeBands
    segment_thresholds: SegmentThresholds
    reference: dict[str, Any]
    model_card: dict[str, Any]
    ltv_fallback: float = 0.0
    rule_prior: RuleScoreModel | None = None
    insufficient_data: bool = False
    attributes: tuple[CustomAttribute, ...] = ()

    def __post_init__(self) -> None:
        if self.conversion.prior_weight > 0 and self.rule_prior is None:
            raise ConfigError(
                f"the conversion model blends a rule-score prior (weight {self.conversion.prior_weight:.2f}) "
                "but the bundle has no rule model; pass rule_prior"
            )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.conversion.layout.feature_names

    def save(self, directory: Path) -> Path:
        """Write the bundle into ``directory`` (which must not exist or be empty) and return it."""
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()):
            raise ConfigError(f"bundle directory {directory} is not empty; pass a new directory")
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / FEATURE_CONFIG_FILE, feature_config_to_dict(self.feature_config))
        _write_json(directory / FEATURE_SPEC_FILE, self.feature_spec.to_dict())
        _write_json(
            directory / FEATURE_DEFINITIONS_FILE,
            [dataclasses.asdict(definition) for definition in self.feature_definitions],
        )
        _write_json(directory / ATTRIBUTES_FILE, [dataclasses.asdict(item) for item in self.attributes])
        self.conversion.save(directory / CONVERSION_DIR)
        if self.ltv_model is not None:
            self.ltv_model.save(directory / LTV_DIR)
        if self.rule_prior is not None:
            _write_json(directory / RULE_PRIOR_FILE, self.rule_prior.to_dict())
        _write_json(
            directory / THRESHOLDS_FILE,
            {"grade_bands": self.grade_bands.to_dict(), "segments": self.segment_thresholds.to_dict()},
        )
        _write_json(directory / REFERENCE_FILE, self.reference)
        _write_json(directory / MODEL_CARD_FILE, self.model_card)

        manifest = {
            "format_version": BUNDLE_FORMAT_VERSION,
            "bundle_version": self.bundle_version,
            "created_at": self.created_at,
            "insufficient_data": self.insufficient_data,
            "ltv_fallback": self.ltv_fallback,
            "feature_names": list(self.feature_names),
            "files": _checksums(directory),
        }
        _write_json(directory / MANIFEST_FILE, manifest)
        logger.info("saved scorer bundle %s to %s", self.bundle_version, directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> ScorerBundle:
        """Read a bundle written by ``save``, verifying every file against the manifest checksums."""
        directory = Path(directory)
        manifest = _read_json(directory / MANIFEST_FILE)
        if manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise InputFileError(
                f"bundle {directory} has format_version {manifest.get('format_version')!r}; "
                f"this leadscore reads format {BUNDLE_FORMAT_VERSION}. Retrain the model with this version"
            )
        _verify_checksums(directory, manifest.get("files", {}))

        thresholds = _read_json(directory / THRESHOLDS_FILE)
        rule_prior_path = directory / RULE_PRIOR_FILE
        bundle = cls(
            bundle_version=str(manifest["bundle_version"]),
            created_at=str(manifest["created_at"]),
            feature_config=feature_config_from_dict(_read_json(directory / FEATURE_CONFIG_FILE)),
            feature_spec=FeatureSpec.from_dict(_read_json(directory / FEATURE_SPEC_FILE)),
            feature_definitions=tuple(
                FeatureDef(**item) for item in _read_json(directory / FEATURE_DEFINITIONS_FILE)
            ),
            conversion=ConversionModel.load(directory / CONVERSION_DIR),
            ltv_model=LtvModel.load(directory / LTV_DIR) if (directory / LTV_DIR).is_dir() else None,
            grade_bands=GradeBands.from_dict(thresholds["grade_bands"]),
            segment_thresholds=SegmentThresholds.from_dict(thresholds["segments"]),
            reference=_read_json(directory / REFERENCE_FILE),
            model_card=_read_json(directory / MODEL_CARD_FILE),
            ltv_fallback=float(manifest.get("ltv_fallback", 0.0)),
            rule_prior=RuleScoreModel.from_dict(_read_json(rule_prior_path))
            if rule_prior_path.is_file()
            else None,
            insufficient_data=bool(manifest["insufficient_data"]),
            attributes=tuple(CustomAttribute(**item) for item in _read_json(directory / ATTRIBUTES_FILE)),
        )
        names = tuple(manifest.get("feature_names", ()))
        if names != bundle.feature_names:
            raise InputFileError(
                f"bundle {directory}: manifest lists {len(names)} features but the conversion model has "
                f"{len(bundle.feature_names)}; the bundle is inconsistent, retrain it"
            )
        logger.info("loaded scorer bundle %s from %s", bundle.bundle_version, directory)
        return bundle


def make_bundle_version(created_at: pd.Timestamp, fingerprint: str) -> str:
    """Return a sortable, unique bundle version such as ``20240601T093000Z-1a2b3c4d``."""
    return f"{created_at.tz_convert('UTC').strftime('%Y%m%dT%H%M%SZ')}-{fingerprint[:8]}"


def content_fingerprint(parts: Sequence[bytes]) -> str:
    """Return the SHA-256 hex digest of ``parts`` in order (model text, spec JSON ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def copy_bundle(source: Path, destination: Path) -> Path:
    """Copy a saved bundle directory, checking it first so a broken bundle is never propagated."""
    ScorerBundle.load(source)
    shutil.copytree(source, destination)
    return destination


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InputFileError(f"{path} is missing; the scorer bundle is incomplete, retrain or re-download it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path} is not valid JSON: {error}") from None


def _checksums(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def _verify_checksums(directory: Path, expected: Mapping[str, str]) -> None:
    actual = _checksums(directory)
    missing = sorted(set(expected) - set(actual))
    changed = sorted(name for name in expected if name in actual and actual[name] != expected[name])
    if missing or changed:
        raise InputFileError(
            f"scorer bundle {directory} does not match its manifest "
            f"(missing: {missing}, changed: {changed}); "
            "the bundle was modified or copied incompletely, so retrain or re-download it"
        )
    extra = sorted(set(actual) - set(expected))
    if extra:
        logger.warning("scorer bundle %s contains files not in its manifest: %s", directory, extra)
