"""The approver's email link. The link says which request; the signed-in session says who.

1. ``GET /approve/<token>/`` checks the signed token and exchanges it for a reference kept in
   this browser's session, then redirects to ``/approve/t/<ref>/``: the token appears in one
   access-log line at most (the portal's own logs redact it, portal/logging.py), and the page
   people stay on carries nothing that works elsewhere. Mail scanners that open links get
   only that redirect and then a sign-in page. A POST to the token URL is refused (405).
2. ``/approve/t/<ref>/`` asks the named approver to sign in (second factor included), names the
   approver when someone else is signed in, and shows the plan with the decision form.
3. The decision is a POST to the same page, with Django's CSRF check like every POST, and
   ``lifecycle.decide`` checks the session's proof (access.may_decide): no decision without
   the named approver's signed-in, second-factor session, recent for an erasure.

The page uses ``Referrer-Policy: same-origin`` rather than ``no-referrer``: its URL holds no
secret (the reference is useless outside this session), and with ``no-referrer`` browsers send
``Origin: null`` on the form's POST, which CSRF protection must refuse. The token URL itself
answers only a redirect, with ``no-referrer``.
"""

import secrets
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from requests_app.access import may_decide
from requests_app.accounts import noise, twofactor
from requests_app.accounts.identity import client_ip
from requests_app.jobs import cost
from requests_app.models import Approval, AuditEvent, DataRequest
from requests_app.reporting import plan_view
from requests_app.workflow import lifecycle
from requests_app.workflow.tokens import TokenRefused, read_token

TICKETS = "dsr_approval_tickets"
# A session keeps at most this many open approval pages (oldest dropped first).
MAX_TICKETS = 20


