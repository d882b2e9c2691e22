"""The deletion certificate: what was deleted and verified, what was kept and why, as JSON + PDF."""

import hashlib
import json
import re
import zlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from requests_app.archive import NOT_REACHABLE
from requests_app.certificate import build_certificate, pdf_text
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
    kept = {item["what"]: item for item in cert["retained"]}
    assert set(kept) == {"disabled individual enrollment", "enrollment group"}
    assert kept["disabled individual enrollment"]["registration_id"] == "capteur-☃-Ω"
    assert "provisioning" in kept["disabled individual enrollment"]["why"]
    assert kept["enrollment group"]["group_id"] == "plant-7-sensors"
    assert "other devices" in kept["enrollment group"]["why"]
    assert [d["registration_id"] for d in cert["not_found"]] == ["ghost-1"]
    assert [d["registration_id"] for d in cert["unreachable"]] == ["far-1"]
    assert [i["source"] for i in cert["not_reachable_by_portal"]] == [
        i["source"] for i in NOT_REACHABLE
    ]


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
    """The text drawn on the pages: fpdf2 deflates page streams, so inflate each one."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", raw, re.S):
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
