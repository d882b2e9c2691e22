"""What happens to a request between intake and fulfilment: submit, plan, approve or reject,
cancel. Views and the API call these; each one is a transaction with its audit events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from requests_app.access import Refusal, may_decide, roles
from requests_app.azure import AzureError, TargetsError
from requests_app.jobs.queues import (
    RUN_JOB,
    SCOPE_JOB,
    enqueue_on_commit,
    fulfilment_queue,
    run_job_id,
    scope_job_id,
)
from requests_app.models import (
    Approval,
    AuditEvent,
    DataRequest,
    Discovery,
    IllegalTransition,
    Status,
)
from requests_app.workflow import emails
from requests_app.workflow.tokens import approval_url

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.models import QuerySet

    from requests_app.accounts.twofactor import SignInProof
    from requests_app.models.audit import Actor

log = logging.getLogger(__name__)


# An approval or rejection that may not be recorded (access.may_decide says why).
DecisionRefused = Refusal


def submit(data_request: DataRequest, *, actor: Actor) -> DataRequest:
    """draft → planning, and the scoping job goes on the queue once this commits. A draft whose
    search for the subject's devices has not been confirmed, or that names no device, waits."""
    with transaction.atomic():
        unconfirmed = data_request.discoveries.filter(
            state__in=(Discovery.State.RUNNING, Discovery.State.FINISHED)
        ).first()
        if unconfirmed is not None:
            running = unconfirmed.state == Discovery.State.RUNNING
            raise IllegalTransition(
                f"{data_request.reference}: the search for the subject's devices is "
                f"{'still running' if running else 'not confirmed yet'}; confirm the devices "
                "to include before submitting"
            )
        if not data_request.identifiers.exists():
            raise IllegalTransition(
                f"{data_request.reference} names no device yet: confirm the devices the search "
                "found, or start a new request with identifiers"
            )
        data_request.transition(Status.PLANNING, actor=actor)
        enqueue_on_commit(SCOPE_JOB, data_request.pk, job_id=scope_job_id(data_request))
    return data_request


def retry_scoping(data_request: DataRequest, *, actor: Actor) -> DataRequest:
    with transaction.atomic():
        if data_request.status != Status.PLANNING or not data_request.scoping_error:
            raise IllegalTransition(f"{data_request.reference} has no failed plan to retry")
        data_request.transition(Status.PLANNING, actor=actor, retry=True)
        enqueue_on_commit(SCOPE_JOB, data_request.pk, job_id=scope_job_id(data_request))
    return data_request


def cancel(data_request: DataRequest, *, actor: Actor, reason: str) -> DataRequest:
    if not reason.strip():
        raise ValueError("A reason is required to cancel a request.")
    with transaction.atomic():
        data_request.transition(Status.CANCELLED, actor=actor, reason=reason)
        DataRequest.objects.filter(pk=data_request.pk).update(cancel_reason=reason)
        data_request.cancel_reason = reason
    return data_request


def scope_job(request_id: int) -> None:
    """RQ job: look everything up, store the plan, ask the approvers."""
    from requests_app.jobs.azure_calls import clients_for
    from requests_app.jobs.scoping import build_plan

    data_request = DataRequest.objects.get(pk=request_id)
    if data_request.status != Status.PLANNING:
        return
    if not data_request.claim("scoping_claimed_until", settings.DSR_LEASE_SECONDS):
        return  # another worker is planning it right now

    def heartbeat() -> None:
        DataRequest.objects.filter(pk=data_request.pk).update(
            scoping_claimed_until=timezone.now() + timedelta(seconds=settings.DSR_LEASE_SECONDS)
        )

    try:
        clients = clients_for(data_request)
        version = build_plan(data_request, clients, heartbeat=heartbeat)
    except (AzureError, TargetsError, OSError) as exc:
        message = f"{exc.__class__.__name__}: {exc}"
        DataRequest.objects.filter(pk=data_request.pk).update(
            scoping_error=message, scoping_claimed_until=None
        )
        AuditEvent.record("scoping_failed", request=data_request, error=message)
        return
    finally:
        data_request.release("scoping_claimed_until")
    with transaction.atomic():
        data_request.refresh_from_db()
        data_request.transition(
            Status.AWAITING_APPROVAL,
            plan_version=version,
            devices=data_request.devices.count(),
            operations=data_request.operations.count(),
        )
    AuditEvent.record("plan_stored", request=data_request, plan_version=version)
    notify_approvers(data_request)


