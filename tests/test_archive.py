"""The export archive: every file there with its hash, keys gone, paths safe, memory flat, and
the request's history without the staff who handled it."""

import hashlib
import inspect
import io
import json
import os
import re
import time
import tracemalloc
import zipfile
from datetime import date
from pathlib import Path

import pytest
from django.utils import timezone

from requests_app.evidence import subject_history
from requests_app.evidence.archive import ArchiveError, build_export_archive, check_member_name
from requests_app.evidence.out_of_reach import NOT_REACHABLE
from requests_app.evidence.store import EvidenceError, ExportStore, safe_name
from requests_app.models import (
    Approval,
    Artifact,
    AuditEvent,
    DataRequest,
    Kind,
    Operation,
    PlannedDevice,
    Regulation,
)

REFERENCE = "DSR-2026-0001"
KEYS = ("UHJpbWFyeUtleS1zZWNyZXQ=", "U2Vjb25kYXJ5S2V5LXNlY3JldA==", "RW5kb3JzZW1lbnRLZXk=")
TRICKY = ["dev#1:a'b", "../../etc", "plain-1", "capteur-é*?$", ".hidden"]
DPS_HOST = "demo-dps.azure-devices-provisioning.net"
HUB_HOST = "demo-hub-1.azure-devices.net"


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DSR_DATA_DIR = tmp_path / "data"
    return settings.DSR_DATA_DIR


@pytest.fixture
def dsr(officer, approver, data_dir):
    request = DataRequest.objects.create(
        reference=REFERENCE,
        kind=Kind.EXPORT,
        regulation=Regulation.GDPR,
        received_at=date(2026, 1, 5),
        due_at=date(2026, 2, 5),
        subject_reference="TICKET-42",
        created_by=officer,
    )
    Approval.objects.create(
        request=request,
        approver=approver,
        approver_name=approver.username,
        plan_version="v1",
        decision=Approval.Decision.APPROVED,
        via="link",
    )
    for position, label in enumerate(TRICKY):
        PlannedDevice.objects.create(
            request=request,
            position=position,
            registration_id=label,
            device_id=label,
            dps=DPS_HOST,
            hub=HUB_HOST,
            state=PlannedDevice.State.FOUND,
        )
    PlannedDevice.objects.create(
        request=request,
        position=90,
        registration_id="ghost-1",
        state=PlannedDevice.State.NOT_FOUND,
    )
    PlannedDevice.objects.create(
        request=request,
        position=91,
        registration_id="far-away-1",
        hub="other-hub.azure-devices.net",
        state=PlannedDevice.State.UNREACHABLE,
        note="assignedHub is not a configured target",
    )
    AuditEvent.record("status_changed", actor=officer, request=request, to="planning")
    AuditEvent.record("approved", actor=approver, request=request, plan_version="v1")
    AuditEvent.record("status_changed", request="DSR-2026-0999", to="planning")
    return request


def source(host, path, api_version="2021-04-12"):
    return {"host": host, "path": path, "api_version": api_version}


def export_device(store, label):
    store.write(
        label,
        "dps-enrollment",
        {
            "registrationId": label,
            "attestation": {"type": "tpm", "tpm": {"endorsementKey": KEYS[2]}},
        },
        source=source(DPS_HOST, f"/enrollments/{label}", "2021-10-01"),
    )
    store.write(
        label,
        "iothub-device",
        {
            "deviceId": label,
            "authentication": {
                "type": "sas",
                "symmetricKey": {"primaryKey": KEYS[0], "secondaryKey": KEYS[1]},
            },
        },
        source=source(HUB_HOST, f"/devices/{label}"),
    )
    store.write(
        label,
        "iothub-twin",
        {"deviceId": label, "tags": {"site": "Zürich"}},
        source=source(HUB_HOST, f"/twins/{label}"),
    )
    store.write(
        label,
        "modules/m:1/../x",
        {
            "module": {"moduleId": "m:1/../x", "authentication": {"symmetricKey": {"k": KEYS[0]}}},
            "twin": {"moduleId": "m:1/../x", "properties": {}},
        },
        source=[source(HUB_HOST, "/devices/x/modules/m"), source(HUB_HOST, "/twins/x/modules/m")],
    )


@pytest.fixture
def exported(dsr):
    store = ExportStore(dsr)
    for label in TRICKY:
        export_device(store, label)
    return store


def open_archive(artifact, data_dir):
    path = Path(data_dir) / artifact.path
    return zipfile.ZipFile(io.BytesIO(path.read_bytes()))


