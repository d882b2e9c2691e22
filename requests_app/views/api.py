"""The JSON API's views and its OpenAPI document.

No cookies and no CSRF: each call carries ``Authorization: Bearer <token>`` of an officer.
Every answer, errors included, is JSON. Approving is deliberately absent: it needs a person.
"""

import functools

from django.core.paginator import Paginator
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from requests_app import intake
from requests_app.api import (
    PAGE_SIZE,
    ApiError,
    authenticate,
    get_visible_request,
    json_body,
    parse_new_request,
    request_as_json,
    request_summary,
    visible_requests,
)
from requests_app.models import IllegalTransition, Status


def _error_response(problem):
    response = JsonResponse(problem.body, status=problem.status)
    for name, value in problem.headers.items():
        response[name] = value
    return response


def api_view(*methods, authenticated=True):
    """JSON errors, 405 for other methods, bearer-token auth: the view gets (request, user)."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    problem = ApiError(405, f"method {request.method} is not allowed here")
                    problem.headers["Allow"] = ", ".join(methods)
                    raise problem
                user = authenticate(request) if authenticated else None
                response = view(request, user, *args, **kwargs)
            except ApiError as problem:
                response = _error_response(problem)
            response["Cache-Control"] = "no-store"
            return response

        return wrapper

    return decorate


@api_view("GET", "POST")
def requests_collection(request, user):
    if request.method == "POST":
        return _create(request, user)
    return _list(request, user)


def _create(request, user):
    values, parsed = parse_new_request(json_body(request))
    req = intake.create_request(user=user, identifiers=parsed.identifiers, via="api", **values)
    body = request_as_json(req)
    notice = parsed.duplicates_notice(unit="index", offset=-1)
    if notice:
        body["notices"] = [notice]
    response = JsonResponse(body, status=201)
    response["Location"] = request.build_absolute_uri(body["url"])
    return response


def _list(request, user):
    statuses = request.GET.getlist("status")
    unknown = [value for value in statuses if value not in Status.values]
    if unknown:
        raise ApiError(400, f"unknown status {unknown[0]!r}; one of: {', '.join(Status.values)}")
    page_text = request.GET.get("page", "1")
    if not page_text.isdigit() or int(page_text) < 1:
        raise ApiError(400, "page must be a whole number from 1")
    queryset = visible_requests(user).order_by("-created_at", "-id")
    if statuses:
        queryset = queryset.filter(status__in=statuses)
    paginator = Paginator(queryset, PAGE_SIZE)
    number = int(page_text)
    if number > paginator.num_pages:
        raise ApiError(404, f"no page {number}; there are {paginator.num_pages}")
    page = paginator.page(number)
    following = None
    if page.has_next():
        query = request.GET.copy()
        query["page"] = str(number + 1)
        following = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return JsonResponse(
        {
            "results": [request_summary(req) for req in page.object_list],
            "page": number,
            "pages": paginator.num_pages,
            "count": paginator.count,
            "next": following,
        }
    )


@api_view("GET")
def request_detail(request, user, reference):
    return JsonResponse(request_as_json(get_visible_request(user, reference)))


@api_view("POST")
def request_submit(request, user, reference):
    from requests_app import lifecycle

    req = get_visible_request(user, reference)
    if req.status != Status.DRAFT:
        raise ApiError(
            409,
            f"{req.reference} is {req.get_status_display().lower()}; only a draft can be submitted",
            status=req.status,
        )
    try:
        lifecycle.submit(req, actor=user)
    except IllegalTransition as exc:
        raise ApiError(409, str(exc)) from None
    req.refresh_from_db()
    return JsonResponse({"reference": req.reference, "status": req.status}, status=202)


@api_view("GET", "HEAD", authenticated=False)
def openapi(request, user):
    return JsonResponse(openapi_document())


# --- the OpenAPI 3.1 document ----------------------------------------------------------------


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_DATE = {"type": "string", "format": "date"}
_NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}
_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
}
_REFERENCE = {
    "name": "reference",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^DSR-\d{4}-\d{4,}$"},
    "example": "DSR-2025-0001",
}


def openapi_document():
    error = _json(_ref("Error"), "")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DSR Portal API",
            "version": "1",
            "description": (
                "Create, read, list and submit data subject requests from a ticketing system. "
                "Authenticate with `Authorization: Bearer <token>`; a token belongs to a privacy "
                "officer and is made with `manage.py create_api_token USERNAME`. Officers work "
                "as a team: a token sees every request. Approving or rejecting is not possible "
                "through the API: approvers decide through the signed link emailed to them. "
                'Every error is JSON: `{"error": "…"}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/requests": {
                "get": {
                    "operationId": "listRequests",
                    "summary": "List requests, newest first, 50 a page",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "description": "Only these statuses (repeat for several)",
                            "schema": {"type": "string", "enum": list(Status.values)},
                        },
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "default": 1},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("RequestPage"), "One page of requests"),
                        "400": {**error, "description": "Unknown status or bad page number"},
                        "404": {**error, "description": "No such page"},
                        **_ERRORS,
                    },
                },
                "post": {
                    "operationId": "createRequest",
                    "summary": "Create a request (saved as a draft)",
                    "description": (
                        "Nothing is stored unless the whole body is valid. Duplicate "
                        "identifiers (registration IDs compare case-insensitively) are "
                        "collapsed and said so in `notices`."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewRequest")}},
                    },
                    "responses": {
                        "201": {
                            **_json(_ref("Request"), "Created"),
                            "headers": {
                                "Location": {
                                    "description": "The new request's URL in this API",
                                    "schema": {"type": "string", "format": "uri"},
                                }
                            },
                        },
                        "400": _json(_ref("InvalidRequest"), "Invalid; nothing was stored"),
                        "413": {**error, "description": "Body too large"},
                        "415": {**error, "description": "Body is not JSON"},
                        **_ERRORS,
                    },
                },
            },
            "/api/v1/requests/{reference}": {
                "get": {
                    "operationId": "getRequest",
                    "summary": "A request with its plan, progress, approvals and artifacts",
                    "parameters": [_REFERENCE],
                    "responses": {
                        "200": _json(_ref("Request"), "The request"),
                        "404": {**error, "description": "No such request"},
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/requests/{reference}/submit": {
                "post": {
                    "operationId": "submitRequest",
                    "summary": "Submit a draft: the portal plans the work and asks for approval",
                    "parameters": [_REFERENCE],
                    "responses": {
                        "202": _json(_ref("Submitted"), "Submitted; planning has started"),
                        "404": {**error, "description": "No such request"},
                        "409": {**error, "description": "The request is not a draft"},
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `manage.py create_api_token`",
                }
            },
            "responses": {
                "Unauthorized": {**error, "description": "Missing, unknown or revoked token"},
                "Forbidden": {**error, "description": "The token's user is not an officer"},
            },
            "schemas": _schemas(),
        },
    }


def _schemas():
    summary_properties = {
        "reference": {"type": "string", "example": "DSR-2025-0001"},
        "kind": {"type": "string", "enum": ["export", "erasure", "export_and_erasure"]},
        "regulation": {"type": "string", "enum": ["gdpr", "ccpa"]},
        "status": {"type": "string", "enum": list(Status.values)},
        "received_at": _DATE,
        "due_at": _DATE,
        "extended_until": _NULLABLE_DATE,
        "created_at": {"type": "string", "format": "date-time"},
        "url": {"type": "string", "description": "This request in the API"},
    }
    id_text = {"type": "string", "maxLength": intake.MAX_ID_LENGTH}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "InvalidRequest": {
            "type": "object",
            "required": ["error", "fields", "identifiers"],
            "properties": {
                "error": {"const": "invalid request"},
                "fields": {
                    "type": "object",
                    "description": "Problems by field name",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "identifiers": {
                    "type": "array",
                    "description": "Problems by position in `identifiers`, counted from 0",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "error": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Identifier": {
            "type": "object",
            "description": (
                "A DPS registration ID (letters, digits and - . _ :), or a device ID and the "
                "configured IoT hub it is in, or all three."
            ),
            "additionalProperties": False,
            "properties": {
                "registration_id": {**id_text, "pattern": "^[A-Za-z0-9._:-]+$"},
                "device_id": {**id_text, "pattern": r"^[A-Za-z0-9\-.+%_#*?!(),:=@$']+$"},
                "hub": {"type": "string", "example": "my-hub.azure-devices.net"},
            },
            "anyOf": [{"required": ["registration_id"]}, {"required": ["device_id", "hub"]}],
        },
        "NewRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "regulation", "subject_reference", "identifiers"],
            "properties": {
                "kind": summary_properties["kind"],
                "regulation": summary_properties["regulation"],
                "received_at": {
                    **_DATE,
                    "description": "Default today; not in the future, not over a year ago",
                },
                "subject_reference": {
                    "type": "string",
                    "maxLength": 200,
                    "description": "A ticket number or pseudonym; no personal data",
                },
                "identifiers": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": intake.MAX_IDENTIFIERS,
                    "items": _ref("Identifier"),
                },
                "block_reprovisioning": {
                    "type": "boolean",
                    "default": True,
                    "description": "Erasure only; always false for an export",
                },
            },
        },
        "RequestSummary": {
            "type": "object",
            "properties": summary_properties,
        },
        "RequestPage": {
            "type": "object",
            "properties": {
                "results": {"type": "array", "items": _ref("RequestSummary")},
                "page": {"type": "integer"},
                "pages": {"type": "integer"},
                "count": {"type": "integer"},
                "next": {"type": ["string", "null"], "format": "uri"},
            },
        },
        "Request": {
            "type": "object",
            "properties": {
                **summary_properties,
                "subject_reference": {"type": "string"},
                "block_reprovisioning": {"type": "boolean"},
                "identifiers": {"type": "integer", "description": "How many identifiers"},
                "notices": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "On creation only: duplicates collapsed",
                },
                "plan": {
                    "type": "object",
                    "properties": {
                        "version": {"type": ["string", "null"]},
                        "devices": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "registration_id": {"type": "string"},
                                    "device_id": {"type": "string"},
                                    "dps": {"type": "string"},
                                    "hub": {"type": "string"},
                                    "state": {
                                        "type": "string",
                                        "enum": ["found", "not_found", "unreachable"],
                                    },
                                    "enrollment": {
                                        "type": "string",
                                        "enum": ["individual", "group", ""],
                                    },
                                    "modules": {"type": "array"},
                                },
                            },
                        },
                        "operations": {"type": "integer"},
                        "unreachable": {"type": "array", "items": {"type": "string"}},
                        "not_found": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "progress": {
                    "type": "object",
                    "properties": {
                        "done": {"type": "integer"},
                        "total": {"type": "integer"},
                        "failed": {"type": "integer"},
                    },
                },
                "approvals": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "approver": {"type": "string"},
                            "decision": {"type": "string", "enum": ["approved", "rejected"]},
                            "at": {"type": "string", "format": "date-time"},
                            "reason": {"type": "string"},
                        },
                    },
                },
                "artifacts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "kind": {
                                "type": "string",
                                "enum": ["export_archive", "certificate_pdf", "certificate_json"],
                            },
                            "url": {"type": "string", "description": "Download in the portal"},
                            "sha256": {"type": "string"},
                            "size": {"type": "integer"},
                        },
                    },
                },
            },
        },
        "Submitted": {
            "type": "object",
            "properties": {
                "reference": {"type": "string"},
                "status": {"type": "string", "enum": ["planning"]},
            },
        },
    }
