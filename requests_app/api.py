"""The JSON API's rules: bearer tokens, reading a new request's body, and a request as JSON.

Tokens belong to an officer and are stored only as SHA-256 hashes. Problems are raised as
``ApiError`` (status + JSON body); the views in ``requests_app.views.api`` turn them into answers.
"""

import hashlib
import json
import secrets
from datetime import date

from django.core.exceptions import RequestDataTooBig
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from requests_app import intake, roles
from requests_app.accounts import lockout
from requests_app.accounts.identity import client_ip
from requests_app.models import (
    ApiToken,
    DataRequest,
    Kind,
    Operation,
    PlannedDevice,
    Regulation,
)

PAGE_SIZE = 50
UNREACHABLE = PlannedDevice.State.UNREACHABLE
NOT_FOUND = PlannedDevice.State.NOT_FOUND
FIELDS = {
    "kind",
    "regulation",
    "received_at",
    "subject_reference",
    "identifiers",
    "block_reprovisioning",
}
IDENTIFIER_FIELDS = {"registration_id", "device_id", "hub"}


# --- tokens ----------------------------------------------------------------------------------


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(user, name=""):
    """Create a token for ``user``: returns (ApiToken, the token), the token is shown once."""
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, token_hash=hash_token(raw), prefix=raw[:8]
    )
    return token, raw


class ApiError(Exception):
    """A refusal: the HTTP status and the JSON body ``{"error": message, **extra}``."""

    def __init__(self, http_status, message, **extra):
        super().__init__(message)
        self.status = http_status
        self.body = {"error": message, **extra}
        self.headers = {}


def _unauthorized(message, error="invalid_token"):
    problem = ApiError(401, message)
    problem.headers["WWW-Authenticate"] = f'Bearer realm="dsr-portal", error="{error}"'
    return problem


def authenticate(request):
    """The officer the request's bearer token belongs to; ApiError 401/403 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if not header:
        problem = _unauthorized("missing token: send Authorization: Bearer <token>")
        problem.headers["WWW-Authenticate"] = 'Bearer realm="dsr-portal"'
        raise problem
    if scheme.lower() != "bearer" or not raw.strip():
        raise _unauthorized("the Authorization header must be: Bearer <token>", "invalid_request")
    # The same lockout as every sign-in door: a client that keeps guessing tokens is refused.
    # Tokens have no username, so the address stands in for one: five bad tokens lock the
    # API for that address (and count toward its limit at the other doors).
    guessed = f"api-token@{client_ip(request)}"
    if lockout.is_locked(request, guessed):
        problem = ApiError(
            429,
            "too many failed authentications from this address; "
            f"try again in {lockout.lockout_minutes()} minutes",
        )
        problem.headers["Retry-After"] = str(lockout.lockout_minutes() * 60)
        raise problem
    token = (
        ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw.strip())).first()
    )
    if token is None or token.revoked:
        lockout.count_failure(request, guessed, "api_token")
        raise _unauthorized("unknown token" if token is None else "this token has been revoked")
    user = token.user
    if not user.is_active:
        raise _unauthorized("the token's user is deactivated")
    if not roles.has_role(user, roles.OFFICER):
        raise ApiError(403, "the token's user is not a privacy officer")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return user


# --- what a request looks like from outside --------------------------------------------------


def _iso(value):
    return value.isoformat() if value else None


def request_summary(req):
    return {
        "reference": req.reference,
        "kind": req.kind,
        "regulation": req.regulation,
        "status": req.status,
        "received_at": _iso(req.received_at),
        "due_at": _iso(req.due_at),
        "extended_until": _iso(req.extended_until),
        "created_at": _iso(req.created_at),
        "url": reverse("api_request", args=[req.reference]),
    }


def _device_as_json(device):
    return {
        "registration_id": device.registration_id,
        "device_id": device.device_id,
        "dps": device.dps,
        "hub": device.hub,
        "state": device.state,
        "enrollment": device.enrollment,
        "modules": device.modules,
    }


def request_as_json(req):
    """Everything a ticketing system may know about ``req`` (never the audit details)."""
    devices = list(req.devices.all())
    states = dict(
        req.operations.order_by().values("state").annotate(n=Count("id")).values_list("state", "n")
    )
    finished = (Operation.State.DONE, Operation.State.ALREADY_ABSENT, Operation.State.SKIPPED)
    total = sum(states.values())
    base = req.get_absolute_url() if req.artifacts.exists() else ""
    return {
        **request_summary(req),
        "subject_reference": req.subject_reference,
        "block_reprovisioning": req.block_reprovisioning,
        "identifiers": req.identifiers.count(),
        "plan": {
            "version": req.plan_version or None,
            "devices": [_device_as_json(device) for device in devices],
            "operations": total,
            "unreachable": [
                device.label
                for device in devices
                if device.state == PlannedDevice.State.UNREACHABLE
            ],
            "not_found": [
                device.label for device in devices if device.state == PlannedDevice.State.NOT_FOUND
            ],
        },
        "progress": {
            "done": sum(states.get(state, 0) for state in finished),
            "total": total,
            "failed": states.get(Operation.State.FAILED, 0),
        },
        "approvals": [
            {
                "approver": approval.approver_name,
                "decision": approval.decision,
                "at": _iso(approval.created_at),
                "reason": approval.reason,
            }
            for approval in req.approvals.all()
        ],
        "artifacts": [
            {
                "kind": artifact.kind,
                "url": f"{base}artifacts/{artifact.kind}/",
                "sha256": artifact.sha256,
                "size": artifact.size,
            }
            for artifact in req.artifacts.all()
        ],
    }


def visible_requests(user):
    """Officers work as a team: each sees every request. Nobody else uses the API."""
    if roles.has_role(user, roles.OFFICER):
        return DataRequest.objects.all()
    return DataRequest.objects.none()


def get_visible_request(user, reference):
    req = visible_requests(user).filter(reference=reference).first()
    if req is None:
        raise ApiError(404, f"no request {reference}")
    return req


# --- reading a new request -------------------------------------------------------------------


def json_body(request):
    content_type = request.content_type or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    try:
        return json.loads(request.body or b"")
    except RequestDataTooBig:
        raise ApiError(413, "the body is too large") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def _choice(value, choices, name, errors):
    if value is None:
        errors[name] = ["required"]
    elif value not in choices.values:
        allowed = ", ".join(choices.values)
        errors[name] = [f"must be one of: {allowed}"]
    return value


def _received(value, errors):
    if value is None:
        return timezone.localdate()
    try:
        received = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        received = None
    if received is None or len(value) != 10:
        errors["received_at"] = ["must be a date as YYYY-MM-DD"]
        return None
    problem = intake.check_received_at(received)
    if problem:
        errors["received_at"] = [problem]
    return received


def _identifier_entries(items, problems):
    """(line, registration_id, device_id, hub) per well-formed item; others go to problems."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append({"index": index, "error": "must be an object"})
            continue
        unknown = sorted(set(item) - IDENTIFIER_FIELDS)
        wrong_type = sorted(name for name in item if not isinstance(item[name], str | None))
        if unknown or wrong_type:
            message = (
                f"unknown field {unknown[0]!r}" if unknown else f"{wrong_type[0]} must be a string"
            )
            problems.append({"index": index, "error": message})
            continue
        yield (
            index + 1,
            (item.get("registration_id") or "").strip(),
            (item.get("device_id") or "").strip(),
            (item.get("hub") or "").strip(),
        )


