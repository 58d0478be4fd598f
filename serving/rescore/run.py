"""Batch rescoring of every open lead of a data folder, resumable after a crash at any point.

Steps of ``rescore``:

1. Load the model and open (or reopen) the run folder keyed by the run's arguments.
2. Save the bundle into the run folder, so every chunk and every resume scores with it.
3. Partition leads, activities and stage changes into buckets by lead (``chunks.py``).
4. Score the chunks not yet in the manifest, on the local or the Dask engine, recording each
   in the manifest as it finishes (``chunk_scoring.py``).
5. With ``route``, route the unassigned scored leads of each chunk, in chunk order.
6. Write the scores and rejects files, the drift report and the summary, then record the
   run as complete and delete the checkpoints.

A run stopped at any point (an error, Ctrl+C, ``kill -9``) continues from the manifest when
started again with the same arguments: finished chunks are kept, the others are scored, and
the output is written again from the chunk files. No lead is lost or written twice because
each chunk's files are replaced whole and the output is rebuilt from one file per chunk.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from data.folder import CustomAttribute, read_attributes, table_path
from leadscore.errors import ConfigError
from leadscore.i18n import Locale
from serving.rescore.checkpoint import (
    PartitionRecord,
    RunFolder,
    file_sha256,
    hold_output_lock,
    open_run_folder,
    read_json,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from serving.rescore.chunk_scoring import (
    REJECTS_SCHEMA,
    SCORES_SCHEMA,
    STAGE_CHUNK_RECORDED,
    ChunkTask,
    FaultHook,
    cached_model,
    chunk_file,
)
from serving.rescore.chunks import ChunkInputs, bucket_count, partition_inputs
from serving.rescore.drift import DriftReport, build_report, merge_counts, render_markdown
from serving.rescore.engines import DaskEngine, Engine, LocalEngine
from serving.rescore.export import (
    ExportSettings,
    OutputPaths,
    TableWriter,
    export_rejects,
    export_scores,
    open_writer,
    output_format,
)
from serving.rescore.model_source import resolve_model
from serving.rescore.options import RescoreOptions, key_arguments
from serving.rescore.preflight import check_database, check_output_folder, check_outputs_outside_data
from serving.rescore.progress import Progress
from serving.rescore.routing_pass import ROUTING_SCHEMA, route_chunk
from training.bundle import ScorerBundle
from training.tracking import resolve_tracking_uri

logger = logging.getLogger(__name__)

STAGE_CHUNK_ROUTED = "chunk_routed"
SUMMARY_FORMAT = "leadscore.rescore_summary"


@dataclass
class RescoreSummary:
    """Counts and outputs of a finished run. ``leads_read == scored + sum(rejects.values())``."""

    run_key: str
    run_dir: str
    model_uri: str
    model_version: str
    as_of: str
    engine: str
    chunks: int
    chunks_resumed: int
    leads_read: int
    scored: int
    rejects: dict[str, int]
    orphan_activities: int
    orphan_stage_changes: int
    unseen_category_leads: int
    drift_threshold: float
    drifted: list[str]
    max_psi: float | None
    seconds: float
    leads_per_second: float
    outputs: dict[str, str]
    routing: dict[str, int] | None = None
    replayed: bool = False

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    def to_dict(self) -> dict[str, Any]:
        return {"format": SUMMARY_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RescoreSummary:
        values = {key: value for key, value in payload.items() if key != "format"}
        return cls(**values)


def rescore(options: RescoreOptions, *, fault_hook: FaultHook | None = None) -> RescoreSummary:
    """Score every open lead of ``options.data_dir`` as of ``options.as_of`` and write the outputs.

    ``fault_hook`` is called as ``hook(chunk, stage)`` at the stages named in
    ``chunk_scoring`` and ``STAGE_CHUNK_ROUTED``; tests raise from it to simulate a crash. It
    runs with the local engine only, because Dask tasks run in other processes.
    """
    started = time.perf_counter()
    settings = ExportSettings(
        fmt=output_format(options.out),
        excel=options.excel,
        header_locale=options.header_locale,
        locale=options.locale,
        top_reasons=options.top_reasons,
        with_routing=options.route,
    )
    paths = OutputPaths.beside(options.out)
    check_outputs_outside_data(paths, options.data_dir)
    check_output_folder(paths)
    routing = _RoutingSetup.from_options(options)
    tracking_uri = resolve_tracking_uri(options.tracking_uri, options.work_dir)
    holder = f"--as-of {options.as_of.isoformat()}, --data {options.data_dir}"
    with (
        hold_output_lock(paths.lock, options.out, holder),
        tempfile.TemporaryDirectory(prefix="leadscore-rescore-model-") as download_dir,
    ):
        model = resolve_model(options.model_uri, tracking_uri, Path(download_dir))
        arguments = key_arguments(
            options,
            model_version=model.bundle.bundle_version,
            model_uri=model.uri,
            policy_version=routing.policy_version if routing else None,
            database=routing.database_label if routing else None,
        )
        with open_run_folder(options.runs_root, arguments) as folder:
            stored = _stored_summary(folder, paths)
            if stored is not None:
                return stored
            _save_model(folder, model.bundle)
            return _run(options, folder, settings, routing, model.uri, started, fault_hook)


def _run(
    options: RescoreOptions,
    folder: RunFolder,
    settings: ExportSettings,
    routing: _RoutingSetup | None,
    model_uri: str,
    started: float,
    fault_hook: FaultHook | None,
) -> RescoreSummary:
    buckets = bucket_count(_lead_rows(options.data_dir), options.chunk_size)
    done = folder.verified_chunks()
    pending = [chunk for chunk in range(buckets) if chunk not in done]
    if pending and (folder.manifest.partition is None or not folder.partitions_dir.is_dir()):
        rows = partition_inputs(options.data_dir, folder.partitions_dir, buckets)
        folder.record_partition(PartitionRecord(buckets=buckets, rows=rows))
    partition = folder.manifest.partition
    if partition is None or partition.buckets != buckets:
        raise RuntimeError(
            f"run folder {folder.path} has no partition of {buckets} buckets; delete it and run again"
        )

    tasks = _chunk_tasks(options, folder, pending)
    engine_context: AbstractContextManager[Engine]
    if options.engine == "dask":
        engine_context = DaskEngine(
            options.scheduler, workers=options.dask_workers, processes=options.dask_processes
        )
    else:
        engine_context = nullcontext(LocalEngine(fault_hook))
    progress = Progress(
        total_chunks=buckets,
        done_chunks=len(done),
        done_leads=sum(folder.manifest.chunks[chunk].leads for chunk in done),
        mode=options.progress,
        interval=options.progress_interval,
    )
    logger.info(
        "rescoring %s as of %s: %d chunk(s), %d already done, engine %s",
        options.data_dir,
        options.as_of.isoformat(),
        buckets,
        len(done),
        options.engine,
    )
    try:
        with engine_context as engine:
            if isinstance(engine, DaskEngine):
                engine.check_workers(folder.path, Path(options.data_dir))
            for record in engine.run(tasks):
                folder.record_chunk(record)
                progress.advance(leads=record.leads, scored=record.scored)
                if fault_hook is not None:
                    fault_hook(record.chunk, STAGE_CHUNK_RECORDED)
    finally:
        progress.close()

    if routing is not None:
        _route_chunks(folder, routing, buckets, options, fault_hook)
    return _finish(options, folder, settings, buckets, model_uri, started, resumed=len(done))


def _lead_rows(data_dir: Path) -> int:
    path = table_path(data_dir, "leads")
    if not path.exists():
        raise ConfigError(
            f"{path} not found; a data folder needs leads.parquet "
            "(create it with 'leadscore data import' or 'leadscore data generate')"
        )
    return int(pq.ParquetFile(path).metadata.num_rows)


def _save_model(folder: RunFolder, bundle: ScorerBundle) -> None:
    """Save ``bundle`` into the run folder once; a resumed run checks that it is the same model."""
    if folder.model_dir.is_dir():
        saved = ScorerBundle.load(folder.model_dir)
        if saved.bundle_version == bundle.bundle_version:
            return
        logger.warning(
            "run folder %s contains model %s, not %s; starting the run over",
            folder.path,
            saved.bundle_version,
            bundle.bundle_version,
        )
        folder.reset()
    partial = folder.path / "model.partial"
    shutil.rmtree(partial, ignore_errors=True)
    bundle.save(partial)
    partial.replace(folder.model_dir)
    cached_model.cache_clear()


def _scoring_attributes(data_dir: Path, bundle: ScorerBundle) -> tuple[CustomAttribute, ...]:
    """Return the data folder's custom attributes plus those the model uses that it does not declare.

    A folder imported without a mapping file has no declarations, while the model records the type
    of each attribute it was trained on. An attribute missing from the data altogether is unknown
    for every lead, as in the API.
    """
    declared = read_attributes(data_dir)
    names = {attribute.name for attribute in declared}
    added = [attribute for attribute in bundle.attributes if attribute.name not in names]
    if added:
        logger.info(
            "the data folder does not declare %s; reading them as the model declares them",
            [attribute.name for attribute in added],
        )
    return (*declared, *added)


def _chunk_tasks(options: RescoreOptions, folder: RunFolder, chunks: list[int]) -> list[ChunkTask]:
    orders = table_path(options.data_dir, "orders")
    bundle, _ = cached_model(folder.model_dir)
    attributes = _scoring_attributes(options.data_dir, bundle)
    return [
        ChunkTask(
            chunk=chunk,
            inputs=ChunkInputs(
                partitions=folder.partitions_dir,
                bucket=chunk,
                orders_path=orders if orders.exists() else None,
                attributes=attributes,
            ),
            chunks_dir=folder.chunks_dir,
            model_dir=folder.model_dir,
            as_of=options.as_of,
            locale=options.locale,
            top_reasons=options.top_reasons,
        )
        for chunk in chunks
    ]


# --- routing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RoutingSetup:
    """The routing store URL and the policy, read before the run so their identity keys the run."""

    db_url: str
    database_label: str
    policy: Any
    policy_version: str

    @classmethod
    def from_options(cls, options: RescoreOptions) -> _RoutingSetup | None:
        if not options.route:
            return None
        if not options.db_url:
            raise ConfigError(
                "--route needs the routing database: pass --db URL or set db_url in the settings"
            )
        from serving.policy_config import load_policy
        from serving.store import normalize_url

        policy = load_policy(options.policy_file)
        label = normalize_url(options.db_url).render_as_string(hide_password=True)
        check_database(options.db_url, label)
        return cls(options.db_url, label, policy, policy.version)


def _route_chunks(
    folder: RunFolder,
    routing: _RoutingSetup,
    buckets: int,
    options: RescoreOptions,
    fault_hook: FaultHook | None,
) -> None:
    from serving.store import open_store

    store = open_store(routing.db_url)
    try:
        for chunk in range(buckets):
            record = folder.manifest.chunks[chunk]
            if record.routing is not None:
                continue
            scores = pq.read_table(chunk_file(folder.chunks_dir, chunk, "scores"))
            table, counts = route_chunk(store, routing.policy, scores, locale=options.locale)
            path = _routing_file(folder, chunk)
            write_parquet_atomic(path, table)
            record.files[path.name] = file_sha256(path)
            record.routing = counts
            folder.record_chunk(record)
            logger.info("chunk %d routed: %s", chunk, counts)
            if fault_hook is not None:
                fault_hook(chunk, STAGE_CHUNK_ROUTED)
    finally:
        store.dispose()


def _routing_file(folder: RunFolder, chunk: int) -> Path:
    return folder.chunks_dir / f"chunk-{chunk:06d}.routing.parquet"


# --- outputs ------------------------------------------------------------------------------------------


def _finish(
    options: RescoreOptions,
    folder: RunFolder,
    settings: ExportSettings,
    buckets: int,
    model_uri: str,
    started: float,
    *,
    resumed: int,
) -> RescoreSummary:
    paths = OutputPaths.beside(options.out)
    records = [folder.manifest.chunks[chunk] for chunk in range(buckets)]
    checksums = _write_tables(folder, settings, paths, buckets)
    bundle, counter = cached_model(folder.model_dir)
    counts = merge_counts(
        read_json(chunk_file(folder.chunks_dir, chunk, "drift")) for chunk in range(buckets)
    )
    report = build_report(
        counter, counts, threshold=options.drift_threshold, model_version=bundle.bundle_version
    )
    checksums.update(_write_drift(report, paths))

    rejects: Counter[str] = Counter()
    for record in records:
        rejects.update(record.rejects)
    leads_read = sum(record.leads for record in records)
    scored = sum(record.scored for record in records)
    partition = folder.manifest.partition
    expected_leads = partition.rows["leads"] if partition is not None else leads_read
    if leads_read != expected_leads or leads_read != scored + sum(rejects.values()):
        raise RuntimeError(
            f"rescoring counts do not add up: {expected_leads} leads partitioned, {leads_read} read, "
            f"{scored} scored, {sum(rejects.values())} rejected; this is a bug, please report it"
        )
    seconds = time.perf_counter() - started
    summary = RescoreSummary(
        run_key=folder.manifest.run_key,
        run_dir=str(folder.path),
        model_uri=model_uri,
        model_version=bundle.bundle_version,
        as_of=options.as_of.isoformat(),
        engine=options.engine,
        chunks=buckets,
        chunks_resumed=resumed,
        leads_read=leads_read,
        scored=scored,
        rejects=dict(sorted(rejects.items())),
        orphan_activities=sum(record.orphan_activities for record in records),
        orphan_stage_changes=sum(record.orphan_stage_changes for record in records),
        unseen_category_leads=sum(record.unseen_category_leads for record in records),
        drift_threshold=options.drift_threshold,
        drifted=report.drifted,
        max_psi=None if report.max_psi is None else round(report.max_psi, 6),
        seconds=round(seconds, 3),
        leads_per_second=round(leads_read / seconds, 1) if seconds > 0 else 0.0,
        outputs={name: str(path) for name, path in asdict(paths).items()},
        routing=_routing_totals(records) if options.route else None,
    )
    checksums[paths.summary] = write_json_atomic(paths.summary, summary.to_dict())
    folder.record_completion(
        {
            "summary": summary.to_dict(),
            "checksums": {str(path): checksums[path] for path in paths.all()},
        }
    )
    if not options.keep_checkpoints:
        folder.remove_checkpoints()
    logger.info(
        "rescoring done: %d leads read, %d scored, %d not scored %s, %d drifted, %.1f s",
        leads_read,
        scored,
        summary.rejected,
        summary.rejects,
        len(report.drifted),
        seconds,
    )
    return summary


def _write_tables(
    folder: RunFolder, settings: ExportSettings, paths: OutputPaths, buckets: int
) -> dict[Path, str]:
    """Write the scores and rejects files from the chunk files, in chunk order; return their SHA-256."""
    empty_scores = export_scores(
        SCORES_SCHEMA.empty_table(), ROUTING_SCHEMA.empty_table() if settings.with_routing else None, settings
    )
    empty_rejects = export_rejects(REJECTS_SCHEMA.empty_table(), settings.locale)
    with (
        open_writer(paths.scores, settings, empty_scores) as scores_writer,
        open_writer(paths.rejects, settings, empty_rejects) as rejects_writer,
    ):
        for chunk in range(buckets):
            scores = pq.read_table(chunk_file(folder.chunks_dir, chunk, "scores"))
            routing = pq.read_table(_routing_file(folder, chunk)) if settings.with_routing else None
            if scores.num_rows:
                scores_writer.write(export_scores(scores, routing, settings))
            rejects = pq.read_table(chunk_file(folder.chunks_dir, chunk, "rejects"))
            if rejects.num_rows:
                rejects_writer.write(export_rejects(rejects, settings.locale))
    return _committed_digests(scores_writer, rejects_writer)


def _committed_digests(*writers: TableWriter) -> dict[Path, str]:
    digests: dict[Path, str] = {}
    for writer in writers:
        if writer.digest is None:
            raise RuntimeError(f"{writer.path} was not committed; this is a bug, please report it")
        digests[writer.path] = writer.digest
    return digests


def _write_drift(report: DriftReport, paths: OutputPaths) -> dict[Path, str]:
    """Write the drift report as JSON and Markdown in both languages; return the SHA-256 of each file."""
    digests = {paths.drift_json: write_json_atomic(paths.drift_json, report.to_dict())}
    languages: tuple[tuple[Path, Locale], ...] = (
        (paths.drift_markdown, "en"),
        (paths.drift_markdown_zh, "zh-CN"),
    )
    for path, locale in languages:
        digests[path] = write_text_atomic(path, render_markdown(report, locale))
    return digests


def _routing_totals(records: list[Any]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for record in records:
        totals.update(record.routing or {})
    return dict(sorted(totals.items()))


def _stored_summary(folder: RunFolder, paths: OutputPaths) -> RescoreSummary | None:
    """Return the summary of a completed run whose output files are all unchanged, else None."""
    completed = folder.manifest.completed
    if not completed:
        return None
    checksums: dict[str, str] = completed.get("checksums", {})
    intact = all(
        Path(path).is_file() and file_sha256(Path(path)) == digest for path, digest in checksums.items()
    )
    if not intact or set(checksums) != {str(path) for path in paths.all()}:
        logger.info(
            "run %s was completed but its outputs changed or are missing; computing them again", folder.path
        )
        folder.manifest.completed = None
        folder.save_manifest()
        return None
    summary = RescoreSummary.from_dict(completed["summary"])
    summary.replayed = True
    logger.info("run %s is already complete; its outputs are unchanged, nothing to do", folder.path)
    return summary
