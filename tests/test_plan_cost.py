"""What a plan spends of Azure's throttles, and how long that takes.

The cost is read from the operation registry (each entry's buckets); these tests pin the calls
per kind of device and check them against what the simulator actually received, bucket by
bucket, for scoping and for fulfilment: in an erasure every identity-registry call is the
device's DELETE, and the checks read twins.
"""

from collections import Counter

import pytest

from requests_app.azure.targets import Target, Targets
from requests_app.jobs.cost import cost_of, duration_words, plan_cost
from requests_app.models import Status
from simulator.throttle import bucket_of_call
from tests.lifecycle_helpers import make_request
from tests.test_fulfilment import (
    approve,
    module_count,
    plan,
    serve_simulator,  # noqa: F401 (a fixture)
)

# Jobs are queued on commit: the scoping and fulfilment tests need real transactions.
pytestmark = pytest.mark.django_db(transaction=True)

HUB = "demo-hub-1.azure-devices.net"
DPS = "demo-dps.azure-devices-provisioning.net"


@pytest.fixture
def azure(serve_simulator):  # noqa: F811
    return serve_simulator(throttle_scale=60)


def targets(tier="S1", units=1):
    return Targets(
        dps={DPS: Target(kind="dps", hostname=DPS, auth="entra")},
        hubs={HUB: Target(kind="hub", hostname=HUB, auth="entra", tier=tier, units=units)},
    )


def test_the_slowest_bucket_sets_the_projection():
    counts = {
        (HUB, "hub.delete_device"): 120,  # registry: 120 at 100/min = 72 s
        (HUB, "verify.device_twin_absent"): 120,  # twin reads: 120 at 100/s
        (DPS, "dps.delete_registration"): 360,  # DPS: 360 at 1,000/min = 21.6 s
        ("elsewhere.azure-devices.net", "hub.delete_device"): 5,  # not a target: not timed
    }
    cost = cost_of(counts, targets())
    by_bucket = {(b.host, b.bucket): b for b in cost.buckets}
    assert by_bucket[(HUB, "registry")].seconds == pytest.approx(72)
    assert by_bucket[(HUB, "twin_read")].seconds == pytest.approx(1.2)
    assert by_bucket[(DPS, "dps")].seconds == pytest.approx(21.6)
    assert by_bucket[("elsewhere.azure-devices.net", "registry")].seconds is None
    assert cost.seconds == pytest.approx(72)
    assert cost.sentence() == ("about 2 min, set by demo-hub-1's identity-registry calls (S1 × 1)")
    # More units, or S3, move the pace to the DPS.
    assert cost_of(counts, targets("S1", 4)).seconds == pytest.approx(21.6)
    assert cost_of(counts, targets("S3")).slowest.host == DPS


def test_ten_thousand_erased_devices_on_one_s1_hub_take_at_least_100_minutes():
    counts = {(HUB, "hub.delete_device"): 10_000, (HUB, "verify.device_twin_absent"): 10_000}
    cost = cost_of(counts, targets())
    assert cost.seconds == pytest.approx(6000)
    assert duration_words(cost.seconds) == "about 1 h 40 min"
    assert duration_words(59) == "under a minute" and duration_words(61) == "about 2 min"
    assert duration_words(7200) == "about 2 h"


def spent(calls):
    return Counter(bucket_of_call(call) for call in calls)


# (sample kind, request kind) -> the plan's calls per bucket after approval, exactly.
EXPECTED = {
    # An individual enrollment, its registration and a device with two modules.
    ("modules", "erasure"): {"dps": 4, "registry": 1, "twin_read": 3},
    # The device's GET, and one listing of its modules for both module documents.
    ("modules", "export"): {"dps": 2, "registry": 2, "twin_read": 3},
    # Provisioned through a group: a disabled enrollment keeps it out (GET, then PUT).
    ("group", "erasure"): {"dps": 5, "registry": 1, "twin_read": 1},
    # On the hub only, no DPS record, no module.
    ("hub_only", "erasure"): {"registry": 1, "twin_read": 1},
}