def parse_new_request(data):
    """Check a create body. Returns (values, identifier_list); ApiError 400 listing every
    problem by field and by identifier index (counted from 0) otherwise."""
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    errors = {name: ["unknown field"] for name in sorted(set(data) - FIELDS)}
    kind = _choice(data.get("kind"), Kind, "kind", errors)
    regulation = _choice(data.get("regulation"), Regulation, "regulation", errors)
    received = _received(data.get("received_at"), errors)
    subject = data.get("subject_reference")
    if not isinstance(subject, str):
        errors["subject_reference"] = ["required: a ticket number or pseudonym"]
    elif problem := intake.check_subject_reference(subject):
        errors["subject_reference"] = [problem]
    block = data.get("block_reprovisioning", True)
    if not isinstance(block, bool):
        errors["block_reprovisioning"] = ["must be true or false"]
    items = data.get("identifiers")
    identifier_problems, parsed = [], None
    if not isinstance(items, list) or not items:
        errors["identifiers"] = ["required: a list of at least one identifier"]
    elif len(items) > intake.MAX_IDENTIFIERS:
        errors["identifiers"] = [
            f"{len(items):,} identifiers; one request may name at most {intake.MAX_IDENTIFIERS:,}"
        ]
    else:
        parsed = intake.collect(
            _identifier_entries(items, identifier_problems), intake.configured_hub_names()
        )
        identifier_problems += [
            {"index": line - 1, "error": message} for line, message in parsed.errors
        ]
        identifier_problems.sort(key=lambda problem: problem["index"])
        if parsed.problem and not identifier_problems:
            errors["identifiers"] = [parsed.problem]
        elif parsed.error_count > len(parsed.errors):
            errors["identifiers"] = [
                f"{parsed.error_count:,} identifiers are invalid; the first "
                f"{len(parsed.errors)} are listed"
            ]
    if errors or identifier_problems:
        raise ApiError(400, "invalid request", fields=errors, identifiers=identifier_problems)
    values = {
        "kind": kind,
        "regulation": regulation,
        "received_at": received,
        "subject_reference": subject,
        "block_reprovisioning": block,
    }
    return values, parsed
