"""The officer's pages: the dashboard, the filtered request list, and extending a deadline."""

from datetime import date, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from requests_app import access
from requests_app.access import roles
from requests_app.form_fields import DateRangeForm
from requests_app.models import DataRequest, Kind, RequestIdentifier, Status
from requests_app.models.requests import OPEN_STATUSES
from requests_app.reporting import charts
from requests_app.reporting import dashboard as numbers
from requests_app.workflow import deadlines, regulations

PAGE_SIZE = 50
# sort parameter → ORDER BY; anything else is refused by the form (never reaches order_by).
SORTS = {
    "-received": ("-received_at", "-id"),
    "received": ("received_at", "id"),
    "due": ("effective", "id"),
    "-due": ("-effective", "-id"),
    "reference": ("reference",),
    "status": ("status", "effective", "id"),
}
SORT_LABELS = {
    "-received": "Received, newest first",
    "received": "Received, oldest first",
    "due": "Due date, soonest first",
    "-due": "Due date, latest first",
    "reference": "Reference",
    "status": "Status",
}


def _choices(pairs, blank="Any"):
    return [("", blank), *pairs]


# What the list calls each kind (the full label explains the rights; the column has no room).
KIND_SHORT = {value: label.split(" (")[0] for value, label in Kind.choices}


class RequestFilterForm(DateRangeForm):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={
                "placeholder": "Reference, subject or device ID",
                "type": "search",
            }
        ),
    )
    status = forms.ChoiceField(label="Status", required=False, choices=_choices(Status.choices))
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=_choices(list(KIND_SHORT.items()))
    )
    regulation = forms.ChoiceField(
        label="Regulation", required=False, choices=lambda: _choices(regulations.choices())
    )
    due = forms.ChoiceField(
        label="Deadline",
        required=False,
        choices=_choices([("7d", "Due within 7 days"), ("overdue", "Overdue")]),
    )
    sort = forms.ChoiceField(label="Sort by", required=False, choices=list(SORT_LABELS.items()))

    date_labels = ("Received from", "Received to")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sort"] = self.fields.pop("sort")  # sort last, after the dates


def filtered_requests(data, today):
    """The request list's query for the valid parts of the filter form's ``cleaned_data``."""
    queryset = numbers.with_effective_due(DataRequest.objects.all())
    for name in ("status", "kind", "regulation"):
        if data.get(name):
            queryset = queryset.filter(**{name: data[name]})
    if data.get("due") == "7d":
        queryset = queryset.filter(
            status__in=OPEN_STATUSES,
            effective__gte=today,
            effective__lte=today + timedelta(days=numbers.DUE_SOON_DAYS),
        )
    elif data.get("due") == "overdue":
        queryset = queryset.filter(status__in=OPEN_STATUSES, effective__lt=today)
    if data.get("from"):
        queryset = queryset.filter(received_at__gte=data["from"])
    if data.get("to"):
        queryset = queryset.filter(received_at__lte=data["to"])
    text = (data.get("q") or "").strip()
    if text:
        # Two index-friendly id lists joined with UNION, instead of OR EXISTS (which makes
        # PostgreSQL scan every request): see bench/web.py and the trigram indexes.
        by_request = (
            DataRequest.objects.filter(
                Q(reference__icontains=text) | Q(subject_reference__icontains=text)
            )
            .order_by()
            .values("pk")
        )
        by_identifier = (
            RequestIdentifier.objects.filter(
                Q(registration_id__icontains=text) | Q(device_id__icontains=text)
            )
            .order_by()
            .values("request_id")
        )
        queryset = queryset.filter(pk__in=by_request.union(by_identifier))
    return queryset.order_by(*SORTS[data.get("sort") or "-received"])


@login_required
@require_GET
def request_list(request):
    if not access.can_view_requests(request.user):
        raise Http404
    form = RequestFilterForm(request.GET)
    form.is_valid()  # invalid fields are reported on the page; the valid ones still filter
    filtered = any(value for name, value in form.cleaned_data.items() if name != "sort")
    queryset = filtered_requests(form.cleaned_data, timezone.localdate())
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = numbers.device_counts(page.object_list)
    for row in rows:
        row.kind_short = KIND_SHORT.get(row.kind, row.kind)
    return render(
        request,
        "requests_app/request_list.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "filtered": filtered,
        },
    )


@login_required
@require_GET
def dashboard(request):
    """The landing page for everyone who may see requests; others get the plain welcome."""
    if not access.can_view_requests(request.user):
        return render(request, "requests_app/home.html")
    today = timezone.localdate()
    months = numbers.monthly_cached(today)
    overdue = list(numbers.overdue(today)[:PAGE_SIZE])
    due_soon = list(numbers.due_soon(today)[:PAGE_SIZE])
    running = list(numbers.running_now()[:PAGE_SIZE])
    finished = list(numbers.finished_recently()[:PAGE_SIZE])
    numbers.device_counts(running + finished)
    numbers.progress_percents(running)
    for row in running + finished:
        row.kind_short = KIND_SHORT.get(row.kind, row.kind)
    context = {
        "today": today,
        "counts": numbers.counts_by_status(),
        "running": running,
        "finished": finished,
        "finished_days": numbers.FINISHED_DAYS,
        "overdue": overdue,
        "due_soon": due_soon,
        "awaiting": list(numbers.awaiting_action(request.user)[:PAGE_SIZE]),
        "acts": access.has_any(request.user, (roles.OFFICER, roles.APPROVER)),
        "months": months,
        "chart": charts.volume_and_on_time(months),
        "limit": PAGE_SIZE,
    }
    return render(request, "requests_app/dashboard.html", context)


def _parse_date(value, what):
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what}: enter a date as YYYY-MM-DD.") from None


@login_required
@require_POST
def request_extend(request, reference):
    req = access.request_for_officer(request.user, reference)
    try:
        deadlines.extend(
            req,
            actor=request.user,
            until=_parse_date(request.POST.get("until"), "New due date"),
            reason=request.POST.get("reason", ""),
            notice_date=_parse_date(request.POST.get("notice_date"), "Date the subject was told"),
        )
    except ValueError as exc:
        messages.error(request, f"Not extended: {exc}")
    else:
        messages.success(request, f"The due date is now {req.extended_until:%Y-%m-%d}.")
    return redirect(req.get_absolute_url())
