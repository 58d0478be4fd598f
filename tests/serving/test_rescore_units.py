"""Unit tests of batch rescoring pieces: PSI, bucketing, the run folder, export and progress."""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.catalog import FeatureDef
from features.spec import OTHER_LEVEL, FeatureSpec
from leadscore.cli.rescore_cmd import parse_as_of
from leadscore.errors import ConfigError, ConflictError, DataValidationError
from serving.rescore import chunk_scoring
from serving.rescore.checkpoint import (
    ChunkRecord,
    Manifest,
    file_sha256,
    open_run_folder,
    remove_temporaries,
    run_key,
    write_atomic,
)
from serving.rescore.chunks import bucket_count, bucket_dir, lead_buckets, partition_inputs
from serving.rescore.drift import (
    SHARE_FLOOR,
    DriftCounter,
    build_report,
    feature_layouts,
    merge_counts,
    population_stability_index,
    render_markdown,
    score_layouts,
)
from serving.rescore.export import ExportSettings, OutputPaths, TableWriter, header, output_format
from serving.rescore.options import RescoreOptions
from serving.rescore.progress import Progress
from training.scorer import ScoredTables

LEVELS = [round(level, 2) for level in np.linspace(0.0, 1.0, 21)]


# --- PSI and bins -------------------------------------------------------------------------------------


def test_psi_of_identical_shares_is_zero() -> None:
    assert population_stability_index([0.25, 0.25, 0.5], [25, 25, 50]) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_hand_computation() -> None:
    expected = [0.5, 0.5]
    live = [80, 20]

    value = population_stability_index(expected, live)

    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert value == pytest.approx(by_hand)


def test_psi_floors_empty_bins() -> None:
    value = population_stability_index([0.5, 0.5], [100, 0])

    by_hand = (1.0 - 0.5) * math.log(1.0 / 0.5) + (SHARE_FLOOR - 0.5) * math.log(SHARE_FLOOR / 0.5)
    assert math.isfinite(value)
    assert value == pytest.approx(by_hand)


def test_psi_without_live_rows_is_nan() -> None:
    assert math.isnan(population_stability_index([1.0], [0]))


def fitted_spec(frame: pd.DataFrame) -> FeatureSpec:
    definitions = [
        FeatureDef(name="budget", kind="numeric", label_en="budget", label_zh="预算", description="budget"),
        FeatureDef(
            name="channel", kind="categorical", label_en="channel", label_zh="渠道", description="channel"
        ),
    ]
    return FeatureSpec.fit(frame, definitions)