def _pick(sim, kind):
    samples, state = sim.samples(), sim.state()
    if kind == "modules":
        device = next(
            d
            for d in samples["with_modules"]
            if d in samples["individual_symmetric"] and module_count(state, d) == 2
        )
        return [device], []
    if kind == "group":
        return [samples["group_provisioned"][0]], []
    device = next(d for d in samples["hub_only"] if module_count(state, d) == 0)
    hub = next(
        h for h, s in state["hubs"].items() if any(x["deviceId"] == device for x in s["devices"])
    )
    return [], [(device, hub)]


@pytest.mark.parametrize(("sample", "kind"), list(EXPECTED))
def test_each_kind_of_device_costs_exactly_its_plan(
    sample,
    kind,
    azure,
    officer,
    approver,
    approver2,
    run_jobs,
):
    ids, hub_devices = _pick(azure, sample)
    request = make_request(officer, ids, kind=kind, hub_devices=hub_devices)
    before = len(azure.calls)
    plan(request, officer, run_jobs)
    scoping = spent(azure.calls[before:])
    # Scoping asks the hub by query (devices, then their modules), never the registry.
    assert scoping["registry"] == 0 and scoping["twin_read"] == 0
    assert scoping["query"] == 2

    cost = plan_cost(request)
    expected = EXPECTED[(sample, kind)]
    assert {b: cost.calls(b) for b in expected} == expected
    assert sum(b.calls for b in cost.buckets) == sum(expected.values())

    before = len(azure.calls)
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.status
    assert spent(azure.calls[before:]) == Counter(expected)


def test_the_request_page_and_the_api_state_the_cost(azure, officer, run_jobs, client):
    from django.test import Client

    from requests_app.api.tokens import issue_token
    from tests.conftest import sign_in

    ids, _ = _pick(azure, "modules")
    request = plan(make_request(officer, ids, kind="erasure"), officer, run_jobs)
    sign_in(client, officer)
    page = client.get(f"/requests/{request.reference}/").content.decode()
    assert 'id="plan-cost"' in page
    assert "identity-registry calls" in page and "twin reads" in page
    # The simulator's targets run at 60 × Azure's rates: one DELETE at 100/s sets the pace.
    hub = request.devices.get().hub.split(".")[0]
    projection = page[page.find('id="plan-cost-projection"') :][:300]
    sentence = f"under a minute, set by {hub}'s identity-registry calls (S1 × 1, rates × 60)"
    assert f"Projected: <strong>{sentence.replace(chr(39), '&#x27;')}</strong>" in projection

    _, raw = issue_token(officer, name="ticketing")
    body = (
        Client()
        .get(f"/api/v1/requests/{request.reference}", headers={"Authorization": f"Bearer {raw}"})
        .json()
    )
    buckets = {(b["host"], b["bucket"]): b["calls"] for b in body["plan"]["cost"]["buckets"]}
    on_hub = request.devices.get().hub
    assert buckets[(on_hub, "registry")] == 1 and buckets[(on_hub, "twin_read")] == 3
    assert body["plan"]["cost"]["projected"] == sentence


# --- scoping by query: lag and refused queries -----------------------------------------------
def test_a_device_the_query_store_does_not_list_yet_is_found_through_its_twin(
    azure, officer, run_jobs
):
    from tests.simulator_helpers import client

    azure.set_faults(query_lag_seconds=300)
    with client(azure, HUB) as hub:
        assert hub.put("/devices/brand-new", json={"deviceId": "brand-new"}).status_code == 200
        module = hub.put("/devices/brand-new/modules/m1", json={"moduleId": "m1"})
        assert module.status_code == 200
    before = len(azure.calls)
    request = plan(
        make_request(officer, [], kind="erasure", hub_devices=[("brand-new", HUB)]),
        officer,
        run_jobs,
    )
    device = request.devices.get()
    assert device.has_device and device.modules == ["m1"]
    # Not listed by the device query (so no module query): one twin read, then one registry
    # list of its modules.
    assert spent(azure.calls[before:]) == Counter({"query": 1, "twin_read": 1, "registry": 1})


