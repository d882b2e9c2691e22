"""Audit events in words (requests_app/timeline.py): every action the code records has words,
Azure calls name the object and the hub, refusals read calmly, unknown actions stay readable."""

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from requests_app.models import AuditEvent
from requests_app.reporting.timeline import ACTIONS, azure_object, describe, short_host, tone

ROOT = Path(__file__).resolve().parent.parent
RECORDED = re.compile(r"AuditEvent\.record\(\s*\"([a-z_]+)\"")


def event(action, actor="system", when=None, **details):
    return AuditEvent(
        action=action,
        actor_name=actor,
        actor_kind="system" if actor == "system" else "user",
        details=details,
        created_at=when or timezone.now(),
    )


def recorded_actions():
    found = {"status_changed", "request_approved", "request_rejected"}  # transition, f-string
    for path in (ROOT / "requests_app").rglob("*.py"):
        found.update(RECORDED.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_recorded_action_has_words():
    missing = sorted(recorded_actions() - set(ACTIONS))
    assert not missing, f"add these to requests_app/timeline.py ACTIONS (and describe): {missing}"


@pytest.mark.parametrize(
    ("details", "text"),
    [
        (
            {
                "method": "DELETE",
                "host": "demo-hub-1.azure-devices.net",
                "path": "/devices/thermostat-00100004",
                "status": 204,
                "attempt": 1,
                "outcome": "ok",
            },
            "Azure: DELETE device thermostat-00100004 on demo-hub-1 → 204",
        ),
        (
            {
                "method": "GET",
                "host": "demo-dps.azure-devices-provisioning.net",
                "path": "/registrations/meter%2F01",
                "status": 404,
                "error_code": "404201",
                "outcome": "not_found",
            },
            "Azure: GET registration meter/01 on demo-dps → 404 404201",
        ),
        (
            {
                "method": "GET",
                "host": "demo-hub-2.azure-devices.net",
                "path": "/twins/d1/modules/m1",
                "status": 429,
                "attempt": 2,
                "outcome": "retry",
            },
            "Azure: GET twin of module m1 of device d1 on demo-hub-2 → 429 (attempt 2), will retry",
        ),
        (
            {"method": "POST", "host": "x.net", "path": "/enrollmentGroups/query", "status": 0},
            "Azure: POST query of the enrollment groups on x → no answer",
        ),
    ],
)
def test_azure_calls_in_words(details, text):
    assert describe(event("azure_call", **details)) == text


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/enrollments/r1", "enrollment r1"),
        ("/enrollmentGroups/g1", "enrollment group g1"),
        ("/registrations/g1/query", "query of the registrations of group g1"),
        ("/devices/d1/modules", "modules of device d1"),
        ("/devices/d1/modules/m1", "module m1 of device d1"),
        ("/twins/d1", "twin of device d1"),
        ("/devices/query", "device query"),
        ("/something/else", "/something/else"),
    ],
)
def test_azure_objects(path, words):
    assert azure_object(path) == words


def test_short_host():
    assert short_host("demo-hub-1.azure-devices.net") == "demo-hub-1"
    assert short_host("") == "?"


