"""Request and response bodies of the HTTP API, as strict pydantic models.

The lead, activity, stage-change, order and rep fields are the canonical columns of
``data.schema``, with the English and Chinese descriptions declared there. Every model rejects unknown fields
(``extra="forbid"``). A missing required field is an error and is never filled in.

Timestamps are ISO 8601 strings. One without a UTC offset is read in the service's business
timezone (``Settings.timezone``, Asia/Shanghai by default), as file imports do. Numbers and
timestamps are never coerced from other JSON types (see ``serving.input_types``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from data.parsing import (
    ACTIVITY_TYPE_SYNONYMS,
    DIRECTION_SYNONYMS,
    TIER_SYNONYMS,
    translate_category,
)
from data.schema import (
    ACTIVITIES,
    ACTIVITY_TYPES,
    DIRECTIONS,
    LEADS,
    ORDERS,
    REPS,
    STAGE_CHANGES,
    TIERS,
    Table,
)
from data.stages import ALL_STAGES, normalize_stage
from leadscore.i18n import Locale
from serving.input_types import (
    CONTROL_FREE_PATTERN,
    StrictFiniteFloat,
    StrictNonNegativeFloat,
    StrictNonNegativeInt,
    Timestamp,
    attribute_value_validator,
    check_unicode,
    reject_control_characters,
)
from serving.store_models import MAX_INTEGER

MAX_LEADS_PER_REQUEST = 10_000
MAX_ROUTE_LEADS_PER_REQUEST = 500
MAX_EVENTS_PER_LEAD = 5_000
MAX_REPS_PER_REQUEST = 5_000
MAX_REPORTED_EVENTS = 10_000
MAX_ID_CHARS = 128
# Rep ids are stored in VARCHAR(64) columns (serving.store_models), so longer ones are rejected here.
MAX_REP_ID_CHARS = 64
MAX_LABEL_CHARS = 200
MAX_TEXT_CHARS = 2_000
MAX_LIST_ITEMS = 200
# reps.capacity is an INTEGER column.
MAX_REP_CAPACITY = MAX_INTEGER

Grade = Literal["A", "B", "C", "D"]
SegmentName = Literal["high_value", "standard", "nurture"]
Direction = Literal["positive", "negative"]


# Ids are logged, so control characters (which could forge log lines) are rejected anywhere in
# them, before the surrounding spaces are stripped.
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(check_unicode),
    BeforeValidator(reject_control_characters),
    Field(json_schema_extra={"pattern": CONTROL_FREE_PATTERN}),
]
RepIdentifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REP_ID_CHARS),
    AfterValidator(check_unicode),
    BeforeValidator(reject_control_characters),
    Field(json_schema_extra={"pattern": CONTROL_FREE_PATTERN}),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LABEL_CHARS),
    AfterValidator(check_unicode),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(check_unicode)]
FiniteFloat = StrictFiniteFloat
AttributeValue = Annotated[bool | int | float | str | None, attribute_value_validator(MAX_TEXT_CHARS)]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=False)
_ACCEPTED_STAGES = ", ".join(f"{stage.code}/{stage.name_zh}" for stage in ALL_STAGES)
_TIME_NOTE = (
    "An ISO 8601 string such as 2026-03-01T09:30:00+08:00 (numbers such as Unix times are rejected); "
    "without a UTC offset it is read in the service's business timezone."
)


def _stage_code(value: str) -> str:
    code = normalize_stage(value)
    if code is None:
        raise ValueError(f"unknown stage {value!r}; expected one of: {_ACCEPTED_STAGES}")
    return code


StageName = Annotated[str, AfterValidator(check_unicode), AfterValidator(_stage_code)]


class StrictModel(BaseModel):
    """Base of every API body: unknown fields are rejected."""

    model_config = _STRICT


def _doc(table: Table, name: str) -> str:
    """Return the English and Chinese description of a canonical column, as the schema declares it."""
    column = table.column(name)
    text = f"{column.description} / {column.description_zh}"
    if column.kind == "timestamp":
        text += f" {_TIME_NOTE}"
    if column.name == "stage":
        text += f" Accepted: {_ACCEPTED_STAGES}."
    return text


def _synonyms(allowed: tuple[str, ...], synonyms: dict[str, str]) -> BeforeValidator:
    """Return a validator that turns a synonym the file import accepts (电话, 呼出, 资深) into its code."""

    def translate(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return translate_category(value, allowed, synonyms) or value

    return BeforeValidator(translate)


ActivityType = Annotated[
    Literal[ACTIVITY_TYPES],  # type: ignore[valid-type]
    _synonyms(ACTIVITY_TYPES, ACTIVITY_TYPE_SYNONYMS),
]
ActivityDirection = Annotated[
    Literal[DIRECTIONS],  # type: ignore[valid-type]
    _synonyms(DIRECTIONS, DIRECTION_SYNONYMS),
]
Tier = Annotated[Literal[TIERS], _synonyms(TIERS, TIER_SYNONYMS)]  # type: ignore[valid-type]
NonNegativeFloat = StrictNonNegativeFloat
LabelList = Annotated[list[Label], Field(max_length=MAX_LIST_ITEMS)]


# --- leads and their events --------------------------------------------------------------------
# Field names and requiredness follow data.schema; tests/serving/test_service_models.py checks
# that every canonical column is present.


class LeadActivity(StrictModel):
    """One contact between a rep and the lead, nested under the lead (lead_id is implied)."""

    activity_id: Identifier | None = Field(
        None,
        description=_doc(ACTIVITIES, "activity_id")
        + " When absent it is generated as <lead_id>:activity:<n>.",
    )
    lead_id: Identifier | None = Field(None, description="Optional; must equal the enclosing lead's id.")
    rep_id: Identifier | None = Field(None, description=_doc(ACTIVITIES, "rep_id"))
    occurred_at: Timestamp = Field(description=_doc(ACTIVITIES, "occurred_at"))
    type: ActivityType = Field(description=_doc(ACTIVITIES, "type"))
    direction: ActivityDirection = Field(description=_doc(ACTIVITIES, "direction"))
    outcome: Text | None = Field(None, description=_doc(ACTIVITIES, "outcome"))


class LeadStageChange(StrictModel):
    """The lead entering a funnel stage, nested under the lead (lead_id is implied)."""

    lead_id: Identifier | None = Field(None, description="Optional; must equal the enclosing lead's id.")
    stage: StageName = Field(description=_doc(STAGE_CHANGES, "stage"))
    changed_at: Timestamp = Field(description=_doc(STAGE_CHANGES, "changed_at"))


class LeadOrder(StrictModel):
    """An earlier order of an existing customer, nested under the lead."""

    order_id: Identifier | None = Field(
        None, description=_doc(ORDERS, "order_id") + " When absent it is generated as <lead_id>:order:<n>."
    )
    customer_id: Identifier | None = Field(
        None, description=_doc(ORDERS, "customer_id") + " Default: the lead's customer_id."
    )
    ordered_at: Timestamp = Field(description=_doc(ORDERS, "ordered_at"))
    amount: FiniteFloat = Field(description=_doc(ORDERS, "amount"))
    currency: Label | None = Field(None, description=_doc(ORDERS, "currency"))


class LeadRecord(StrictModel):
    """One lead as the CRM captured it, with its recent activities, stage changes and orders."""

    lead_id: Identifier = Field(description=_doc(LEADS, "lead_id"))
    created_at: Timestamp = Field(description=_doc(LEADS, "created_at"))
    channel: Label | None = Field(None, description=_doc(LEADS, "channel"))
    campaign: Label | None = Field(None, description=_doc(LEADS, "campaign"))
    keyword: Label | None = Field(None, description=_doc(LEADS, "keyword"))
    region: Label | None = Field(None, description=_doc(LEADS, "region"))
    industry: Label | None = Field(None, description=_doc(LEADS, "industry"))
    company_size: Label | None = Field(None, description=_doc(LEADS, "company_size"))
    declared_budget: NonNegativeFloat | None = Field(None, description=_doc(LEADS, "declared_budget"))
    customer_id: Identifier | None = Field(None, description=_doc(LEADS, "customer_id"))
    owner_rep_id: Identifier | None = Field(None, description=_doc(LEADS, "owner_rep_id"))
    company_name: Text | None = Field(None, description=_doc(LEADS, "company_name"))
    attributes: dict[Identifier, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_LIST_ITEMS,
        description="Custom lead attributes the model was trained with, by name (GET /model lists them). "
        "/ 训练时声明的自定义线索属性。",
    )
    activities: list[LeadActivity] = Field(
        default_factory=list,
        max_length=MAX_EVENTS_PER_LEAD,
        description="Recent activities of the lead, any order. / 线索的近期跟进记录。",
    )
    stage_changes: list[LeadStageChange] = Field(
        default_factory=list,
        max_length=MAX_EVENTS_PER_LEAD,
        description="Funnel stages the lead entered, any order. / 线索经历的阶段变更。",
    )
    orders: list[LeadOrder] = Field(
        default_factory=list,
        max_length=MAX_EVENTS_PER_LEAD,
        description="Earlier orders when the lead is an existing customer. / 老客户的历史订单。",
    )

    @model_validator(mode="after")
    def _orders_need_customer(self) -> LeadRecord:
        if self.customer_id is None and any(order.customer_id is None for order in self.orders):
            raise ValueError(
                "orders were sent without a customer_id; set customer_id on the lead or on each order"
            )
        return self


class ScoreRequest(StrictModel):
    """Leads to score."""

    leads: list[LeadRecord] = Field(
        min_length=1,
        max_length=MAX_LEADS_PER_REQUEST,
        description=f"1 to {MAX_LEADS_PER_REQUEST:,} leads, each with a unique lead_id. / 待评分线索。",
    )
    as_of: Timestamp | None = Field(
        None,
        description="Scoring time: only events before it count. Default: now. " + _TIME_NOTE,
    )
    locale: Locale | None = Field(
        None, description="Language of reason texts: en or zh-CN. Default: the service locale. / 理由语言。"
    )


class RouteRequest(StrictModel):
    """Leads to score and route to reps."""

    leads: list[LeadRecord] = Field(
        min_length=1,
        max_length=MAX_ROUTE_LEADS_PER_REQUEST,
        description=f"1 to {MAX_ROUTE_LEADS_PER_REQUEST} leads, routed in the order given. / 待分配线索。",
    )
    as_of: Timestamp | None = Field(
        None,
        description="Scoring and assignment time; the SLA deadline counts from it. Default: now. "
        + _TIME_NOTE,
    )
    locale: Locale | None = Field(None, description="Language of reason texts: en or zh-CN. / 理由语言。")


# --- score results -------------------------------------------------------------------------------


class ReasonOut(StrictModel):
    """One feature's push on the conversion score, with a sentence for people."""

    feature: str = Field(description="Feature name in the model.")
    direction: Direction = Field(description="positive raises p_convert, negative lowers it.")
    contribution: float = Field(description="SHAP contribution in log-odds units, before calibration.")
    text: str = Field(description="The reason as a sentence in the requested locale.")


