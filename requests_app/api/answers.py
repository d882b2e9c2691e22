"""What an officer's token sees, and a request as the API shows it (shaped by api.schemas).

Officers work as a team: each sees every request. Nobody else uses the API.
"""

from django.db.models import Count
from django.urls import reverse

from requests_app.access import roles
from requests_app.api.tokens import ApiError
from requests_app.jobs.cost import plan_cost
from requests_app.jobs.operations import FINISHED_STATES, OPERATIONS, operation_name
from requests_app.models import DataRequest, Operation, PlannedDevice


def visible_requests(user):
    if roles.has_role(user, roles.OFFICER):
        return DataRequest.objects.all()
    return DataRequest.objects.none()


def get_visible_request(user, reference):
    req = visible_requests(user).filter(reference=reference).first()
    if req is None:
        raise ApiError(404, f"no request {reference}")
    return req


def request_summary(req):
    """A ``RequestSummary``."""
    return {
        "reference": req.reference,
        "kind": req.kind,
        "regulation": req.regulation,
        "status": req.status,
        "received_at": req.received_at,
        "due_at": req.due_at,
        "extended_until": req.extended_until,
        "created_at": req.created_at,
        "url": reverse("api_request", args=[req.reference]),
    }


def _plan(req):
    devices = list(req.devices.all())
    return {
        "version": req.plan_version or None,
        "devices": [
            {
                "registration_id": device.registration_id,
                "device_id": device.device_id,
                "dps": device.dps,
                "hub": device.hub,
                "state": device.state,
                "enrollment": device.enrollment,
                "modules": device.modules,
            }
            for device in devices
        ],
        "unreachable": [
            device.label for device in devices if device.state == PlannedDevice.State.UNREACHABLE
        ],
        "not_found": [
            device.label for device in devices if device.state == PlannedDevice.State.NOT_FOUND
        ],
    }


def _steps(req):
    """How many of each operation the plan holds, named and in plan order (the registry's)."""
    by_action = req.operations.order_by().values("action").annotate(n=Count("id"))
    counts = dict(by_action.values_list("action", "n"))
    order = list(OPERATIONS)
    ranked = sorted(counts, key=lambda a: (order.index(a) if a in order else len(order), a))
    return [_step(action, counts[action]) for action in ranked]


def _step(action, count):
    entry = OPERATIONS.get(action)
    return {
        "action": action,
        "name": entry.summary_name() if entry else operation_name(action),
        "phase": entry.phase if entry else "",
        "count": count,
    }


def _cost(req):
    cost = plan_cost(req)
    return {
        "buckets": [
            {
                "host": b.host,
                "bucket": b.bucket,
                "calls": b.calls,
                "per_minute": b.per_second * 60 if b.per_second else None,
                "capacity": b.capacity,
                "seconds": b.seconds,
            }
            for b in cost.buckets
        ],
        "projected_seconds": cost.seconds,
        "projected": cost.sentence(),
    }


def _discovery(req):
    """The latest search by owner, in counts (never the keys), or None."""
    found = req.discoveries.first()
    if found is None:
        return None
    return {
        "state": found.state,
        "targets": [
            {"host": host, "state": done.get("state"), "matches": done.get("matches", 0)}
            for host, done in sorted(found.targets.items())
        ],
        "found": found.matches.count(),
        "confirmed": found.confirmed_count,
        "url": reverse("discovery_page", args=[req.reference]),
    }


def request_detail(req):
    """A ``Request``: everything a ticketing system may know (never the audit details)."""
    states = dict(
        req.operations.order_by().values("state").annotate(n=Count("id")).values_list("state", "n")
    )
    total = sum(states.values())
    base = req.get_absolute_url() if req.artifacts.exists() else ""
    return {
        **request_summary(req),
        "subject_reference": req.subject_reference,
        "block_reprovisioning": req.block_reprovisioning,
        "identifiers": req.identifiers.count(),
        "discovery": _discovery(req),
        "plan": {**_plan(req), "operations": total, "steps": _steps(req), "cost": _cost(req)},
        "progress": {
            "done": sum(states.get(state, 0) for state in FINISHED_STATES),
            "total": total,
            "failed": states.get(Operation.State.FAILED, 0),
        },
        "approvals": [
            {
                "approver": approval.approver_name,
                "decision": approval.decision,
                "at": approval.created_at,
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
                "purged_at": artifact.purged_at,
            }
            for artifact in req.artifacts.all()
        ],
    }
