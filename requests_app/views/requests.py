"""The request page and the officer's actions on it: one small view per action."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from requests_app import access
from requests_app.access import roles
from requests_app.accounts import twofactor
from requests_app.accounts.identity import client_ip
from requests_app.evidence.artifacts import artifact_path
from requests_app.jobs import cost
from requests_app.models import (
    Approval,
    AuditEvent,
    IllegalTransition,
    Status,
)
from requests_app.models.requests import FINAL_STATUSES, TRANSITIONS
from requests_app.reporting import plan_view, request_page
from requests_app.reporting.progress import progress_of
from requests_app.views import retention as retention_views
from requests_app.workflow import deadlines, lifecycle


@login_required
def request_detail(request, reference):
    req = access.request_for_viewer(request.user, reference)
    user = request.user
    is_officer = access.is_officer(user)
    my_decision = req.approvals.filter(approver=user, plan_version=req.plan_version).first()
    # The same rule as the decision itself: the form when it would be accepted; what to do
    # when the person could fix it (re-authenticate, sign in with a second factor).
    refusal = access.may_decide(user, req, proof=twofactor.proof_of(request))
    may_decide = refusal is None
    blocked = refusal if refusal is not None and refusal.fixable else None
    progress = progress_of(req)
    approvals = list(req.approvals.all())
    done = request_page.completion(req)
    context = {
        "req": req,
        "plan": plan_view.build(req, request.GET),
        "approvals": approvals,
        "artifacts": [
            a for a in req.artifacts.select_related("request") if access.can_download(user, a)
        ],
        "timeline": request_page.request_timeline(req, request.GET),
        "progress": progress,
        "done": done,
        "next_step": request_page.next_step(
            req,
            progress=progress,
            approvals=approvals,
            done=done,
            is_officer=is_officer,
            can_decide=may_decide or blocked is not None,
            my_decision=my_decision,
        ),
        "failure": request_page.failure_words(req),
        "officer_actions": is_officer,
        "can_decide": may_decide,
        "decision_blocked": blocked,
        "my_decision": my_decision,
        "extension_limit": deadlines.extension_limit(req),
        "can_cancel": Status.CANCELLED in TRANSITIONS[Status(req.status)],
        "can_evidence": access.can_see_reports(user),
        # Before it runs: what the plan will spend of Azure's throttles, and how long.
        "cost": cost.plan_cost(req)
        if req.status in (Status.AWAITING_APPROVAL, Status.APPROVED)
        else None,
        "retention": request_page.retention(req),
        "finding": req.discoveries.first(),
        "delivery": request_page.deliveries(req, user),
        "can_hold": access.has_any(user, (roles.OFFICER, roles.ADMIN)),
    }
    return render(request, "requests_app/request_detail.html", context)


@login_required
@require_GET
@never_cache
def request_progress(request, reference):
    req = access.request_for_viewer(request.user, reference)
    return JsonResponse(
        {
            "status": req.status,
            "label": req.get_status_display(),
            "final": req.status in FINAL_STATUSES,
            **progress_of(req),
        }
    )


def _officer_action(request, reference, action, success):
    req = access.request_for_officer(request.user, reference)
    try:
        action(req)
    except (IllegalTransition, ValueError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect(req.get_absolute_url())


@login_required
@require_POST
def request_submit(request, reference):
    return _officer_action(
        request,
        reference,
        lambda req: lifecycle.submit(req, actor=request.user),
        "Submitted: the plan is being prepared. Approvers are emailed when it is ready.",
    )


@login_required
@require_POST
def request_cancel(request, reference):
    reason = request.POST.get("reason", "")
    return _officer_action(
        request,
        reference,
        lambda req: lifecycle.cancel(req, actor=request.user, reason=reason),
        "The request was cancelled.",
    )


@login_required
@require_POST
def request_retry(request, reference):
    def retry(req):
        if req.status == Status.PLANNING:
            lifecycle.retry_scoping(req, actor=request.user)
        else:
            from requests_app.jobs import fulfilment

            fulfilment.retry(req, actor=request.user)

    return _officer_action(request, reference, retry, "Retrying from the first unfinished step.")


@login_required
@require_POST
def request_resend(request, reference):
    def resend(req):
        if req.status != Status.AWAITING_APPROVAL:
            raise IllegalTransition(f"{req.reference} is not awaiting approval")
        lifecycle.notify_approvers(req, actor=request.user)

    return _officer_action(request, reference, resend, "Approval emails sent again.")


@login_required
@require_POST
def request_decide(request, reference):
    """A signed-in approver decides from the request page (same rules as the email link)."""
    access.require(request.user, (roles.APPROVER,))
    req = access.request_for_viewer(request.user, reference)
    decision = request.POST.get("decision")
    if decision not in Approval.Decision.values:
        messages.error(request, "Choose approve or reject.")
        return redirect(req.get_absolute_url())
    if (
        decision == Approval.Decision.APPROVED
        and req.includes_erasure
        and request.POST.get("confirm") != "irreversible"
    ):
        messages.error(request, "Tick the box to confirm the deletion cannot be undone.")
        return redirect(req.get_absolute_url())
    try:
        lifecycle.decide(
            req,
            approver=request.user,
            decision=decision,
            reason=request.POST.get("reason", ""),
            via="portal",
            plan_version=request.POST.get("plan_version", ""),
            proof=twofactor.proof_of(request),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    except lifecycle.DecisionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Your decision ({decision}) was recorded.")
    return redirect(req.get_absolute_url())


@login_required
@require_GET
def artifact_download(request, reference, kind):
    artifact = access.artifact_for_download(request.user, reference, kind)
    if artifact.purged_at:
        return retention_views.purged(request, artifact)
    try:
        path = artifact_path(artifact)
    except ValueError:
        raise Http404 from None
    if not path.is_file():
        raise Http404
    AuditEvent.record(
        "artifact_downloaded",
        actor=request.user,
        request=artifact.request,
        kind=kind,
        sha256=artifact.sha256,
        ip=client_ip(request),
    )
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=artifact.filename,
        content_type=artifact.content_type,
    )
    response["Cache-Control"] = "no-store"
    return response