def approvers_for(data_request: DataRequest) -> QuerySet[User]:
    User = get_user_model()  # noqa: N806
    return (
        User.objects.filter(groups__name=roles.APPROVER, is_active=True)
        .exclude(pk=data_request.created_by_id)
        .order_by("username")
    )


def notify_approvers(
    data_request: DataRequest, *, actor: Actor | None = None, reminder: bool = False
) -> int:
    """Email every approver who has not decided on this plan version yet."""
    decided = set(
        data_request.approvals.filter(plan_version=data_request.plan_version).values_list(
            "approver_id", flat=True
        )
    )
    sent = 0
    for approver in approvers_for(data_request):
        if approver.pk in decided or not approver.email:
            continue
        url = approval_url(data_request, approver)
        sent += emails.approval_requested(data_request, approver, url, reminder=reminder)
    if actor is not None:
        AuditEvent.record("approval_emails_resent", actor=actor, request=data_request, sent=sent)
    return sent


def decide(
    data_request: DataRequest,
    *,
    approver: User,
    decision: str,
    proof: SignInProof | None,
    via: str,
    plan_version: str,
    reason: str | None = "",
    ip: str | None = None,
    user_agent: str | None = "",
) -> Approval:
    """Record one approver's decision. ``proof`` is what the approver's session shows
    (accounts.twofactor.proof_of): access.may_decide refuses a decision without the approver's
    own signed-in session and second factor (and, for an erasure, a recent sign-in).
    Serialised on the request row, so two approvals racing for the last slot cannot both win,
    and the status moves exactly once."""
    reason = (reason or "").strip()
    if decision == Approval.Decision.REJECTED and not reason:
        raise DecisionRefused("reason_required", "A reason is required to reject.", 400)
    with transaction.atomic():
        locked = DataRequest.objects.select_for_update().get(pk=data_request.pk)
        problem = may_decide(approver, locked, plan_version=plan_version, proof=proof)
        if problem is None:
            assert proof is not None  # may_decide refuses a decision without one
            approval = _record_decision(
                locked, approver, decision, reason, via, plan_version, proof, ip, user_agent
            )
    if problem is not None:
        # Outside the transaction: the refusal stays on record although nothing else does.
        AuditEvent.record(
            "decision_refused",
            actor=approver,
            request=data_request,
            reason=problem.reason,
            via=via,
            ip=ip,
        )
        raise problem
    data_request.refresh_from_db()
    return approval


def _record_decision(
    locked: DataRequest,
    approver: User,
    decision: str,
    reason: str,
    via: str,
    plan_version: str,
    proof: SignInProof,
    ip: str | None,
    user_agent: str | None,
) -> Approval:
    """The decision's rows and events, inside decide()'s transaction on the locked request."""
    actor_kind = "user"  # signed in either way; ``via`` says whether it came from the email
    signed_in_at = datetime.fromtimestamp(proof.signed_in_at, UTC)
    approval = Approval.objects.create(
        request=locked,
        approver=approver,
        approver_name=approver.get_username(),
        plan_version=plan_version,
        decision=decision,
        reason=reason,
        via=via,
        ip=ip,
        user_agent=(user_agent or "")[:300],
        second_factor=proof.second_factor,
        signed_in_at=signed_in_at,
    )
    AuditEvent.record(
        f"request_{decision}",
        actor=approver,
        actor_kind=actor_kind,
        request=locked,
        via=via,
        ip=ip,
        user_agent=(user_agent or "")[:300],
        plan_version=plan_version,
        reason=reason,
        second_factor=proof.second_factor,
        signed_in_at=signed_in_at.isoformat(),
    )
    if decision == Approval.Decision.REJECTED:
        DataRequest.objects.filter(pk=locked.pk).update(rejection_reason=reason)
        locked.transition(Status.REJECTED, actor=approver, actor_kind=actor_kind)
        transaction.on_commit(lambda: emails.request_rejected(locked, approval))
    else:
        approved = (
            locked.approvals.filter(plan_version=plan_version, decision=Approval.Decision.APPROVED)
            .values("approver")
            .distinct()
            .count()
        )
        if approved >= locked.approvals_required:
            locked.transition(Status.APPROVED, actor=approver, actor_kind=actor_kind)
            enqueue_on_commit(
                RUN_JOB, locked.pk, queue=fulfilment_queue(locked), job_id=run_job_id(locked)
            )
    return approval
