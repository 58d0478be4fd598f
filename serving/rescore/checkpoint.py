"""The run folder of a rescoring run: its key, lock, manifest and atomic file writes.

A run folder is keyed by a SHA-256 hash of everything that decides the run's results: the
input files, as_of, the model version, the chunk size, the output options and so on. So
starting the same command again finds the same folder and continues where it stopped.
Layout::

    ROOT/<key>/run.json        the arguments the key was computed from
    ROOT/<key>/manifest.json   partition counts, one record per finished chunk, completion
    ROOT/<key>/lock            flock(2) held by the process that runs the folder
    ROOT/<key>/model/          the scorer bundle, saved once so every worker scores with it
    ROOT/<key>/partitions/     input rows split into buckets by lead (see chunks.py)
    ROOT/<key>/chunks/         per-chunk scores, rejects, drift counts and routing results

Every file is written to a temporary name and renamed, so a reader sees either the old file
or the whole new one. The manifest is written last for each chunk: a chunk whose files exist
but that the manifest does not list is computed again, and a listed chunk whose file checksum
does not match is computed again too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.errors import ConflictError, InputFileError

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "leadscore.rescore_manifest"
MANIFEST_VERSION = 1
RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "lock"
MODEL_DIR = "model"
PARTITIONS_DIR = "partitions"
CHUNKS_DIR = "chunks"
KEY_LENGTH = 20
_TEMP_MARKER = ".tmp-"


def run_key(arguments: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of ``arguments`` as canonical JSON (sorted keys)."""
    text = json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temporary_path(path: Path) -> Path:
    """Return a sibling temporary name unique to this process and thread."""
    return path.with_name(f".{path.name}{_TEMP_MARKER}{os.getpid()}-{threading.get_ident()}")


def write_atomic(
    path: Path, write: Callable[[Path], None], *, before_rename: Callable[[], None] | None = None
) -> None:
    """Write ``path`` through ``write(temporary)`` and rename the result into place.

    ``before_rename`` runs between the two steps; tests use it to stop a run in the middle
    of writing a chunk. A failure leaves the temporary file behind, as a killed process
    would, and ``remove_temporaries`` deletes it when the run starts again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    write(temporary)
    if before_rename is not None:
        before_rename()
    temporary.replace(path)


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = False) -> str:
    """Write ``data`` atomically and return its SHA-256 hex digest.

    The digest is computed from ``data`` itself, not read back from ``path``, so it describes
    what this process wrote even if another process replaces the file right after the rename.
    ``durable`` also fsyncs the file before the rename.
    """

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())

    write_atomic(path, write)
    return hashlib.sha256(data).hexdigest()


def write_json_atomic(path: Path, payload: Any, *, durable: bool = False) -> str:
    """Write ``payload`` as UTF-8 JSON atomically and return the SHA-256 of the bytes written."""
    text = json.dumps(payload, ensure_ascii=False, indent=1, allow_nan=False)
    return write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_text_atomic(path: Path, text: str) -> str:
    """Write ``text`` as UTF-8 atomically and return the SHA-256 of the bytes written."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_parquet_atomic(
    path: Path, table: pa.Table, *, before_rename: Callable[[], None] | None = None
) -> None:
    """Write an Arrow table as Parquet atomically."""
    write_atomic(path, lambda temporary: pq.write_table(table, temporary), before_rename=before_rename)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputFileError(
            f"{path} is not valid JSON ({error}); delete the run folder {path.parent} to start the run over"
        ) from None


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files left by an interrupted write below ``folder``; return how many."""
    removed = 0
    if not folder.exists():
        return removed
    for path in folder.rglob(f"*{_TEMP_MARKER}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


@dataclass
class ChunkRecord:
    """Result of one finished chunk: lead counts and the checksums of its files."""

    chunk: int
    leads: int
    scored: int
    rejects: dict[str, int]
    orphan_activities: int
    orphan_stage_changes: int
    unseen_category_leads: int
    files: dict[str, str]
    seconds: float
    routing: dict[str, int] | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ChunkRecord:
        return cls(**dict(payload))


@dataclass
class PartitionRecord:
    """Row counts of the partition pass: how many rows of each table went into the buckets."""

    buckets: int
    rows: dict[str, int]


@dataclass
class Manifest:
    """Progress of one run; written atomically after every change."""

    run_key: str
    partition: PartitionRecord | None = None
    chunks: dict[int, ChunkRecord] = field(default_factory=dict)
    completed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "run_key": self.run_key,
            "partition": asdict(self.partition) if self.partition is not None else None,
            "chunks": {str(number): asdict(record) for number, record in sorted(self.chunks.items())},
            "completed": self.completed,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], source: Path) -> Manifest:
        if payload.get("format") != MANIFEST_FORMAT or payload.get("version") != MANIFEST_VERSION:
            raise InputFileError(
                f"{source} is not a version {MANIFEST_VERSION} rescoring manifest; "
                f"delete the run folder {source.parent} to start the run over"
            )
        partition = payload.get("partition")
        return cls(
            run_key=str(payload["run_key"]),
            partition=PartitionRecord(**partition) if partition else None,
            chunks={int(number): ChunkRecord.from_dict(item) for number, item in payload["chunks"].items()},
            completed=payload.get("completed"),
        )


class RunFolder:
    """One run folder, locked by this process while it is open."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def partitions_dir(self) -> Path:
        return self.path / PARTITIONS_DIR

    @property
    def chunks_dir(self) -> Path:
        return self.path / CHUNKS_DIR

    def save_manifest(self) -> None:
        write_json_atomic(self.path / MANIFEST_FILE, self.manifest.to_dict(), durable=True)

    def record_partition(self, record: PartitionRecord) -> None:
        self.manifest.partition = record
        self.save_manifest()

    def record_chunk(self, record: ChunkRecord) -> None:
        self.manifest.chunks[record.chunk] = record
        self.save_manifest()

    def record_completion(self, outputs: Mapping[str, Any]) -> None:
        self.manifest.completed = dict(outputs)
        self.save_manifest()

    def verified_chunks(self) -> set[int]:
        """Return the recorded chunks whose files are all present and unchanged.

        A record whose files are missing or differ from their checksums is dropped, so that
        chunk is computed again.
        """
        verified: set[int] = set()
        for number, record in list(self.manifest.chunks.items()):
            problems = [name for name, digest in record.files.items() if not self._matches(name, digest)]
            if problems:
                logger.warning(
                    "chunk %d of run %s: file(s) %s are missing or changed; the chunk is computed again",
                    number,
                    self.manifest.run_key[:KEY_LENGTH],
                    problems,
                )
                del self.manifest.chunks[number]
                continue
            verified.add(number)
        return verified

    def _matches(self, name: str, digest: str) -> bool:
        path = self.chunks_dir / name
        return path.is_file() and file_sha256(path) == digest

    def reset(self) -> None:
        """Forget every result of this run (the arguments stay) so it starts over."""
        for folder in (self.partitions_dir, self.chunks_dir, self.model_dir):
            shutil.rmtree(folder, ignore_errors=True)
        self.manifest = Manifest(run_key=self.manifest.run_key)
        self.save_manifest()

    def remove_checkpoints(self) -> None:
        """Delete the partitions and chunk files; the manifest and run.json stay as a record."""
        for folder in (self.partitions_dir, self.chunks_dir):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def open_run_folder(root: Path, arguments: Mapping[str, Any]) -> Iterator[RunFolder]:
    """Create or reopen the run folder of ``arguments`` under ``root`` and hold its lock.

    Raises ConflictError when another process holds the lock, which happens when the same
    command is already running.
    """
    key = run_key(arguments)
    path = Path(root) / key[:KEY_LENGTH]
    path.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(path / LOCK_FILE, key):
        run_file = path / RUN_FILE
        if run_file.exists():
            stored = read_json(run_file)
            if stored.get("run_key") != key:
                raise InputFileError(
                    f"run folder {path} belongs to another run (key {str(stored.get('run_key'))[:12]}...); "
                    "delete it to start over"
                )
        else:
            write_json_atomic(run_file, {"run_key": key, "arguments": dict(arguments)}, durable=True)
        manifest_file = path / MANIFEST_FILE
        if manifest_file.exists():
            manifest = Manifest.from_dict(read_json(manifest_file), manifest_file)
            logger.info(
                "resuming rescoring run %s in %s: %d chunk(s) recorded",
                key[:KEY_LENGTH],
                path,
                len(manifest.chunks),
            )
        else:
            manifest = Manifest(run_key=key)
            logger.info("starting rescoring run %s in %s", key[:KEY_LENGTH], path)
        removed = remove_temporaries(path)
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted write in %s", removed, path)
        folder = RunFolder(path, manifest)
        folder.save_manifest()
        yield folder


