"""The operation registry: each operation declared once, and everything else reads it.

The real entries are checked against the clients they name (method, path and pacing bucket), and
two fake operations, one export read and one erasure step, are added the way a new operation is
added: one entry in ``operations.OPERATIONS`` and nothing else. Their client call is a function
of the test, so the simulator needs no handler. The planner must plan them for the right
devices, the executor run them, the archive carry the export's document with its description,
and the plan page, the history and the certificate show their names and labels.
"""

import json
import types
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from requests_app.azure import AzureResponse, DpsClient, IotHubClient, pacing
from requests_app.evidence.store import EvidenceError, ExportStore
from requests_app.jobs import operations
from requests_app.jobs.operation_types import DELETED, READ, AzureOperation, ids_of, on_hub
from requests_app.jobs.operations import Phase
from requests_app.models import Artifact, Operation, PlannedDevice, Status
from requests_app.reporting.plan_view import build
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request
from tests.test_certificate import pdf_text_content
from tests.test_fulfilment import (
    approve,
    archive_members,
    assert_operations_recorded,
    pick_mix,
    plan,
    serve_simulator,  # noqa: F401 (a fixture)
)

JOBS = [{"jobId": "job-7", "type": "scheduleDeviceMethod", "status": "completed"}]


# --- the real entries match their client calls ---------------------------------------------------
class RecordingHttp:
    """Stands in for ``AzureHttp``: records each request, answers 200 (an enrollment's body)."""

    def __init__(self):
        self.target = types.SimpleNamespace(hostname="target.example")
        self.calls = []

    def request(self, method, path, *, bucket, **kwargs):
        self.calls.append((method, path, bucket))
        return AzureResponse(status=200, data={"registrationId": "reg-1"}, request_id="r-1")


@pytest.mark.parametrize("action", list(operations.OPERATIONS))
def test_each_entry_declares_the_call_its_client_makes(action):
    entry = operations.OPERATIONS[action]
    http = RecordingHttp()
    client = DpsClient(http) if entry.target == "dps" else IotHubClient(http)
    device = types.SimpleNamespace(registration_id="reg-1", device_id="dev-1", group_id="grp-1")
    module_id = "mod-1" if entry.per_module else ""

    response = entry.call(client, ids_of(device, module_id))

    assert response.status == 200
    assert (entry.method, entry.path_for(device, module_id), entry.bucket) in http.calls
    # What the plan's cost counts is what the call spends, bucket by bucket (a fresh client:
    # the calls made once per device are made here too).
    spent = sorted(bucket for _, _, bucket in http.calls)
    assert spent == sorted(entry.buckets() + entry.once_per_device)


def test_the_registry_is_in_plan_order_and_complete():
    phases = [entry.phase for entry in operations.OPERATIONS.values()]
    assert phases == sorted(phases, key=[Phase.EXPORT, Phase.ERASURE, Phase.VERIFY].index)
    for action, entry in operations.OPERATIONS.items():
        assert entry.action == action
        assert entry.target in ("dps", "hub") and set(entry.buckets()) <= set(pacing.KINDS)
        assert entry.name and entry.label
        assert bool(entry.document) == bool(entry.description) == (entry.phase == Phase.EXPORT)
        prefix = "verify" if entry.phase == Phase.VERIFY else entry.target
        assert action.startswith(f"{prefix}.")


