"""Fulfilment end to end against the simulator served over HTTP, drained in-process.

Each test plans a request (scoping job), approves it through ``lifecycle.decide`` (two approvers
for an erasure), drains the queues with ``run_jobs`` and then checks what happened on both sides:
the portal's rows, artifacts, emails and audit trail, and the simulator's state and call log.
"""

import json
import zipfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone

from requests_app.evidence.redaction import redact
from requests_app.jobs import executor, fulfilment, reconcile
from requests_app.jobs.operations import FINISHED_STATES
from requests_app.models import (
    Approval,
    Artifact,
    AuditEvent,
    DataRequest,
    Operation,
    PlannedDevice,
    Status,
)
from requests_app.models.audit import verify_chain
from requests_app.workflow import lifecycle
from simulator.hosts import OTHER_HUB_HOST
from tests.conftest import proof_for
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND_ID = "no-such-device-anywhere"


# --- fixtures and helpers (also used by test_fulfilment_crash and bench) ------------------------


@pytest.fixture
def serve_simulator(tmp_path, settings):
    """Factory: serve a simulator over HTTP and point the portal at it (targets file written
    after the faults are set, so the portal paces itself at the simulator's throttle scale)."""
    from requests_app.azure import configured_targets
    from simulator.app import Simulator
    from simulator.server import serve
    from simulator.targets import write_targets

    servers = []

    def start(devices=30, **faults):
        sim = Simulator(seed=1, devices=devices, **faults)
        server = serve(sim)
        servers.append(server)
        path = write_targets(sim, tmp_path / f"azure{len(servers)}" / "targets.toml", server.url)
        settings.DSR_AZURE_TARGETS = str(path)
        configured_targets.cache_clear()
        sim.url, sim.targets_path = server.url, path
        return sim

    yield start
    for server in servers:
        server.shutdown()
    configured_targets.cache_clear()


@pytest.fixture
def azure(serve_simulator):
    """As conftest's, but throttled (and paced) at 60x Azure's rates so the suite stays fast."""
    return serve_simulator(throttle_scale=60)


def hub_of(state, device_id):
    for host, hub in state["hubs"].items():
        if any(d["deviceId"] == device_id for d in hub["devices"]):
            return host
    raise LookupError(device_id)


def module_count(state, device_id):
    return sum(
        1 for hub in state["hubs"].values() for m in hub["modules"] if m["deviceId"] == device_id
    )


def pick_mix(sim):
    """One of each kind of sample: (registration ids, hub-only (device, hub) pairs, picked)."""
    samples, state = sim.samples(), sim.state()
    picked = {
        "symmetric": samples["individual_symmetric"][0],
        "x509": samples["individual_x509"][0],
        "tpm": samples["individual_tpm"][0],
        "group": samples["group_provisioned"][0],
        "never": samples["never_provisioned"][0],
    }
    chosen = set(picked.values())
    modules = [d for d in samples["with_modules"] if d not in chosen]
    modules = [d for d in modules if d not in samples["hub_only"] and d not in samples["other_hub"]]
    picked["modules"] = max(modules, key=lambda d: module_count(state, d))
    hub_only = samples["hub_only"][0]
    picked["hub_only"] = hub_only
    ids = [picked[k] for k in ("symmetric", "x509", "tpm", "group", "never", "modules")]
    ids.append(NOT_FOUND_ID)
    return ids, [(hub_only, hub_of(state, hub_only))], picked


def plan(request, officer, run_jobs):
    lifecycle.submit(request, actor=officer)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL, request.scoping_error
    return request


def approve(request, *approvers):
    for approver in approvers[: request.approvals_required]:
        lifecycle.decide(
            request,
            approver=approver,
            decision=Approval.Decision.APPROVED,
            via="portal",
            plan_version=request.plan_version,
            proof=proof_for(approver),
        )
    request.refresh_from_db()
    assert request.status == Status.APPROVED
    return request


