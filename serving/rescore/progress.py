"""Progress of a rescoring run: a tqdm bar on a terminal, periodic log lines everywhere else."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any, Literal

logger = logging.getLogger(__name__)

ProgressMode = Literal["auto", "bar", "log", "off"]
DEFAULT_LOG_INTERVAL_SECONDS = 10.0


class Progress:
    """Counts finished chunks and leads; renders a bar or logs a line at most every ``interval`` seconds.

    ``auto`` draws a bar when ``stream`` is a terminal and logs otherwise (for cron jobs and
    CI logs, where a redrawn bar is unreadable).
    """

    def __init__(
        self,
        *,
        total_chunks: int,
        done_chunks: int = 0,
        done_leads: int = 0,
        mode: ProgressMode = "auto",
        interval: float = DEFAULT_LOG_INTERVAL_SECONDS,
        stream: IO[str] | None = None,
    ) -> None:
        self.total_chunks = total_chunks
        self.done_chunks = done_chunks
        self.leads = done_leads
        self.scored = 0
        self.interval = interval
        self.started = time.monotonic()
        self._new_leads = 0
        self._new_chunks = 0
        self._last_log = self.started
        self._stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if _is_terminal(self._stream) else "log"
        self.mode = mode
        self._bar: Any = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_chunks,
                initial=done_chunks,
                unit="chunk",
                desc="rescore",
                file=self._stream,
                dynamic_ncols=True,
            )
        elif mode == "log" and done_chunks:
            logger.info("rescore: %d of %d chunk(s) already done", done_chunks, total_chunks)

    def advance(self, *, leads: int, scored: int) -> None:
        """Record one more finished chunk with its lead and scored counts."""
        self.done_chunks += 1
        self.leads += leads
        self.scored += scored
        self._new_leads += leads
        self._new_chunks += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(leads=f"{self.leads:,}", rate=f"{self.rate():,.0f}/s", refresh=False)
            return
        now = time.monotonic()
        if self.mode == "log" and (
            now - self._last_log >= self.interval or self.done_chunks == self.total_chunks
        ):
            self._last_log = now
            self._log_line()

    def rate(self) -> float:
        """Return leads read per second by this process (chunks done before a resume not counted)."""
        elapsed = time.monotonic() - self.started
        return self._new_leads / elapsed if elapsed > 0 else 0.0

    def _log_line(self) -> None:
        remaining = self.total_chunks - self.done_chunks
        per_chunk = (time.monotonic() - self.started) / max(1, self._new_chunks)
        logger.info(
            "rescore: %d/%d chunks, %d leads read, %d scored, %.0f leads/s, about %.0f s left",
            self.done_chunks,
            self.total_chunks,
            self.leads,
            self.scored,
            self.rate(),
            remaining * per_chunk,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False
