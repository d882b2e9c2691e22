"""A request from submit to approved: the plan, approval links, the state machine."""

import threading
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection

from requests_app import lifecycle
from requests_app.models import Approval, AuditEvent, DataRequest, IllegalTransition, Status
from tests.lifecycle_helpers import approval_links, make_request

pytestmark = pytest.mark.django_db(transaction=True)


def submit_and_plan(request, officer, run_jobs):
    lifecycle.submit(request, actor=officer)
    run_jobs()
    request.refresh_from_db()
    return request


def test_export_plan_approval_by_link(client, azure, officer, approver, approver2, run_jobs):
    samples = azure.samples()
    reg = samples["individual_symmetric"][0]
    group_dev = samples["group_provisioned"][0]
    request = make_request(officer, [reg, group_dev, "no-such-device-anywhere"])
    calls_before = len(azure.calls)
    request = submit_and_plan(request, officer, run_jobs)
    assert request.status == Status.AWAITING_APPROVAL, request.scoping_error
    # Scoping was read-only.
    assert {c["method"] for c in azure.calls[calls_before:]} <= {"GET", "POST"}
    devices = {d.registration_id: d for d in request.devices.all()}
    assert devices[reg].enrollment == "individual" and devices[reg].has_device
    assert devices[group_dev].enrollment == "group" and devices[group_dev].group_id
    assert devices["no-such-device-anywhere"].state == "not_found"
    actions = list(request.operations.values_list("action", flat=True))
    assert actions[:2] == ["dps.get_enrollment", "dps.get_registration"]
    assert "dps.get_enrollment_group" in actions
    assert not any(a.startswith(("dps.delete", "hub.delete")) for a in actions)
    assert len(request.plan_version) == 64

    # One email per approver, text and HTML, each with its own link.
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@example.com", "alan@example.com"]
    html = mail.outbox[0].alternatives[0][0]
    assert "/approve/" in html and request.reference in mail.outbox[0].subject
    link = approval_links(mail.outbox, "ada")[0]

    # GET shows the plan and changes nothing (mail scanners open links).
    page = client.get(link)
    assert page.status_code == 200
    assert page["Referrer-Policy"] == "no-referrer"
    assert reg in page.content.decode() and "Will be read (export)" in page.content.decode()
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL and not request.approvals.exists()

    response = client.post(link, {"decision": "approved"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.status in (Status.APPROVED, Status.RUNNING, Status.COMPLETED)
    approval = request.approvals.get()
    assert (approval.approver, approval.via, approval.ip) == (approver, "link", "10.1.2.3")
    event = AuditEvent.objects.get(action="request_approved", request_ref=request.reference)
    assert event.actor_name == "ada" and event.details["ip"] == "10.1.2.3"
    # The link is dead after use.
    again = client.post(link, {"decision": "approved"})
    assert again.status_code == 410


def test_erasure_needs_two_distinct_approvers(
    client, azure, officer, approver, approver2, run_jobs, redis_db
):
    reg = azure.samples()["individual_x509"][0]
    request = submit_and_plan(make_request(officer, [reg], kind="erasure"), officer, run_jobs)
    actions = list(request.operations.values_list("action", flat=True))
    assert actions.index("dps.delete_enrollment") < actions.index("dps.delete_registration")
    assert actions.index("dps.delete_registration") < actions.index("hub.delete_device")
    assert actions[-1].startswith("verify.")
    first, second = approval_links(mail.outbox, "ada")[0], approval_links(mail.outbox, "alan")[0]
    client.post(first, {"decision": "approved"})
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL
    assert redis_db.llen("rq:queue:fulfilment") == 0
    client.post(second, {"decision": "approved"})
    request.refresh_from_db()
    assert request.status == Status.APPROVED
    assert redis_db.llen("rq:queue:fulfilment") == 1  # enqueued after commit


def test_rejection_needs_a_reason_and_emails_the_officer(
    client, azure, officer, approver, run_jobs
):
    request = submit_and_plan(
        make_request(officer, [azure.samples()["individual_tpm"][0]]), officer, run_jobs
    )
    link = approval_links(mail.outbox, "ada")[0]
    mail.outbox.clear()
    response = client.post(link, {"decision": "rejected", "reason": "  "})
    assert response.status_code == 400 and b"A reason is required" in response.content
    client.post(link, {"decision": "rejected", "reason": "Identity not verified"})
    request.refresh_from_db()
    assert request.status == Status.REJECTED
    assert request.rejection_reason == "Identity not verified"
    assert mail.outbox[0].to == ["olivia@example.com"]
    assert "Identity not verified" in mail.outbox[0].body


def test_token_attacks(
    client, azure, officer, approver, approver2, run_jobs, settings, monkeypatch
):
    request = submit_and_plan(
        make_request(officer, [azure.samples()["individual_symmetric"][1]], kind="erasure"),
        officer,
        run_jobs,
    )
    link = approval_links(mail.outbox, "ada")[0]
    token = link.split("/")[2]

    tampered = f"/approve/{token[:-3]}{'x' if token[-3] != 'x' else 'y'}{token[-2:]}/"
    assert client.get(tampered).status_code == 403
    assert b"altered" in client.get(tampered).content

    # Someone else signed in opens Ada's link.
    client.force_login(approver2)
    response = client.post(link, {"decision": "approved"})
    assert response.status_code == 403 and b"another approver" in response.content
    client.logout()

    # Expired: max age 0 and a token minted a minute ago.
    import django.core.signing as signing

    from requests_app.tokens import make_token

    real_time = signing.time.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() - 120)
    old = make_token(request, approver)
    monkeypatch.setattr(signing.time, "time", real_time)
    settings.DSR_APPROVAL_LINK_MAX_AGE = 60
    response = client.get(f"/approve/{old}/")
    assert response.status_code == 410 and b"expired" in response.content

    refused = AuditEvent.objects.filter(action="approval_link_refused")
    assert {e.details["reason"] for e in refused} >= {"tampered", "other_approver", "expired"}
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL and not request.approvals.exists()

    # A decision on a request no longer awaiting approval.
    lifecycle.cancel(request, actor=officer, reason="subject withdrew")
    response = client.post(link, {"decision": "approved"})
    assert response.status_code == 410 and b"no longer awaiting approval" in response.content


def test_creator_cannot_approve(client, azure, officer, approver, run_jobs):
    from requests_app import roles
    from tests.conftest import make_user

    both = make_user("bea", roles.OFFICER)
    both.groups.add(*approver.groups.all())
    request = submit_and_plan(
        make_request(both, [azure.samples()["individual_symmetric"][2]]), both, run_jobs
    )
    assert all(not m.to[0].startswith("bea") for m in mail.outbox)  # never asked
    with pytest.raises(lifecycle.DecisionRefused, match="You created this request"):
        lifecycle.decide(
            request,
            approver=both,
            decision="approved",
            via="portal",
            plan_version=request.plan_version,
        )
    client.force_login(both)
    client.post(
        f"/requests/{request.reference}/decide",
        {"decision": "approved", "plan_version": request.plan_version},
    )
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL


def test_illegal_transitions_raise_and_change_nothing(officer, db):
    request = make_request(officer, ["x1"])
    events = AuditEvent.objects.count()
    with pytest.raises(IllegalTransition, match="cannot become approved"):
        request.transition(Status.APPROVED)
    request.refresh_from_db()
    assert request.status == Status.DRAFT and AuditEvent.objects.count() == events


@pytest.mark.skipif(
    "connection.vendor == 'sqlite'", reason="SQLite has no row locks; CI runs this on PostgreSQL"
)
def test_concurrent_approvals_cannot_both_win_the_last_slot(
    azure, officer, approver, approver2, run_jobs
):
    request = submit_and_plan(
        make_request(officer, [azure.samples()["individual_symmetric"][3]]), officer, run_jobs
    )
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(user):
        barrier.wait()
        try:
            lifecycle.decide(
                DataRequest.objects.get(pk=request.pk),
                approver=user,
                decision="approved",
                via="portal",
                plan_version=request.plan_version,
            )
            outcomes.append("ok")
        except lifecycle.DecisionRefused as exc:
            outcomes.append(exc.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(u,)) for u in (approver, approver2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["not_awaiting", "ok"]
    assert Approval.objects.filter(request=request).count() == 1
    changes = AuditEvent.objects.filter(
        action="status_changed", request_ref=request.reference, details__to="approved"
    )
    assert changes.count() == 1


def test_scoping_failure_is_shown_and_can_be_retried(
    client, azure, officer, approver, run_jobs, settings
):
    from requests_app.azure import configured_targets

    request = make_request(officer, [azure.samples()["individual_symmetric"][0]])
    good_targets = settings.DSR_AZURE_TARGETS
    secret = next(Path(good_targets).parent.glob("demo-dps*.connstr"))
    original = secret.read_text()
    # The DPS key was rotated in Azure but not here: every call is refused with 401.
    secret.write_text(original.replace("SharedAccessKey=", "SharedAccessKey=AAAA"))
    configured_targets.cache_clear()
    request = submit_and_plan(request, officer, run_jobs)
    assert request.status == Status.PLANNING
    assert "Unauthorized" in request.scoping_error
    assert AuditEvent.objects.filter(action="scoping_failed").count() == 1
    client.force_login(officer)
    page = client.get(f"/requests/{request.reference}/").content.decode()
    assert "Planning failed" in page and "Retry" in page

    secret.write_text(original)
    configured_targets.cache_clear()
    response = client.post(f"/requests/{request.reference}/retry")
    assert response.status_code == 302
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL and request.scoping_error == ""