def device_ids_of(request):
    """Every device or registration ID the request touches (erasure targets)."""
    ids = set()
    for device in request.devices.exclude(state=PlannedDevice.State.NOT_FOUND):
        ids.update(x for x in (device.device_id, device.registration_id) if x)
    return ids


def split_state(state, ids):
    """(everything belonging to ``ids``, everything else), per collection, jobs left out."""
    mine, others = {}, {}
    for section in ("dps", "hubs"):
        for host, collections in state[section].items():
            for name, items in collections.items():
                if name in ("jobs", "enrollmentGroups"):
                    continue
                for item in items:
                    key = item.get("registrationId") or item.get("deviceId")
                    bucket = mine if key in ids else others
                    bucket.setdefault((host, name), []).append(item)
    return mine, others


def azure_call_events(request):
    return list(
        AuditEvent.objects.filter(action="azure_call", request_ref=request.reference).order_by(
            "seq"
        )
    )


def assert_operations_recorded(request):
    for op in request.operations.all():
        assert op.state in FINISHED_STATES, (op.seq, op.action, op.state, op.message)
        if op.state == Operation.State.SKIPPED:
            continue
        assert op.http_status, (op.seq, op.action)
        assert op.azure_request_id or op.tracking_id, (op.seq, op.action)
        assert op.finished_at and op.attempt >= 1


def assert_audit_matches_calls(request, calls):
    """One azure_call audit event per simulator call (drops included), chain intact."""
    events = azure_call_events(request)
    logged = Counter((c["method"], c["host"], c["path"], c["status"] or None) for c in calls)
    audited = Counter(
        (e.details["method"], e.details["host"], e.details["path"], e.details["status"] or None)
        for e in events
    )
    assert len(events) == len(calls)
    assert audited == logged
    ok, _, _, problem = verify_chain()
    assert ok, problem


def archive_members(request):
    artifact = request.artifacts.get(kind=Artifact.Kind.EXPORT_ARCHIVE)
    path = Path(django_settings.DSR_DATA_DIR) / artifact.path
    assert path.is_file()
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        return artifact, {name: zf.read(name) for name in zf.namelist()}


def expected_documents(state, device):
    """What the archive should hold for one planned device, from the simulator's state."""
    docs = {}
    reg, dev = device.registration_id, device.device_id
    for dps in state["dps"].values():
        for enrollment in dps["enrollments"]:
            if reg and enrollment["registrationId"] == reg:
                docs["dps-enrollment.json"] = enrollment
        for group in dps["enrollmentGroups"]:
            if device.group_id and group["enrollmentGroupId"] == device.group_id:
                docs["dps-group-enrollment.json"] = group
        for record in dps["registrations"]:
            if reg and record["registrationId"] == reg:
                docs["dps-registration.json"] = {
                    k: v for k, v in record.items() if k != "enrollmentGroupId"
                }
    if device.state == PlannedDevice.State.FOUND and device.hub in state["hubs"]:
        hub = state["hubs"][device.hub]
        for item in hub["devices"]:
            if item["deviceId"] == dev:
                docs["iothub-device.json"] = item
        for item in hub["twins"]:
            if item["deviceId"] == dev:
                docs["iothub-twin.json"] = item
        twins = {t["moduleId"]: t for t in hub["moduleTwins"] if t["deviceId"] == dev}
        for module in hub["modules"]:
            if module["deviceId"] == dev:
                docs[f"modules/{module['moduleId']}.json"] = {
                    "module": module,
                    "twin": twins.get(module["moduleId"]),
                }
    return {name: redact(doc)[0] for name, doc in docs.items()}