def test_a_deleted_device_the_query_store_still_lists_is_certified_already_absent(
    azure, officer, approver, approver2, run_jobs
):
    from tests.simulator_helpers import client

    samples, state = azure.samples(), azure.state()
    device_id = next(d for d in samples["hub_only"] if module_count(state, d) == 0)
    hub = next(
        h for h, s in state["hubs"].items() if device_id in {x["deviceId"] for x in s["devices"]}
    )
    azure.set_faults(query_lag_seconds=300)
    with client(azure, hub) as http:
        assert http.delete(f"/devices/{device_id}", headers={"If-Match": "*"}).status_code == 204
    request = plan(
        make_request(officer, [], kind="erasure", hub_devices=[(device_id, hub)]),
        officer,
        run_jobs,
    )
    assert request.devices.get().has_device  # the query store still lists it
    approve(request, approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED
    from requests_app.evidence.certificate import device_record

    device = request.devices.get()
    record = device_record(request, device, list(request.operations.filter(device=device)))
    assert record["result"] == "already_absent" and record["verified"]
    assert [v["path"] for v in record["verification"]] == [f"/twins/{device_id}"]
    # The certificate says how: which GET, and what it answered.
    from pathlib import Path

    from django.conf import settings

    from requests_app.models import Artifact
    from tests.test_certificate import pdf_text_content

    pdf = request.artifacts.get(kind=Artifact.Kind.CERTIFICATE_PDF)
    text = pdf_text_content((Path(settings.DSR_DATA_DIR) / pdf.path).read_bytes())
    assert f"GET {hub}/twins/{device_id} -> HTTP 404" in text


def test_a_query_azure_refuses_as_too_long_is_split_not_failed(
    azure, officer, run_jobs, monkeypatch
):
    from requests_app.jobs import scoping

    # Let one query carry every ID: past 8 KB the simulator (as Azure) answers 400.
    monkeypatch.setattr(scoping, "QUERY_MAX_IDS", 10_000)
    monkeypatch.setattr(scoping, "QUERY_MAX_CHARS", 1_000_000)
    samples = azure.samples()
    hub_devices = [(f"{'x' * 100}-{n:03d}", HUB) for n in range(90)]
    present = next(d for d in samples["hub_only"] if d in _devices_on(azure, HUB))
    hub_devices.append((present, HUB))
    before = len(azure.calls)
    request = plan(
        make_request(officer, [], kind="erasure", hub_devices=hub_devices), officer, run_jobs
    )
    queries = [c for c in azure.calls[before:] if c["path"] == "/devices/query"]
    assert [c["status"] for c in queries].count(400) >= 1
    assert {c["status"] for c in queries} == {200, 400}
    assert request.devices.filter(has_device=False).count() == 90
    assert request.devices.get(device_id=present).has_device


def _devices_on(sim, host):
    return {d["deviceId"] for d in sim.state()["hubs"][host]["devices"]}


def test_an_id_that_could_end_a_query_literal_is_looked_up_by_get(azure, officer, run_jobs):
    from tests.simulator_helpers import client

    device_id = "o'brien-1"  # Azure allows the apostrophe in device IDs
    with client(azure, HUB) as hub:
        answer = hub.put(f"/devices/{device_id}", json={"deviceId": device_id})
        assert answer.status_code == 200, answer.text
    before = len(azure.calls)
    request = plan(
        make_request(officer, [], kind="erasure", hub_devices=[(device_id, HUB)]),
        officer,
        run_jobs,
    )
    assert request.devices.get().has_device
    calls = azure.calls[before:]
    assert not [c for c in calls if c["path"] == "/devices/query"]  # never put into a query
    assert spent(calls) == Counter({"twin_read": 1, "registry": 1})