class ScoreFlags(StrictModel):
    """Warnings about how far a score can be trusted."""

    unseen_category: bool = Field(
        description="True when any categorical value was absent from the training data; the lead is "
        "still scored, with that value treated as 'other'."
    )
    unseen_categories: dict[str, str] = Field(
        default_factory=dict, description='Each unseen value by feature name, such as {"channel": "抖音"}.'
    )
    insufficient_data: bool = Field(
        False, description="True when the model was trained on too little history to be trusted fully."
    )


class LeadScore(StrictModel):
    """The score record of one lead."""

    lead_id: str = Field(description="Lead id, as sent.")
    p_convert: float = Field(
        ge=0.0, le=1.0, description="Calibrated probability of conversion within the horizon."
    )
    ltv: float = Field(ge=0.0, description="Predicted lifetime value if converted, in the order currency.")
    expected_value: float = Field(ge=0.0, description="p_convert × ltv.")
    grade: Grade = Field(description="A (top 20 % by expected value at training) to D (bottom 20 %).")
    segment: SegmentName = Field(description="high_value, standard or nurture.")
    reasons_positive: list[ReasonOut] = Field(description="Top features raising the score, strongest first.")
    reasons_negative: list[ReasonOut] = Field(description="Top features lowering the score, strongest first.")
    model_version: str = Field(description="Version of the scorer bundle that produced the score.")
    flags: ScoreFlags = Field(description="Unseen categories and data warnings.")


