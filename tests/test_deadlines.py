"""Extending a deadline: once, within the regulation's limit, with a reason and a notice date."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from requests_app.models import AuditEvent, DataRequest, Status
from requests_app.models.requests import add_months
from requests_app.workflow import deadlines
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db


def _extend(req, officer, **overrides):
    today = timezone.localdate()
    arguments = {
        "actor": officer,
        "until": req.due_at + timedelta(days=30),
        "reason": "Many devices across three hubs",
        "notice_date": today,
    }
    arguments.update(overrides)
    return deadlines.extend(req, **arguments)


def _unchanged(req):
    fresh = DataRequest.objects.get(pk=req.pk)
    assert fresh.extended_until is None
    assert fresh.extension_reason == "" and fresh.extension_notice_date is None
    assert not AuditEvent.objects.filter(action="deadline_extended").exists()


def test_gdpr_extension_is_stored_with_its_audit_event(officer):
    req = make_request(officer, ["reg-1"], regulation="gdpr")
    until = add_months(req.due_at, 2)
    _extend(req, officer, until=until)
    fresh = DataRequest.objects.get(pk=req.pk)
    assert fresh.extended_until == until == fresh.effective_due
    assert fresh.extension_reason == "Many devices across three hubs"
    assert fresh.extension_notice_date == timezone.localdate()
    event = AuditEvent.objects.get(action="deadline_extended")
    assert event.request_ref == req.reference and event.actor_name == officer.username
    assert event.details["until"] == until.isoformat()
    assert event.details["from_"] == req.due_at.isoformat()
    assert event.details["notice_date"] == timezone.localdate().isoformat()
    assert event.details["reason"] == "Many devices across three hubs"


@pytest.mark.parametrize(
    ("regulation", "says"),
    [
        ("gdpr", r"^GDPR allows an extension up to .* \(GDPR Art\. 12\(3\)\)\.$"),
        ("uk_gdpr", r"^UK GDPR allows an extension up to .* \(UK GDPR Art\. 12\(3\)\)\.$"),
    ],
)
def test_gdpr_limit_is_two_further_months(officer, regulation, says):
    req = make_request(officer, ["reg-1"], regulation=regulation)
    with pytest.raises(ValueError, match=says):
        _extend(req, officer, until=add_months(req.due_at, 2) + timedelta(days=1))
    _unchanged(req)
    _extend(req, officer, until=add_months(req.due_at, 2))
    assert DataRequest.objects.get(pk=req.pk).extended_until == add_months(req.due_at, 2)


def test_ccpa_limit_is_45_days(officer):
    req = make_request(officer, ["reg-1"], regulation="ccpa")
    with pytest.raises(ValueError, match=r"CCPA/CPRA allows .* \(Cal\. Civ\. Code § 1798\.130"):
        _extend(req, officer, until=req.due_at + timedelta(days=46))
    _unchanged(req)
    _extend(req, officer, until=req.due_at + timedelta(days=45))
    assert DataRequest.objects.get(pk=req.pk).extended_until == req.due_at + timedelta(days=45)


def test_only_once(officer, officer2):
    req = make_request(officer, ["reg-1"])
    _extend(req, officer)
    first = DataRequest.objects.get(pk=req.pk).extended_until
    with pytest.raises(ValueError, match="only once"):
        _extend(DataRequest.objects.get(pk=req.pk), officer2, until=first + timedelta(days=1))
    assert DataRequest.objects.get(pk=req.pk).extended_until == first
    assert AuditEvent.objects.filter(action="deadline_extended").count() == 1


def test_stale_object_cannot_extend_twice(officer):
    """The check runs on the locked row, not on the caller's possibly stale copy."""
    req = make_request(officer, ["reg-1"])
    stale = DataRequest.objects.get(pk=req.pk)
    _extend(req, officer)
    with pytest.raises(ValueError, match="only once"):
        _extend(stale, officer)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reason": "   "}, "reason"),
        ({"until": None}, "new due date"),
        ({"notice_date": None}, "was told"),
        ({"notice_date": timezone.localdate() + timedelta(days=1)}, "future"),
        ({"notice_date": timezone.localdate() - timedelta(days=1)}, "before the request"),
    ],
)
def test_refusals_store_nothing(officer, overrides, message):
    req = make_request(officer, ["reg-1"])
    with pytest.raises(ValueError, match=message):
        _extend(req, officer, **overrides)
    _unchanged(req)


