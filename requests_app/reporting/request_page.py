"""What the request page shows besides the plan: when it finished and how long it took, the next
thing to do in one sentence, and the timeline in words (runs of Azure calls folded into one line
that opens; on big runs left out and listed on demand).

Every query here is bounded: the timeline is paginated and counted once, whatever the plan size.
"""

import secrets
from collections import Counter
from dataclasses import dataclass

from django.core.paginator import Paginator
from django.utils import timezone

from requests_app.models import AuditEvent, Status
from requests_app.models.requests import FINAL_STATUSES
from requests_app.reporting import plan_view, timeline

EVENTS_PER_PAGE = 100
# Up to this many Azure calls the timeline lists them among the other events; above, they are
# counted and listed on demand (``?calls=all``), so the milestones stay on one screen.
INLINE_CALLS = 200


@dataclass
class Completion:
    day: object  # the local date the request reached its final status
    days_taken: int
    on_time: bool
    days_late: int


def completion(data_request):
    """When a finished request finished, and the days it took from receipt (None while open).
    ``completed_at`` is set by ``DataRequest.transition`` on every final status."""
    if data_request.status not in FINAL_STATUSES or not data_request.completed_at:
        return None
    day = timezone.localdate(data_request.completed_at)
    late = (day - data_request.effective_due).days
    return Completion(day, (day - data_request.received_at).days, late <= 0, max(late, 0))


def next_step(req, *, progress, approvals, done, is_officer, can_decide, my_decision):
    """One sentence: what is happening and what (if anything) needs doing first."""
    status = req.status
    if status == Status.DRAFT:
        if is_officer:
            return "A draft: check the identifiers, then submit it for planning and approval."
        return "A draft: an officer has not submitted it yet."
    if status == Status.PLANNING:
        if req.scoping_error:
            return "Planning failed (below). Fix the cause, then retry."
        return (
            "The portal is looking the devices up in Azure (read-only). This page updates itself."
        )
    if status == Status.AWAITING_APPROVAL:
        got = sum(
            1
            for a in approvals
            if a.plan_version == req.plan_version and a.decision == a.Decision.APPROVED
        )
        if can_decide:
            return "Your decision is needed: read the plan below, then approve or reject it."
        mine = f" You {my_decision.decision} this plan." if my_decision else ""
        return (
            f"Waiting for approval: {got} of {req.approvals_required} so far. "
            f"The approvers were emailed a link.{mine}"
        )
    if status == Status.APPROVED:
        return "Approved: fulfilment starts in a moment. This page updates itself."
    if status == Status.RUNNING:
        return "Running. This page updates itself; the downloads appear when it finishes."
    if status == Status.FAILED:
        return "Stopped on a failure (below). Retry runs again from the first unfinished step."
    if status in (Status.COMPLETED, Status.COMPLETED_WITH_ISSUES):
        text = f"{req.get_status_display()} on {done.day:%Y-%m-%d}" if done else "Completed"
        if done:
            text += f", {done.days_taken} day{'s' if done.days_taken != 1 else ''} after receipt"
            text += ", on time." if done.on_time else f", {done.days_late} days late."
        if status == Status.COMPLETED_WITH_ISSUES:
            text += " Some devices must be handled by hand: see the plan."
        return text
    if status == Status.REJECTED:
        return f"Rejected{f' on {done.day:%Y-%m-%d}' if done else ''}: {req.rejection_reason}"
    if status == Status.CANCELLED:
        return f"Cancelled{f' on {done.day:%Y-%m-%d}' if done else ''}: {req.cancel_reason}"
    return req.get_status_display()


@dataclass
class CallRun:
    """Azure calls one after the other on the timeline, shown as one line that opens."""

    calls: list
    summary: str

    @property
    def created_at(self):
        return self.calls[0].created_at


@dataclass
class Timeline:
    page: object
    items: list  # AuditEvent (with .text, .tone, .by) or CallRun
    calls: int
    calls_shown: bool
    calls_folded: bool