class ScoreResponse(StrictModel):
    """Scores in the order of the request's leads."""

    model_version: str = Field(description="Version of the scorer bundle.")
    registry_version: str = Field(
        description="Version number of lead-scorer@champion in the MLflow registry."
    )
    as_of: datetime = Field(description="Scoring time used, UTC.")
    locale: Locale = Field(description="Language of the reason texts.")
    results: list[LeadScore] = Field(description="One score record per lead, in request order.")


# --- routing -------------------------------------------------------------------------------------


class RouteReasonOut(StrictModel):
    """One step of a routing decision."""

    code: str = Field(description="Stable reason code, such as segment_high_value or least_loaded.")
    params: dict[str, Any] = Field(description="Values the reason text is built from.")
    text: str = Field(description="The reason as a sentence in the requested locale.")


class RouteResultOut(StrictModel):
    """Routing result of one lead: its owner, deadline and the reasons."""

    lead_id: str = Field(description="Lead id.")
    assignment_id: int | None = Field(description="Assignment id; null for a shadow decision.")
    decision_id: int = Field(description="Id of the decision-log entry.")
    rep_id: str | None = Field(description="Rep who owns the lead; null when queued.")
    queue: str | None = Field(description="Queue the lead waits in when no rep had capacity.")
    tier: str | None = Field(description=f"Tier of the rep: {', '.join(TIERS)}; null when queued.")
    segment: str | None = Field(description="Segment used for routing: high_value, standard or nurture.")
    team: str | None = Field(description="Team of the routing policy the lead went to, if any.")
    status: str = Field(description="active or closed for an assignment, shadow for a shadow decision.")
    shadow: bool = Field(description="True when the team runs in shadow mode: logged, nothing assigned.")
    decided_at: datetime = Field(description="When the decision was made, UTC.")
    sla_due_at: datetime | None = Field(description="First-contact deadline, UTC; null when queued.")
    reasons: list[RouteReasonOut] = Field(description="Reasons for the choice, in decision order.")
    policy_version: str | None = Field(description="Hash of the routing policy that decided.")
    model_version: str | None = Field(description="Scorer bundle version of the score used.")
    replayed: bool = Field(
        description="True when the lead was routed before and the stored result is returned."
    )
    score: LeadScore = Field(description="The score this call computed for the lead.")


