"""The JSON API's typed schemas (pydantic, read by Django Ninja): the annotations they share and
the answers. A new request's body has its own module, ``new_request``.

The OpenAPI document is generated from these classes, and every answer is validated against
them before it leaves, so the two cannot drift. Choices (kind, regulation, status, …) are read
from their tables each time, for validation and for the document alike: a new entry of the
regulation table is accepted and documented with no change here. Validation errors carry the
API's own words (``problem``, ``said``, ``checked_by``).
"""

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError, core_schema

from requests_app import models
from requests_app.azure import pacing
from requests_app.workflow import regulations


def problem(message):
    """A validation error whose message is ``message`` as written."""
    return PydanticCustomError("dsr", "{message}", {"message": message})


def said(message):
    """Annotation: whatever is wrong with the value, the API says ``message``."""

    def validate(value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise problem(message) from None

    return WrapValidator(validate)


def checked_by(check):
    """Annotation: refuse a value for which ``check`` (an intake rule) gives a reason."""

    def validate(value):
        reason = check(value)
        if reason:
            raise problem(reason)
        return value

    return AfterValidator(validate)


class OneOf:
    """Annotation: a string from ``values()``, read when validating and when the document is
    generated (its ``enum``), so the two follow the table they come from."""

    def __init__(self, values, message="must be one of: {allowed}"):
        self.values, self.message = values, message

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema, handler):
        return {"type": "string", "enum": list(self.values())}

    def validate(self, value):
        allowed = list(self.values())
        if value not in allowed:
            raise problem(self.message.format(value=value, allowed=", ".join(allowed)))
        return value


def _digits_only(value):
    # A query parameter: only ASCII digits make a page number (no "1.0", " 1" or "²").
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("not a whole number")
    return value


KindCode = Annotated[str, OneOf(lambda: models.Kind.values)]
RegulationCode = Annotated[str, OneOf(regulations.codes)]
StatusCode = Annotated[str, OneOf(lambda: models.Status.values)]
StatusFilter = Annotated[
    str, OneOf(lambda: models.Status.values, "unknown status {value!r}; one of: {allowed}")
]
PageNumber = Annotated[
    int,
    Field(ge=1),
    BeforeValidator(_digits_only),
    said("page must be a whole number from 1"),
]
# As ReferenceCounter.next_reference makes them.
Reference = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": r"^DSR-\d{4}-\d{4,}$", "examples": ["DSR-2025-0001"]}
    ),
]
# Written as Python writes them (microseconds, "+00:00"), as the API always has.
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# --- answers ---------------------------------------------------------------------------------


class Error(BaseModel):
    """Every refusal: what is wrong, in words (some refusals add details)."""

    model_config = ConfigDict(extra="allow")

    error: str


class IdentifierProblem(BaseModel):
    index: int = Field(ge=0)
    error: str


class InvalidRequest(BaseModel):
    """A create body with problems; nothing was stored."""

    error: Literal["invalid request"]
    fields: dict[str, list[str]] = Field(description="Problems by field name")
    identifiers: list[IdentifierProblem] = Field(
        description="Problems by position in `identifiers`, counted from 0"
    )


class RequestSummary(BaseModel):
    reference: Reference
    kind: KindCode
    regulation: RegulationCode
    status: StatusCode
    received_at: date
    due_at: date
    extended_until: date | None
    created_at: Timestamp
    url: str = Field(description="This request in the API")


class Device(BaseModel):
    """What planning found for one identifier."""

    registration_id: str
    device_id: str
    dps: str
    hub: str
    state: Annotated[str, OneOf(lambda: models.PlannedDevice.State.values)]
    enrollment: Literal["individual", "group", ""]
    modules: list[str]


class PlanStep(BaseModel):
    action: str
    name: str
    phase: str
    count: int


class BucketCost(BaseModel):
    """The calls the plan makes in one of a target's throttles, and the time they need."""

    host: str
    bucket: Annotated[str, OneOf(lambda: list(pacing.KINDS))]
    calls: int
    per_minute: float | None = Field(description="The throttle's rate; null: not a target")
    capacity: str = Field(description='"S1 × 2" for a hub, "DPS" for a DPS instance')
    seconds: float | None


class Cost(BaseModel):
    """What the plan spends of Azure's throttles, and the least time that takes: every
    throttle is used at once, so the slowest sets the pace."""

    buckets: list[BucketCost]
    projected_seconds: float
    projected: str = Field(description='e.g. "about 1 h 45 min, set by demo-hub-1\'s ..."')


class Plan(BaseModel):
    version: str | None
    devices: list[Device]
    operations: int
    steps: list[PlanStep]
    unreachable: list[str]
    not_found: list[str]
    cost: Cost


class Progress(BaseModel):
    done: int
    total: int
    failed: int


class Approval(BaseModel):
    approver: str
    decision: Annotated[str, OneOf(lambda: models.Approval.Decision.values)]
    at: Timestamp
    reason: str


class Artifact(BaseModel):
    """A file the portal made for the request (downloaded in the portal, signed in)."""

    kind: Annotated[str, OneOf(lambda: models.Artifact.Kind.values)]
    url: str = Field(description="Download in the portal (410 Gone once purged)")
    sha256: str
    size: int
    purged_at: Timestamp | None = Field(
        None, description="When the file was deleted under its retention rule (null: kept)"
    )


class DiscoveryTarget(BaseModel):
    host: str
    state: str = Field(description="pending, answered or failed")
    matches: int


class Discovery(BaseModel):
    """The latest search for the subject's devices by owner (see `subject_keys`)."""

    state: str = Field(description="running, finished (to be confirmed in the portal), confirmed")
    targets: list[DiscoveryTarget]
    found: int = Field(description="Matches found (until retention deletes them)")
    confirmed: int | None = Field(description="Identifiers the officer added from it")
    url: str = Field(description="The portal page where the officer confirms the devices")


class Request(RequestSummary):
    """A request with its plan, progress, approvals and artifacts (never the audit details)."""

    subject_reference: str
    block_reprovisioning: bool
    identifiers: int = Field(description="How many identifiers")
    discovery: Discovery | None = None
    plan: Plan
    progress: Progress
    approvals: list[Approval]
    artifacts: list[Artifact]
    notices: list[str] = Field(
        default_factory=list, description="On creation only: duplicates collapsed"
    )


class RequestPage(BaseModel):
    results: list[RequestSummary]
    page: int
    pages: int
    count: int
    next: str | None = Field(json_schema_extra={"format": "uri"})


class Submitted(BaseModel):
    reference: str
    status: StatusCode = Field(description="planning (or further, if planning already ended)")
