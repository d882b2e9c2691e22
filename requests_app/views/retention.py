"""Retention on the request page: a legal hold placed or released (officers and admins), and
what a purged file's download link answers (410, with when and under which rule)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from requests_app import access
from requests_app.access import roles
from requests_app.evidence import retention
from requests_app.models import Artifact


@login_required
@require_POST
def legal_hold(request, reference):
    access.require(request.user, (roles.OFFICER, roles.ADMIN))
    req = access.request_for_viewer(request.user, reference)
    action = request.POST.get("action")
    reason = request.POST.get("reason", "")
    try:
        if action == "place":
            retention.place_hold(req, actor=request.user, reason=reason)
            messages.success(request, "Legal hold placed: nothing of this request is purged.")
        elif action == "release":
            retention.release_hold(req, actor=request.user, reason=reason)
            messages.success(request, "Legal hold released: the retention rules apply again.")
        else:
            messages.error(request, "Choose to place or to release the legal hold.")
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect(req.get_absolute_url())


def purged(request, artifact: Artifact):
    """The page a download link of a purged file answers, with status 410 Gone."""
    rule = retention.BY_NAME.get(artifact.purge_rule)
    context = {
        "artifact": artifact,
        "req": artifact.request,
        "rule": rule.describe() if rule else artifact.purge_rule,
    }
    return render(request, "requests_app/artifact_purged.html", context, status=410)