class RouteResponse(StrictModel):
    """Routing results in the order of the request's leads."""

    results: list[RouteResultOut] = Field(description="One result per lead, in request order.")


# --- roster --------------------------------------------------------------------------------------


_KEEPS = " Left out: a stored rep keeps its value."
# The error each field that must not be null raises for null, so the 422 names what to send.
_NULL_ERRORS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "name": ("string_type", "Input should be a valid string", None),
    "tier": ("literal_error", "Input should be {expected}", {"expected": " or ".join(map(repr, TIERS))}),
    "capacity": ("int_type", "Input should be a valid integer", None),
    "active": ("bool_type", "Input should be a valid boolean", None),
}


def _not_null_in_schema(schema: dict[str, Any]) -> None:
    """Drop null from a field's JSON schema when None only stands for the field being left out."""
    schema.pop("default", None)
    members = schema.pop("anyOf", None)
    if members is not None:
        schema.update(next(member for member in members if member.get("type") != "null"))


class RepIn(StrictModel):
    """One rep of the roster: a new rep, or the fields to change of a stored rep.

    A field left out keeps the stored rep's value, so a CRM can send only what changed. A new
    rep must send name, tier and capacity, because none of them has a safe default.
    """

    rep_id: RepIdentifier = Field(description=_doc(REPS, "rep_id"))
    name: Label | None = Field(
        None,
        json_schema_extra=_not_null_in_schema,
        description=_doc(REPS, "name") + " Required for a new rep." + _KEEPS,
    )
    tier: Tier | None = Field(
        None,
        json_schema_extra=_not_null_in_schema,
        description=_doc(REPS, "tier") + " Required for a new rep." + _KEEPS,
    )
    capacity: StrictNonNegativeInt | None = Field(
        None,
        le=MAX_REP_CAPACITY,
        json_schema_extra=_not_null_in_schema,
        description=_doc(REPS, "capacity") + " Required for a new rep." + _KEEPS,
    )
    regions: LabelList | None = Field(
        None,
        description=_doc(REPS, "regions")
        + " Empty or null: any region. Left out: a stored rep keeps its regions, a new rep serves any.",
    )
    skills: LabelList | None = Field(
        None,
        description=_doc(REPS, "skills")
        + " Empty or null: any industry. Left out: a stored rep keeps its skills, a new rep takes any.",
    )
    hired_at: Timestamp | None = Field(None, description=_doc(REPS, "hired_at") + " Null clears it." + _KEEPS)
    active: StrictBool | None = Field(
        None,
        json_schema_extra=_not_null_in_schema,
        description=_doc(REPS, "active") + " Left out: a stored rep keeps its flag, a new rep is active.",
    )
    manager_id: RepIdentifier | None = Field(
        None, description=_doc(REPS, "manager_id") + " Null removes the manager." + _KEEPS
    )

    @field_validator(*_NULL_ERRORS, mode="before")
    @classmethod
    def _reject_null(cls, value: Any, info: ValidationInfo) -> Any:
        """Reject an explicit null where leaving the field out is the way to keep the stored value."""
        if value is None:
            error_type, template, context = _NULL_ERRORS[str(info.field_name)]
            raise PydanticCustomError(error_type, template, context)
        return value

    def sent_fields(self) -> dict[str, Any]:
        """Return rep_id and the fields the request sent, by name; fields left out are absent."""
        return self.model_dump(include={"rep_id", *self.model_fields_set})


