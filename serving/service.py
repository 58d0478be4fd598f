"""The leadscore HTTP service: a BentoML service whose endpoints live in a mounted FastAPI app.

Endpoints (JSON; the OpenAPI document at ``/docs.json`` describes every field):

* ``POST /score``: score one or many leads.
* ``POST /route``: score, then assign each lead to a rep (idempotent by lead_id).
* ``GET /reps``, ``PUT /reps``: read and update the roster.
* ``POST /activities``: contacts and stage changes from the CRM; a first contact closes the SLA timer.
* ``GET /sla/overdue``: leads past their first-contact deadline, with owner and manager.
* ``GET /model``: the champion model being served.
* BentoML's own ``/healthz``, ``/readyz`` (503 until model and database are loaded) and ``/metrics``.

The endpoints are FastAPI routes rather than ``@bentoml.api`` methods because they need GET
and PUT, and error bodies of their own (with 401, 404, 409, 413 and 422 statuses) in the
caller's locale. BentoML still runs the workers, health probes, metrics and OpenAPI document. Start the
service with ``leadscore serve``, which checks settings first; ``bentoml serve
serving.service:LeadscoreService`` works too and reads the same ``LEADSCORE_*`` variables.
"""

from __future__ import annotations

import gc
import logging
import typing
from typing import Annotated, Any

import bentoml
from fastapi import FastAPI, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from leadscore import __version__
from leadscore.i18n import Locale
from leadscore.settings import load_settings
from serving.api_models import (
    ActivitiesRequest,
    ActivitiesResponse,
    ErrorResponse,
    ModelInfo,
    OverdueResponse,
    RosterResponse,
    RosterUpdateRequest,
    RosterUpdateResponse,
    RouteRequest,
    RouteResponse,
    ScoreRequest,
    ScoreResponse,
)
from serving.errors_http import ErrorHooks, install_error_handlers
from serving.event_reports import record_reports
from serving.input_types import Timestamp
from serving.json_body import JsonBodyRoute
from serving.public_pages import API_DESCRIPTION
from serving.request_guard import GuardConfig, RequestGuard
from serving.request_locale import locale_from_headers
from serving.roster_views import overdue_response, roster_response, update_roster
from serving.runtime import ServiceRuntime
from serving.scoring_views import model_info, route_leads, score_leads, score_leads_async

logger = logging.getLogger(__name__)

# POST /score with up to this many leads waits for the scoring thread on the event loop, which
# saves a thread hand-off per request. Larger payloads check leads and build the response in
# a pool thread instead, because that work would hold up the event loop for too long.
# NOTE: FastAPI still parses and validates every body on the event loop before the endpoint runs.
# For 10,000 leads (4.8 MB) that held the worker's health probes for about 0.3 s on a 2-CPU VM.
EVENT_LOOP_MAX_LEADS = 64

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token."},
    404: {"model": ErrorResponse, "description": "A lead, rep or assignment does not exist."},
    409: {"model": ErrorResponse, "description": "The request conflicts with stored data."},
    413: {"model": ErrorResponse, "description": "The request body is over the size limit."},
    422: {"model": ErrorResponse, "description": "A field is missing, of the wrong type or not allowed."},
    503: {"model": ErrorResponse, "description": "The model or the routing database is unavailable."},
}

