"""Engines that run ``process_chunk`` over the pending chunks: in this process, or on a Dask cluster.

Both engines call the same function on the same chunk tasks, and each chunk writes its own
files, so their outputs are identical. Only where and in what order the chunks run differs.
The driver (``run.py``) records each finished chunk in the manifest as results arrive.

The Dask engine either starts a ``LocalCluster`` on 127.0.0.1 or connects to an existing
scheduler. Workers read the data folder and write into the run folder by path, so on a
cluster of several machines both must be on a filesystem that every worker mounts at the
same path. Every worker also needs leadscore installed. ``DaskEngine`` checks both at start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from leadscore.errors import ConfigError
from serving.rescore.checkpoint import ChunkRecord
from serving.rescore.chunk_scoring import ChunkTask, FaultHook, process_chunk

logger = logging.getLogger(__name__)

DEFAULT_DASK_WORKERS = 2
CONNECT_TIMEOUT_SECONDS = 30


class Engine(Protocol):
    """Runs chunk tasks and yields each chunk's record as soon as it is finished."""

    name: str

    def run(self, tasks: Sequence[ChunkTask]) -> Iterator[ChunkRecord]: ...


class LocalEngine:
    """Runs the chunks one after another in this process."""

    name = "local"

    def __init__(self, fault_hook: FaultHook | None = None) -> None:
        self.fault_hook = fault_hook

    def run(self, tasks: Sequence[ChunkTask]) -> Iterator[ChunkRecord]:
        for task in tasks:
            yield process_chunk(task, self.fault_hook)


class DaskEngine:
    """Runs the chunks as tasks on a Dask cluster; use as a context manager.

    ``scheduler`` is the address of an existing scheduler (``tcp://HOST:8786``). Without it a
    LocalCluster of ``workers`` single-threaded workers starts on 127.0.0.1, as separate
    processes unless ``processes`` is False (threads of this process, which start faster but
    share one interpreter).
    """

    name = "dask"

    def __init__(
        self, scheduler: str | None = None, *, workers: int = DEFAULT_DASK_WORKERS, processes: bool = True
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--dask-workers must be 1 or more; got {workers}")
        self.scheduler = scheduler
        self.workers = workers
        self.processes = processes
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> DaskEngine:
        from distributed import Client, LocalCluster

        if self.scheduler is None:
            options: dict[str, Any] = {
                "n_workers": self.workers,
                "threads_per_worker": 1,
                "processes": self.processes,
                "dashboard_address": None,
            }
            if self.processes:
                options["host"] = "127.0.0.1"
            self._cluster = LocalCluster(**options)
            self._client = Client(self._cluster)
            logger.info(
                "started a Dask LocalCluster with %d worker(s) (%s) at %s",
                self.workers,
                "processes" if self.processes else "threads",
                self._cluster.scheduler_address,
            )
        else:
            try:
                self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT_SECONDS)
            except OSError as error:
                raise ConfigError(
                    f"cannot connect to the Dask scheduler at {self.scheduler} ({error}); "
                    "check the address and that the scheduler is running"
                ) from None
            logger.info(
                "connected to the Dask scheduler at %s with %d worker(s)",
                self.scheduler,
                len(self._client.scheduler_info().get("workers", {})),
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = None
        self._cluster = None

    def check_workers(self, run_dir: Path, data_dir: Path) -> None:
        """Raise ConfigError unless every worker can import leadscore and find both folders."""
        if self._client is None:
            raise RuntimeError("DaskEngine is not started; use it as a context manager")
        try:
            answers = self._client.run(worker_finds_folders, str(run_dir), str(data_dir))
        except (ModuleNotFoundError, ImportError) as error:
            raise ConfigError(
                f"a Dask worker cannot import leadscore ({error}); "
                "install leadscore in the environment of every worker"
            ) from None
        blind = sorted(address for address, found in answers.items() if not found)
        if blind:
            raise ConfigError(
                f"Dask worker(s) {blind} cannot see {run_dir} or {data_dir}; put --work-dir and --data on a "
                "filesystem that every worker mounts at the same path"
            )

    def run(self, tasks: Sequence[ChunkTask]) -> Iterator[ChunkRecord]:
        if self._client is None:
            raise RuntimeError("DaskEngine is not started; use it as a context manager")
        from distributed import as_completed

        if not tasks:
            return
        futures = self._client.map(process_chunk, list(tasks), pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            pending = [future for future in futures if not future.done()]
            if pending:
                self._client.cancel(pending)
                logger.info("cancelled %d pending chunk task(s)", len(pending))


def worker_finds_folders(run_dir: str, data_dir: str) -> bool:
    """Return whether both folders exist for this process; runs on each Dask worker."""
    return os.path.isdir(run_dir) and os.path.isdir(data_dir)  # noqa: PTH112 - runs remotely on plain strings
