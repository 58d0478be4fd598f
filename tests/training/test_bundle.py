"""Scorer bundle: a directory of JSON and LightGBM text files that loads without pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.errors import ConfigError, InputFileError
from tests.training import scorer_setup
from training.bundle import (
    MANIFEST_FILE,
    GradeBands,
    ScorerBundle,
    SegmentRule,
    SegmentThresholds,
    feature_config_from_dict,
    feature_config_to_dict,
)
from training.scorer import score_tables


@pytest.fixture(scope="module")
def saved_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scorer_setup.bundle().save(tmp_path_factory.mktemp("bundle") / "scorer")


def _spine() -> pd.DataFrame:
    return scorer_setup.holdout()[["lead_id", "cutoff"]].head(60).reset_index(drop=True)


def test_bundle_round_trip_scores_identically(saved_bundle: Path) -> None:
    original = scorer_setup.bundle()
    loaded = ScorerBundle.load(saved_bundle)
    tables = scorer_setup.history()

    before = score_tables(original, tables, _spine(), locale="en")
    after = score_tables(loaded, tables, _spine(), locale="en")

    assert loaded.bundle_version == original.bundle_version
    assert loaded.feature_names == original.feature_names
    np.testing.assert_array_equal(after["p_convert"].to_numpy(), before["p_convert"].to_numpy())
    np.testing.assert_array_equal(after["ltv"].to_numpy(), before["ltv"].to_numpy())
    assert after["grade"].tolist() == before["grade"].tolist()
    assert after["segment"].tolist() == before["segment"].tolist()
    assert after["reasons_positive"].tolist() == before["reasons_positive"].tolist()


def test_bundle_files_are_text_only(saved_bundle: Path) -> None:
    files = [path for path in saved_bundle.rglob("*") if path.is_file()]
    suffixes = {path.suffix for path in files}

    assert suffixes <= {".json", ".txt"}
    assert not [path for path in files if path.suffix in {".pkl", ".pickle", ".joblib"}]
    for path in files:
        assert b"\x80\x04" not in path.read_bytes()[:2], f"{path} starts like a pickle stream"
    booster_text = (saved_bundle / "conversion" / "conversion.txt").read_text(encoding="utf-8")
    assert booster_text.startswith("tree\n")


def test_bundle_loads_with_pickle_disabled(saved_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle must not be used to load a scorer bundle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)

    loaded = ScorerBundle.load(saved_bundle)

    assert loaded.conversion.booster.num_trees() > 0


def test_bundle_manifest_lists_every_file(saved_bundle: Path) -> None:
    manifest = json.loads((saved_bundle / MANIFEST_FILE).read_text(encoding="utf-8"))
    on_disk = {
        path.relative_to(saved_bundle).as_posix()
        for path in saved_bundle.rglob("*")
        if path.is_file() and path.name != MANIFEST_FILE
    }

    assert set(manifest["files"]) == on_disk
    assert manifest["insufficient_data"] is scorer_setup.bundle().insufficient_data
    assert manifest["bundle_version"] == scorer_setup.bundle().bundle_version


def test_bundle_rejects_edited_file(saved_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(saved_bundle, tmp_path / "edited"))
    thresholds = copy / "thresholds.json"
    payload = json.loads(thresholds.read_text(encoding="utf-8"))
    payload["grade_bands"]["a_min"] = 0.0
    thresholds.write_text(json.dumps(payload), encoding="utf-8")

    with pytest.raises(InputFileError, match=r"does not match its manifest .*changed: \['thresholds.json'\]"):
        ScorerBundle.load(copy)


def test_bundle_rejects_missing_file(saved_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(saved_bundle, tmp_path / "partial"))
    (copy / "ltv" / "ltv.json").unlink()

    with pytest.raises(InputFileError, match=r"missing: \['ltv/ltv.json'\]"):
        ScorerBundle.load(copy)


def test_bundle_rejects_other_format_version(saved_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(saved_bundle, tmp_path / "future"))
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(InputFileError, match="format_version 99; this leadscore reads format 1"):
        ScorerBundle.load(copy)


def test_bundle_save_rejects_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "occupied.txt").write_text("x", encoding="utf-8")

    with pytest.raises(ConfigError, match="is not empty"):
        scorer_setup.bundle().save(tmp_path)


def test_bundle_missing_directory_names_fix(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"bundle\.json is missing; the scorer bundle is incomplete"):
        ScorerBundle.load(tmp_path / "nothing-here")


def test_grade_bands_follow_quantiles() -> None:
    values = np.arange(1, 101, dtype=np.float64)
    bands = GradeBands.fit(values)

    grades = bands.grade(values)

    assert (grades == "A").sum() == 20
    assert (grades == "B").sum() == 30
    assert (grades == "C").sum() == 30
    assert (grades == "D").sum() == 20
    assert bands.grade(np.array([1e9, -1.0])).tolist() == ["A", "D"]
    assert GradeBands.from_dict(bands.to_dict()) == bands


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [((0.5, 0.8, 0.2), "strictly decreasing"), ((1.0, 0.5, 0.2), "strictly decreasing")],
)
def test_grade_bands_reject_bad_quantiles(quantiles: tuple[float, float, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GradeBands.fit(np.arange(10.0), quantiles)


def test_grade_bands_reject_unordered_bounds() -> None:
    with pytest.raises(ConfigError, match="non-increasing from A to C"):
        GradeBands(1.0, 2.0, 0.5)


def test_segment_thresholds_need_both_minimums() -> None:
    thresholds = SegmentThresholds(SegmentRule(1000.0, 0.3), SegmentRule(100.0, 0.1))
    expected_value = np.array([5000.0, 5000.0, 500.0, 50.0, 500.0])
    p_convert = np.array([0.5, 0.2, 0.2, 0.9, 0.05])

    segments = thresholds.segment(expected_value, p_convert)

    assert segments.tolist() == ["high_value", "standard", "standard", "nurture", "nurture"]
    assert SegmentThresholds.from_dict(thresholds.to_dict()) == thresholds


def test_feature_config_round_trip_and_unknown_key() -> None:
    config = scorer_setup.FEATURE_CONFIG

    assert feature_config_from_dict(feature_config_to_dict(config)) == config
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['surprise'\]"):
        feature_config_from_dict({**feature_config_to_dict(config), "surprise": 1})
