"""The export archive goes to the data subject, a third party to the staff who handled the
request: made through the real fulfilment, it carries none of their personal data (names,
email addresses, IP addresses, browser user agents, reasons they wrote), while the request's
history is there in an allow-listed, pseudonymised form. The portal keeps the full trail.

Staff are given sentinel values, which then travel through the real flow (approval emails,
decisions with IP and user agent, a refused decision, a deadline extension with a reason) into
the audit trail; no file of the archive may hold any of them.
"""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from requests_app.access import roles
from requests_app.models import Approval, Artifact, AuditEvent, Status
from requests_app.workflow import deadlines, lifecycle
from tests.conftest import make_user, proof_for
from tests.lifecycle_helpers import make_request
from tests.test_fulfilment import (
    archive_members,
    pick_mix,
    plan,
    serve_simulator,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)

OFFICER = ("sentinel-officer-olivia", "sentinel-officer@staff.example")
APPROVERS = (
    ("sentinel-approver-ada", "sentinel-approver@staff.example"),
    ("sentinel-approver-alan", "sentinel-approver2@staff.example"),
)
IP = "203.0.113.77"
IP_2 = "2001:db8::77"
USER_AGENT = "SentinelAgent/9.9"
NAMES = ("Sentinella", "Staffperson")
EXTENSION_REASON = "Sentinel-officer Olivia is on leave; reply to sentinel-officer@staff.example"
# Everything above, and the markers that would give any of it away.
SENTINELS = (
    *OFFICER,
    *(value for approver in APPROVERS for value in approver),
    IP,
    IP_2,
    USER_AGENT,
    *NAMES,
    EXTENSION_REASON,
    "sentinel",
    "staff.example",
)


def staff(username, email, role):
    user = make_user(username, role)
    user.email, user.first_name, user.last_name = email, *NAMES
    user.save()
    return user


@pytest.fixture
def azure(serve_simulator):  # noqa: F811
    """The simulator, throttled (and paced) at 60x Azure's rates, as in test_fulfilment."""
    return serve_simulator(throttle_scale=60)


@pytest.fixture
def officer(db):
    return staff(*OFFICER, roles.OFFICER)


@pytest.fixture
def approvers(db):
    return [staff(username, email, roles.APPROVER) for username, email in APPROVERS]


def decide(request, user, ip):
    return lifecycle.decide(
        request,
        approver=user,
        decision=Approval.Decision.APPROVED,
        via="link",
        plan_version=request.plan_version,
        proof=proof_for(user),
        ip=ip,
        user_agent=f"Mozilla/5.0 ({USER_AGENT}; {NAMES[0]})",
    )


def test_the_subject_archive_holds_no_staff_personal_data(azure, officer, approvers, run_jobs):
    ids, hub_devices, _ = pick_mix(azure)
    request = make_request(officer, ids, kind="export_and_erasure", hub_devices=hub_devices)
    request = plan(request, officer, run_jobs)  # the approval emails go to the sentinel emails
    today = timezone.localdate()
    deadlines.extend(
        request,
        actor=officer,
        until=request.due_at + timedelta(days=10),
        reason=EXTENSION_REASON,
        notice_date=today,
    )
    with pytest.raises(lifecycle.DecisionRefused):
        decide(request, officer, IP_2)  # the officer is no approver: refused, and audited
    for user, ip in zip(approvers, (IP, IP_2), strict=True):
        decide(request, user, ip)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure

    # The portal keeps all of it, for its auditors.
    trail = json.dumps(
        [e.details for e in AuditEvent.objects.filter(request_ref=request.reference)]
    )
    for value in (IP, IP_2, USER_AGENT, APPROVERS[0][1], EXTENSION_REASON):
        assert value in trail, value

    artifact, members = archive_members(request)
    assert "audit.json" not in members
    raw = (Path(django_settings.DSR_DATA_DIR) / artifact.path).read_bytes()
    for name, body in [("(member names)", "\n".join(members).encode()), *members.items()]:
        lowered = body.lower()
        for value in SENTINELS:
            assert value.lower().encode() not in lowered, (name, value)
    for value in SENTINELS:
        assert value.encode() not in raw, value

    # What the subject is told instead.
    history = json.loads(members["history.json"])
    events = [entry["event"] for entry in history["events"]]
    assert events[0] == "received"
    assert events.index("planned") < events.index("approver_approved")
    assert events.index("fulfilment_started") < events.index("device_operation")
    decisions = [e for e in history["events"] if e["event"] == "approver_approved"]
    assert [e["approver"] for e in decisions] == ["Approver 1", "Approver 2"]
    extended = next(e for e in history["events"] if e["event"] == "deadline_extended")
    assert extended["until"] == request.extended_until.isoformat()
    assert set(extended) == {"time", "event", "until", "description"}
    steps = [e for e in history["events"] if e["event"] == "device_operation"]
    assert steps and all(e["phase"] == "export" for e in steps)  # made before the erasure
    assert {e["device"] for e in steps} <= {d.label for d in request.devices.all()}
    manifest = json.loads(members["manifest.json"])
    assert [a["approver"] for a in manifest["approvals"]] == ["Approver 1", "Approver 2"]
    assert "Approved by: Approver 1 (" in members["README.txt"].decode()


def test_the_certificate_of_a_completed_request_says_completed(azure, officer, approvers, run_jobs):
    ids, hub_devices, _ = pick_mix(azure)
    request = make_request(officer, ids, kind="erasure", hub_devices=hub_devices)
    request = plan(request, officer, run_jobs)
    for user, ip in zip(approvers, (IP, IP_2), strict=True):
        decide(request, user, ip)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure

    stored = request.artifacts.get(kind=Artifact.Kind.CERTIFICATE_JSON)
    body = (Path(django_settings.DSR_DATA_DIR) / stored.path).read_bytes()
    cert = json.loads(body)
    assert cert["status"] == "completed" and cert["status_label"] == "Completed"
    assert cert["completed"] == request.completed_at.isoformat()
    assert cert["request"]["regulation_label"] == "GDPR"
    assert {d["result"] for d in cert["devices"]} <= {"erased", "already_absent", "not_found"}
    assert cert["summary"]["not_verified"] == cert["summary"]["retained"] == 0
    # Evidence for the organisation: who approved and when, but not from where.
    assert [a["approver"] for a in cert["approvals"]] == [name for name, _ in APPROVERS]
    for value in (IP, IP_2, USER_AGENT):
        assert value.encode() not in body
    assert not re.search(rb'"status":"running"', body)