def _run_summary(calls):
    statuses = Counter(str(c.details.get("status") or "no answer") for c in calls)
    hosts = sorted({timeline.short_host(c.details.get("host")) for c in calls})
    answers = ", ".join(f"{n} × {status}" for status, n in sorted(statuses.items()))
    return f"Azure: {len(calls)} calls on {', '.join(hosts)} → {answers}"


def grouped(events):
    """Consecutive Azure calls folded into one ``CallRun`` (a single call stays a line)."""
    items, run = [], []

    def flush():
        if len(run) == 1:
            items.append(run[0])
        elif run:
            items.append(CallRun(list(run), _run_summary(run)))
        run.clear()

    for event in events:
        if event.action == "azure_call":
            run.append(event)
            continue
        flush()
        items.append(event)
    flush()
    return items


def request_timeline(req, params):
    events = AuditEvent.objects.filter(request_ref=req.reference)
    calls = events.filter(action="azure_call").count()
    show_calls = calls <= INLINE_CALLS or params.get("calls") == "all"
    listed = events if show_calls else events.exclude(action="azure_call")
    page = Paginator(listed.order_by("seq"), EVENTS_PER_PAGE).get_page(params.get("events"))
    return Timeline(
        page=page,
        items=grouped(timeline.described(page.object_list)),
        calls=calls,
        calls_shown=show_calls,
        calls_folded=calls > INLINE_CALLS,
    )


def failure_words(req):
    """The stored failure (completion.fail) in words, or ''."""
    failure = req.failure or {}
    if not failure:
        return ""
    name = plan_view.operation_name(failure.get("action", ""), "")
    text = f"{name} for {failure.get('device', '?')}"
    if failure.get("http_status"):
        text += f" → {failure['http_status']}"
    if failure.get("error_code"):
        text += f" {failure['error_code']}"
    if failure.get("message"):
        text += f": {failure['message']}"
    return text


def retention(req):
    """What the request page says about forgetting: the legal hold, if any, and for each file
    when it was or will be deleted and under which rule."""
    from requests_app.evidence import retention as rules
    from requests_app.models import LegalHold

    hold = LegalHold.objects.filter(request=req).select_related("placed_by").first()
    files = []
    for artifact in req.artifacts.all():
        rule = rules.rule_for(artifact.kind)
        due = None
        if not artifact.purged_at and hold is None and req.completed_at:
            due = rule.deadline(req.completed_at)
        files.append({"artifact": artifact, "rule": rule, "due": due})
    return {"hold": hold, "files": files}


def deliveries(req, user):
    """The delivery card: whether ``user`` may make links here, and each link with its state."""
    from django.conf import settings

    from requests_app import access
    from requests_app.access import roles
    from requests_app.evidence import delivery

    archive = delivery.archive_of(req)
    if archive is None:
        return None
    may_make = access.can_download(user, archive)  # who may download it may hand it over
    may_revoke = access.has_any(user, (roles.OFFICER, roles.ADMIN))  # any officer
    if not (may_make or may_revoke):
        return None
    links = [(d, delivery.state_of(d)) for d in req.deliveries.select_related("created_by")]
    can_make = (
        may_make
        and delivery.servable(archive)
        and req.status in (Status.COMPLETED, Status.COMPLETED_WITH_ISSUES)
    )
    if not (links or can_make):
        return None
    return {
        "can_revoke": may_revoke,
        "can_make": can_make,
        "links": [{"delivery": d, "state": s, "label": d.State(s).label} for d, s in links],
        "days": settings.DSR_DELIVERY_DAYS,
        "max_days": settings.DSR_DELIVERY_MAX_DAYS,
        "downloads": settings.DSR_DELIVERY_DOWNLOADS,
        "max_downloads": settings.DSR_DELIVERY_MAX_DOWNLOADS,
        # One per rendering of the form: a reload of the page showing the new link does not
        # make a second one (views/delivery.py).
        "form_id": secrets.token_urlsafe(12),
    }
