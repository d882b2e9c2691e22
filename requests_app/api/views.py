"""The JSON API's operations (Django Ninja) and the OpenAPI document generated from them.

No cookies and no CSRF: each call carries ``Authorization: Bearer <token>`` of an officer
(``tokens.BearerToken``). Every answer, errors included, is JSON and never cached. Approving is
deliberately absent: it needs a person.
"""

import functools
import json

from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponse
from django.urls import path
from ninja import NinjaAPI, Query
from ninja import Status as Answer
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser

from requests_app.api import new_request, schemas
from requests_app.api.answers import (
    get_visible_request,
    request_detail,
    request_summary,
    visible_requests,
)
from requests_app.api.tokens import ApiError, BearerToken
from requests_app.discovery import search
from requests_app.intake import rules as intake
from requests_app.models import IllegalTransition, Status

PAGE_SIZE = 50
DESCRIPTION = (
    "Create, read, list and submit data subject requests from a ticketing system. "
    "Authenticate with `Authorization: Bearer <token>`; a token belongs to a privacy "
    "officer and is made with `manage.py create_api_token USERNAME`. Officers work "
    "as a team: a token sees every request. Approving or rejecting is not possible "
    "through the API: approvers decide through the signed link emailed to them. "
    'Every error is JSON: `{"error": "…"}`.'
)
REFUSALS = {
    401: "Missing, unknown or revoked token",
    403: "The token's user is not an officer",
    429: "Too many failed authentications from this address",
}


class JsonBody(Parser):
    """Bodies are JSON objects, sent as JSON; anything else is refused in the API's words."""

    def parse_body(self, request):
        content_type = request.content_type or ""
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise ApiError(415, "send the body as JSON with Content-Type: application/json")
        try:
            data = json.loads(request.body or b"")
        except RequestDataTooBig:
            raise ApiError(413, "the body is too large") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data


api = NinjaAPI(
    title="DSR Portal API",
    version="1",
    description=DESCRIPTION,
    openapi_url=None,  # served by the ``openapi`` operation below, at the API's own path
    docs_url=None,
    servers=[{"url": "/"}],
    auth=BearerToken(),
    parser=JsonBody(),
)


def documented(success, refusals):
    """The ``response`` and ``openapi_extra`` of an operation: its success schemas, the
    refusals every authenticated call may meet and its own (``{status: (schema, why)}``)."""
    common = {status: (schemas.Error, why) for status, why in REFUSALS.items()}
    table = {**common, **refusals}
    response = {**success, **{status: schema for status, (schema, _) in table.items()}}
    docs = {status: {"description": why} for status, (_, why) in table.items()}
    return {"response": response, "openapi_extra": {"responses": docs}}


# --- refusals as answers ---------------------------------------------------------------------


def _refuse(request, problem):
    response = api.create_response(request, problem.body, status=problem.status)
    for name, value in problem.headers.items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request, exc):
    return _refuse(request, exc)


@api.exception_handler(HttpError)
def _http_error(request, exc):
    # Ninja wraps what the body parser raised; the parser's own refusal is the answer.
    cause = exc.__cause__
    if not isinstance(cause, ApiError):
        cause = ApiError(exc.status_code, str(exc))
    return _refuse(request, cause)


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return _refuse(request, ApiError(413, "the body is too large"))


@api.exception_handler(ValidationError)
def _invalid(request, exc):
    where = exc.errors[0]["loc"]
    if where[0] == "query":
        return _refuse(request, ApiError(400, exc.errors[0]["msg"]))
    if len(where) < 3:  # no body at all: the parser says why, as for any unreadable body
        try:
            api.parser.parse_body(request)
        except ApiError as problem:
            return _refuse(request, problem)
    fields, identifiers = new_request.invalid_fields(exc.errors)
    return _refuse(
        request, ApiError(400, "invalid request", fields=fields, identifiers=identifiers)
    )


# --- operations ------------------------------------------------------------------------------


@api.get(
    "/api/v1/requests",
    url_name="api_requests",
    operation_id="listRequests",
    summary="List requests, newest first, 50 a page",
    **documented(
        {200: schemas.RequestPage},
        {
            400: (schemas.Error, "Unknown status or bad page number"),
            404: (schemas.Error, "No such page"),
        },
    ),
)
def list_requests(
    request,
    status: list[schemas.StatusFilter] = Query(  # noqa: B008 (Ninja's way to declare it)
        None, description="Only these statuses (repeat for several)"
    ),
    page: schemas.PageNumber = 1,
):
    queryset = visible_requests(request.auth).order_by("-created_at", "-id")
    if status:
        queryset = queryset.filter(status__in=status)
    paginator = Paginator(queryset, PAGE_SIZE)
    if page > paginator.num_pages:
        raise ApiError(404, f"no page {page}; there are {paginator.num_pages}")
    current, following = paginator.page(page), None
    if current.has_next():
        query = request.GET.copy()
        query["page"] = str(page + 1)
        following = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {
        "results": [request_summary(req) for req in current.object_list],
        "page": page,
        "pages": paginator.num_pages,
        "count": paginator.count,
        "next": following,
    }