def test_archive_holds_every_file_with_matching_hashes(exported, data_dir):
    artifact = build_export_archive(exported_request())
    with open_archive(artifact, data_dir) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        assert names[:3] == ["README.txt", "manifest.json", "history.json"]
        listed = {entry["path"]: entry for entry in manifest["files"]}
        # Every file but the manifest itself is listed, the portal's own files included.
        assert set(names) == {"manifest.json", *listed}
        assert len(listed) == 4 * len(TRICKY) + 2
        for path, entry in listed.items():
            body = zf.read(path)
            assert hashlib.sha256(body).hexdigest() == entry["sha256"], path
            assert len(body) == entry["bytes"], path
            if path.endswith(".json"):
                json.loads(body)
        devices = {path: entry for path, entry in listed.items() if path.startswith("devices/")}
        assert {entry["device_id"] for entry in devices.values()} == set(TRICKY)
        assert listed["README.txt"]["document"] == "readme"
        assert listed["history.json"]["document"] == "history"
        assert listed["README.txt"]["device_id"] is None
        assert listed["devices/dev%231%3Aa%27b/iothub-device.json"]["source"] == source(
            HUB_HOST, "/devices/dev#1:a'b"
        )
        module = listed[f"devices/plain-1/modules/{safe_name('m:1/../x')}.json"]
        assert module["document"] == "modules/m:1/../x"
        assert set(json.loads(zf.read(module["path"]))) == {"module", "twin"}


def exported_request():
    return DataRequest.objects.get(reference=REFERENCE)


def test_member_names_are_safe_and_nothing_escapes_the_store(exported, data_dir):
    artifact = build_export_archive(exported_request())
    with open_archive(artifact, data_dir) as zf:
        for name in zf.namelist():
            check_member_name(name)
            assert ".." not in name.split("/")
            assert not name.startswith("/")
        assert "devices/%2E.%2F..%2Fetc/iothub-device.json" in zf.namelist()
        assert "devices/%2Ehidden/iothub-twin.json" in zf.namelist()
    assert not (Path(data_dir).parent / "etc").exists()
    assert not (Path(data_dir) / "work" / "etc").exists()
    stored = list(exported.files())
    assert all(Path(abspath).is_relative_to(exported.devices_dir) for _, abspath in stored)