class RosterUpdateRequest(StrictModel):
    """Reps to insert or change."""

    reps: list[RepIn] = Field(
        min_length=1,
        max_length=MAX_REPS_PER_REQUEST,
        description="Reps, each rep_id once. A stored rep changes only in the fields sent. / "
        "销售名单；已有销售只更新所发送的字段。",
    )
    replace: StrictBool = Field(
        False,
        description="True when reps is the whole roster: stored reps missing from it are made inactive "
        "(never deleted). / 为 true 时未列出的销售将被停用。",
    )


class RosterUpdateResponse(StrictModel):
    """Changes a roster update made."""

    inserted: list[str] = Field(description="Rep ids added.")
    updated: list[str] = Field(description="Rep ids already stored; the fields sent were written.")
    deactivated: list[str] = Field(description="Rep ids made inactive because replace was true.")
    assigned_from_queue: list[str] = Field(
        default_factory=list,
        description="Lead ids that waited in a queue and went to a rep with room after this update.",
    )


class RepOut(StrictModel):
    """A rep with its current load."""

    rep_id: str = Field(description="Rep id.")
    name: str = Field(description="Rep name.")
    tier: str = Field(description=f"{', '.join(TIERS)}.")
    capacity: int = Field(description="Maximum open leads at once.")
    regions: list[str] = Field(description="Regions served; empty means any.")
    skills: list[str] = Field(description="Industries or products the rep knows; empty means any.")
    hired_at: datetime | None = Field(description="Hire date, UTC.")
    active: bool = Field(description="Whether the rep takes new leads.")
    manager_id: str | None = Field(description="Rep id of the manager to escalate to.")
    open_leads: int = Field(description="Leads the rep owns now.")
    available: bool = Field(description="True when active and below capacity, so routing can choose the rep.")


class RosterResponse(StrictModel):
    """The roster in rep_id order."""

    reps: list[RepOut] = Field(description="Every rep, active or not, in rep_id order.")


# --- activities and SLA --------------------------------------------------------------------------


class ReportedActivity(StrictModel):
    """An activity the CRM recorded; an outbound contact of a counted type is a first contact."""

    activity_id: Identifier = Field(description=_doc(ACTIVITIES, "activity_id"))
    lead_id: Identifier = Field(description=_doc(ACTIVITIES, "lead_id"))
    rep_id: RepIdentifier | None = Field(None, description=_doc(ACTIVITIES, "rep_id"))
    occurred_at: Timestamp = Field(description=_doc(ACTIVITIES, "occurred_at"))
    type: ActivityType = Field(description=_doc(ACTIVITIES, "type"))
    direction: ActivityDirection = Field(description=_doc(ACTIVITIES, "direction"))
    outcome: Text | None = Field(
        None, description=_doc(ACTIVITIES, "outcome") + " Stored nowhere, never logged."
    )


class ReportedStageChange(StrictModel):
    """A stage change the CRM recorded; contacted or beyond is a first contact."""

    lead_id: Identifier = Field(description=_doc(STAGE_CHANGES, "lead_id"))
    stage: StageName = Field(description=_doc(STAGE_CHANGES, "stage"))
    changed_at: Timestamp = Field(description=_doc(STAGE_CHANGES, "changed_at"))