# --- adding an operation: one entry ---------------------------------------------------------------
def fake_entries(calls):
    """Two operations a developer might add, with client calls that never reach Azure."""

    def read_jobs(client, ids):
        calls.append(("read", client.hostname, ids["device_id"]))
        return AzureResponse(status=200, data=JOBS, request_id=f"jobs-{ids['device_id']}")

    def cancel_jobs(client, ids):
        calls.append(("cancel", client.hostname, ids["device_id"]))
        return AzureResponse(status=204, data=None, request_id=f"cancel-{ids['device_id']}")

    export = AzureOperation(
        "hub.get_device_jobs",
        Phase.EXPORT,
        when=on_hub,
        target="hub",
        bucket="query",
        method="GET",
        path="/jobs/v2/query?deviceId={device_id}",
        call=read_jobs,
        outcome=READ,
        name="Read the device jobs",
        label="Read the device jobs",
        document="iothub-jobs",
        description="the jobs the hub ran on the device (direct methods, twin updates)",
    )
    erasure = AzureOperation(
        "hub.cancel_device_jobs",
        Phase.ERASURE,
        when=on_hub,
        target="hub",
        bucket="registry",
        method="DELETE",
        path="/jobs/v2/{device_id}",
        call=cancel_jobs,
        outcome=DELETED,
        name="Cancel the device jobs",
        label="Cancelled the device jobs",
    )
    return export, erasure


@pytest.fixture
def fake_operations(monkeypatch):
    """Register the two fakes exactly as a new operation is registered; returns the calls."""
    calls = []
    for entry in fake_entries(calls):
        monkeypatch.setitem(operations.OPERATIONS, entry.action, entry)
    return calls


@pytest.fixture
def azure(serve_simulator):  # noqa: F811 (the fixture imported above)
    return serve_simulator(throttle_scale=60)


@pytest.mark.django_db(transaction=True)
def test_a_new_operation_is_planned_run_archived_and_certified(
    azure, officer, approver, approver2, run_jobs, client, fake_operations
):
    ids, hub_devices, _ = pick_mix(azure)
    request = make_request(officer, ids, kind="export_and_erasure", hub_devices=hub_devices)
    request = plan(request, officer, run_jobs)

    # The planner: for every device on a configured hub and nowhere else, in registry order
    # within its phase (the new read after the other reads, the new erasure step after the
    # other deletions and before the checks).
    on_hub = set(request.devices.filter(has_device=True, state=PlannedDevice.State.FOUND))
    assert len(on_hub) >= 5
    for action, phase in (("hub.get_device_jobs", "export"), ("hub.cancel_device_jobs", "erasure")):
        ops = request.operations.filter(action=action)
        assert {op.device for op in ops} == on_hub and ops.count() == len(on_hub)
        assert {op.phase for op in ops} == {phase}
        assert {op.method for op in ops} == {"GET" if phase == "export" else "DELETE"}
    for device in on_hub:
        ops = list(device.operations.order_by("seq"))
        export = [op.action for op in ops if op.phase == Phase.EXPORT]
        erasure = [op.action for op in ops if op.phase == Phase.ERASURE]
        assert export[-1] == "hub.get_device_jobs" and erasure[-1] == "hub.cancel_device_jobs"
        assert [op.phase for op in ops].index(Phase.VERIFY) == len(export) + len(erasure)
        read = next(op for op in ops if op.action == "hub.get_device_jobs")
        assert read.path == f"/jobs/v2/query?deviceId={device.device_id}"
        assert read.host == device.hub

    # The plan page (and the approval page, which shows the same plan) names them.
    plan_view = build(request)
    assert "Read the device jobs" in {row["name"] for p in plan_view.phases for row in p["rows"]}
    sign_in(client, officer)
    page = client.get(f"/requests/{request.reference}/").content.decode()
    assert "Read the device jobs" in page and "Cancel the device jobs" in page
    # The API tells a ticketing system the plan's steps by the same names.
    from requests_app.api.tokens import issue_token

    _, token = issue_token(officer, "ticketing")
    steps = client.get(
        f"/api/v1/requests/{request.reference}", HTTP_AUTHORIZATION=f"Bearer {token}"
    ).json()["plan"]["steps"]
    named = {step["action"]: (step["name"], step["count"]) for step in steps}
    assert named["hub.get_device_jobs"] == ("Read the device jobs", len(on_hub))
    assert named["hub.cancel_device_jobs"] == ("Cancel the device jobs", len(on_hub))

    # The executor runs them through their client call, on the device's hub.
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure
    assert_operations_recorded(request)
    hub_of = {device.device_id: device.hub for device in on_hub}
    for kind in ("read", "cancel"):
        ran = [(host, device_id) for k, host, device_id in fake_operations if k == kind]
        assert sorted(ran) == sorted((hub, device_id) for device_id, hub in hub_of.items())

    _assert_archived(request, on_hub)
    _assert_certified(request)


