"""The deletion certificate: what was deleted and verified, what was kept and why, as JSON + PDF."""

import hashlib
import json
import re
import time
import zlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from requests_app.evidence.certificate import build_certificate
from requests_app.evidence.out_of_reach import NOT_REACHABLE
from requests_app.evidence.pdf import pdf_text
from requests_app.jobs import completion
from requests_app.models import (
    Approval,
    Artifact,
    AuditEvent,
    DataRequest,
    Kind,
    Operation,
    PlannedDevice,
    Regulation,
    Status,
)
from requests_app.models.audit import verify_chain

REFERENCE = "DSR-2026-0001"
DPS = "demo-dps.azure-devices-provisioning.net"
HUB = "demo-hub-1.azure-devices.net"


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DSR_DATA_DIR = tmp_path / "data"
    return settings.DSR_DATA_DIR


def add_op(request, device, seq, phase, action, method, path, state, status, **extra):
    now = timezone.now()
    host = extra.pop("host", HUB)
    return Operation.objects.create(
        request=request,
        device=device,
        seq=seq,
        phase=phase,
        action=action,
        method=method,
        host=host,
        path=path,
        state=state,
        http_status=status,
        started_at=now - timedelta(seconds=1),
        finished_at=now,
        **extra,
    )


@pytest.fixture
def erased(officer, approver, approver2, data_dir):
    """An erasure of two devices (one individual, one through a group), one not found, one
    unreachable; approved by two people; completed."""
    request = DataRequest.objects.create(
        reference=REFERENCE,
        kind=Kind.ERASURE,
        regulation=Regulation.GDPR,
        received_at=date(2026, 1, 5),
        due_at=date(2026, 2, 5),
        extended_until=date(2026, 4, 5),
        extension_reason="Many devices",
        subject_reference="TICKET-42",
        created_by=officer,
        status=Status.COMPLETED,
        approved_at=timezone.now(),
        completed_at=timezone.now(),
    )
    for user in (approver, approver2):
        Approval.objects.create(
            request=request,
            approver=user,
            approver_name=user.username,
            plan_version="v1",
            decision=Approval.Decision.APPROVED,
            via="link",
        )
    solo = PlannedDevice.objects.create(
        request=request,
        position=0,
        registration_id="solo-1",
        device_id="solo-1",
        dps=DPS,
        hub=HUB,
        state=PlannedDevice.State.FOUND,
        enrollment="individual",
        has_registration=True,
        has_device=True,
        modules=["edge"],
    )
    grouped = PlannedDevice.objects.create(
        request=request,
        position=1,
        registration_id="capteur-☃-Ω",
        device_id="capteur-☃-Ω",
        dps=DPS,
        hub=HUB,
        state=PlannedDevice.State.FOUND,
        enrollment="group",
        group_id="plant-7-sensors",
        has_registration=True,
        has_device=True,
    )
    PlannedDevice.objects.create(
        request=request, position=2, registration_id="ghost-1", state=PlannedDevice.State.NOT_FOUND
    )
    PlannedDevice.objects.create(
        request=request,
        position=3,
        registration_id="far-1",
        hub="other-hub.azure-devices.net",
        state=PlannedDevice.State.UNREACHABLE,
        note="assignedHub is not a configured target",
    )
    E, V = Operation.Phase.ERASURE, Operation.Phase.VERIFY
    done, absent = Operation.State.DONE, Operation.State.ALREADY_ABSENT
    ops = [
        (solo, E, "dps.delete_enrollment", "DELETE", "/enrollments/solo-1", done, 204, DPS),
        (solo, E, "dps.delete_registration", "DELETE", "/registrations/solo-1", done, 204, DPS),
        (solo, E, "hub.delete_module", "DELETE", "/devices/solo-1/modules/edge", done, 204, HUB),
        (solo, E, "hub.delete_device", "DELETE", "/devices/solo-1", absent, 404, HUB),
        (solo, V, "verify.enrollment_absent", "GET", "/enrollments/solo-1", done, 404, DPS),
        (solo, V, "verify.device_absent", "GET", "/devices/solo-1", done, 404, HUB),
        (grouped, E, "dps.block_reprovisioning", "PUT", "/enrollments/capteur", done, 200, DPS),
        (grouped, E, "dps.delete_registration", "DELETE", "/registrations/c", done, 204, DPS),
        (grouped, E, "hub.delete_device", "DELETE", "/devices/capteur", done, 204, HUB),
        (grouped, V, "verify.enrollment_disabled", "GET", "/enrollments/c", done, 200, DPS),
        (grouped, V, "verify.device_absent", "GET", "/devices/capteur", done, 404, HUB),
    ]
    for seq, (device, phase, action, method, path, state, status, host) in enumerate(ops, 1):
        add_op(
            request,
            device,
            seq,
            phase,
            action,
            method,
            path,
            state,
            status,
            host=host,
            azure_request_id=f"req-{seq}",
            tracking_id=f"trk-{seq}" if host == DPS else "",
            error_code="404001" if status == 404 and host == HUB else "",
        )
    AuditEvent.record("status_changed", request=request, to="completed")
    return request