def assert_holds(archived, expected, where):
    """Every value the simulator holds is in the archived document, unchanged (keys redacted).
    The service API adds fields (``registrationState``) and leaves keys out of enrollments, so
    extra fields are allowed and a missing field only where the state holds a redacted key."""
    if isinstance(expected, dict):
        assert isinstance(archived, dict), where
        for key, value in expected.items():
            if key not in archived:
                assert value == "<redacted>" or value is None, f"{where}.{key} missing"
                continue
            assert_holds(archived[key], value, f"{where}.{key}")
    else:
        assert archived == expected, where


def assert_archive_matches(request, state):
    artifact, members = archive_members(request)
    assert {"README.txt", "manifest.json", "history.json"} <= set(members)
    manifest = json.loads(members["manifest.json"])
    assert manifest
    checked = 0
    for device in request.devices.all():
        expected = expected_documents(state, device)
        prefix = f"devices/{device.label}/"
        present = {n[len(prefix) :] for n in members if n.startswith(prefix)}
        assert present == set(expected), (device.label, present, set(expected))
        for name, doc in expected.items():
            assert_holds(json.loads(members[prefix + name]), doc, f"{device.label}/{name}")
            checked += 1
        if device.state == PlannedDevice.State.NOT_FOUND:
            assert not present
    # Keys never leave in clear.
    blob = b"".join(members.values())
    for hub in state["hubs"].values():
        for item in hub["devices"]:
            key = item["authentication"]["symmetricKey"].get("primaryKey")
            if key:
                assert key.encode() not in blob
    return artifact, checked


def run_request(kind, sim, officer, approvers, run_jobs, **make):
    ids, hub_devices, picked = pick_mix(sim)
    request = make_request(officer, ids, kind=kind, hub_devices=hub_devices, **make)
    request = plan(request, officer, run_jobs)
    before = sim.state()
    calls_before = len(sim.calls)
    mail.outbox.clear()
    request = approve(request, *approvers)
    run_jobs()
    request.refresh_from_db()
    return request, picked, before, calls_before


# --- end to end, one test per kind -------------------------------------------------------------


def test_export_end_to_end(azure, officer, approver, approver2, run_jobs):
    request, picked, before, calls_before = run_request(
        "export", azure, officer, [approver, approver2], run_jobs
    )
    assert request.status == Status.COMPLETED, request.failure
    # Read-only: nothing but GETs (and group queries) during fulfilment; state unchanged.
    assert {c["method"] for c in azure.calls[calls_before:]} <= {"GET"}
    assert azure.state() == before
    artifact, checked = assert_archive_matches(request, before)
    assert checked >= 20
    devices = {d.label: d for d in request.devices.all()}
    assert devices[NOT_FOUND_ID].state == PlannedDevice.State.NOT_FOUND
    assert devices[picked["hub_only"]].has_device and not devices[picked["hub_only"]].dps
    assert not request.artifacts.filter(kind__startswith="certificate").exists()
    assert_operations_recorded(request)
    assert_audit_matches_calls(request, azure.calls)
    assert [m.to for m in mail.outbox] == [[officer.email]]
    assert request.reference in mail.outbox[0].subject


def assert_erased(request, picked, before, after):
    ids = device_ids_of(request)
    assert picked["hub_only"] in ids and picked["group"] in ids
    mine_after, others_after = split_state(after, ids)
    _, others_before = split_state(before, ids)
    # Everything of the other devices is untouched.
    assert others_after == others_before
    # Nothing of the erased devices is left but the disabled enrollment blocking the group one.
    blocked = mine_after.pop((next(iter(after["dps"])), "enrollments"), [])
    assert [(e["registrationId"], e["provisioningStatus"]) for e in blocked] == [
        (picked["group"], "disabled")
    ]
    assert mine_after == {}
    # The group stays (it serves other devices).
    group_id = request.devices.get(registration_id=picked["group"]).group_id
    groups = [
        g["enrollmentGroupId"] for dps in after["dps"].values() for g in dps["enrollmentGroups"]
    ]
    assert group_id in groups
    assert len(groups) == sum(len(d["enrollmentGroups"]) for d in before["dps"].values())


