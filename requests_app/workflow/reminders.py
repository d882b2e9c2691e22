"""Daily reminders: officers' digest of what is due or overdue, approvers' pending approvals."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from requests_app.access import roles
from requests_app.models import DataRequest, Status
from requests_app.workflow import emails


def due_soon_or_overdue(today: date | None = None) -> list[DataRequest]:
    from requests_app.reporting.dashboard import open_requests

    horizon = (today or timezone.localdate()) + timedelta(days=7)
    return list(open_requests().filter(effective__lte=horizon).order_by("effective", "id"))


def send_all() -> int:
    User = get_user_model()  # noqa: N806
    sent = 0
    due = due_soon_or_overdue()
    if due:
        for officer in User.objects.filter(groups__name=roles.OFFICER, is_active=True):
            if officer.email:
                sent += emails.deadline_digest(officer, due)
    cutoff = timezone.now() - timedelta(hours=24)
    # At most one reminder a day per request, however often the scheduler runs.
    waiting = DataRequest.objects.filter(
        Q(approvers_reminded_at__isnull=True) | Q(approvers_reminded_at__lt=cutoff),
        status=Status.AWAITING_APPROVAL,
        plan_ready_at__lt=cutoff,
    )
    from requests_app.workflow import lifecycle

    for data_request in waiting:
        DataRequest.objects.filter(pk=data_request.pk).update(approvers_reminded_at=timezone.now())
        sent += lifecycle.notify_approvers(data_request, reminder=True)
    return sent
