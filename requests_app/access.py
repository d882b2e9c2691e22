"""Who may see and do what. Views fetch through these, so "not yours" is always a 404."""

from django.http import Http404
from django.shortcuts import get_object_or_404

from requests_app import roles
from requests_app.models import Artifact, DataRequest

VIEWER_ROLES = (roles.OFFICER, roles.APPROVER, roles.AUDITOR, roles.ADMIN)


def can_view_requests(user):
    return any(roles.has_role(user, role) for role in VIEWER_ROLES)


def request_for_viewer(user, reference):
    if not can_view_requests(user):
        raise Http404
    return get_object_or_404(DataRequest, reference=reference)


def request_for_officer(user, reference):
    """Officers act on every request (they work as a team); others get a 404."""
    if not roles.has_role(user, roles.OFFICER):
        raise Http404
    return get_object_or_404(DataRequest, reference=reference)


def can_download(user, artifact):
    """Export archives hold personal data: only the request's officer and admins. Certificates
    are evidence: officers, auditors and admins."""
    if roles.has_role(user, roles.ADMIN):
        return True
    if artifact.kind == Artifact.Kind.EXPORT_ARCHIVE:
        return roles.has_role(user, roles.OFFICER) and artifact.request.created_by_id == user.pk
    return roles.has_role(user, roles.OFFICER) or roles.has_role(user, roles.AUDITOR)
