"""Everything one service worker holds: settings, champion model, routing store, policy, metrics.

``ServiceRuntime.start`` runs in each worker's service constructor. The model must load, or
the worker fails to start. The database may be down at that moment: the runtime then keeps
trying to create the schema on readiness checks, and ``/readyz`` returns 503 until that succeeds.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from leadscore.errors import ConfigError
from leadscore.settings import Settings
from serving.auth import BearerTokenVerifier, require_token_or_insecure, resolve_api_token
from serving.launch import INSECURE_ENV, LOG_LEVEL_ENV, configure_worker_logging
from serving.metrics import ServiceMetrics
from serving.model_loading import ChampionModel, load_champion
from serving.policy_config import RoutingPolicy, load_policy
from serving.request_guard import GuardConfig
from serving.score_batcher import ScoreBatcher
from serving.store import RoutingStore, open_store
from serving.store_models import create_schema
from training.row_scorer import ROW_PATH_MAX_LEADS
from training.scorer import score_payload

logger = logging.getLogger(__name__)

# A readiness probe runs a database query at most this often; probes in between reuse the result.
READINESS_CACHE_SECONDS = 2.0


@dataclass
class DatabaseHealth:
    """The last database check and when it ran (monotonic seconds)."""

    ok: bool = False
    checked_at: float = -1.0
    schema_ready: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ServiceRuntime:
    """The loaded model, store and policy of one worker process, with readiness checks."""

    def __init__(
        self,
        settings: Settings,
        model: ChampionModel,
        store: RoutingStore,
        policy: RoutingPolicy,
        metrics: ServiceMetrics,
        guard_config: GuardConfig,
    ) -> None:
        self.settings = settings
        self.model = model
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self.guard_config = guard_config
        self.database = DatabaseHealth()
        # Two scoring threads per worker: one for payloads of up to ROW_PATH_MAX_LEADS leads and
        # one for larger ones, so that a 5,000-lead request does not hold up single leads for
        # seconds. The bulk thread scores with its own copy of the bundle: LightGBM's tracker
        # reports a data race when threads share one booster (github.com/lightgbm-org/LightGBM/issues/6142).
        self.batcher = ScoreBatcher(self._score_records, on_batch=self._count_batch)
        self._bulk_bundle = copy.deepcopy(model.bundle)
        self.bulk_batcher = ScoreBatcher(self._score_bulk_records, on_batch=self._count_batch)

    @classmethod
    def start(cls, settings: Settings, *, insecure: bool | None = None) -> ServiceRuntime:
        """Build the runtime from settings: check the token, load policy and model, open the store."""
        configure_worker_logging(os.environ.get(LOG_LEVEL_ENV))
        if insecure is None:
            insecure = check_insecure_flag(os.environ.get(INSECURE_ENV))
        token = resolve_api_token(settings)
        require_token_or_insecure(token, insecure=insecure)
        if token is None:
            logger.warning("authentication is OFF (insecure mode); every client can call every endpoint")

        policy = load_policy(settings.policy_file)
        model = load_champion(settings.resolved_tracking_uri())
        store = open_store(settings.resolved_db_url(), create=False)
        metrics = ServiceMetrics()
        guard = GuardConfig(
            verifier=_verifier(token),
            max_body_bytes=settings.max_request_bytes,
            default_locale=settings.locale,
            metrics=metrics,
        )
        runtime = cls(settings, model, store, policy, metrics, guard)

        database_ok = runtime.database_ready()
        logger.info(
            "service worker %d started: model %s (registry version %s), policy %s (%s), %s database ready=%s",
            os.getpid(),
            model.model_version,
            model.registry_version,
            policy.name,
            policy.version,
            store.dialect,
            database_ok,
        )
        return runtime

    def database_ready(self) -> bool:
        """Return True when the routing database accepts queries and has its schema; cached briefly."""
        return probe_database(self.store, self.database)

    def is_ready(self) -> bool:
        """Return True when the database is ready; the model is loaded whenever a runtime exists."""
        return self.database_ready()

    def score(
        self, records: Sequence[dict[str, Any]], *, as_of: pd.Timestamp | None, locale: str, endpoint: str
    ) -> tuple[pd.Timestamp, list[dict[str, Any]]]:
        """Score raw lead records with the champion bundle; return the cutoff used and the scores.

        ``as_of`` None means now. Concurrent calls are scored together (see ``ScoreBatcher``).
        """
        started = time.perf_counter()
        cutoff, results = self._lane(records).score(records, as_of=as_of, locale=locale)
        self._observe(endpoint, started, results)
        return cutoff, results

    async def score_async(
        self, records: Sequence[dict[str, Any]], *, as_of: pd.Timestamp | None, locale: str, endpoint: str
    ) -> tuple[pd.Timestamp, list[dict[str, Any]]]:
        """Score raw lead records as ``score`` does, for a coroutine on the worker's event loop."""
        started = time.perf_counter()
        cutoff, results = await self._lane(records).score_async(records, as_of=as_of, locale=locale)
        self._observe(endpoint, started, results)
        return cutoff, results

    def _lane(self, records: Sequence[dict[str, Any]]) -> ScoreBatcher:
        """Return the scoring thread for a payload of this size."""
        return self.batcher if len(records) <= ROW_PATH_MAX_LEADS else self.bulk_batcher

    def _observe(self, endpoint: str, started: float, results: list[dict[str, Any]]) -> None:
        self.metrics.scoring_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        self.metrics.scores_served.labels(endpoint=endpoint).inc(len(results))
        for result in results:
            for feature in (result.get("flags") or {}).get("unseen_categories") or {}:
                self.metrics.unseen_categories.labels(feature=feature).inc()

    def _score_records(
        self, records: list[dict[str, Any]], cutoff: pd.Timestamp, locale: str
    ) -> list[dict[str, Any]]:
        return score_payload(self.model.bundle, records, as_of=cutoff, locale=locale)

    def _score_bulk_records(
        self, records: list[dict[str, Any]], cutoff: pd.Timestamp, locale: str
    ) -> list[dict[str, Any]]:
        return score_payload(self._bulk_bundle, records, as_of=cutoff, locale=locale)

    def _count_batch(self, requests: int, leads: int, seconds: float) -> None:
        self.metrics.score_batch_requests.observe(requests)

    def close(self) -> None:
        """Stop the scoring threads and release the database connections of this worker."""
        self.batcher.stop()
        self.bulk_batcher.stop()
        self.store.dispose()


def probe_database(store: RoutingStore, health: DatabaseHealth) -> bool:
    """Return whether ``store`` accepts queries, creating its schema on the first success.

    The result is cached in ``health`` for ``READINESS_CACHE_SECONDS``, so frequent probes do
    not each open a connection. A failure is logged with the driver's error class only,
    because the message can contain the database URL.
    """
    with health.lock:
        now = time.monotonic()
        if health.checked_at >= 0 and now - health.checked_at < READINESS_CACHE_SECONDS:
            return health.ok
        try:
            if not health.schema_ready:
                create_schema(store.engine)
                health.schema_ready = True
            with store.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            health.ok = True
        except DBAPIError as error:
            logger.error("routing database is not reachable: %s", type(error.orig).__name__)
            health.ok = False
        health.checked_at = now
        return health.ok


def _verifier(token: SecretStr | None) -> BearerTokenVerifier | None:
    return BearerTokenVerifier(token) if token is not None else None


def check_insecure_flag(value: str | None) -> bool:
    """Return the insecure flag from its environment value, raising ConfigError on anything but 0 or 1."""
    if value in (None, "", "0"):
        return False
    if value == "1":
        return True
    raise ConfigError(f"{INSECURE_ENV} must be 0 or 1, got {value!r}")