def _assert_archived(request, on_hub):
    """The archive holds the new document for each device, described in README and manifest."""
    _, members = archive_members(request)
    readme = members["README.txt"].decode()
    assert "iothub-jobs.json" in readme
    assert "the jobs the hub ran on the device" in readme
    manifest = json.loads(members["manifest.json"])
    jobs = [entry for entry in manifest["files"] if entry["document"] == "iothub-jobs"]
    assert {entry["device_id"] for entry in jobs} == {device.label for device in on_hub}
    for entry in jobs:
        assert entry["description"].startswith("the jobs the hub ran on the device")
        assert entry["source"]["path"] == f"/jobs/v2/query?deviceId={entry['device_id']}"
        assert entry["source"]["api_version"] == operations.API_VERSIONS["hub"]
        assert json.loads(members[entry["path"]]) == JOBS
    history = json.loads(members["history.json"])
    assert "Read the device jobs" in {event.get("operation") for event in history["events"]}


def _assert_certified(request):
    """The certificate counts the erasure step under its label, in JSON and in the PDF."""
    by_kind = {a.kind: a for a in request.artifacts.all()}
    root = Path(django_settings.DSR_DATA_DIR)
    cert = json.loads((root / by_kind[Artifact.Kind.CERTIFICATE_JSON].path).read_bytes())
    steps = {step["action"]: step for step in cert["steps"]}
    cancelled = steps["hub.cancel_device_jobs"]
    assert cancelled["label"] == "Cancelled the device jobs"
    assert cancelled["done"] == request.operations.filter(action="hub.cancel_device_jobs").count()
    assert list(steps).index("hub.cancel_device_jobs") < list(steps).index(
        "verify.device_twin_absent"
    )
    pdf = pdf_text_content((root / by_kind[Artifact.Kind.CERTIFICATE_PDF].path).read_bytes())
    assert "Cancelled the device jobs" in pdf and "Deleted the DPS registration record" in pdf


def test_the_store_takes_the_documents_the_registry_declares(
    officer, settings, tmp_path, monkeypatch
):
    settings.DSR_DATA_DIR = tmp_path
    store = ExportStore(make_request(officer, ["reg-1"]))
    with pytest.raises(EvidenceError, match="unknown export document"):
        store.write("dev-1", "iothub-jobs", JOBS)
    export, _ = fake_entries([])
    monkeypatch.setitem(operations.OPERATIONS, export.action, export)
    relpath, *_ = store.write("dev-1", "iothub-jobs", JOBS)
    store.write("dev-1", "iothub-twin", {})
    store.write("dev-1", "modules/m-1", {"module": {}, "twin": None})
    assert relpath == "devices/dev-1/iothub-jobs.json"
    # Device-level documents in registry order, then the per-module ones.
    assert [path for path, _ in store.files()] == [
        "devices/dev-1/iothub-twin.json",
        "devices/dev-1/iothub-jobs.json",
        "devices/dev-1/modules/m-1.json",
    ]
    assert operations.document_description("iothub-jobs") == export.description
    module_entry = operations.OPERATIONS["hub.get_module"]
    assert operations.document_description("modules/m-1") == module_entry.description


def test_an_unknown_action_still_reads_in_words():
    assert operations.operation_name("hub.get_something_new") == "hub: get something new"
    assert operations.label_of("hub.get_something_new") == "hub: get something new"
    assert operations.operation_name("hub.delete_module", "m-1") == "Delete module m-1"
    assert operations.outcome_for("hub.get_something_new") is READ


def test_finished_states_are_the_complement_of_unfinished():
    assert set(operations.FINISHED_STATES) | set(operations.UNFINISHED_STATES) == set(
        Operation.State
    )
    assert not set(operations.FINISHED_STATES) & set(operations.UNFINISHED_STATES)
