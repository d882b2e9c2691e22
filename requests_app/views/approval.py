"""The approver's email link: GET shows the plan (mail scanners may open it: nothing changes),
POST records the decision. Refusals say which problem it was, with 403/410, on the record."""

from django.contrib.auth import get_user_model
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from requests_app import lifecycle
from requests_app.models import Approval, AuditEvent, DataRequest, Status
from requests_app.progress import plan_operations
from requests_app.tokens import TokenRefused, read_token


def _client(request):
    return request.META.get("REMOTE_ADDR"), request.META.get("HTTP_USER_AGENT", "")[:300]


def _refuse(request, refusal, req=None, approver=None):
    ip, agent = _client(request)
    AuditEvent.record(
        "approval_link_refused",
        actor=approver,
        actor_kind="approver" if approver else "anonymous",
        actor_name=approver.get_username() if approver else "unknown",
        request=req,
        reason=refusal.reason,
        ip=ip,
        user_agent=agent,
    )
    response = render(
        request,
        "requests_app/approval_refused.html",
        {"message": str(refusal), "reason": refusal.reason},
        status=refusal.status,
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


def _resolve(request, token):
    """(request, approver, payload) for a usable token, or raise TokenRefused."""
    payload = read_token(token)
    req = DataRequest.objects.filter(pk=payload.get("r")).first()
    approver = get_user_model().objects.filter(pk=payload.get("a"), is_active=True).first()
    if req is None or approver is None:
        raise TokenRefused("unknown", "This approval link no longer points at anything.", 410)
    if request.user.is_authenticated and request.user.pk != approver.pk:
        raise TokenRefused(
            "other_approver",
            "This link was sent to another approver; only they can use it.",
            403,
        )
    if req.status != Status.AWAITING_APPROVAL:
        raise TokenRefused(
            "not_awaiting",
            f"{req.reference} is no longer awaiting approval "
            f"(it is {req.get_status_display().lower()}).",
            410,
        )
    if payload.get("v") != req.plan_version:
        raise TokenRefused(
            "stale_plan", "The plan changed after this link was sent; use the newest email.", 410
        )
    if req.approvals.filter(approver=approver, plan_version=req.plan_version).exists():
        raise TokenRefused("used", "This link has already been used: it works once.", 410)
    return req, approver, payload


@never_cache
@csrf_exempt  # the signed, single-use token in the URL is the capability (see below)
@require_http_methods(["GET", "POST"])
def approval_link(request, token):
    """No CSRF cookie check here, on purpose: a forged cross-site POST would need the token,
    which only the approver's mailbox holds, and it is bound to that approver and plan. The page
    keeps Referrer-Policy: no-referrer, so browsers send ``Origin: null`` on the form's POST,
    which Django's CSRF check would refuse."""
    req = approver = None
    try:
        req, approver, payload = _resolve(request, token)
    except TokenRefused as refusal:
        payload = None
        try:
            data = read_token(token)
            req = DataRequest.objects.filter(pk=data.get("r")).first()
            approver = get_user_model().objects.filter(pk=data.get("a")).first()
        except TokenRefused:
            pass
        return _refuse(request, refusal, req, approver)

    error = ""
    if request.method == "POST":
        decision = request.POST.get("decision")
        ip, agent = _client(request)
        if decision not in Approval.Decision.values:
            error = "Choose Approve or Reject."
        else:
            try:
                lifecycle.decide(
                    req,
                    approver=approver,
                    decision=decision,
                    reason=request.POST.get("reason", ""),
                    via="link",
                    plan_version=payload["v"],
                    ip=ip,
                    user_agent=agent,
                )
            except lifecycle.DecisionRefused as refusal:
                if refusal.reason == "reason_required":
                    error = str(refusal)
                else:
                    return _refuse(request, refusal, req, approver)
            else:
                response = render(
                    request,
                    "requests_app/approval_done.html",
                    {"req": req, "decision": decision, "approver": approver},
                )
                response["Referrer-Policy"] = "no-referrer"
                return response
    response = render(
        request,
        "requests_app/approval.html",
        {
            "req": req,
            "approver": approver,
            "devices": req.devices.all(),
            "operations": plan_operations(req),
            "approvals": req.approvals.filter(plan_version=req.plan_version),
            "error": error,
            "reason": request.POST.get("reason", ""),
        },
        status=400 if error else 200,
    )
    response["Referrer-Policy"] = "no-referrer"
    return response
