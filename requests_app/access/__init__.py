"""Who may see and do what. Views fetch through these, so "not yours" is always a 404."""

from django.http import Http404
from django.shortcuts import get_object_or_404

from requests_app.access import roles
from requests_app.models import Artifact, DataRequest

VIEWER_ROLES = (roles.OFFICER, roles.APPROVER, roles.AUDITOR, roles.ADMIN)
# The register, the reports page and a request's evidence report.
REPORT_ROLES = (roles.OFFICER, roles.AUDITOR, roles.ADMIN)
# The audit trail, its log and its guide.
AUDIT_ROLES = (roles.AUDITOR, roles.ADMIN)


def has_any(user, wanted):
    return any(roles.has_role(user, role) for role in wanted)


def require(user, wanted):
    """For a page only some roles see: anyone else gets a 404, as for anything not theirs."""
    if not has_any(user, wanted):
        raise Http404


def can_view_requests(user):
    return has_any(user, VIEWER_ROLES)


def can_see_reports(user):
    return has_any(user, REPORT_ROLES)


def can_audit(user):
    return has_any(user, AUDIT_ROLES)


def is_officer(user):
    return roles.has_role(user, roles.OFFICER)


def request_for_viewer(user, reference):
    if not can_view_requests(user):
        raise Http404
    return get_object_or_404(DataRequest, reference=reference)


def request_for_officer(user, reference):
    """Officers act on every request (they work as a team); others get a 404."""
    require(user, (roles.OFFICER,))
    return get_object_or_404(DataRequest, reference=reference)


def artifact_for_download(user, reference, kind):
    """The artifact ``user`` may download, or a 404 (not theirs, or not there)."""
    data_request = request_for_viewer(user, reference)
    artifact = get_object_or_404(Artifact, request=data_request, kind=kind)
    if not can_download(user, artifact):
        raise Http404
    return artifact


def can_download(user, artifact):
    """Export archives hold personal data: only the request's officer and admins. Certificates
    are evidence: officers, auditors and admins."""
    if roles.has_role(user, roles.ADMIN):
        return True
    if artifact.kind == Artifact.Kind.EXPORT_ARCHIVE:
        return roles.has_role(user, roles.OFFICER) and artifact.request.created_by_id == user.pk
    return roles.has_role(user, roles.OFFICER) or roles.has_role(user, roles.AUDITOR)


class Refusal(Exception):  # noqa: N818 (a refusal is the answer, raised where it must stop)
    """Why a person may not decide on a request now: ``reason`` (a code for the audit trail
    and tests), ``message`` (one sentence saying what to do), the HTTP ``status``, and
    ``fixable`` when the person can fix it themselves by signing in again."""

    def __init__(self, reason, message, status=403, fixable=False):
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.fixable = fixable


def may_decide(user, data_request, *, plan_version=None, proof=None, now=None):
    """The one rule for deciding on a request: None when ``user`` may approve or reject
    ``data_request`` (at ``plan_version``, default the current one) with the session that
    ``proof`` describes; otherwise the Refusal to show. Used by the decision itself
    (lifecycle.decide), the approval page and the request page.

    The person: an active approver who did not create the request and has not decided on
    this plan yet. The session: theirs, with a second factor verified in it, and for an
    erasure signed in (or re-authenticated) within DSR_APPROVAL_REAUTH_SECONDS.
    """
    from django.conf import settings

    from requests_app.models import Status

    version = data_request.plan_version if plan_version is None else plan_version
    if data_request.approvals.filter(approver=user, plan_version=version).exists():
        return Refusal("used", "You have already decided on this request; it counts once.", 410)
    if data_request.status != Status.AWAITING_APPROVAL:
        return Refusal(
            "not_awaiting",
            f"{data_request.reference} is no longer awaiting approval "
            f"(it is {data_request.get_status_display().lower()}).",
            410,
        )
    if version != data_request.plan_version:
        return Refusal(
            "stale_plan", "The plan changed after this link was sent; use the newest email.", 410
        )
    if user.pk == data_request.created_by_id:
        return Refusal("self_approval", "You created this request, so you cannot approve it.")
    if not roles.has_role(user, roles.APPROVER):
        return Refusal("not_approver", "You are not an approver.")
    if proof is None or proof.user_id != user.pk:
        return Refusal("not_signed_in", "Sign in as the approver to decide.", 401, True)
    if not proof.second_factor:
        return Refusal(
            "second_factor_missing",
            "Deciding needs a second factor: sign in again with your authenticator code.",
            403,
            True,
        )
    if data_request.includes_erasure and proof.age(now) > settings.DSR_APPROVAL_REAUTH_SECONDS:
        minutes = max(1, settings.DSR_APPROVAL_REAUTH_SECONDS // 60)
        return Refusal(
            "reauth_required",
            f"An erasure cannot be undone: confirm it is you (you signed in more than "
            f"{minutes} minute{'s' if minutes != 1 else ''} ago).",
            403,
            True,
        )
    return None