@contextmanager
def hold_output_lock(lock_path: Path, out: Path, holder: str) -> Iterator[None]:
    """Hold flock(2) on ``lock_path`` while a run writes the outputs of ``--out``.

    Two runs with different arguments have different run folders, so only this lock stops
    them from writing the same output files at once. ``holder`` describes this run (for
    example its --as-of and --data) and is stored in the lock file for the other run's error.
    Raises ConflictError at once, without waiting, when another process holds the lock.
    """

    def conflict(other: str) -> ConflictError:
        return ConflictError(
            f"--out {out} is being written by another rescoring run ({other}; lock file {lock_path}); "
            "wait for that run to finish or choose another --out"
        )

    with _flock(lock_path, f"process {os.getpid()}, {holder}", conflict):
        yield


@contextmanager
def _exclusive_lock(path: Path, key: str) -> Iterator[None]:
    """Hold the run folder's lock. Raises ConflictError when the same run is already in progress."""

    def conflict(holder: str) -> ConflictError:
        return ConflictError(
            f"rescoring run {key[:KEY_LENGTH]} is already running (process {holder}) in {path.parent}; "
            "wait for it to finish or stop that process first"
        )

    with _flock(path, str(os.getpid()), conflict):
        yield


@contextmanager
def _flock(path: Path, holder: str, conflict: Callable[[str], ConflictError]) -> Iterator[None]:
    """Hold flock(2) on ``path``; the kernel releases it when the process dies, even by SIGKILL.

    ``holder`` is written into the file once the lock is taken. When another process holds
    the lock, ``conflict`` gets that process's ``holder`` text and its error is raised.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows has no fcntl
        logger.warning("file locks are not available on this system; do not start two runs on %s", path)
        yield
        return
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise conflict(handle.read().strip() or "unknown process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder)
        handle.flush()
        yield
    finally:
        handle.close()