def test_certificate_json_says_what_was_done(erased, data_dir, approver, approver2):
    json_artifact, _ = build_certificate(erased)
    body = (Path(data_dir) / json_artifact.path).read_bytes()
    cert = json.loads(body)

    assert cert["request"]["reference"] == REFERENCE
    assert cert["request"]["kind"] == "erasure"
    assert cert["request"]["regulation"] == "gdpr"
    assert cert["request"]["received"] == "2026-01-05"
    assert cert["request"]["due"] == "2026-02-05"
    assert cert["request"]["extended_until"] == "2026-04-05"
    assert cert["request"]["subject_reference"] == "TICKET-42"
    assert [a["approver"] for a in cert["approvals"]] == [approver.username, approver2.username]
    assert all(a["time"] for a in cert["approvals"])

    solo, grouped, ghost, far = cert["devices"]
    assert [op["action"] for op in solo["operations"]] == [
        "dps.delete_enrollment",
        "dps.delete_registration",
        "hub.delete_module",
        "hub.delete_device",
        "verify.enrollment_absent",
        "verify.device_absent",
    ]
    delete_device = solo["operations"][3]
    assert delete_device["state"] == "already_absent"
    assert delete_device["http_status"] == 404
    assert delete_device["error_code"] == "404001"
    assert delete_device["azure_request_id"] == "req-4"
    assert delete_device["method"] == "DELETE"
    assert delete_device["host"] == HUB
    assert delete_device["time"]
    assert solo["operations"][0]["tracking_id"] == "trk-1"
    assert [v["result"] for v in solo["verification"]] == ["absent", "absent"]
    assert solo["verified"] is True
    assert [v["result"] for v in grouped["verification"]] == ["disabled", "absent"]
    assert grouped["verified"] is True
    assert ghost["operations"] == [] and ghost["verified"] is False


def test_a_failed_verification_is_reported(erased, data_dir):
    verify = Operation.objects.get(request=erased, action="verify.device_absent", seq=6)
    Operation.objects.filter(pk=verify.pk).update(
        state=Operation.State.FAILED, http_status=200, error_code=""
    )
    json_artifact, _ = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    solo = cert["devices"][0]
    assert [v["result"] for v in solo["verification"]] == ["absent", "still present"]
    assert solo["verified"] is False