@pytest.mark.parametrize(
    ("action", "details", "text"),
    [
        (
            "email_sent",
            {"template": "approval_request", "to": "approver1@example.com"},
            "Email to approver1@example.com (approval link)",
        ),
        (
            "email_failed",
            {"template": "request_finished", "to": "o@example.com", "error": "SMTPException"},
            "Email to o@example.com (request finished) could not be sent: SMTPException",
        ),
        (
            "status_changed",
            {"from": "awaiting_approval", "to": "approved"},
            "Status: awaiting approval → approved",
        ),
        (
            "status_changed",
            {"from": "planning", "to": "awaiting_approval", "devices": 2, "operations": 16},
            "Status: planning → awaiting approval — plan of 2 devices, 16 operations",
        ),
        (
            "status_changed",
            {"from": "draft", "to": "cancelled", "reason": "duplicate"},
            "Status: draft → cancelled — reason: duplicate",
        ),
        (
            "status_changed",
            {"from": "failed", "to": "approved", "retry": True},
            "Status: failed → approved (retry)",
        ),
        (
            "approval_link_refused",
            {"reason": "used"},
            "Approval link opened again after it was used — nothing changed",
        ),
        (
            "approval_link_refused",
            {"reason": "something new"},
            "Approval link refused — nothing changed",
        ),
        ("approval_link_opened", {"approver": "approver1"}, "Approval link opened by approver1"),
        (
            "deadline_extended",
            {
                "from_": "2026-01-31",
                "until": "2026-03-31",
                "reason": "complex",
                "notice_date": "2026-01-20",
            },
            "Deadline extended from 2026-01-31 to 2026-03-31 (subject told on 2026-01-20): complex",
        ),
        (
            "artifact_created",
            {"kind": "export_archive", "size": 12345, "sha256": "ab" * 32},
            "Stored: Export archive (ZIP) (12,345 bytes, SHA-256 abababababab…)",
        ),
        (
            "artifact_downloaded",
            {"kind": "certificate_pdf"},
            "Downloaded: Deletion certificate (PDF)",
        ),
        (
            "report_downloaded",
            {"kind": "audit_log", "from": "2026-01-01", "to": "2026-01-31"},
            "Downloaded the audit log for 2026-01-01 to 2026-01-31",
        ),
        (
            "request_created",
            {"via": "form", "identifiers": 3},
            "Request created in the portal with 3 identifiers",
        ),
        (
            "plan_stored",
            {"plan_version": "0123456789abcdef" * 4},
            "Plan stored (version 0123456789ab…)",
        ),
        ("scoping_failed", {"error": "Unauthorized"}, "Planning failed: Unauthorized"),
        ("approval_emails_resent", {"sent": 2}, "Approval emails sent again (2 sent)"),
        (
            "reconciler_enqueued",
            {"status": "running"},
            "Re-queued by the reconciler (the request was running)",
        ),
        ("request_finished", {"status": "completed"}, "Finished: completed"),
        ("login", {"ip": "10.0.0.1"}, "Signed in from 10.0.0.1"),
        ("api_token_revoked", {"prefix": "abcd"}, "API token abcd… revoked"),
    ],
)
def test_events_in_words(action, details, text):
    assert describe(event(action, **details)) == text


def test_decisions_name_the_approver_and_the_way():
    approved = event("request_approved", actor="ada", via="link", ip="10.1.2.3")
    assert describe(approved) == "Approved by ada via email link from 10.1.2.3"
    rejected = event("request_rejected", actor="alan", via="portal", reason="not verified")
    assert describe(rejected) == "Rejected by alan via the portal: not verified"


def test_work_resumed_says_when_and_how_long(settings):
    settings.TIME_ZONE = "UTC"
    when = datetime(2026, 3, 4, 10, 11, 12, tzinfo=ZoneInfo("UTC"))
    resumed = event(
        "work_resumed",
        when=when,
        lost_seconds=200,
        lease_expired_at="2026-03-04T10:10:00+00:00",
        status="running",
    )
    with timezone.override("UTC"):
        assert (
            describe(resumed) == "Worker lost; resumed by the reconciler at 10:11:12 (200 s lost)"
        )
    assert tone(resumed) == "warn"
    taken = event("work_resumed", when=when, lost_seconds=7, by="worker", status="running")
    with timezone.override("UTC"):
        assert describe(taken) == "Worker lost; resumed by another worker at 10:11:12 (7 s lost)"


def test_unknown_actions_and_odd_details_stay_readable():
    assert describe(event("something_new_happened")) == "Something new happened"
    assert describe(event("azure_call", status="x")).startswith("Azure: ?")
    odd = AuditEvent(action="deadline_extended", actor_name="x", details=["not", "a", "dict"])
    assert describe(odd) == "Deadline extended from ? to ?"


def test_tone_marks_failures_and_quiets_azure_calls():
    assert tone(event("azure_call", status=204, outcome="ok")) == "quiet"
    assert tone(event("azure_call", status=500, outcome="error")) == "bad"
    assert tone(event("status_changed", to="failed")) == "bad"
    assert tone(event("email_sent")) == ""
