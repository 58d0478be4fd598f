"""Coalesce concurrent scoring requests of one worker into one scorer call (micro-batching).

Requests hand their records to one scoring thread per worker. While that thread scores a
batch, new requests queue up, and the next batch takes all of them that fit, so one
LightGBM call and one thread hand-off serve several requests. By default a batch never
waits for more requests. Small payloads take the scorer's row path (``training.row_scorer``),
where a one-lead call costs about a millisecond and each further lead about half of one
(measured by ``experiments/bench_service.py`` on a 2-CPU VM), so waiting would add more
latency than it saves. With a positive ``gather_seconds``, a batch waits that long for more
requests when the previous call combined several (under load). That pays off only when one
call costs far more than the wait, as on the table path.

A batch only combines requests with the same locale and the same cutoff: an explicit
``as_of``, or "now", which is then the moment the batch starts. Requests that share a lead
id never go into one batch, because the scorer rejects repeated lead ids. When a combined
call fails, each request is scored again alone, so an error reaches only the request that
caused it. The scorer scores each lead independently of the others in a call (see
``training.scorer``), so batching never changes a score.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leadscore.errors import LeadscoreError

logger = logging.getLogger(__name__)

# One scorer call: (records, cutoff, locale) -> score records in input order.
ScoreFunction = Callable[[list[dict[str, Any]], pd.Timestamp, str], list[dict[str, Any]]]

DEFAULT_MAX_BATCH_LEADS = 2_000
# Under load (the last call combined several requests), a batch waits this long for more
# requests before its call starts. Zero takes only the requests already queued.
DEFAULT_GATHER_SECONDS = 0.0
# A request waits at most this long for its batch; past it the worker is overloaded.
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass
class _Job:
    records: list[dict[str, Any]]
    as_of: pd.Timestamp | None
    locale: str
    lead_ids: frozenset[str]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[dict[str, Any]] | None = None
    cutoff: pd.Timestamp | None = None
    error: Exception | None = None
    # Set for a request waiting on an event loop (``score_async``) instead of a thread.
    future: asyncio.Future[None] | None = None

    @property
    def key(self) -> tuple[str, pd.Timestamp | None]:
        return (self.locale, self.as_of)


class BatchTimeoutError(LeadscoreError):
    """A request waited longer than the batcher's timeout for its scores (the worker is overloaded)."""

    code = "overloaded"
    http_status = 503