def _refuse(request, refusal, data_request=None, approver=None, *, audit=True):
    """A page saying, in one sentence, why this cannot be used and what to do."""
    details = {
        "request": data_request,
        "reason": refusal.reason,
        "link_for": approver.get_username() if approver else "",
        "ip": client_ip(request),
    }
    if audit and request.user.is_authenticated:
        AuditEvent.record("approval_link_refused", actor=request.user, **details)
    elif audit:  # anonymous: bad or expired tokens, bounded (accounts/noise.py)
        noise.record_anonymous("approval_link_refused", **details)
    response = render(
        request,
        "requests_app/approval_refused.html",
        {"message": str(refusal), "reason": refusal.reason, "req": data_request},
        status=refusal.status,
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def approval_link(request, token):
    """Exchange the emailed token for a session-bound reference, then redirect."""
    try:
        payload = read_token(token)
    except TokenRefused as refusal:
        return _refuse(request, refusal)
    data_request = DataRequest.objects.filter(pk=payload.get("r")).first()
    approver = get_user_model().objects.filter(pk=payload.get("a"), is_active=True).first()
    if data_request is None or approver is None:
        refusal = TokenRefused("unknown", "This approval link no longer points at anything.", 410)
        return _refuse(request, refusal)
    tickets = request.session.get(TICKETS, {})
    ref = secrets.token_urlsafe(16)
    tickets[ref] = {"r": data_request.pk, "a": approver.pk, "v": payload["v"], "at": time.time()}
    request.session[TICKETS] = dict(
        sorted(tickets.items(), key=lambda i: i[1]["at"])[-MAX_TICKETS:]
    )
    AuditEvent.record(
        "approval_link_opened",
        request=data_request,
        approver=approver.get_username(),
        signed_in_as=request.user.get_username() if request.user.is_authenticated else "",
        ip=client_ip(request),
    )
    response = redirect("approval_page", ref=ref)
    response["Referrer-Policy"] = "no-referrer"
    return response


def _ticket(request, ref):
    """(data_request, approver, plan_version) for this session's reference, or Http404."""
    ticket = request.session.get(TICKETS, {}).get(ref)
    if ticket is None:
        raise Http404("Open the link from your approval email again (in this browser).")
    data_request = DataRequest.objects.filter(pk=ticket["r"]).first()
    approver = get_user_model().objects.filter(pk=ticket["a"]).first()
    if data_request is None or approver is None:
        raise Http404
    return data_request, approver, ticket["v"]


def _use_up(request, ref):
    tickets = request.session.get(TICKETS, {})
    tickets.pop(ref, None)
    request.session[TICKETS] = tickets


@never_cache
@require_http_methods(["GET", "POST"])
def approval_page(request, ref):
    data_request, approver, version = _ticket(request, ref)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.user.pk != approver.pk:
        refusal = TokenRefused(
            "other_approver",
            f"This approval link is for {approver.get_username()}. You are signed in as "
            f"{request.user.get_username()}: sign out, then open the link again and sign in "
            f"as {approver.get_username()}.",
            403,
        )
        return _refuse(request, refusal, data_request, approver)
    proof = twofactor.proof_of(request)
    refusal = may_decide(approver, data_request, plan_version=version, proof=proof)
    if refusal is not None and not refusal.fixable:
        _use_up(request, ref)
        # A link opened again after its decision, or after the request moved on, is not an
        # incident: say so calmly, and keep the trail for what could be one.
        benign = refusal.reason in ("used", "not_awaiting")
        return _refuse(request, refusal, data_request, approver, audit=not benign)
    error = ""
    if request.method == "POST":
        error, done = _post_decision(request, data_request, approver, version, proof)
        if done is not None:
            _use_up(request, ref)
            return done
        refusal = may_decide(approver, data_request, plan_version=version, proof=proof)
    response = render(
        request,
        "requests_app/approval.html",
        {
            "req": data_request,
            "approver": approver,
            "refusal": refusal,
            "reauth_url": f"{reverse('reauth')}?next={request.path}",
            "others": _other_approvers(data_request, approver),
            "consequences": _consequences(data_request) if data_request.includes_erasure else None,
            "approvals": data_request.approvals.filter(plan_version=version),
            "error": error,
            "reason": request.POST.get("reason", ""),
            "plan": plan_view.build(data_request, request.GET),
            "cost": cost.plan_cost(data_request),
        },
        status=400 if error else (refusal.status if refusal else 200),
    )
    response["Referrer-Policy"] = "same-origin"
    return response


def _post_decision(request, data_request, approver, version, proof):
    """(error, response): an error to show on the page, or the response once decided."""
    decision = request.POST.get("decision")
    if decision not in Approval.Decision.values:
        return "Choose Approve or Reject.", None
    if (
        decision == Approval.Decision.APPROVED
        and data_request.includes_erasure
        and request.POST.get("confirm") != "irreversible"
    ):
        return "Tick the box to confirm you understand the deletion cannot be undone.", None
    try:
        lifecycle.decide(
            data_request,
            approver=approver,
            decision=decision,
            reason=request.POST.get("reason", ""),
            via="link",
            plan_version=version,
            proof=proof,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    except lifecycle.DecisionRefused as refusal:
        if refusal.reason == "reason_required" or refusal.fixable:
            return str(refusal), None
        return "", _refuse(request, refusal, data_request, approver, audit=False)
    response = render(
        request,
        "requests_app/approval_done.html",
        {"req": data_request, "decision": decision, "approver": approver},
    )
    response["Referrer-Policy"] = "same-origin"
    return "", response


CONSEQUENCES = {
    # erasure action → (list, sentence for n)
    "hub.delete_device": ("deleted", "{n} hub device{s}, with {its} twin{s}{modules}"),
    "hub.delete_module": ("deleted", "{n} module identit{ies} (and module twins)"),
    "dps.delete_enrollment": ("deleted", "{n} individual DPS enrollment{s}"),
    "dps.delete_registration": ("deleted", "{n} DPS registration record{s}"),
    "dps.block_reprovisioning": (
        "created",
        "{n} disabled individual enrollment{s}, so {n_devices} cannot provision again "
        "through {its} enrollment group (kept as retained data)",
    ),
}


def _consequences(data_request):
    """What an erasure deletes, creates and leaves, in sentences for the approval page."""
    from django.db.models import Count

    from requests_app.models import Operation, PlannedDevice

    counts = dict(
        data_request.operations.filter(phase=Operation.Phase.ERASURE)
        .values_list("action")
        .annotate(n=Count("id"))
    )
    lists = {"deleted": [], "created": []}
    for action, (where, sentence) in CONSEQUENCES.items():
        n = counts.get(action, 0)
        if n:
            one = n == 1
            lists[where].append(
                sentence.format(
                    n=n,
                    s="" if one else "s",
                    ies="y" if one else "ies",
                    its="its" if one else "their",
                    n_devices="that device" if one else "those devices",
                    modules=_modules_deleted_with(data_request)
                    if action == "hub.delete_device"
                    else "",
                )
            )
    states = dict(data_request.devices.values_list("state").annotate(n=Count("id")))
    kept = ["enrollment groups (they serve other devices)"]
    if states.get(PlannedDevice.State.NOT_FOUND):
        kept.append(f"{states[PlannedDevice.State.NOT_FOUND]} identifier(s) found nowhere")
    unreachable = sum(n for state, n in states.items() if state not in ("found", "not_found"))
    if unreachable:
        kept.append(f"{unreachable} device(s) on hubs the portal may not call: handle by hand")
    return {**lists, "kept": kept}


def _modules_deleted_with(data_request):
    """ ", and 3 modules (with their module twins)": what the device DELETEs take with them,
    unless the plan deletes the modules one by one (plans made before it stopped doing so)."""
    from requests_app.models import Operation

    erasure = data_request.operations.filter(phase=Operation.Phase.ERASURE)
    if erasure.filter(action="hub.delete_module").exists():
        return ""
    n = sum(
        len(modules)
        for modules in erasure.filter(action="hub.delete_device").values_list(
            "device__modules", flat=True
        )
    )
    if not n:
        return ""
    if n == 1:
        return " and 1 module (with its module twin)"
    return f" and {n} modules (with their module twins)"


def _other_approvers(data_request, approver):
    """Who else may still approve this plan (for the 'who else must approve' line)."""
    decided = set(
        data_request.approvals.filter(plan_version=data_request.plan_version).values_list(
            "approver_id", flat=True
        )
    )
    return [
        u.get_username()
        for u in lifecycle.approvers_for(data_request)
        if u.pk != approver.pk and u.pk not in decided
    ]