def training_frame(size: int = 2000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    budget = rng.lognormal(10, 1, size)
    budget[rng.random(size) < 0.1] = np.nan
    channel = rng.choice(["referral", "web", "fair"], size, p=[0.2, 0.5, 0.3]).astype(object)
    channel[rng.random(size) < 0.05] = None
    return pd.DataFrame({"budget": budget, "channel": channel})


def test_counts_of_training_frame_match_spec_reference() -> None:
    frame = training_frame()
    spec = fitted_spec(frame)
    counter = DriftCounter(spec, {})
    matrix = spec.transform(frame).matrix

    counts = counter.count(matrix, pd.DataFrame(index=frame.index))
    report = build_report(counter, counts, threshold=0.2, model_version="test")

    for item in report.items:
        assert item.psi == pytest.approx(0.0, abs=1e-9), item.name
        np.testing.assert_allclose(item.actual, item.expected, atol=1e-12)


def test_shifted_numeric_and_unseen_category_are_flagged() -> None:
    spec = fitted_spec(training_frame())
    counter = DriftCounter(spec, {})
    live = training_frame(seed=4)
    live["budget"] = live["budget"] * 30
    same_channels = spec.transform(live).matrix

    report = build_report(
        counter,
        counter.count(same_channels, pd.DataFrame(index=live.index)),
        threshold=0.2,
        model_version="m",
    )
    live["channel"] = "tiktok"
    unseen = spec.transform(live).matrix
    other_report = build_report(
        counter, counter.count(unseen, pd.DataFrame(index=live.index)), threshold=0.2, model_version="m"
    )

    assert report.drifted == ["budget"]
    channel = next(item for item in other_report.items if item.name == "channel")
    assert channel.drifted
    assert channel.actual[channel.labels.index(OTHER_LEVEL)] == pytest.approx(1.0)


def test_feature_layout_bins_follow_spec_edges() -> None:
    spec = fitted_spec(training_frame())
    layout = next(layout for layout in feature_layouts(spec) if layout.name == "budget")
    edges = spec.reference["budget"]["edges"]

    counts = layout.count(pd.Series([edges[0], edges[0] + 1e-9, np.nan, edges[-1] * 2]))

    assert len(layout.labels) == len(edges) + 2
    assert counts[0] == 1  # a value equal to an edge belongs to the bin below it, as in the spec
    assert counts[1] == 1
    assert counts[-1] == 1  # missing
    assert counts[-2] == 1  # above the last edge


def test_score_layout_of_continuous_reference_has_equal_shares() -> None:
    quantiles = list(np.linspace(0.0, 1.0, 21))
    layouts = score_layouts({"quantile_levels": LEVELS, "p_convert": {"quantiles": quantiles}})

    layout = layouts[0]
    counts = layout.count(pd.Series(np.random.default_rng(0).uniform(0, 1, 20_000)))

    assert layout.name == "p_convert"
    assert len(layout.labels) == 20
    np.testing.assert_allclose(layout.expected, [0.05] * 20)
    assert population_stability_index(layout.expected, counts) < 0.01


def test_score_layout_of_point_mass_merges_bins() -> None:
    reference = {"quantile_levels": LEVELS, "expected_value": {"quantiles": [0.0] * 21}}

    layout = score_layouts(reference)[0]

    assert layout.labels == ("< 0", ">= 0")
    assert layout.expected == pytest.approx((0.0, 1.0))
    assert layout.count(pd.Series([0.0, 0.0, 0.0])) == [0, 3]


def test_merge_counts_sums_bins() -> None:
    first = {"rows": 2, "features": {"a": [1, 1]}, "scores": {"p": [2, 0]}}
    second = {"rows": 3, "features": {"a": [0, 3]}, "scores": {"p": [1, 2]}}

    merged = merge_counts([first, second])

    assert merged == {"rows": 5, "features": {"a": [1, 4]}, "scores": {"p": [3, 2]}}


def test_markdown_lists_highest_psi_first_in_both_languages() -> None:
    spec = fitted_spec(training_frame())
    counter = DriftCounter(spec, {})
    live = training_frame(seed=5)
    live["budget"] = live["budget"] * 30
    report = build_report(
        counter,
        counter.count(spec.transform(live).matrix, pd.DataFrame(index=live.index)),
        threshold=0.2,
        model_version="m1",
    )

    english = render_markdown(report, "en")
    chinese = render_markdown(report, "zh-CN")

    assert english.index("| budget |") < english.index("| channel |")
    assert "Above the threshold: budget." in english
    assert "超过阈值：budget。" in chinese


# --- scoring failures ---------------------------------------------------------------------------------


def test_failing_lead_is_isolated_by_splitting(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def score_or_raise(
        bundle: object, tables: object, spine: pd.DataFrame, **options: object
    ) -> ScoredTables:
        calls.append(len(spine))
        if (spine["lead_id"] == "L3").any():
            raise DataValidationError("lead L3 has a value that is not a number")
        records = pd.DataFrame({"lead_id": spine["lead_id"].to_numpy(), "p_convert": 0.5}, index=spine.index)
        matrix = pd.DataFrame({"position": spine.index.to_numpy(dtype=float)}, index=spine.index)
        return ScoredTables(records, matrix)

    monkeypatch.setattr(chunk_scoring, "score_tables_with_matrix", score_or_raise)
    spine = pd.DataFrame(
        {"lead_id": [f"L{n}" for n in range(8)], "cutoff": pd.Timestamp("2025-01-01", tz="UTC")}
    )

    scored, failures = chunk_scoring.score_isolating_failures(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        spine,
        locale="en",
        top_reasons=0,
    )

    assert scored.records["lead_id"].tolist() == ["L0", "L1", "L2", "L4", "L5", "L6", "L7"]
    assert scored.matrix["position"].tolist() == [0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0]
    assert failures.to_dict(orient="records") == [
        {"lead_id": "L3", "reason": "scoring_failed", "detail": "lead L3 has a value that is not a number"}
    ]
    assert calls[0] == 8
    assert len(calls) < 16


def test_utc_texts_match_arrow_cast() -> None:
    inside = np.array([0, -1, 1_751_241_600_123_456, -62_135_596_800_000_000, 253_402_300_799_999_999])
    outside = np.array([0, 253_402_300_800_000_000])

    for micros in (inside, outside, np.array([], dtype=np.int64)):
        cast = pa.array(micros, type=pa.timestamp("us", tz="UTC")).cast(pa.string()).to_pylist()
        assert chunk_scoring.utc_texts(micros).tolist() == cast
    assert chunk_scoring.utc_texts(inside)[2] == "2025-06-30 00:00:00.123456Z"
    assert chunk_scoring.utc_texts(outside)[1] == "10000-01-01 00:00:00.000000Z"


# --- bucketing ----------------------------------------------------------------------------------------


def test_lead_buckets_are_stable_across_types_and_batches() -> None:
    ids = ["L1", "L2", "L3", "L2", None]
    whole = lead_buckets(pa.array(ids, type=pa.string()), 7)
    large = lead_buckets(
        pa.chunked_array([pa.array(ids[:2], pa.large_string()), pa.array(ids[2:], pa.large_string())]), 7
    )

    assert whole.tolist() == large.tolist()
    assert whole[1] == whole[3]
    assert whole[4] == 0
    assert lead_buckets(pa.array([12, 13]), 7).tolist() == lead_buckets(pa.array(["12", "13"]), 7).tolist()
    assert set(lead_buckets(pa.array([f"L{n}" for n in range(1000)]), 7).tolist()) == set(range(7))


def test_bucket_count_rounds_up() -> None:
    assert bucket_count(0, 10) == 1
    assert bucket_count(10, 10) == 1
    assert bucket_count(11, 10) == 2


def test_partition_keeps_each_leads_events_in_its_bucket(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    lead_ids = [f"L{n:03d}" for n in range(60)]
    pq.write_table(
        pa.table({"lead_id": lead_ids, "created_at": pa.array([0] * 60, pa.timestamp("us", "UTC"))}),
        data_dir / "leads.parquet",
    )
    activity_leads = [lead_ids[n % 60] for n in range(300)] + ["UNKNOWN"]
    pq.write_table(
        pa.table({"lead_id": activity_leads, "n": list(range(301))}), data_dir / "activities.parquet"
    )

    rows = partition_inputs(data_dir, tmp_path / "partitions", 4)

    assert rows == {"leads": 60, "activities": 301, "stage_changes": 0}
    assert not (tmp_path / "partitions.partial").exists()
    seen_leads: list[str] = []
    seen_activities = 0
    for bucket in range(4):
        leads_file = bucket_dir(tmp_path / "partitions", "leads", bucket)
        leads = set(pq.read_table(leads_file).column("lead_id").to_pylist()) if leads_file.exists() else set()
        seen_leads.extend(leads)
        activities_file = bucket_dir(tmp_path / "partitions", "activities", bucket)
        if activities_file.exists():
            activities = pq.read_table(activities_file).column("lead_id").to_pylist()
            seen_activities += len(activities)
            assert set(activities) - {"UNKNOWN"} <= leads
    assert sorted(seen_leads) == lead_ids
    assert seen_activities == 301


# --- run folder ---------------------------------------------------------------------------------------


def test_run_key_ignores_key_order() -> None:
    assert run_key({"a": 1, "b": [1, 2]}) == run_key({"b": [1, 2], "a": 1})
    assert run_key({"a": 1}) != run_key({"a": 2})


def record(chunk: int, files: dict[str, str]) -> ChunkRecord:
    return ChunkRecord(
        chunk=chunk,
        leads=3,
        scored=2,
        rejects={"closed_before_as_of": 1},
        orphan_activities=0,
        orphan_stage_changes=0,
        unseen_category_leads=0,
        files=files,
        seconds=0.1,
    )


def test_manifest_round_trip() -> None:
    manifest = Manifest(run_key="k", chunks={2: record(2, {"a": "b"})})

    again = Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())), Path("manifest.json"))

    assert again == manifest


