"""Delivery to the data subject: the officer makes and revokes links on the request page; the
subject opens a link with no account, gives the passphrase, sees what the archive holds and
downloads it (``requests_app/evidence/delivery.py`` enforces and audits everything)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from requests_app import access
from requests_app.accounts.identity import client_ip
from requests_app.evidence import delivery as deliveries
from requests_app.evidence.artifacts import artifact_path
from requests_app.models import Delivery
from requests_app.workflow import emails

SESSION_KEY = "dsr_deliveries"  # the deliveries this browser gave the passphrase for


def _archive_for_officer(user, reference):
    """The request and its archive, when ``user`` may download that archive (else 404)."""
    req = access.request_for_viewer(user, reference)
    archive = deliveries.archive_of(req)
    if archive is None or not access.can_download(user, archive):
        raise Http404
    return req, archive


@login_required
@require_POST
def delivery_create(request, reference):
    req, _ = _archive_for_officer(request.user, reference)
    email = request.POST.get("email", "").strip()
    try:
        made = deliveries.create(
            req,
            actor=request.user,
            days=int(request.POST.get("days") or 0),
            downloads=int(request.POST.get("downloads") or 0),
            email=email,
        )
    except ValueError as exc:
        message = str(exc)
        if message.startswith("invalid literal"):
            message = "Give the days and the downloads as whole numbers."
        messages.error(request, message)
        return redirect(req.get_absolute_url() + "#delivery")
    sent = None
    if email:
        sent = emails.delivery_link(req, email, made.url, made.delivery)
    context = {"req": req, "made": made, "email": email, "sent": sent}
    return render(request, "requests_app/delivery_created.html", context)


@login_required
@require_POST
def delivery_revoke(request, reference, pk):
    req, _ = _archive_for_officer(request.user, reference)
    delivery = get_object_or_404(Delivery, pk=pk, request=req)
    try:
        deliveries.revoke(delivery, actor=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Link revoked: it no longer opens or downloads anything.")
    return redirect(req.get_absolute_url() + "#delivery")


# --- the data subject's pages (no account) --------------------------------------------------


def _refused(request, delivery, state):
    deliveries.record_refusal(delivery, state, client_ip(request))
    status = 403 if state == Delivery.State.LOCKED else 410
    context = {"state": state, "label": Delivery.State(state).label}
    return render(request, "delivery/refused.html", context, status=status)


def _usable(request, token):
    """(delivery, refusal response): the delivery behind ``token`` if it can be used."""
    delivery = deliveries.find(token)
    if delivery is None:
        return None, render(request, "delivery/unknown.html", status=404)
    state = deliveries.state_of(delivery)
    if state != Delivery.State.ACTIVE:
        return delivery, _refused(request, delivery, state)
    return delivery, None


@never_cache
@require_http_methods(["GET", "POST"])
def delivery_open(request, token):
    delivery, refusal = _usable(request, token)
    if refusal is not None:
        return refusal
    opened = delivery.pk in request.session.get(SESSION_KEY, [])
    if request.method == "POST":
        accepted, left = deliveries.check_passphrase(
            delivery, request.POST.get("passphrase", ""), client_ip(request)
        )
        if accepted:
            request.session.cycle_key()
            request.session[SESSION_KEY] = [*request.session.get(SESSION_KEY, []), delivery.pk]
            return redirect(request.path)
        delivery.refresh_from_db()
        state = deliveries.state_of(delivery)
        if state != Delivery.State.ACTIVE:
            return _refused(request, delivery, state)
        context = {"wrong": True, "left": left, "delivery": delivery}
        return render(request, "delivery/passphrase.html", context, status=403)
    if not opened:
        return render(request, "delivery/passphrase.html", {"delivery": delivery})
    archive = deliveries.archive_of(delivery.request)
    listed, count, total = deliveries.contents(archive)
    context = {
        "delivery": delivery,
        "archive": archive,
        "listed": listed,
        "count": count,
        "more": count - len(listed),
        "total": total,
        "left": delivery.max_downloads - delivery.downloads,
    }
    return render(request, "delivery/files.html", context)


@never_cache
@require_GET
def delivery_download(request, token):
    delivery, refusal = _usable(request, token)
    if refusal is not None:
        return refusal
    if delivery.pk not in request.session.get(SESSION_KEY, []):
        return redirect("delivery_open", token=token)
    archive = deliveries.claim_download(delivery, client_ip(request))
    if archive is None:  # the last download went to another tab a moment ago
        delivery.refresh_from_db()
        return _refused(request, delivery, deliveries.state_of(delivery))
    response = FileResponse(
        artifact_path(archive).open("rb"),
        as_attachment=True,
        filename=archive.filename,
        content_type=archive.content_type,
    )
    response["Cache-Control"] = "no-store"
    return response
