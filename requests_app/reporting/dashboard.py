"""The dashboard's numbers, each one aggregate query: counts by status, what is due or overdue,
what waits on the signed-in user, what runs now and what finished this week, on-time rate and
volume for the last twelve months; and the per-row extras (device counts, progress) that the
dashboard and the request list add to a page of requests in one query each."""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from requests_app.access import roles
from requests_app.jobs.operations import FINISHED_STATES
from requests_app.models import Approval, DataRequest, Operation, RequestIdentifier, Status
from requests_app.models.requests import FINAL_STATUSES, OPEN_STATUSES, add_months

DUE_SOON_DAYS = 7
MONTHS = 12
# A cancelled request was withdrawn, not answered: it counts neither for nor against the rate.
ANSWERED_STATUSES = (Status.COMPLETED, Status.COMPLETED_WITH_ISSUES, Status.REJECTED)


def with_effective_due(queryset):
    """Annotate ``effective`` (the extended due date, else the original) for filters/sorts."""
    return queryset.annotate(effective=Coalesce("extended_until", "due_at"))


def open_requests():
    return with_effective_due(DataRequest.objects.filter(status__in=OPEN_STATUSES))


def counts_by_status():
    """[(status, label, count)] for every status, in life-cycle order, zeros included."""
    found = dict(
        DataRequest.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return [(value, label, found.get(value, 0)) for value, label in Status.choices]


RUNNING_STATUSES = (Status.APPROVED, Status.RUNNING)
FINISHED_DAYS = 7


def running_now():
    """Approved (queued) and running requests, the longest running first."""
    return with_effective_due(DataRequest.objects.filter(status__in=RUNNING_STATUSES)).order_by(
        "started_at", "approved_at", "id"
    )


def finished_recently(days=FINISHED_DAYS, now=None):
    """Requests that reached a final status in the last ``days`` days, newest first."""
    since = (now or timezone.now()) - timedelta(days=days)
    return with_effective_due(
        DataRequest.objects.filter(status__in=FINAL_STATUSES, completed_at__gte=since)
    ).order_by("-completed_at", "-id")


def device_counts(requests):
    """Set ``device_count`` (the identifiers it names) on each request: one query in all."""
    requests = list(requests)
    found = dict(
        RequestIdentifier.objects.filter(request_id__in=[r.pk for r in requests])
        .order_by()
        .values_list("request_id")
        .annotate(n=Count("id"))
        .values_list("request_id", "n")
    )
    for data_request in requests:
        data_request.device_count = found.get(data_request.pk, 0)
    return requests


def progress_percents(requests):
    """Set ``percent`` (operations finished) on each request: one query in all."""
    requests = list(requests)
    rows = (
        Operation.objects.filter(request_id__in=[r.pk for r in requests])
        .order_by()
        .values("request_id")
        .annotate(total=Count("id"), done=Count("id", filter=Q(state__in=FINISHED_STATES)))
    )
    found = {row["request_id"]: row for row in rows}
    for data_request in requests:
        row = found.get(data_request.pk)
        data_request.percent = round(100 * row["done"] / row["total"]) if row else 0
    return requests


def due_soon(today=None, days=DUE_SOON_DAYS):
    """Open requests due from today up to ``days`` ahead, soonest first."""
    today = today or timezone.localdate()
    return (
        open_requests()
        .filter(effective__gte=today, effective__lte=today + timedelta(days=days))
        .order_by("effective", "id")
    )


def overdue(today=None):
    """Open requests past their (extended) due date, most overdue first."""
    today = today or timezone.localdate()
    return open_requests().filter(effective__lt=today).order_by("effective", "id")


def awaiting_action(user):
    """Requests waiting on ``user``: an officer's own drafts, failed runs and failed planning;
    an approver's undecided approvals on requests someone else created."""
    wanted = Q(pk__in=[])
    if roles.has_role(user, roles.OFFICER):
        wanted |= Q(status=Status.DRAFT, created_by=user)
        wanted |= Q(status=Status.FAILED)
        wanted |= Q(status=Status.PLANNING) & ~Q(scoping_error="")
    if roles.has_role(user, roles.APPROVER):
        decided = Approval.objects.filter(
            request=OuterRef("pk"), approver=user, plan_version=OuterRef("plan_version")
        )
        wanted |= Q(status=Status.AWAITING_APPROVAL) & ~Q(created_by=user) & ~Exists(decided)
    return with_effective_due(DataRequest.objects.filter(wanted)).order_by("effective", "id")


def _month_start(day):
    return date(day.year, day.month, 1)


def _month_key(value):
    """TruncMonth gives a date for DateFields and an aware datetime for DateTimeFields."""
    if hasattr(value, "tzinfo") and value.tzinfo is not None:
        value = timezone.localtime(value)
    return (value.year, value.month)


def monthly_cached(today=None, months=MONTHS):
    """``monthly()`` for the dashboard, kept for DSR_DASHBOARD_CACHE_SECONDS (default five
    minutes): past months do not change, and on 100,000 requests the aggregate costs tens of
    milliseconds. 0 turns the cache off."""
    seconds = settings.DSR_DASHBOARD_CACHE_SECONDS
    if not seconds:
        return monthly(today, months)
    today = today or timezone.localdate()
    key = f"dsr:dashboard:monthly:{today.isoformat()}:{months}"
    rows = cache.get(key)
    if rows is None:
        rows = monthly(today, months)
        cache.set(key, rows, seconds)
    return rows


def monthly(today=None, months=MONTHS):
    """One row per month, oldest first: requests received, answered, answered on time, and the
    on-time rate in percent (None when nothing was answered that month).

    Volume counts requests by the month they were received; the rate looks at requests by the
    month they were answered (a request is on time if answered on or before its due date).
    """
    today = today or timezone.localdate()
    first = add_months(_month_start(today), -(months - 1))
    received = {
        _month_key(row["month"]): row["n"]
        for row in DataRequest.objects.filter(received_at__gte=first)
        .annotate(month=TruncMonth("received_at"))
        .order_by()
        .values("month")
        .annotate(n=Count("id"))
    }
    start = timezone.make_aware(datetime(first.year, first.month, 1))
    answered = {
        _month_key(row["month"]): (row["total"], row["on_time"])
        for row in DataRequest.objects.filter(status__in=ANSWERED_STATUSES, completed_at__gte=start)
        .annotate(month=TruncMonth("completed_at"))
        .order_by()
        .values("month")
        .annotate(
            total=Count("id"),
            on_time=Count(
                "id", filter=Q(completed_at__date__lte=Coalesce("extended_until", "due_at"))
            ),
        )
    }
    rows = []
    for index in range(months):
        month = add_months(first, index)
        total, on_time = answered.get((month.year, month.month), (0, 0))
        rows.append(
            {
                "month": month,
                "label": f"{month:%Y-%m}",
                "received": received.get((month.year, month.month), 0),
                "answered": total,
                "on_time": on_time,
                "rate": round(100 * on_time / total) if total else None,
            }
        )
    return rows