@api.post(
    "/api/v1/requests",
    url_name="api_requests",
    operation_id="createRequest",
    summary="Create a request (saved as a draft)",
    exclude_unset=True,
    **documented(
        {201: schemas.Request},
        {
            400: (schemas.InvalidRequest | schemas.Error, "Invalid; nothing was stored"),
            413: (schemas.Error, "Body too large"),
            415: (schemas.Error, "Body is not JSON"),
        },
    ),
)
def create_request(request, response: HttpResponse, new: new_request.NewRequest):
    """Nothing is stored unless the whole body is valid. Duplicate identifiers (registration
    IDs compare case-insensitively) are collapsed and said so in `notices`."""
    parsed, keys = new.identifiers, new.subject_keys or []
    if parsed is None and not keys:
        raise ApiError(
            400,
            "invalid request",
            fields={
                "identifiers": ["required: a list of at least one identifier, or subject_keys"]
            },
            identifiers=[],
        )
    values = new.model_dump(exclude={"identifiers", "subject_keys"})
    with transaction.atomic():
        req = intake.create_request(
            user=request.auth, identifiers=parsed.identifiers if parsed else [], via="api", **values
        )
        if keys:
            try:
                search.start(req, keys=keys, actor=request.auth)
            except search.DiscoveryRefused as exc:
                raise ApiError(
                    400, "invalid request", fields={"subject_keys": [str(exc)]}
                ) from None
    body = request_detail(req)
    notice = parsed.duplicates_notice(unit="index", offset=-1) if parsed else ""
    if notice:
        body["notices"] = [notice]
    response["Location"] = request.build_absolute_uri(body["url"])
    return Answer(201, body)


@api.get(
    "/api/v1/requests/{str:reference}",
    url_name="api_request",
    operation_id="getRequest",
    summary="A request with its plan, progress, approvals and artifacts",
    exclude_unset=True,
    **documented({200: schemas.Request}, {404: (schemas.Error, "No such request")}),
)
def get_request(request, reference: schemas.Reference):
    return request_detail(get_visible_request(request.auth, reference))


@api.post(
    "/api/v1/requests/{str:reference}/submit",
    url_name="api_request_submit",
    operation_id="submitRequest",
    summary="Submit a draft: the portal plans the work and asks for approval",
    **documented(
        {202: schemas.Submitted},
        {
            404: (schemas.Error, "No such request"),
            409: (schemas.Error, "The request is not a draft"),
        },
    ),
)
def submit_request(request, reference: schemas.Reference):
    from requests_app.workflow import lifecycle

    req = get_visible_request(request.auth, reference)
    if req.status != Status.DRAFT:
        raise ApiError(
            409,
            f"{req.reference} is {req.get_status_display().lower()}; only a draft can be submitted",
            status=req.status,
        )
    try:
        lifecycle.submit(req, actor=request.auth)
    except IllegalTransition as exc:
        raise ApiError(409, str(exc)) from None
    req.refresh_from_db()
    return Answer(202, {"reference": req.reference, "status": req.status})


@api.api_operation(["HEAD"], "/api/v1/openapi.json", auth=None, include_in_schema=False)
@api.get(
    "/api/v1/openapi.json",
    auth=None,
    url_name="api_openapi",
    operation_id="openapi",
    summary="This document",
)
def openapi(request):
    """The OpenAPI document, generated from the operations and their schemas on each call."""
    return api.get_openapi_schema(path_prefix="")


# --- routes ----------------------------------------------------------------------------------


def _json_errors(view):
    """Ninja's view with the API's manners: a JSON 405 naming the methods, no caching."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405:
            allowed = sorted(method.strip() for method in response["Allow"].split(","))
            problem = ApiError(405, f"method {request.method} is not allowed here")
            problem.headers["Allow"] = ", ".join(allowed)
            response = _refuse(request, problem)
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def urlpatterns():
    """One route per path of the API (Ninja makes one per operation), at the paths above."""
    routes = {}
    for pattern in api.urls[0]:
        if pattern.name != "api-root" and str(pattern.pattern) not in routes:
            routes[str(pattern.pattern)] = path(
                str(pattern.pattern), _json_errors(pattern.callback), name=pattern.name
            )
    return list(routes.values())