def test_changed_chunk_file_is_computed_again(tmp_path: Path) -> None:
    with open_run_folder(tmp_path, {"x": 1}) as folder:
        folder.chunks_dir.mkdir()
        for chunk in (0, 1):
            path = folder.chunks_dir / f"chunk-{chunk}.scores.parquet"
            path.write_bytes(b"scores")
            folder.record_chunk(record(chunk, {path.name: file_sha256(path)}))
        (folder.chunks_dir / "chunk-1.scores.parquet").write_bytes(b"changed")

        assert folder.verified_chunks() == {0}
        assert set(folder.manifest.chunks) == {0}


def test_same_run_cannot_start_twice(tmp_path: Path) -> None:
    with open_run_folder(tmp_path, {"x": 1}):
        second = open_run_folder(tmp_path, {"x": 1})
        with pytest.raises(ConflictError, match="is already running"):
            second.__enter__()


def test_reopened_folder_keeps_manifest_and_drops_temporaries(tmp_path: Path) -> None:
    with open_run_folder(tmp_path, {"x": 1}) as folder:
        folder.record_chunk(record(0, {}))
        path = folder.path / "chunks" / "chunk-1.scores.parquet"

        def interrupted(temporary: Path) -> None:
            temporary.write_text("half", encoding="utf-8")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            write_atomic(path, interrupted)
        assert not path.exists()

    with open_run_folder(tmp_path, {"x": 1}) as folder:
        assert set(folder.manifest.chunks) == {0}
        assert remove_temporaries(folder.path) == 0
        assert not [item for item in folder.path.rglob("*") if ".tmp-" in item.name]