def test_new_date_must_be_after_the_current_one(officer):
    req = make_request(officer, ["reg-1"])
    for until in (req.due_at, req.due_at - timedelta(days=1)):
        with pytest.raises(ValueError, match="must be after the current one"):
            _extend(req, officer, until=until)
    _unchanged(req)


def test_notice_must_fall_within_the_original_period(officer):
    req = make_request(officer, ["reg-1"], regulation="ccpa")
    DataRequest.objects.filter(pk=req.pk).update(
        received_at=req.received_at - timedelta(days=60), due_at=req.due_at - timedelta(days=60)
    )
    req.refresh_from_db()
    with pytest.raises(ValueError, match="before the original due date"):
        _extend(req, officer, until=req.due_at + timedelta(days=10))
    _unchanged(req)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.REJECTED, Status.CANCELLED])
def test_only_open_requests(officer, status):
    req = make_request(officer, ["reg-1"])
    DataRequest.objects.filter(pk=req.pk).update(status=status)
    req.refresh_from_db()
    with pytest.raises(ValueError, match="only open requests"):
        _extend(req, officer)
    _unchanged(req)


def test_failed_request_is_still_open_and_can_be_extended(officer):
    req = make_request(officer, ["reg-1"])
    DataRequest.objects.filter(pk=req.pk).update(status=Status.FAILED)
    req.refresh_from_db()
    _extend(req, officer)
    assert DataRequest.objects.get(pk=req.pk).extended_until


# --- the view ---------------------------------------------------------------------------


def _post(client, req, **data):
    today = timezone.localdate()
    form = {
        "until": (req.due_at + timedelta(days=20)).isoformat(),
        "reason": "Complex request",
        "notice_date": today.isoformat(),
    }
    form.update(data)
    return client.post(f"/requests/{req.reference}/extend", form)


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_officer_extends_from_the_request_page(client, officer):
    req = make_request(officer, ["reg-1"])
    sign_in(client, officer)
    response = _post(client, req)
    assert response.status_code == 302 and response["Location"] == req.get_absolute_url()
    until = req.due_at + timedelta(days=20)
    assert DataRequest.objects.get(pk=req.pk).extended_until == until
    assert _messages(response) == [f"The due date is now {until:%Y-%m-%d}."]


def test_errors_are_messages_and_nothing_is_stored(client, officer):
    req = make_request(officer, ["reg-1"])
    sign_in(client, officer)
    response = _post(client, req, reason="")
    assert response.status_code == 302
    assert _messages(response) == ["Not extended: A reason for the extension is required."]
    response = _post(client, req, until="31/12/2099")
    assert _messages(response)[-1] == "Not extended: New due date: enter a date as YYYY-MM-DD."
    _unchanged(req)


def test_get_is_refused(client, officer):
    req = make_request(officer, ["reg-1"])
    sign_in(client, officer)
    assert client.get(f"/requests/{req.reference}/extend").status_code == 405
    _unchanged(req)


@pytest.mark.parametrize("persona", ["approver", "auditor"])
def test_only_officers_extend(client, officer, persona, request):
    req = make_request(officer, ["reg-1"])
    sign_in(client, request.getfixturevalue(persona))
    assert _post(client, req).status_code == 404
    _unchanged(req)


def test_extend_form_partial(officer):
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    req = make_request(officer, ["reg-1"])
    http = RequestFactory().get("/")
    http.user = officer
    context = {
        "req": req,
        "officer_actions": True,
        "extension_limit": deadlines.extension_limit(req),
    }
    html = render_to_string("requests_app/_extend_form.html", context, request=http)
    assert f'action="/requests/{req.reference}/extend"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    for name in ("until", "reason", "notice_date"):
        assert f'name="{name}"' in html
    assert f"no later than {add_months(req.due_at, 2):%Y-%m-%d}" in html
    assert 'type="date"' not in html and 'placeholder="YYYY-MM-DD"' in html  # ISO, any locale
    assert '<label for="extend-notice">' in html
    assert (
        render_to_string(
            "requests_app/_extend_form.html", {**context, "officer_actions": False}, request=http
        ).strip()
        == ""
    )