api = FastAPI(
    title="leadscore",
    version=__version__,
    description=API_DESCRIPTION,
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
# Set before the endpoints below are declared, because each route takes the class when it is added.
api.router.route_class = JsonBodyRoute


def current_runtime() -> ServiceRuntime:
    """Return the runtime of the service instance running in this worker."""
    runtime: ServiceRuntime = bentoml.get_current_service().runtime
    return runtime


def _default_locale() -> Locale:
    return current_runtime().settings.locale


def _count_validation_error(path: str) -> None:
    try:
        current_runtime().metrics.validation_errors.labels(path=path).inc()
    except bentoml.exceptions.BentoMLException:
        logger.debug("validation error on %s before the service started; not counted", path)


install_error_handlers(
    api, ErrorHooks(default_locale=_default_locale, on_validation_error=_count_validation_error)
)


def _json_response(body: BaseModel) -> Response:
    """Serialize an already validated response model directly.

    Returning the model would make FastAPI validate every field against ``response_model`` a
    second time before serializing it. ``response_model`` still documents the body in the
    OpenAPI document.
    """
    return Response(content=body.model_dump_json(), media_type="application/json")


def _request_locale(request: Request, body_locale: Locale | None) -> Locale:
    """Return the body's locale, else the query parameter or Accept-Language, else the service default.

    The choice is kept in ``request.state.locale``, so an error raised later in the request is
    reported in the same language.
    """
    locale = body_locale
    if locale is None:
        headers = {key.lower(): value for key, value in request.headers.items()}
        locale = locale_from_headers(request.scope.get("query_string", b""), headers, _default_locale())
    request.state.locale = locale
    return locale


# The endpoints are module functions rather than methods of the service class: BentoML hands
# a method its ``self`` through a synchronous FastAPI dependency, which costs every request a
# trip through the thread pool. ``current_runtime()`` reaches the same worker state directly.


@api.post(
    "/score",
    response_model=ScoreResponse,
    responses=_ERROR_RESPONSES,
    summary="Score leads",
    description="Return p_convert, ltv, expected_value, grade, segment and reasons per lead, in request "
    "order. A category value unseen in training is scored as 'other' and flagged, never rejected.",
)
async def score(request: Request, body: ScoreRequest) -> Response:
    locale = _request_locale(request, body.locale)
    request.state.lead_ids = [lead.lead_id for lead in body.leads]
    if len(body.leads) <= EVENT_LOOP_MAX_LEADS:
        return _json_response(await score_leads_async(current_runtime(), body, locale))
    return _json_response(await run_in_threadpool(score_leads, current_runtime(), body, locale))


@api.post(
    "/route",
    response_model=RouteResponse,
    responses=_ERROR_RESPONSES,
    summary="Score and route leads",
    description="Score each lead, then assign it to a rep (or the queue) under the routing policy. "
    "Idempotent by lead_id: a lead routed before gets its existing assignment back (replayed=true).",
)
def route(request: Request, body: RouteRequest) -> Response:
    locale = _request_locale(request, body.locale)
    request.state.lead_ids = [lead.lead_id for lead in body.leads]
    return _json_response(route_leads(current_runtime(), body, locale))


@api.get(
    "/reps",
    response_model=RosterResponse,
    responses=_ERROR_RESPONSES,
    summary="List the roster",
    description="Every rep with tier, capacity, regions, skills, active flag, open leads and availability.",
)
def get_reps() -> RosterResponse:
    return roster_response(current_runtime())


@api.put(
    "/reps",
    response_model=RosterUpdateResponse,
    responses=_ERROR_RESPONSES,
    summary="Insert or update reps",
    description="Validate every rep first, then write all of them in one transaction. With replace=true "
    "the list is the whole roster and stored reps missing from it become inactive.",
)
def put_reps(body: RosterUpdateRequest) -> RosterUpdateResponse:
    return update_roster(current_runtime(), body)


@api.post(
    "/activities",
    response_model=ActivitiesResponse,
    responses=_ERROR_RESPONSES,
    summary="Report activities and stage changes",
    description="Store what the CRM recorded. An outbound contact of a counted type, or a stage change "
    "to contacted or beyond, is a first contact and closes the lead's SLA timer; won or lost closes "
    "the assignment. Reporting the same event twice is harmless.",
)
def activities(request: Request, body: ActivitiesRequest) -> ActivitiesResponse:
    lead_ids = [item.lead_id for item in body.activities] + [item.lead_id for item in body.stage_changes]
    request.state.lead_ids = sorted(set(lead_ids))
    locale = _request_locale(request, body.locale)
    return record_reports(current_runtime(), body, locale)


@api.get(
    "/sla/overdue",
    response_model=OverdueResponse,
    responses=_ERROR_RESPONSES,
    summary="List leads past their first-contact deadline",
    description="Active rep assignments whose deadline passed without a first contact, oldest deadline "
    "first, with the rep and the manager to notify.",
)
def sla_overdue(
    as_of: Annotated[
        Timestamp | None,
        Query(description="Time to compare deadlines with; default now. ISO 8601, naive = business time."),
    ] = None,
) -> OverdueResponse:
    return overdue_response(current_runtime(), as_of)


@api.get(
    "/model",
    response_model=ModelInfo,
    responses=_ERROR_RESPONSES,
    summary="Describe the model being served",
    description="Registry and bundle versions of the champion, and the custom attributes it accepts.",
)
def model() -> ModelInfo:
    return model_info(current_runtime())


@bentoml.service(
    name="leadscore",
    workers=1,
    traffic={"timeout": 300},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(api, path="/")
class LeadscoreService:
    """Scores and routes leads with the champion model of the MLflow registry."""

    def __init__(self) -> None:
        self.runtime = ServiceRuntime.start(load_settings())
        # The imports and the loaded model leave about 400,000 long-lived objects. A full garbage
        # collection walked them in 150 ms on a 2-CPU VM, pausing every request of the worker.
        # Frozen objects are skipped, so full collections stay short.
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.runtime.is_ready()

    @bentoml.on_shutdown
    def close(self) -> None:
        """Release database connections when the worker stops."""
        self.runtime.close()


def _guard_config() -> GuardConfig:
    return current_runtime().guard_config


# The guard wraps every route, BentoML's own included; it lets health, metrics and docs through.
typing.cast(Any, LeadscoreService).add_asgi_middleware(RequestGuard, config_provider=_guard_config)