def assert_certificate(request):
    kinds = set(request.artifacts.values_list("kind", flat=True))
    assert {Artifact.Kind.CERTIFICATE_JSON, Artifact.Kind.CERTIFICATE_PDF} <= kinds
    for artifact in request.artifacts.filter(kind__startswith="certificate"):
        path = Path(django_settings.DSR_DATA_DIR) / artifact.path
        assert path.is_file() and path.stat().st_size == artifact.size


def test_erasure_end_to_end(azure, officer, approver, approver2, run_jobs):
    request, picked, before, calls_before = run_request(
        "erasure", azure, officer, [approver, approver2], run_jobs
    )
    assert request.status == Status.COMPLETED, request.failure
    assert request.approvals.filter(decision="approved").count() == 2
    assert_erased(request, picked, before, azure.state())
    assert_certificate(request)
    assert not request.artifacts.filter(kind=Artifact.Kind.EXPORT_ARCHIVE).exists()
    assert_operations_recorded(request)
    assert_audit_matches_calls(request, azure.calls)
    assert [m.to for m in mail.outbox] == [[officer.email]]
    # Each resource deleted once; a 404 only where DPS had already dropped the registration
    # with its individual enrollment (recorded as already absent, never a failure).
    deletes = [c for c in azure.calls[calls_before:] if c["method"] == "DELETE"]
    assert len({(c["host"], c["path"]) for c in deletes}) == len(deletes)
    for call in deletes:
        assert 200 <= call["status"] < 300 or (
            call["status"] == 404 and call["path"].startswith("/registrations/")
        ), call
    group_op = request.operations.get(action="dps.block_reprovisioning")
    assert group_op.state == Operation.State.DONE


def test_export_and_erasure_end_to_end(azure, officer, approver, approver2, run_jobs):
    request, picked, before, calls_before = run_request(
        "export_and_erasure", azure, officer, [approver, approver2], run_jobs
    )
    assert request.status == Status.COMPLETED, request.failure
    assert_archive_matches(request, before)
    assert_erased(request, picked, before, azure.state())
    assert_certificate(request)
    assert_operations_recorded(request)
    assert_audit_matches_calls(request, azure.calls)
    assert [m.to for m in mail.outbox] == [[officer.email]]
    # The archive was stored before the first DELETE: by audit order and by wall-clock time.
    archive = request.artifacts.get(kind=Artifact.Kind.EXPORT_ARCHIVE)
    created = AuditEvent.objects.get(
        action="artifact_created", request_ref=request.reference, details__kind="export_archive"
    )
    first_delete = next(e for e in azure_call_events(request) if e.details["method"] == "DELETE")
    assert created.seq < first_delete.seq
    deletes = [c for c in azure.calls[calls_before:] if c["method"] == "DELETE"]
    assert deletes and archive.created_at.timestamp() <= min(c["time"] for c in deletes)


# --- faults ---------------------------------------------------------------------------------


