"""Daily reminders: officers' digest of what is due or overdue, approvers' pending approvals."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from requests_app import emails, roles
from requests_app.models import DataRequest, Status
from requests_app.models.requests import OPEN_STATUSES


def due_soon_or_overdue(today=None):
    today = today or timezone.localdate()
    horizon = today + timedelta(days=7)
    requests = DataRequest.objects.filter(status__in=OPEN_STATUSES).order_by("due_at")
    return [r for r in requests if r.effective_due <= horizon]


def send_all():
    User = get_user_model()  # noqa: N806
    sent = 0
    due = due_soon_or_overdue()
    if due:
        for officer in User.objects.filter(groups__name=roles.OFFICER, is_active=True):
            if officer.email:
                sent += emails.deadline_digest(officer, due)
    cutoff = timezone.now() - timedelta(hours=24)
    waiting = DataRequest.objects.filter(status=Status.AWAITING_APPROVAL, plan_ready_at__lt=cutoff)
    from requests_app import lifecycle

    for request in waiting:
        sent += lifecycle.notify_approvers(request, reminder=True)
    return sent