# --- export -------------------------------------------------------------------------------------------


def test_output_format_from_suffix() -> None:
    assert output_format(Path("a/scores.PARQUET")) == "parquet"
    assert output_format(Path("scores.csv")) == "csv"
    with pytest.raises(ConfigError, match=r"use \.parquet for Parquet or \.csv for CSV"):
        output_format(Path("scores.xlsx"))


def test_excel_needs_csv() -> None:
    with pytest.raises(ConfigError, match="--excel writes a CSV file"):
        ExportSettings(
            fmt="parquet", excel=True, header_locale="en", locale="en", top_reasons=3, with_routing=False
        )


def test_paths_beside_output() -> None:
    paths = OutputPaths.beside(Path("/x/nightly.csv"))

    assert paths.rejects == Path("/x/nightly.rejects.csv")
    assert paths.drift_json == Path("/x/nightly.csv.drift.json")
    assert paths.drift_markdown == Path("/x/nightly.csv.drift.md")
    assert paths.drift_markdown_zh == Path("/x/nightly.csv.drift.zh-CN.md")
    assert paths.summary == Path("/x/nightly.csv.summary.json")
    assert paths.lock == Path("/x/.nightly.csv.lock")


def test_headers_in_chinese() -> None:
    assert header("p_convert", "zh-CN") == "转化概率"
    assert header("positive_reason_2", "zh-CN") == "加分原因2"
    assert header("p_convert", "en") == "p_convert"
    assert header("custom_column", "zh-CN") == "custom_column"


def test_excel_csv_has_one_byte_order_mark(tmp_path: Path) -> None:
    settings = ExportSettings(
        fmt="csv", excel=True, header_locale="zh-CN", locale="zh-CN", top_reasons=0, with_routing=False
    )
    writer = TableWriter(tmp_path / "scores.csv", settings)
    writer.write(pa.table({"lead_id": ["L1"], "segment": ["标准"]}))
    writer.write(pa.table({"lead_id": ["L2"], "segment": ["培育"]}))
    writer.commit(pa.table({"lead_id": pa.array([], pa.string())}))

    raw = (tmp_path / "scores.csv").read_bytes()
    assert raw.count(b"\xef\xbb\xbf") == 1
    assert raw.decode("utf-8-sig").splitlines() == ["线索编号,分层", "L1,标准", "L2,培育"]
    assert writer.rows == 2


def test_empty_output_still_has_header(tmp_path: Path) -> None:
    settings = ExportSettings(
        fmt="csv", excel=False, header_locale="en", locale="en", top_reasons=0, with_routing=False
    )
    writer = TableWriter(tmp_path / "scores.csv", settings)
    writer.commit(pa.table({"lead_id": pa.array([], pa.string()), "p_convert": pa.array([], pa.float64())}))

    assert (tmp_path / "scores.csv").read_text("utf-8").strip() == "lead_id,p_convert"


# --- progress and options -----------------------------------------------------------------------------


def test_progress_logs_without_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="serving.rescore.progress")
    progress = Progress(total_chunks=3, mode="auto", interval=3600, stream=io.StringIO())

    progress.advance(leads=10, scored=4)
    progress.advance(leads=10, scored=5)
    progress.advance(leads=10, scored=6)
    progress.close()

    assert progress.mode == "log"
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [lines[0]]
    assert lines[0].startswith("rescore: 3/3 chunks, 30 leads read, 15 scored")


def test_progress_bar_draws_on_given_stream() -> None:
    stream = io.StringIO()
    progress = Progress(total_chunks=2, mode="bar", stream=stream)

    progress.advance(leads=5, scored=5)
    progress.close()

    assert "rescore" in stream.getvalue()
    assert "1/2" in stream.getvalue()


def test_as_of_without_offset_is_read_in_timezone() -> None:
    parsed = parse_as_of("2025-06-30T08:00:00", "Asia/Shanghai")

    assert parsed == pd.Timestamp("2025-06-30T00:00:00Z")


def test_invalid_as_of_names_the_format() -> None:
    with pytest.raises(ConfigError, match="--as-of 'yesterday' is not an ISO 8601 time; use for example"):
        parse_as_of("yesterday", "Asia/Shanghai")


def test_options_reject_naive_as_of(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        RescoreOptions(data_dir=tmp_path, as_of=pd.Timestamp("2025-01-01"), out=tmp_path / "s.csv")