def test_transient_faults_every_request_completes_and_every_call_is_audited(
    serve_simulator, officer, approver, approver2, run_jobs, settings
):
    # Seeded faults meet the calls in a fixed order only when one device runs at a time.
    settings.DSR_WORKER_THREADS = 1
    sim = serve_simulator(devices=60, throttle_scale=60)
    samples = sim.samples()
    export_ids = samples["individual_symmetric"][:3] + samples["group_provisioned"][:2]
    erase_ids = samples["individual_x509"][:2] + samples["group_provisioned"][2:4]
    erase_ids += samples["individual_tpm"][:1] + samples["with_modules"][-2:]
    export = plan(make_request(officer, export_ids, kind="export"), officer, run_jobs)
    both = plan(make_request(officer, erase_ids, kind="export_and_erasure"), officer, run_jobs)
    # 20 % 5xx, 5 % dropped connections, throttled (fast but active) with Retry-After.
    sim.set_faults(error_rate=0.2, drop_rate=0.05, throttle_scale=60, retry_after=True)
    calls_before = len(sim.calls)
    approve(export, approver)
    approve(both, approver, approver2)
    run_jobs()
    export.refresh_from_db()
    both.refresh_from_db()
    assert export.status == Status.COMPLETED, export.failure
    assert both.status == Status.COMPLETED, both.failure
    calls = sim.calls
    faulted = [c for c in calls[calls_before:] if c["status"] in (0, 500, 503)]
    assert any(c["status"] == 0 for c in faulted) and any(c["status"] >= 500 for c in faulted)
    # Every call the simulator logged (drops as status 0) is on the audit trail, and no more.
    for request in (export, both):
        assert_operations_recorded(request)
    audited = azure_call_events(export) + azure_call_events(both)
    assert len(audited) == len(calls)
    logged = Counter((c["method"], c["host"], c["path"], c["status"] or None) for c in calls)
    assert logged == Counter(
        (e.details["method"], e.details["host"], e.details["path"], e.details["status"] or None)
        for e in audited
    )
    ok, _, _, problem = verify_chain()
    assert ok, problem
    assert not both.operations.filter(state=Operation.State.FAILED).exists()


def test_dropped_answers_after_delete_become_already_absent(
    serve_simulator, officer, approver, approver2, run_jobs, settings
):
    # One device at a time, so the simulator's seeded fault draws meet the calls in the same
    # order on every run (with threads, six lost answers in a row for one call could happen).
    settings.DSR_WORKER_THREADS = 1
    sim = serve_simulator(devices=60, throttle_scale=60)
    samples = sim.samples()
    ids = samples["individual_symmetric"][:3] + samples["with_modules"][:4]
    ids += samples["individual_x509"][:2]
    request = plan(make_request(officer, sorted(set(ids)), kind="erasure"), officer, run_jobs)
    before = sim.state()
    calls_before = len(sim.calls)
    # The effect happens, the answer is lost: half of all calls from now on.
    sim.set_faults(drop_after_rate=0.5)
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure
    assert not request.operations.filter(state=Operation.State.FAILED).exists()
    calls = sim.calls[calls_before:]
    lost = [c for c in calls if c["method"] == "DELETE" and c.get("fault") == "drop_after"]
    assert lost, "the seed gave no dropped DELETE answer"
    for call in lost:
        # The retry found it gone: recorded as already absent, never a second effect.
        later = [
            c
            for c in calls
            if c["seq"] > call["seq"] and c["method"] == "DELETE" and c["path"] == call["path"]
        ]
        answered = [c for c in later if c["status"]]  # a retry's answer may be lost too
        assert answered and answered[0]["status"] == 404, (call, answered[:1])
        op = request.operations.get(method="DELETE", path=call["path"], host=call["host"])
        assert op.state == Operation.State.ALREADY_ABSENT, (op.action, op.state)
    ok_deletes = Counter(
        (c["host"], c["path"]) for c in calls if c["method"] == "DELETE" and c["status"] == 204
    )
    assert all(n == 1 for n in ok_deletes.values())
    mine, _ = split_state(sim.state(), device_ids_of(request))
    assert mine == {}
    _, others_before = split_state(before, device_ids_of(request))
    assert split_state(sim.state(), device_ids_of(request))[1] == others_before


def test_unconfigured_hub_is_never_called(azure, officer, approver, run_jobs):
    samples = azure.samples()
    other = samples["other_hub"][0]
    ids = [other, samples["individual_symmetric"][0]]
    request = plan(make_request(officer, ids, kind="export"), officer, run_jobs)
    device = request.devices.get(registration_id=other)
    assert device.state == PlannedDevice.State.UNREACHABLE and device.hub == OTHER_HUB_HOST
    approve(request, approver)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED_WITH_ISSUES
    assert OTHER_HUB_HOST not in {c["host"] for c in azure.calls}
    assert not any(e.details["host"] == OTHER_HUB_HOST for e in azure_call_events(request))
    # Its DPS records are exported; the hub device is listed as unreachable, not fetched.
    _, members = archive_members(request)
    manifest = json.loads(members["manifest.json"])
    assert [u["registration_id"] for u in manifest["unreachable"]] == [other]
    assert f"devices/{other}/dps-registration.json" in members
    assert f"devices/{other}/iothub-device.json" not in members
    assert not device.operations.filter(host=OTHER_HUB_HOST).exists()
    assert_operations_recorded(request)