class ScoreBatcher:
    """One scoring thread per worker that scores queued requests together."""

    def __init__(
        self,
        score: ScoreFunction,
        *,
        max_batch_leads: int = DEFAULT_MAX_BATCH_LEADS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        gather_seconds: float = DEFAULT_GATHER_SECONDS,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._score = score
        self._max_batch_leads = max_batch_leads
        self._gather_seconds = gather_seconds
        self._under_load = False
        self._timeout_seconds = timeout_seconds
        self._on_batch = on_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._carried: list[_Job] = []
        self._thread = threading.Thread(target=self._run, name="leadscore-scorer", daemon=True)
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the scoring thread (once)."""
        with self._lock:
            if not self._started:
                self._thread.start()
                self._started = True

    def stop(self, timeout: float = 10.0) -> None:
        """Let the scoring thread finish the queued work and end."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)

    def score(
        self, records: Sequence[dict[str, Any]], *, as_of: pd.Timestamp | None, locale: str
    ) -> tuple[pd.Timestamp, list[dict[str, Any]]]:
        """Score ``records`` (possibly together with other requests); return the cutoff used and the scores.

        ``as_of`` None means now. Raises what the scorer raised for these records, or
        BatchTimeoutError when the scores did not come within the timeout.
        """
        job = self._submit(records, as_of, locale)
        if not job.done.wait(self._timeout_seconds):
            raise self._timeout_error(job)
        return self._outcome(job)

    async def score_async(
        self, records: Sequence[dict[str, Any]], *, as_of: pd.Timestamp | None, locale: str
    ) -> tuple[pd.Timestamp, list[dict[str, Any]]]:
        """Score ``records`` as ``score`` does, waiting on the running event loop instead of a thread.

        An async endpoint hands its records straight to the scoring thread this way, without a
        detour through a thread pool, which saves a thread hand-off per request.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        job = self._submit(records, as_of, locale, future=future)
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await future
        except TimeoutError:
            raise self._timeout_error(job) from None
        return self._outcome(job)

    def _submit(
        self,
        records: Sequence[dict[str, Any]],
        as_of: pd.Timestamp | None,
        locale: str,
        *,
        future: asyncio.Future[None] | None = None,
    ) -> _Job:
        self.start()
        job = _Job(
            records=list(records),
            as_of=as_of,
            locale=locale,
            lead_ids=frozenset(str(record.get("lead_id")) for record in records),
            future=future,
        )
        self._queue.put(job)
        return job

    def _timeout_error(self, job: _Job) -> BatchTimeoutError:
        return BatchTimeoutError(
            f"scoring {len(job.records)} lead(s) waited more than {self._timeout_seconds:.0f} s; "
            "the worker is overloaded, retry later or add workers"
        )

    @staticmethod
    def _outcome(job: _Job) -> tuple[pd.Timestamp, list[dict[str, Any]]]:
        if job.error is not None:
            raise job.error
        if job.results is None or job.cutoff is None:
            raise RuntimeError("the scoring thread finished a job without results")
        return job.cutoff, job.results

    # --- scoring thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._carried.pop(0) if self._carried else self._queue.get()
            if first is None:
                return
            batch = self._collect(first)
            self._score_batch(batch)

    def _collect(self, first: _Job) -> list[_Job]:
        """Return ``first`` plus every waiting job that can share its scorer call."""
        batch = [first]
        seen = set(first.lead_ids)
        leads = len(first.records)
        candidates = self._carried
        self._carried = []
        deadline = time.monotonic() + (self._gather_seconds if self._under_load else 0.0)
        while True:
            remaining = deadline - time.monotonic()
            try:
                candidate = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if candidate is None:
                self._queue.put(None)
                break
            candidates.append(candidate)
        for job in candidates:
            fits = leads + len(job.records) <= self._max_batch_leads
            if job.key == first.key and fits and not (job.lead_ids & seen):
                batch.append(job)
                seen |= job.lead_ids
                leads += len(job.records)
            else:
                self._carried.append(job)
        self._under_load = len(batch) > 1 or bool(self._carried)
        return batch

    def _score_batch(self, batch: list[_Job]) -> None:
        first = batch[0]
        cutoff = first.as_of if first.as_of is not None else pd.Timestamp.now(tz="UTC")
        records = [record for job in batch for record in job.records]
        started = time.perf_counter()
        try:
            results = self._score(records, cutoff, first.locale)
        except Exception as error:  # handed to the waiting request threads, which raise it
            if len(batch) == 1:
                self._finish(first, cutoff, error=error)
                return
            logger.info(
                "a batch of %d requests failed (%s); scoring each alone", len(batch), type(error).__name__
            )
            for job in batch:
                self._score_batch([job])
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), len(records), time.perf_counter() - started)
        position = 0
        for job in batch:
            count = len(job.records)
            self._finish(job, cutoff, results=results[position : position + count])
            position += count

    @staticmethod
    def _finish(
        job: _Job,
        cutoff: pd.Timestamp,
        *,
        results: list[dict[str, Any]] | None = None,
        error: Exception | None = None,
    ) -> None:
        job.cutoff = cutoff
        job.results = results
        job.error = error
        job.done.set()
        if job.future is not None:
            try:
                job.future.get_loop().call_soon_threadsafe(_resolve, job.future)
            except RuntimeError as closed:  # The loop closed because the worker is stopping.
                logger.debug(
                    "event loop closed before %d scored lead(s) were handed back: %s",
                    len(job.records),
                    closed,
                )


def _resolve(future: asyncio.Future[None]) -> None:
    """Wake the coroutine waiting on ``future``, unless the wait ended already (timeout or cancellation)."""
    if not future.done():
        future.set_result(None)