def test_certificate_json_says_what_was_kept_and_why(erased, data_dir):
    json_artifact, _ = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    solo, grouped, ghost, far = cert["devices"]
    assert solo["retained"] == []
    kept = {item["what"]: item for item in grouped["retained"]}
    assert set(kept) == {"disabled individual enrollment", "enrollment group"}
    assert kept["disabled individual enrollment"]["registration_id"] == "capteur-☃-Ω"
    assert "cannot provision again" in kept["disabled individual enrollment"]["why"]
    assert kept["enrollment group"]["group_id"] == "plant-7-sensors"
    assert "other devices" in kept["enrollment group"]["why"]
    assert [item["what"] for item in far["retained"]] == ["hub device, its twin and modules"]
    assert far["retained"][0]["why"].startswith("Hub not configured: to be handled by hand")
    assert far["retained"][0]["host"] == "other-hub.azure-devices.net"
    assert (ghost["plan"], far["plan"]) == ("not_found", "unreachable")
    assert [i["source"] for i in cert["not_reachable_by_portal"]] == [
        i["source"] for i in NOT_REACHABLE
    ]


def test_each_device_has_one_result_in_words(erased, data_dir):
    json_artifact, _ = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    results = [(d["result"], d["result_label"]) for d in cert["devices"]]
    assert results == [
        ("erased", "Erased, verified absent"),
        ("erased", "Erased, verified absent"),
        ("not_found", "Found nowhere: nothing to erase"),
        ("retained", "Retained: to be handled by hand"),
    ]
    assert cert["summary"] == {
        "devices": 4,
        "erased": 2,
        "already_absent": 0,
        "not_found": 1,
        "retained": 1,
        "not_verified": 0,
    }
    # Every DELETE met 404: nothing was left to erase, and the checks prove it.
    Operation.objects.filter(
        request=erased, device__registration_id="solo-1", method="DELETE"
    ).update(state=Operation.State.ALREADY_ABSENT, http_status=404)
    # A check that found the device still there.
    Operation.objects.filter(request=erased, seq=11).update(state="failed", http_status=200)
    json_artifact, _ = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    assert [d["result"] for d in cert["devices"][:2]] == ["already_absent", "not_verified"]


def test_certificate_states_the_final_outcome_and_labels(erased, data_dir):
    json_artifact, _ = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    assert cert["status"] == "completed" and cert["status_label"] == "Completed"
    assert cert["completed"] == erased.completed_at.isoformat()
    assert cert["request"]["regulation_label"] == "GDPR"
    assert cert["request"]["kind_label"] == "Erasure (right to be forgotten / delete)"
    assert "status" not in cert["request"]
    assert set(cert["approvals"][0]) == {"approver", "time", "via", "second_factor", "plan_version"}


def test_a_request_without_a_final_outcome_gets_no_certificate(erased, data_dir):
    DataRequest.objects.filter(pk=erased.pk).update(status=Status.RUNNING, completed_at=None)
    erased.refresh_from_db()
    with pytest.raises(ValueError, match="no final outcome"):
        build_certificate(erased)
    assert not Artifact.objects.filter(request=erased).exists()


def test_certificate_records_the_audit_chain_head(erased, data_dir):
    ok, count, head, _ = verify_chain()
    json_artifact, _ = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    assert cert["audit_chain"] == {"ok": True, "events": count, "head_hash": head, "problem": None}