def test_unconfigured_hub_erasure_lists_device_as_unreachable(
    azure, officer, approver, approver2, run_jobs
):
    other = azure.samples()["other_hub"][0]
    request = plan(make_request(officer, [other], kind="erasure"), officer, run_jobs)
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED_WITH_ISSUES
    assert OTHER_HUB_HOST not in {c["host"] for c in azure.calls}
    cert = request.artifacts.get(kind=Artifact.Kind.CERTIFICATE_JSON)
    content = json.loads((Path(django_settings.DSR_DATA_DIR) / cert.path).read_text())
    assert other in json.dumps(content.get("unreachable", content))
    # The device itself is still on the other hub: untouched.
    assert any(d["deviceId"] == other for d in azure.state()["hubs"][OTHER_HUB_HOST]["devices"])


@pytest.fixture
def few_attempts(monkeypatch):
    """No setting exists for the client's retry policy, so patch it at the seam (clients_for):
    two attempts, short backoff, so a permanent outage fails an operation in well under 1 s."""
    from requests_app.azure import AzureClients, RetryPolicy
    from requests_app.jobs import azure_calls

    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, budget_seconds=5)

    def clients(targets, **kwargs):
        return AzureClients(targets, retry=policy, **kwargs)

    monkeypatch.setattr(azure_calls, "AzureClients", clients)
    return policy


def test_a_storm_of_429s_slows_the_erasure_and_never_fails_it(
    serve_simulator, officer, approver, approver2, run_jobs, few_attempts, settings
):
    # Other applications spend the hubs' and the DPS's throttles: half of all calls are
    # refused with 429, whatever the portal's own pace. The client gives up after two attempts
    # (few_attempts), so operations run out of retries again and again.
    sim = serve_simulator(devices=30, throttle_scale=60)
    ids, hub_devices, picked = pick_mix(sim)
    request = plan(
        make_request(officer, ids, kind="erasure", hub_devices=hub_devices), officer, run_jobs
    )
    before = sim.state()
    sim.set_faults(busy_rate=0.5)
    calls_before = len(sim.calls)
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure
    storm = [c for c in sim.calls[calls_before:] if c["status"] == 429]
    assert len(storm) >= 10
    # Operations were handed back and run again (attempt > 1), none failed, all recorded.
    assert request.operations.filter(attempt__gt=1).exists()
    assert not request.operations.filter(state=Operation.State.FAILED).exists()
    assert_erased(request, picked, before, sim.state())
    cert = request.artifacts.get(kind=Artifact.Kind.CERTIFICATE_JSON)
    content = json.loads((Path(django_settings.DSR_DATA_DIR) / cert.path).read_text())
    assert "not verified" not in json.dumps(content)
    assert_operations_recorded(request)
    assert_audit_matches_calls(request, sim.calls)