def test_keys_are_redacted_everywhere_and_the_manifest_says_where(exported, data_dir):
    artifact = build_export_archive(exported_request())
    raw = (Path(data_dir) / artifact.path).read_bytes()
    with open_archive(artifact, data_dir) as zf:
        everything = b"".join(zf.read(name) for name in zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    for key in KEYS:
        assert key.encode() not in raw
        assert key.encode() not in everything
    assert b"<redacted>" in everything
    redactions = {item["file"]: item["json_paths"] for item in manifest["redaction"]["redactions"]}
    assert redactions["devices/plain-1/iothub-device.json"] == [
        "authentication.symmetricKey.primaryKey",
        "authentication.symmetricKey.secondaryKey",
    ]
    assert redactions["devices/plain-1/dps-enrollment.json"] == ["attestation.tpm.endorsementKey"]
    assert "devices/plain-1/iothub-twin.json" not in redactions


def test_manifest_describes_the_request_and_what_was_out_of_reach(exported, data_dir, approver):
    artifact = build_export_archive(exported_request())
    with open_archive(artifact, data_dir) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["request"]["reference"] == REFERENCE
    assert manifest["request"]["kind"] == "export"
    assert manifest["request"]["regulation"] == "gdpr"
    assert manifest["request"]["received"] == "2026-01-05"
    assert manifest["request"]["due"] == "2026-02-05"
    # Approvers are pseudonymised: the archive goes to the data subject, not to staff.
    assert [a["approver"] for a in manifest["approvals"]] == ["Approver 1"]
    assert set(manifest["approvals"][0]) == {"approver", "time"}
    assert not re.search(rf"\b{approver.username}\b", json.dumps(manifest))
    assert "status" not in manifest["request"]
    assert manifest["history"] == "history.json"
    assert manifest["targets"] == {"dps": [DPS_HOST], "iothub": [HUB_HOST]}
    assert manifest["api_versions"] == {"dps": "2021-10-01", "iothub": "2021-04-12"}
    assert [d["registration_id"] for d in manifest["not_found"]] == ["ghost-1"]
    assert [d["registration_id"] for d in manifest["unreachable"]] == ["far-away-1"]
    sources = [item["source"] for item in manifest["not_reachable_by_portal"]]
    assert sources == [item["source"] for item in NOT_REACHABLE]
    assert all(
        item["handled_by"] == "to be handled by the tenant"
        for item in manifest["not_reachable_by_portal"]
    )


def test_readme_explains_redaction_and_what_the_portal_cannot_reach(exported, data_dir, approver):
    artifact = build_export_archive(exported_request())
    with open_archive(artifact, data_dir) as zf:
        readme = zf.read("README.txt").decode()
    assert REFERENCE in readme
    assert "history.json" in readme and "audit.json" not in readme
    assert "Approved by: Approver 1 (" in readme
    assert not re.search(rf"\b{approver.username}\b", readme)
    assert "this README.txt and history.json included" in readme
    assert "redacted" in readme
    assert "sha256sum" in readme
    assert "2026-01-05" in readme
    for item in NOT_REACHABLE:
        assert item["source"] in readme
    for word in ("Event Hubs", "Event Grid", "Log Analytics", "import/export"):
        assert word in readme


def test_history_replaces_the_audit_trail_and_names_no_staff(exported, data_dir, approver):
    request = exported_request()
    Approval.objects.filter(request=request).update(ip="198.51.100.23", user_agent="Agent/1.0")
    AuditEvent.record(
        "request_approved",
        actor=approver,
        request=request,
        ip="198.51.100.23",
        user_agent="Agent/1.0",
        reason="ok by me, ada@example.com",
    )
    AuditEvent.record("email_sent", request=request, to="ada@example.com", template="x")
    AuditEvent.record("status_changed", request=request, to="running", note="by ada")
    artifact = build_export_archive(request)
    with open_archive(artifact, data_dir) as zf:
        assert "audit.json" not in zf.namelist()
        history = json.loads(zf.read("history.json"))
        everything = b"".join(zf.read(name) for name in zf.namelist())
    assert history["request"] == REFERENCE
    events = history["events"]
    assert events[0] == {
        "date": "2026-01-05",
        "event": "received",
        "description": "The request was received.",
    }
    by_event = {entry["event"]: entry for entry in events}
    assert set(by_event["approver_approved"]) == {
        "time",
        "event",
        "approver",
        "decision",
        "description",
    }
    assert by_event["approver_approved"]["approver"] == "Approver 1"
    assert by_event["fulfilment_started"]["description"] == "Fulfilment started."
    # Events not on the allow-list (the email, the approval of the fixture) are left out, and
    # no field beyond the allowed ones is copied.
    assert [entry["event"] for entry in events] == [
        "received",
        "approver_approved",
        "fulfilment_started",
    ]
    for value in ("ada@example.com", "198.51.100.23", "Agent/1.0", "olivia", "by ada"):
        assert value.encode() not in everything, value
    assert not re.search(rb"\bada\b", everything)


def test_history_lists_each_finished_operation_per_device(dsr, data_dir):
    device = PlannedDevice.objects.get(request=dsr, registration_id="plain-1")
    for seq, (action, state, module) in enumerate(
        (
            ("hub.get_device", Operation.State.DONE, ""),
            ("hub.get_module", Operation.State.DONE, "edge"),
            ("dps.get_enrollment", Operation.State.ALREADY_ABSENT, ""),
            ("hub.get_twin", Operation.State.PENDING, ""),
        ),
        start=1,
    ):
        Operation.objects.create(
            request=dsr,
            device=device,
            seq=seq,
            phase=Operation.Phase.EXPORT,
            action=action,
            method="GET",
            host=HUB_HOST,
            path=f"/devices/plain-1/x{seq}",
            module_id=module,
            state=state,
            http_status=200,
            message="Tracking ID: secret-ish detail",
            finished_at=None if state == Operation.State.PENDING else timezone.now(),
        )
    artifact = build_export_archive(dsr)
    with open_archive(artifact, data_dir) as zf:
        history = json.loads(zf.read("history.json"))
    steps = [entry for entry in history["events"] if entry["event"] == "device_operation"]
    assert [(s["device"], s["operation"], s["outcome"]) for s in steps] == [
        ("plain-1", "Read the hub device", "done"),
        ("plain-1", "Read module edge and its twin", "done"),
        ("plain-1", "Read the DPS enrollment", "not present: nothing to do"),
    ]
    assert all(
        set(s) == {"time", "event", "device", "phase", "operation", "outcome"} for s in steps
    )
    # Streamed, like the manifest: entries are made as they are written, never gathered.
    assert inspect.isgenerator(subject_history.history(dsr, timezone.now())["events"])


def test_artifact_row_matches_the_file_and_is_replaced_on_rebuild(exported, data_dir):
    first = build_export_archive(exported_request())
    path = Path(data_dir) / first.path
    assert first.path == f"artifacts/{REFERENCE}/{REFERENCE}-export.zip"
    assert first.filename == f"{REFERENCE}-export.zip"
    assert first.content_type == "application/zip"
    assert first.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.size == path.stat().st_size
    event = AuditEvent.objects.filter(request_ref=REFERENCE, action="artifact_created").last()
    assert event.details["sha256"] == first.sha256
    assert event.details["size"] == first.size
    assert event.details["kind"] == "export_archive"

    time.sleep(0.01)
    second = build_export_archive(exported_request())
    assert Artifact.objects.filter(request__reference=REFERENCE).count() == 1
    assert second.pk == first.pk
    assert second.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list((Path(data_dir) / "tmp").iterdir()) == []


def test_rewriting_a_file_after_a_crash_is_harmless(dsr):
    store = ExportStore(dsr)
    doc = {"deviceId": "d1", "authentication": {"symmetricKey": {"primaryKey": KEYS[0]}}}
    first = store.write("d1", "iothub-device", doc)
    again = store.write("d1", "iothub-device", doc)
    assert first == again
    assert first[0] == "devices/d1/iothub-device.json"
    assert first[3] == ["authentication.symmetricKey.primaryKey"]
    assert [path for path, _ in store.files()] == ["devices/d1/iothub-device.json"]
    body = Path(next(store.files())[1]).read_text()
    assert (
        body
        == json.dumps(
            {"authentication": {"symmetricKey": {"primaryKey": "<redacted>"}}, "deviceId": "d1"},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def test_files_are_listed_in_a_stable_order(dsr):
    store = ExportStore(dsr)
    for label in ("b", "a"):
        store.write(label, "modules/z", {})
        store.write(label, "iothub-twin", {})
        store.write(label, "modules/y", {})
        store.write(label, "dps-registration", {})
    assert [path for path, _ in store.files()] == [
        "devices/a/dps-registration.json",
        "devices/a/iothub-twin.json",
        "devices/a/modules/y.json",
        "devices/a/modules/z.json",
        "devices/b/dps-registration.json",
        "devices/b/iothub-twin.json",
        "devices/b/modules/y.json",
        "devices/b/modules/z.json",
    ]


def test_safe_names_are_distinct_and_bounded():
    ids = ["a#b", "a%23b", "a_b", "A_b", "..", ".", "x" * 128, "#" * 128, "#" * 127 + "$"]
    names = [safe_name(i) for i in ids]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 180 and "/" not in n and not n.startswith(".") for n in names)
    with pytest.raises(EvidenceError):
        safe_name("")


def test_the_store_refuses_unknown_documents_and_references(dsr):
    store = ExportStore(dsr)
    for name in ("../../etc/passwd", "iothub-device.json", "modules/", "twin"):
        with pytest.raises(EvidenceError):
            store.write("d1", name, {})
    dsr.reference = "../x"
    with pytest.raises(EvidenceError):
        ExportStore(dsr)


def test_a_file_changed_after_export_stops_the_archive(exported, data_dir):
    _, abspath = next(exported.files())
    Path(abspath).write_text('{"tampered": true}\n')
    with pytest.raises(ArchiveError):
        build_export_archive(exported_request())
    assert not Artifact.objects.exists()
    assert list((Path(data_dir) / "tmp").iterdir()) == []


def test_unsafe_member_names_are_refused():
    for name in ("../x", "/etc/passwd", "a/../b", "a//b", "a\\b", "é.json", "a/./b"):
        with pytest.raises(ArchiveError):
            check_member_name(name)


def test_memory_stays_flat_with_thousands_of_devices(dsr, data_dir, monkeypatch):
    # Durability is not what this test measures; 4,000 fsyncs would only make it slow.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    store = ExportStore(dsr)
    twin = {"tags": {"site": "plant-7", "line": "x" * 200}, "properties": {"desired": {"v": 1}}}
    for n in range(2000):
        store.write(f"dev-{n:05d}", "iothub-twin", twin)
    tracemalloc.start()
    try:
        artifact = build_export_archive(dsr)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
    with open_archive(artifact, data_dir) as zf:
        assert len(zf.namelist()) == 2003


def test_an_export_with_nothing_found_still_gives_a_complete_archive(dsr, data_dir):
    artifact = build_export_archive(dsr)
    with open_archive(artifact, data_dir) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["README.txt", "manifest.json", "history.json"]
        manifest = json.loads(zf.read("manifest.json"))
    assert [entry["path"] for entry in manifest["files"]] == ["README.txt", "history.json"]
    assert manifest["redaction"]["redactions"] == []
