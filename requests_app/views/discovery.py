"""Finding the subject's devices by owner: the officer's search page, its retry, the choice.

Officers only: the page shows the subject keys (personal data) until retention clears them.
Candidates are listed a page at a time; "all N devices found" confirms every match without
sending their IDs through the form.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from requests_app import access
from requests_app.discovery import confirm as choosing
from requests_app.discovery import keys as subject_keys
from requests_app.discovery import search
from requests_app.models import Discovery, Status

PER_PAGE = 100


def _page_url(req):
    return reverse("discovery_page", args=[req.reference])


@login_required
@require_GET
@never_cache
def discovery_page(request, reference):
    req = access.request_for_officer(request.user, reference)
    latest = req.discoveries.first()
    matches = None
    if latest is not None and latest.state == Discovery.State.FINISHED:
        paginator = Paginator(latest.matches.all(), PER_PAGE)
        matches = paginator.get_page(request.GET.get("page"))
        for match in matches:
            match.key = _key(latest, match.key_index)
    context = {
        "req": req,
        "discovery": latest,
        "earlier": list(req.discoveries.all()[1:]),
        "keys": _keys_shown(latest),
        "matches": matches,
        "targets": _targets(latest),
        "failed_hosts": latest.hosts_in(search.FAILED) if latest else [],
        "retry_possible": latest is not None and search.may_retry(latest),
        "can_start": req.status == Status.DRAFT
        and (latest is None or latest.state == Discovery.State.CONFIRMED),
        "searchable": search.searchable_targets(),
        "max_keys": subject_keys.MAX_KEYS,
    }
    return render(request, "requests_app/discovery.html", context)


def _keys_shown(discovery):
    if discovery is None:
        return []
    return [(subject_keys.placeholder(i), key) for i, key in enumerate(discovery.keys)]


def _key(discovery, index):
    return discovery.keys[index] if index < len(discovery.keys) else subject_keys.placeholder(index)


def _targets(discovery):
    """Per target, in host order: what was asked and what came back."""
    if discovery is None:
        return []
    return [{"host": host, **done} for host, done in sorted(discovery.targets.items())]


@login_required
@require_POST
def discovery_start(request, reference):
    req = access.request_for_officer(request.user, reference)
    keys, problems = subject_keys.parse_keys(request.POST.get("keys", ""))
    if problems:
        for problem in problems:
            messages.error(request, f"Nothing was searched: {problem}")
        return redirect(_page_url(req))
    try:
        search.start(req, keys=keys, actor=request.user)
    except search.DiscoveryRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The search has started; this page shows the devices found.")
    return redirect(_page_url(req))


def _discovery_of(request, reference, pk):
    req = access.request_for_officer(request.user, reference)
    return req, get_object_or_404(Discovery, pk=pk, request=req)


@login_required
@require_POST
def discovery_retry(request, reference, pk):
    req, discovery = _discovery_of(request, reference, pk)
    try:
        search.retry(discovery, actor=request.user)
    except search.DiscoveryRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Asking the targets that did not answer again.")
    return redirect(_page_url(req))


@login_required
@require_POST
def discovery_confirm(request, reference, pk):
    req, discovery = _discovery_of(request, reference, pk)
    if request.POST.get("all") == "all":
        chosen = None
    else:
        raw = request.POST.getlist("match")
        if not all(value.isdigit() for value in raw):
            messages.error(request, "Nothing was added: the choice of devices was not readable.")
            return redirect(_page_url(req))
        chosen = [int(value) for value in raw]
    try:
        added = choosing.confirm(discovery, actor=request.user, match_ids=chosen)
    except search.DiscoveryRefused as exc:
        messages.error(request, str(exc))
        return redirect(_page_url(req))
    messages.success(
        request,
        f"{added} identifier{'s' if added != 1 else ''} added to {req.reference}. "
        "Submit the request to plan the work.",
    )
    return redirect(req.get_absolute_url())