def test_failed_operation_then_retry_runs_only_what_is_left(
    azure, officer, approver, approver2, run_jobs, few_attempts, monkeypatch
):
    ids, hub_devices, picked = pick_mix(azure)
    request = make_request(officer, ids, kind="export_and_erasure", hub_devices=hub_devices)
    request = plan(request, officer, run_jobs)
    erasure_ops = request.operations.filter(phase=Operation.Phase.ERASURE).order_by("seq")
    # Azure goes down (every call 500) just before the 4th erasure operation.
    failing_seq = erasure_ops[3].seq
    real_execute = executor.execute

    def execute(op, req, clients):
        if op.seq == failing_seq and op.attempt == 1:
            azure.set_faults(error_rate=1.0)
        return real_execute(op, req, clients)

    monkeypatch.setattr(executor, "execute", execute)
    mail.outbox.clear()
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.FAILED
    failing = request.operations.get(seq=failing_seq)
    assert failing.state == Operation.State.FAILED and failing.http_status in (500, 503)
    assert request.failure["operation"] == failing_seq
    assert request.failure["device"] == failing.device.label
    assert request.failure["action"] == failing.action
    assert request.failure["http_status"] in (500, 503) and request.failure["message"]
    assert [m.to for m in mail.outbox] == [[officer.email]]
    assert "Failed" in mail.outbox[0].subject
    finished_before = {
        op.pk: (op.attempt, op.finished_at)
        for op in request.operations.filter(state__in=FINISHED_STATES)
    }
    assert len(finished_before) >= 3 + request.operations.filter(phase="export").count()
    assert request.artifacts.filter(kind=Artifact.Kind.EXPORT_ARCHIVE).exists()

    azure.set_faults(error_rate=0.0)
    mail.outbox.clear()
    fulfilment.retry(request, actor=officer)
    request.refresh_from_db()
    assert request.status == Status.APPROVED and request.failure == {}
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure
    # What had finished before the failure was not run again.
    for pk, (attempt, finished_at) in finished_before.items():
        op = Operation.objects.get(pk=pk)
        assert (op.attempt, op.finished_at) == (attempt, finished_at) == (1, finished_at)
    failing.refresh_from_db()
    assert failing.state == Operation.State.DONE and failing.attempt == 2
    assert_operations_recorded(request)
    assert [m.to for m in mail.outbox] == [[officer.email]]
    ok, _, _, problem = verify_chain()
    assert ok, problem


def test_reconciler_enqueues_an_approval_whose_job_was_lost(
    azure, officer, approver, run_jobs, redis_db
):
    request = plan(
        make_request(officer, azure.samples()["individual_symmetric"][:2]), officer, run_jobs
    )
    approve(request, approver)
    redis_db.flushdb()  # Redis lost its queue after the approval committed
    assert reconcile.reconcile() == 1
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
    assert DataRequest.objects.get(pk=request.pk).artifacts.count() == 1


def test_a_lost_worker_and_its_recovery_are_on_the_timeline(
    azure, officer, approver, run_jobs, redis_db
):
    """A lease that expired (its worker died) is handed back, and the request's timeline says
    so: when, and how long the work stood still (from the dead worker's last renewal)."""
    request = plan(
        make_request(officer, azure.samples()["individual_symmetric"][:2]), officer, run_jobs
    )
    approve(request, approver)
    op = request.operations.order_by("seq").first()
    now = timezone.now()
    # What a SIGKILLed worker leaves: its operation RUNNING, its lease renewed 200 s ago.
    renewed = now - timedelta(seconds=200)
    lease_until = renewed + timedelta(seconds=django_settings.DSR_LEASE_SECONDS)
    Operation.objects.filter(pk=op.pk).update(
        state=Operation.State.RUNNING, claimed_by="dead-worker", lease_until=lease_until
    )
    request.devices.filter(pk=op.device_id).update(
        claimed_by="dead-worker", lease_until=lease_until
    )
    assert reconcile.release_expired_leases(now) == (1, 1)
    event = AuditEvent.objects.get(action="work_resumed", request_ref=request.reference)
    assert event.details["by"] == "reconciler"
    assert event.details["lost_seconds"] == 200
    assert event.details["lease_expired_at"] == lease_until.isoformat()
    # Nothing expired any more: a second pass records nothing.
    assert reconcile.release_expired_leases(now) == (0, 0)
    assert AuditEvent.objects.filter(action="work_resumed").count() == 1
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