class ActivitiesRequest(StrictModel):
    """Activities and stage changes reported by the CRM."""

    activities: list[ReportedActivity] = Field(
        default_factory=list, max_length=MAX_REPORTED_EVENTS, description="Activities, each activity_id once."
    )
    stage_changes: list[ReportedStageChange] = Field(
        default_factory=list, max_length=MAX_REPORTED_EVENTS, description="Stage changes."
    )
    locale: Locale | None = Field(None, description="Language of error messages: en or zh-CN.")

    @model_validator(mode="after")
    def _not_empty(self) -> ActivitiesRequest:
        if not self.activities and not self.stage_changes:
            raise ValueError("send at least one activity or stage change")
        return self


class ActivitiesResponse(StrictModel):
    """Changes a CRM report made."""

    activities_recorded: int = Field(description="New activities stored.")
    activities_repeated: int = Field(description="Activities already stored with the same content (ignored).")
    stage_changes_recorded: int = Field(description="New stage changes stored.")
    stage_changes_repeated: int = Field(description="Stage changes already stored (ignored).")
    sla_closed: list[str] = Field(
        description="Lead ids whose first-contact timer this report closed; leads never assigned to a rep "
        "have no timer and are not listed."
    )
    sla_closed_late: list[str] = Field(
        description="Of those, the leads first contacted after their deadline."
    )
    assigned_from_queue: list[str] = Field(
        default_factory=list,
        description="Lead ids that waited in a queue and went to a rep whose capacity this report freed "
        "(a lead of that rep reached won or lost).",
    )


class OverdueLead(StrictModel):
    """An assignment past its first-contact deadline."""

    lead_id: str = Field(description="Lead id.")
    assignment_id: int = Field(description="Assignment id.")
    rep_id: str | None = Field(description="Rep who owns the lead.")
    manager_id: str | None = Field(description="The rep's manager, to notify.")
    tier: str | None = Field(description="Tier of the rep.")
    segment: str = Field(description="Segment of the lead.")
    assigned_at: datetime = Field(description="When the lead was assigned, UTC.")
    sla_due_at: datetime = Field(description="First-contact deadline, UTC.")
    overdue_minutes: float = Field(description="Minutes past the deadline at as_of.")
    escalated_at: datetime | None = Field(description="When the lead was first reported overdue, UTC.")


class OverdueResponse(StrictModel):
    """Leads past their first-contact deadline, most overdue first."""

    as_of: datetime = Field(description="The time the deadlines were compared with, UTC.")
    leads: list[OverdueLead] = Field(description="Overdue leads, oldest deadline first.")


class AttributeOut(StrictModel):
    """A custom lead attribute the model reads."""

    name: str = Field(description="Attribute name, the key under a lead's attributes.")
    type: str = Field(description="category, float, int, bool, text or timestamp.")
    description: str = Field(description="Description of the attribute, as declared at training.")


class ModelInfo(StrictModel):
    """The champion model this worker serves."""

    model_name: str = Field(description="Registered model name (lead-scorer).")
    registry_version: str = Field(description="Version number the champion alias points at.")
    model_version: str = Field(description="Scorer bundle version written into score records.")
    run_id: str | None = Field(description="MLflow run that trained the model.")
    insufficient_data: bool = Field(description="True when the model was trained on too little history.")
    attributes: list[AttributeOut] = Field(description="Custom lead attributes accepted under attributes.")
    feature_names: list[str] = Field(description="Model features, in the order the booster reads them.")


# --- errors --------------------------------------------------------------------------------------


class ErrorItem(StrictModel):
    """One problem in a request."""

    field: str | None = Field(description="JSON path of the field at fault, such as leads[0].created_at.")
    value: Any = Field(None, description="The value received (long text cut, objects summarized).")
    allowed: Any = Field(None, description="What the field accepts: a type, a range, or a list of choices.")
    message: str = Field(description="The problem as a sentence in the request locale.")
    type: str = Field(description="Machine-readable problem type (pydantic error type).")


class ErrorResponse(StrictModel):
    """Body of every 4xx and 5xx response."""

    code: str = Field(
        description="Stable error code, such as invalid_request, unauthorized, payload_too_large."
    )
    message: str = Field(description="What went wrong and what to do, in the request locale (en or zh-CN).")
    field: str | None = Field(None, description="The first field at fault, when there is one.")
    value: Any = Field(None, description="The value received in that field.")
    allowed: Any = Field(None, description="What that field accepts.")
    request_id: str | None = Field(None, description="Request id, also in the X-Request-ID response header.")
    errors: list[ErrorItem] = Field(default_factory=list, description="Every problem found, when several.")
