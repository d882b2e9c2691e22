"""Reports for auditors and officers: the register (CSV), a request's evidence report (PDF),
the audit page (the chain's verification and its events, filtered and paginated), the audit log
for a period (JSON lines) and the offline-verification guide as a page.

Every download writes a ``report_downloaded`` audit event. Signed-in users without the role get
a 404, as for anything that is not theirs (``access.require``).

A report of a period (a From/To form on the Reports page, a streamed download) is one entry of
``PERIOD_REPORTS``, a view here of one line (``_period_download``) and its route in ``urls.py``;
its rows come from a module in ``reporting/`` (see docs/architecture.md).
"""

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from requests_app import access
from requests_app.accounts.identity import client_ip
from requests_app.evidence.checkpoints import checkpoint_status
from requests_app.evidence.report import render_evidence_pdf
from requests_app.models import AuditEvent, DataRequest
from requests_app.models.audit import verify_chain
from requests_app.reporting import timeline
from requests_app.reporting.audit_view import PAGE_SIZE, AuditFilterForm, filtered_events
from requests_app.reporting.docs_render import render_markdown
from requests_app.reporting.register import PeriodError, parse_period, register_lines

OFFLINE_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "verify-audit-offline.md"


@dataclass(frozen=True)
class PeriodReport:
    """A report of a period as the Reports page offers it: a From/To form that downloads it."""

    slug: str  # the form fields' ids, e.g. "register-from"
    url_name: str
    title: str
    about: str
    button: str
    roles: tuple
    kind: str  # the report_downloaded event's kind
    filename: str  # "dsr-register" → dsr-register-2026-01-01-to-2026-01-31.csv
    content_type: str


PERIOD_REPORTS = (
    PeriodReport(
        slug="register",
        url_name="register_csv",
        title="Register of requests",
        about="One CSV row per request received in the period (both dates included): how it "
        "came in, deadlines and extensions, approvers, outcome, days taken and whether it was "
        "on time.",
        button="Download the register (CSV)",
        roles=access.REPORT_ROLES,
        kind="register",
        filename="dsr-register-{start}-to-{end}.csv",
        content_type="text/csv; charset=utf-8",
    ),
    PeriodReport(
        slug="audit-log",
        url_name="audit_log_jsonl",
        title="Audit log",
        about="Every audit event of the period, one JSON line each with the fields its hash "
        "covers, to check the chain offline.",
        button="Download the audit log (JSON lines)",
        roles=access.AUDIT_ROLES,
        kind="audit_log",
        filename="dsr-audit-log-{start}-to-{end}.jsonl",
        content_type="application/x-ndjson; charset=utf-8",
    ),
)
REGISTER, AUDIT_LOG = PERIOD_REPORTS


def _bad_period(problem):
    return HttpResponseBadRequest(str(problem), content_type="text/plain; charset=utf-8")


def _download_headers(response, filename):
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _record(request, kind, req=None, **details):
    AuditEvent.record(
        "report_downloaded",
        actor=request.user,
        request=req,
        kind=kind,
        ip=client_ip(request),
        **details,
    )


def _period_download(request, report, lines):
    """A report of a period, streamed: the role, the period (400 naming what is wrong with it),
    the ``report_downloaded`` event, then ``lines(start, end)`` as the download."""
    access.require(request.user, report.roles)
    try:
        start, end = parse_period(request.GET)
    except PeriodError as problem:
        return _bad_period(problem)
    _record(request, report.kind, **{"from": start.isoformat(), "to": end.isoformat()})
    response = StreamingHttpResponse(lines(start, end), content_type=report.content_type)
    filename = report.filename.format(start=start.isoformat(), end=end.isoformat())
    return _download_headers(response, filename)


@login_required
@require_GET
def reports_index(request):
    access.require(request.user, access.REPORT_ROLES)
    today = timezone.localdate()
    context = {
        "period_reports": [r for r in PERIOD_REPORTS if access.has_any(request.user, r.roles)],
        "default_from": today.replace(day=1).isoformat(),
        "default_to": today.isoformat(),
        "can_audit": access.can_audit(request.user),
    }
    return render(request, "requests_app/reports.html", context)


@login_required
@require_GET
def register_csv(request):
    return _period_download(request, REGISTER, register_lines)


@login_required
@require_GET
def evidence_pdf(request, reference):
    access.require(request.user, access.REPORT_ROLES)
    req = get_object_or_404(DataRequest.objects.select_related("created_by"), reference=reference)
    body = render_evidence_pdf(req)
    _record(request, "evidence", req=req)
    response = HttpResponse(body, content_type="application/pdf")
    return _download_headers(response, f"{req.reference}-evidence.pdf")


@login_required
@require_GET
@never_cache
def audit_chain(request):
    access.require(request.user, access.AUDIT_ROLES)
    ok, count, head, problem = verify_chain()
    form = AuditFilterForm(request.GET)
    form.is_valid()  # invalid fields are reported on the page; the valid ones still filter
    filtered = any(form.cleaned_data.values())
    page = Paginator(filtered_events(form.cleaned_data), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    today = timezone.localdate()
    context = {
        "ok": ok,
        "count": count,
        "head": head,
        "problem": problem,
        "checkpoints": checkpoint_status(),
        "form": form,
        "filtered": filtered,
        "page": page,
        "events": timeline.described(page.object_list),
        "default_from": today.replace(day=1).isoformat(),
        "default_to": today.isoformat(),
    }
    return render(request, "requests_app/audit_chain.html", context)


@login_required
@require_GET
def audit_offline_guide(request):
    """docs/verify-audit-offline.md as a page, for the people who run the check."""
    access.require(request.user, access.AUDIT_ROLES)
    text = OFFLINE_GUIDE.read_text(encoding="utf-8")
    return render(
        request,
        "docs_page.html",
        {
            "title": "Verifying the audit log offline",
            "body": render_markdown(text),
            "source": "docs/verify-audit-offline.md",
            "back_url": "audit_chain",
            "back_label": "Back to the audit trail",
        },
    )


def audit_line(event):
    """One JSON line: exactly the fields ``AuditEvent.canonical()`` hashes, and both hashes."""
    record = json.loads(event.canonical())
    record["prev_hash"] = event.prev_hash
    record["hash"] = event.hash
    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def _audit_lines(start, end):
    zone = timezone.get_current_timezone()
    since = timezone.make_aware(datetime.combine(start, time.min), zone)
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), zone)
    events = AuditEvent.objects.filter(created_at__gte=since, created_at__lt=until).order_by("seq")
    for event in events.iterator(chunk_size=2000):
        yield audit_line(event).encode("utf-8")


@login_required
@require_GET
def audit_log_jsonl(request):
    return _period_download(request, AUDIT_LOG, _audit_lines)
