"""Delivery to the data subject: the officer makes and revokes links on the request page; the
subject opens a link with no account, gives the passphrase, sees what the archive holds and
downloads it (``requests_app/evidence/delivery.py`` enforces and audits everything)."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from requests_app import access
from requests_app.access import roles
from requests_app.accounts.identity import client_ip
from requests_app.evidence import delivery as deliveries
from requests_app.models import Delivery
from requests_app.workflow import emails

CURRENT = "dsr_delivery"  # the delivery whose link this browser opened last
UNLOCKED = "dsr_deliveries_unlocked"  # {delivery pk: when the passphrase was accepted}
FORMS_USED = "dsr_delivery_forms_used"  # the "make a link" forms already answered


def _request_for_deliverer(user, reference):
    """The request, when ``user`` may download its archive (else 404): who may download it
    may hand it over."""
    req = access.request_for_viewer(user, reference)
    archive = deliveries.archive_of(req)
    if archive is None or not access.can_download(user, archive):
        raise Http404
    return req


def _whole_number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("Give the days and the downloads as whole numbers.") from None


@login_required
@require_POST
def delivery_create(request, reference):
    req = _request_for_deliverer(request.user, reference)
    form_id = request.POST.get("form_id", "")
    used = request.session.get(FORMS_USED, [])
    if not form_id or form_id in used:
        # A reload of the page that showed the link: it was made once, not again.
        messages.error(
            request,
            "That form was already used; a link was made then. Use the form again for another.",
        )
        return redirect(req.get_absolute_url() + "#delivery")
    email = request.POST.get("email", "").strip()
    try:
        made = deliveries.create(
            req,
            actor=request.user,
            days=_whole_number(request.POST.get("days")),
            downloads=_whole_number(request.POST.get("downloads")),
            email=email,
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(req.get_absolute_url() + "#delivery")
    request.session[FORMS_USED] = [*used[-19:], form_id]
    sent = None
    if email:
        sent = emails.delivery_link(req, email, made.url, made.delivery)
    context = {"req": req, "made": made, "email": email, "sent": sent}
    return render(request, "requests_app/delivery_created.html", context)


@login_required
@require_POST
def delivery_revoke(request, reference, pk):
    """Any officer (or admin) who can see the request may withdraw a link: a leaked link must
    not wait for the one who made it."""
    access.require(request.user, (roles.OFFICER, roles.ADMIN))
    req = access.request_for_viewer(request.user, reference)
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


def _unknown(request):
    return render(request, "delivery/unknown.html", status=404)


def _current(request):
    """(delivery, refusal response): the delivery this browser opened, if it can be used."""
    delivery = (
        Delivery.objects.select_related("request").filter(pk=request.session.get(CURRENT)).first()
    )
    if delivery is None:
        return None, _unknown(request)
    state = deliveries.state_of(delivery)
    if state != Delivery.State.ACTIVE:
        return delivery, _refused(request, delivery, state)
    return delivery, None


def _unlocked(request, delivery):
    """The passphrase was given in this browser less than DSR_DELIVERY_UNLOCK_SECONDS ago."""
    at = request.session.get(UNLOCKED, {}).get(str(delivery.pk))
    return at is not None and time.time() - at < settings.DSR_DELIVERY_UNLOCK_SECONDS


@never_cache
@require_GET
def delivery_link(request, token):
    """The emailed link: its token is swapped for a session entry and the browser goes to
    ``/d/``, so the token is in no later address, referrer or history entry."""
    delivery = deliveries.find(token)
    if delivery is None:
        return _unknown(request)
    if request.session.get(CURRENT) != delivery.pk:
        request.session.cycle_key()
        request.session[CURRENT] = delivery.pk
    return redirect("delivery_page")


@never_cache
@sensitive_post_parameters("passphrase")
@require_http_methods(["GET", "POST"])
def delivery_page(request):
    delivery, refusal = _current(request)
    if refusal is not None:
        return refusal
    if request.method == "POST" and not _unlocked(request, delivery):
        accepted, left = deliveries.check_passphrase(
            delivery, request.POST.get("passphrase", ""), client_ip(request)
        )
        if not accepted:
            delivery.refresh_from_db()
            state = deliveries.state_of(delivery)
            if state != Delivery.State.ACTIVE:
                return _refused(request, delivery, state)
            context = {"wrong": True, "left": left, "delivery": delivery}
            return render(request, "delivery/passphrase.html", context, status=403)
        request.session.cycle_key()
        request.session[UNLOCKED] = {
            **request.session.get(UNLOCKED, {}),
            str(delivery.pk): time.time(),
        }
        return redirect("delivery_page")
    if not _unlocked(request, delivery):
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
        "unlock_minutes": settings.DSR_DELIVERY_UNLOCK_SECONDS // 60,
    }
    return render(request, "delivery/files.html", context)


@never_cache
@require_POST
def delivery_download(request):
    """A POST with the page's CSRF token: a link elsewhere cannot spend a download."""
    delivery, refusal = _current(request)
    if refusal is not None:
        return refusal
    if not _unlocked(request, delivery):
        return redirect("delivery_page")
    claimed = deliveries.claim_download(delivery, client_ip(request))
    if claimed is None:  # the last download went to another tab, or the file is gone
        delivery.refresh_from_db()
        return _refused(request, delivery, deliveries.state_of(delivery))
    archive, fh = claimed
    response = FileResponse(
        fh, as_attachment=True, filename=archive.filename, content_type=archive.content_type
    )
    response["Cache-Control"] = "no-store"
    return response
