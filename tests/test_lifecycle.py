"""A request from submit to approved: the plan, decisions, the state machine (the approval
link and its attacks: tests/test_approval_links.py)."""

import threading
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection

from requests_app.models import Approval, AuditEvent, DataRequest, IllegalTransition, Status
from requests_app.workflow import lifecycle
from tests.conftest import proof_for, sign_in
from tests.lifecycle_helpers import approval_links, make_request

pytestmark = pytest.mark.django_db(transaction=True)


def decide(request, approver, decision="approved", reason=""):
    return lifecycle.decide(
        request,
        approver=approver,
        decision=decision,
        reason=reason,
        via="portal",
        plan_version=request.plan_version,
        proof=proof_for(approver),
    )


def submit_and_plan(request, officer, run_jobs):
    lifecycle.submit(request, actor=officer)
    run_jobs()
    request.refresh_from_db()
    return request


def test_export_plan_is_read_only_and_asks_every_approver(
    azure, officer, approver, approver2, run_jobs
):
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
    assert approval_links(mail.outbox, "ada") != approval_links(mail.outbox, "alan")


def test_erasure_needs_two_distinct_approvers(
    azure, officer, approver, approver2, run_jobs, redis_db
):
    reg = azure.samples()["individual_x509"][0]
    request = submit_and_plan(make_request(officer, [reg], kind="erasure"), officer, run_jobs)
    actions = list(request.operations.values_list("action", flat=True))
    assert actions.index("dps.delete_enrollment") < actions.index("dps.delete_registration")
    assert actions.index("dps.delete_registration") < actions.index("hub.delete_device")
    assert actions[-1].startswith("verify.")
    decide(request, approver)
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL
    assert redis_db.llen("rq:queue:fulfilment-short") == 0
    with pytest.raises(lifecycle.DecisionRefused, match="already decided"):
        decide(request, approver)
    decide(request, approver2)
    request.refresh_from_db()
    assert request.status == Status.APPROVED
    assert redis_db.llen("rq:queue:fulfilment-short") == 1  # after commit; one device: short


def test_rejection_needs_a_reason_and_emails_the_officer(azure, officer, approver, run_jobs):
    request = submit_and_plan(
        make_request(officer, [azure.samples()["individual_tpm"][0]]), officer, run_jobs
    )
    mail.outbox.clear()
    with pytest.raises(lifecycle.DecisionRefused, match="A reason is required"):
        decide(request, approver, "rejected", reason="  ")
    decide(request, approver, "rejected", reason="Identity not verified")
    request.refresh_from_db()
    assert request.status == Status.REJECTED
    assert request.rejection_reason == "Identity not verified"
    assert mail.outbox[0].to == ["olivia@example.com"]
    assert "Identity not verified" in mail.outbox[0].body


def test_a_decision_needs_the_approvers_own_second_factor_session(
    azure, officer, approver, approver2, run_jobs
):
    """lifecycle.decide itself refuses, whatever view calls it (no path around it)."""
    request = submit_and_plan(
        make_request(officer, [azure.samples()["individual_x509"][1]], kind="erasure"),
        officer,
        run_jobs,
    )
    refused = {
        "not_signed_in": None,
        "not_signed_in ": proof_for(approver2),  # someone else's session
        "second_factor_missing": proof_for(approver, second_factor=""),
        "reauth_required": proof_for(approver, signed_in_seconds_ago=901),
    }
    for reason, proof in refused.items():
        with pytest.raises(lifecycle.DecisionRefused) as caught:
            lifecycle.decide(
                request,
                approver=approver,
                decision="approved",
                via="portal",
                plan_version=request.plan_version,
                proof=proof,
            )
        assert caught.value.reason == reason.strip()
    assert not request.approvals.exists()
    assert AuditEvent.objects.filter(action="decision_refused").count() == 4
    approval = decide(request, approver)
    assert approval.second_factor == "totp" and approval.signed_in_at is not None


def test_creator_cannot_approve(client, azure, officer, approver, run_jobs):
    from requests_app.access import roles
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
            proof=proof_for(both),
        )
    sign_in(client, both)
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
                proof=proof_for(user),
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
