"""Daily reminders: one deadline digest per officer; approvers reminded after 24 hours."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from requests_app.models import Approval, AuditEvent, DataRequest, Status
from requests_app.workflow import reminders
from tests.conftest import make_user
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db


def _request(officer, *, due_in=30, status=Status.DRAFT, **fields):
    req = make_request(officer, ["reg-1"])
    values = {
        "due_at": timezone.localdate() + timedelta(days=due_in),
        "status": status,
        **fields,
    }
    DataRequest.objects.filter(pk=req.pk).update(**values)
    req.refresh_from_db()
    return req


def _html(message):
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def _digests():
    return [m for m in mail.outbox if "due within 7 days or overdue" in m.subject]


def test_nothing_is_sent_when_nothing_is_due(officer, officer2, approver):
    _request(officer, due_in=8)
    _request(officer, due_in=-3, status=Status.COMPLETED)
    _request(officer, due_in=1, status=Status.CANCELLED)
    _request(officer, status=Status.AWAITING_APPROVAL, plan_ready_at=timezone.now())
    assert reminders.send_all() == 0
    assert mail.outbox == []


def test_one_digest_per_officer_with_text_and_html(officer, officer2, approver, auditor):
    soon = _request(officer, due_in=6)
    late = _request(officer2, due_in=-2, status=Status.FAILED)
    later = _request(officer, due_in=8)
    done = _request(officer, due_in=-1, status=Status.COMPLETED)
    inactive = make_user("ivan", "officer")
    inactive.is_active = False
    inactive.save()
    reminders.send_all()
    digests = _digests()
    assert sorted(m.to[0] for m in digests) == ["olivia@example.com", "oscar@example.com"]
    for message in digests:
        assert message.subject == "DSR Portal: 2 requests due within 7 days or overdue"
        html = _html(message)
        for part in (message.body, html):
            assert soon.reference in part and late.reference in part
            assert later.reference not in part and done.reference not in part
        assert "6 days left" in message.body and "OVERDUE by 2 days" in message.body
        assert "overdue" in html
        assert f"http://testserver/requests/{late.reference}/" in message.body
        assert f'href="http://testserver/requests/{soon.reference}/"' in html
    assert (
        AuditEvent.objects.filter(action="email_sent", details__template="deadline_digest").count()
        == 2
    )


def test_extension_moves_a_request_out_of_the_digest(officer):
    _request(officer, due_in=2, extended_until=timezone.localdate() + timedelta(days=30))
    reminders.send_all()
    assert _digests() == []


def test_approvers_are_reminded_after_24_hours(officer, approver, approver2):
    now = timezone.now()
    waiting = _request(
        officer,
        status=Status.AWAITING_APPROVAL,
        plan_version="v1",
        plan_ready_at=now - timedelta(hours=25),
    )
    _request(
        officer,
        status=Status.AWAITING_APPROVAL,
        plan_version="v1",
        plan_ready_at=now - timedelta(hours=23),
    )
    Approval.objects.create(
        request=waiting,
        approver=approver2,
        approver_name="alan",
        plan_version="v1",
        decision="approved",
        via="portal",
    )
    reminders.send_all()
    reminded = [m for m in mail.outbox if m.subject.startswith(f"[{waiting.reference}] Reminder")]
    assert [m.to for m in reminded] == [["ada@example.com"]]
    assert "http://testserver/approve/" in reminded[0].body
    assert "/approve/" in _html(reminded[0])
    assert len(mail.outbox) == 1  # the fresh one waits; nothing is due for officers


def test_the_creator_is_not_reminded_to_approve_their_own_request(officer, approver):
    approver.groups.add(*officer.groups.all())  # an officer who is also an approver
    _request(
        approver,
        status=Status.AWAITING_APPROVAL,
        plan_version="v1",
        plan_ready_at=timezone.now() - timedelta(days=2),
    )
    reminders.send_all()
    assert [m for m in mail.outbox if "Reminder" in m.subject] == []


@pytest.mark.django_db
def test_approver_reminder_is_sent_once_a_day(approver, officer, mailoutbox):
    request = make_request(officer, ["dev-1"])
    DataRequest.objects.filter(pk=request.pk).update(
        status=Status.AWAITING_APPROVAL,
        plan_version="v1",
        plan_ready_at=timezone.now() - timedelta(hours=30),
    )
    reminders.send_all()
    sent = [m for m in mailoutbox if "Reminder: approval" in m.subject]
    assert [m.to for m in sent] == [["ada@example.com"]]
    reminders.send_all()  # the scheduler ran again the same day
    assert len([m for m in mailoutbox if "Reminder: approval" in m.subject]) == 1
