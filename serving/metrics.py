"""Prometheus metrics of the scoring service, served on BentoML's ``/metrics`` beside its own.

BentoML runs several worker processes and sets ``PROMETHEUS_MULTIPROC_DIR`` in each before
the service starts. ``prometheus_client`` decides at its own import whether it runs in
multiprocess mode, so it is imported inside ``ServiceMetrics.__init__`` (called from the
service constructor) and never at module import. Every label takes values from a closed set
(endpoint names, segments, tiers, feature names of the model), never lead or rep ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

NAMESPACE = "leadscore"
# Scoring latency buckets in seconds: one lead takes milliseconds, a 5,000-lead batch seconds.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """The leadscore counters, histograms and gauges, registered once per worker process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        import prometheus_client

        target = registry if registry is not None else prometheus_client.REGISTRY
        options: dict[str, Any] = {"namespace": NAMESPACE, "registry": target}
        self.scores_served = prometheus_client.Counter(
            "scores_served",
            "Leads scored, by endpoint (score or route).",
            ["endpoint"],
            **options,
        )
        self.unseen_categories = prometheus_client.Counter(
            "unseen_categories",
            "Category values absent from the model's training data, by feature.",
            ["feature"],
            **options,
        )
        self.routing_decisions = prometheus_client.Counter(
            "routing_decisions",
            "Routing decisions by segment, tier (none when queued) and outcome "
            "(assigned, queued, shadow, or existing for an idempotent retry).",
            ["segment", "tier", "outcome"],
            **options,
        )
        self.sla_breaches = prometheus_client.Counter(
            "sla_breaches",
            "First-contact SLA breaches by kind (late_first_contact: the first contact came after the "
            "deadline). Leads still waiting are the sla_overdue_leads gauge.",
            ["kind"],
            **options,
        )
        self.first_contacts = prometheus_client.Counter(
            "first_contacts",
            "SLA timers closed by a first contact, by whether it came before the deadline.",
            ["on_time"],
            **options,
        )
        self.sla_overdue = prometheus_client.Gauge(
            "sla_overdue_leads",
            "Leads past their first-contact deadline at the last GET /sla/overdue.",
            multiprocess_mode="mostrecent",
            **options,
        )
        self.validation_errors = prometheus_client.Counter(
            "validation_errors",
            "Requests rejected by payload validation, by endpoint path.",
            ["path"],
            **options,
        )
        self.auth_failures = prometheus_client.Counter(
            "auth_failures",
            "Requests rejected by bearer-token authentication, by reason (missing, malformed, invalid).",
            ["reason"],
            **options,
        )
        self.payloads_rejected = prometheus_client.Counter(
            "payloads_rejected",
            "Requests rejected because the body was over the size limit.",
            **options,
        )
        self.score_batch_requests = prometheus_client.Histogram(
            "score_batch_requests",
            "Requests scored together in one scorer call (adaptive batching within a worker).",
            buckets=BATCH_BUCKETS,
            **options,
        )
        self.scoring_seconds = prometheus_client.Histogram(
            "scoring_seconds",
            "Time from handing leads to the scorer until their scores return (queueing included), "
            "per request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **options,
        )