def test_certificate_json_is_canonical(erased, data_dir):
    json_artifact, _ = build_certificate(erased)
    body = (Path(data_dir) / json_artifact.path).read_bytes()
    cert = json.loads(body)
    expected = json.dumps(cert, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body == expected.encode()


def pdf_text_content(raw):
    """The text drawn on the pages: fpdf2 deflates page streams, so inflate each one. Each
    stream is read by its /Length: a deflated stream may itself end in a carriage return, which
    a search for "endstream" would cut off (and the page's text would go missing)."""
    out = []
    for match in re.finditer(rb"/Length (\d+)\b[^>]*>>\s*stream\r?\n", raw):
        stream = raw[match.end() : match.end() + int(match.group(1))]
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            out.append(stream)
    return b"\n".join(out).decode("latin-1")


def test_pdf_shows_the_reference_and_the_json_hash(erased, data_dir):
    json_artifact, pdf_artifact = build_certificate(erased)
    json_path = Path(data_dir) / json_artifact.path
    pdf_path = Path(data_dir) / pdf_artifact.path
    raw = pdf_path.read_bytes()
    assert raw.startswith(b"%PDF")
    text = pdf_text_content(raw)
    assert REFERENCE in text
    assert hashlib.sha256(json_path.read_bytes()).hexdigest() == json_artifact.sha256
    assert json_artifact.sha256 in text
    assert "plant-7-sensors" in text
    # The unicode device ID survives as escapes instead of breaking the core font.
    assert "capteur-\\\\u2603-\\\\u03a9" in text or "capteur-\\u2603-\\u03a9" in text


def test_pdf_puts_the_person_first_and_the_api_calls_in_an_appendix(erased, data_dir, approver):
    _, pdf_artifact = build_certificate(erased)
    text = pdf_text_content((Path(data_dir) / pdf_artifact.path).read_bytes())
    order = [
        "GDPR request: Erasure",
        "Outcome: Completed",
        "Approved by",
        approver.username,
        "Devices",
        "Erased, verified absent",
        "Found nowhere",
        "Retained, and why",
        "Blocking enrollment kept so the device cannot provision again",
        "Hub not configured: to be handled by hand",
        "Audit anchor",
        "Appendix: every Azure API call",
        "tracking ID trk-1",
        "x-ms-request-id req-4",
    ]
    positions = [text.find(item) for item in order]
    assert all(p >= 0 for p in positions), [i for i in order if i not in text]
    assert positions == sorted(positions)
    assert "gdpr" not in text


def test_artifacts_are_stored_and_replaced(erased, data_dir):
    first_json, first_pdf = build_certificate(erased)
    for artifact, kind, content_type in (
        (first_json, "certificate_json", "application/json"),
        (first_pdf, "certificate_pdf", "application/pdf"),
    ):
        path = Path(data_dir) / artifact.path
        assert artifact.kind == kind
        assert artifact.content_type == content_type
        assert artifact.path == f"artifacts/{REFERENCE}/{artifact.filename}"
        assert artifact.filename.startswith(REFERENCE)
        assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert artifact.size == path.stat().st_size
    recorded = AuditEvent.objects.filter(request_ref=REFERENCE, action="artifact_created")
    assert [e.details["kind"] for e in recorded] == ["certificate_json", "certificate_pdf"]

    build_certificate(erased)
    assert Artifact.objects.filter(request=erased).count() == 2
    assert list((Path(data_dir) / "tmp").iterdir()) == []


def test_pdf_text_keeps_latin1_and_escapes_the_rest():
    assert pdf_text("Zürich café") == "Zürich café"
    assert pdf_text("☃ Ω 𝄞") == "\\u2603 \\u03a9 \\U0001d11e"
    assert pdf_text("a\tb\x85") == "a\\x09b\\x85"
    assert pdf_text(None) == ""


# --- issued by completion.finish, after the outcome is known ------------------------------------
@pytest.fixture
def running(erased):
    """The erasure of the ``erased`` fixture, every operation finished, not yet closed."""
    DataRequest.objects.filter(pk=erased.pk).update(status=Status.RUNNING, completed_at=None)
    erased.refresh_from_db()
    return erased


def stored_certificate(request, data_dir):
    artifact = Artifact.objects.get(request=request, kind=Artifact.Kind.CERTIFICATE_JSON)
    body = (Path(data_dir) / artifact.path).read_bytes()
    assert hashlib.sha256(body).hexdigest() == artifact.sha256
    return json.loads(body)


@pytest.mark.parametrize("unreachable", [False, True])
def test_finish_issues_a_certificate_that_states_the_final_outcome(running, data_dir, unreachable):
    if not unreachable:
        PlannedDevice.objects.filter(request=running, state="unreachable").delete()
    completion.finish(running)
    running.refresh_from_db()
    expected = Status.COMPLETED_WITH_ISSUES if unreachable else Status.COMPLETED
    assert running.status == expected
    cert = stored_certificate(running, data_dir)
    assert cert["status"] == expected
    assert cert["status_label"] == ("Completed with issues" if unreachable else "Completed")
    # The certificate's completion time is the request's.
    assert cert["completed"] == running.completed_at.isoformat()
    events = list(AuditEvent.objects.filter(request_ref=REFERENCE).order_by("seq"))
    changed = [e for e in events if e.details.get("to") == expected][-1]
    assert changed.details["completed"] == cert["completed"]
    # Stored, then the status moved, then the request was finished: one commit.
    actions = [e.action for e in events if changed.seq - 2 <= e.seq <= changed.seq + 1]
    assert actions == ["artifact_created", "artifact_created", "status_changed", "request_finished"]
    pdf = Artifact.objects.get(request=running, kind=Artifact.Kind.CERTIFICATE_PDF)
    text = pdf_text_content((Path(data_dir) / pdf.path).read_bytes())
    assert f"Outcome: {cert['status_label']}" in text
    assert "running" not in text.lower().replace("re-provisioning", "")


def test_a_worker_dying_before_the_status_moves_leaves_no_certificate(
    running, data_dir, monkeypatch
):
    def killed(self, *args, **kwargs):
        raise RuntimeError("worker killed between the certificate and the status")

    monkeypatch.setattr(DataRequest, "transition", killed)
    with pytest.raises(RuntimeError):
        completion.finish(running)
    monkeypatch.undo()
    running.refresh_from_db()
    assert running.status == Status.RUNNING and running.completed_at is None
    assert not Artifact.objects.filter(request=running).exists()
    assert not AuditEvent.objects.filter(request_ref=REFERENCE, action="request_finished").exists()

    # The next finisher (the claim expired, the reconciler enqueued it again) starts afresh.
    completion.finish(running)
    running.refresh_from_db()
    assert running.status == Status.COMPLETED_WITH_ISSUES
    assert stored_certificate(running, data_dir)["completed"] == running.completed_at.isoformat()


def test_a_second_finisher_writes_nothing(running, data_dir):
    stale = DataRequest.objects.get(pk=running.pk)  # read before the first one finished
    completion.finish(running)
    stored = {a.kind: (a.sha256, a.created_at) for a in Artifact.objects.filter(request=running)}
    events = AuditEvent.objects.count()
    completion.finish(stale)
    assert {
        a.kind: (a.sha256, a.created_at) for a in Artifact.objects.filter(request=running)
    } == stored
    assert AuditEvent.objects.count() == events
    for artifact in Artifact.objects.filter(request=running):
        body = (Path(data_dir) / artifact.path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == artifact.sha256


# --- the audit checkpoint ----------------------------------------------------------------------
def test_the_latest_signed_checkpoint_is_in_the_json_and_the_pdf(erased, data_dir, monkeypatch):
    import requests_app.evidence.checkpoints

    published = {
        "checkpoint": {
            "version": 1,
            "seq": 7,
            "head_hash": "ab" * 32,
            "event_count": 7,
            "created_at": "2026-01-06T10:00:00+00:00",
            "key_fingerprint": "SHA256:fingerprint",
        },
        "signature": "c2lnbmF0dXJl",
        "source": "database",
    }
    monkeypatch.setattr(requests_app.evidence.checkpoints, "latest_checkpoint", lambda: published)
    json_artifact, pdf_artifact = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    assert cert["audit_checkpoint"] == {
        "seq": 7,
        "head_hash": "ab" * 32,
        "created_at": "2026-01-06T10:00:00+00:00",
        "signature": "c2lnbmF0dXJl",
        "key_fingerprint": "SHA256:fingerprint",
    }
    text = pdf_text_content((Path(data_dir) / pdf_artifact.path).read_bytes())
    assert "Audit checkpoint #7" in text and "SHA256:fingerprint" in text


def test_no_checkpoint_reads_as_no_checkpoint_yet(erased, data_dir, monkeypatch):
    import requests_app.evidence.checkpoints

    monkeypatch.setattr(requests_app.evidence.checkpoints, "latest_checkpoint", lambda: None)
    json_artifact, pdf_artifact = build_certificate(erased)
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    assert cert["audit_checkpoint"] is None
    text = pdf_text_content((Path(data_dir) / pdf_artifact.path).read_bytes())
    assert "Audit checkpoint: no checkpoint yet." in text


# --- size --------------------------------------------------------------------------------------
def test_a_thousand_device_certificate_takes_seconds_not_minutes(erased, data_dir):
    """Guards the line wrapping (fpdf2's multi_cell took ~95 s here); about 3 s on a laptop, so
    the limit only catches a return of the slow path, not a slow machine."""
    devices = PlannedDevice.objects.bulk_create(
        PlannedDevice(
            request=erased,
            position=100 + n,
            registration_id=f"sensor-{n:05d}",
            device_id=f"sensor-{n:05d}",
            dps=DPS,
            hub=HUB,
            state=PlannedDevice.State.FOUND,
            enrollment="individual",
            has_registration=True,
            has_device=True,
        )
        for n in range(1000)
    )
    now = timezone.now()
    steps = (
        (Operation.Phase.ERASURE, "dps.delete_enrollment", "DELETE", DPS, "/enrollments/", 204),
        (Operation.Phase.ERASURE, "dps.delete_registration", "DELETE", DPS, "/registrations/", 204),
        (Operation.Phase.ERASURE, "hub.delete_device", "DELETE", HUB, "/devices/", 204),
        (Operation.Phase.VERIFY, "verify.enrollment_absent", "GET", DPS, "/enrollments/", 404),
        (Operation.Phase.VERIFY, "verify.registration_absent", "GET", DPS, "/registrations/", 404),
        (Operation.Phase.VERIFY, "verify.device_absent", "GET", HUB, "/devices/", 404),
    )
    Operation.objects.bulk_create(
        (
            Operation(
                request=erased,
                device=device,
                seq=100 + n * len(steps) + i,
                phase=phase,
                action=action,
                method=method,
                host=host,
                path=path + device.device_id,
                state=Operation.State.DONE,
                http_status=status,
                azure_request_id=f"5f1c2e0a-{n:08d}-{i}",
                tracking_id=f"a1b2c3d4{n:08d}{i}",
                started_at=now,
                finished_at=now,
            )
            for n, device in enumerate(devices)
            for i, (phase, action, method, host, path, status) in enumerate(steps)
        ),
        batch_size=1000,
    )
    started = time.perf_counter()
    json_artifact, pdf_artifact = build_certificate(erased)
    elapsed = time.perf_counter() - started
    assert elapsed < 30, f"a 1,000-device certificate took {elapsed:.1f} s"
    cert = json.loads((Path(data_dir) / json_artifact.path).read_bytes())
    assert cert["summary"]["devices"] == 1004 and cert["summary"]["erased"] == 1002


def test_the_evidence_report_shows_the_certificates_checkpoint_and_the_latest(
    erased, data_dir, monkeypatch
):
    import requests_app.evidence.checkpoints
    from requests_app.evidence.report import render_evidence_pdf

    statement = {"seq": 7, "head_hash": "ab" * 32, "created_at": "2026-01-06T10:00:00+00:00"}
    statement |= {"key_fingerprint": "SHA256:first"}
    anchored = {"checkpoint": statement, "signature": "c2ln", "source": "database"}
    monkeypatch.setattr(requests_app.evidence.checkpoints, "latest_checkpoint", lambda: anchored)
    build_certificate(erased)
    monkeypatch.setattr(requests_app.evidence.checkpoints, "latest_checkpoint", lambda: None)
    text = pdf_text_content(render_evidence_pdf(erased))
    at = text.index("The deletion certificate was anchored to:")
    assert text.index("Audit checkpoint #7", at) < text.index("Latest at report time:", at)
    assert "Audit checkpoint: no checkpoint yet." in text[text.index("Latest at report time:") :]
