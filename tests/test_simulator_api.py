"""The simulator's DPS and IoT Hub service APIs, exercised in-process over httpx.WSGITransport."""

import json
import time
import urllib.parse

import httpx
import pytest

from simulator import hosts
from simulator.app import Simulator
from tests.simulator_helpers import DPS_API, client, query_all, sas

HUB = hosts.HUB1_HOST
DPS = hosts.DPS_HOST


@pytest.fixture
def sim():
    return Simulator(seed=1, devices=60)


def where_device(collection, device_id, column="deviceId"):
    return f"SELECT * FROM {collection} WHERE {column} = '{device_id}'"  # noqa: S608


def hub_of(sim, device_id):
    for host, data in sim.state()["hubs"].items():
        if any(d["deviceId"] == device_id for d in data["devices"]):
            return host
    raise AssertionError(f"{device_id} is on no hub")


def assert_hub_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["iothub-errorcode"] == code
    body = response.json()
    assert set(body) == {"Message", "ExceptionMessage"}
    assert body["Message"].startswith(f"ErrorCode:{code};")
    assert body["ExceptionMessage"].startswith("Tracking ID:")
    assert "-G:" in body["ExceptionMessage"] and "-TimeStamp:" in body["ExceptionMessage"]
    assert response.headers["x-ms-request-id"]


def assert_dps_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["x-ms-error-code"] == str(code)
    body = response.json()
    assert set(body) == {"errorCode", "trackingId", "message", "timestampUtc", "info"}
    assert body["errorCode"] == code
    assert body["timestampUtc"].endswith("Z")
    assert response.headers["x-ms-request-id"]


# -- routing ------------------------------------------------------------------------------


def test_unknown_host_is_404_and_port_suffix_is_ignored(sim):
    http = httpx.Client(transport=httpx.WSGITransport(app=sim), base_url="https://nowhere.net")
    assert http.get("/devices/x", params=DPS_API).status_code == 404
    with client(sim, HUB) as hub:
        response = hub.get("/devices", headers={"Host": f"{HUB}:443"})
        assert response.status_code == 200
        assert response.headers["x-ms-request-id"]


def test_one_socket_serves_every_host_with_its_own_data(sim):
    samples = sim.samples()
    other = samples["other_hub"][0]
    with client(sim, hosts.OTHER_HUB_HOST) as other_hub, client(sim, HUB) as hub1:
        assert other_hub.get(f"/devices/{other}").status_code == 200
        assert_hub_error(hub1.get(f"/devices/{other}"), 404, "DeviceNotFound")


# -- IoT Hub ------------------------------------------------------------------------------


def test_device_get_returns_keys_and_twin_looks_like_customer_data(sim):
    device_id = sim.samples()["individual_symmetric"][0]
    with client(sim, hub_of(sim, device_id)) as hub:
        device = hub.get(f"/devices/{device_id}").json()
        assert device["deviceId"] == device_id
        assert device["authentication"]["type"] == "sas"
        assert device["authentication"]["symmetricKey"]["primaryKey"]
        twin = hub.get(f"/twins/{device_id}").json()
    assert twin["deviceId"] == device_id and twin["deviceEtag"] == device["etag"]
    assert twin["tags"]["owner"]["customerRef"].startswith("CUST-")
    assert {"site", "location"} <= set(twin["tags"])
    assert twin["properties"]["reported"]["firmware"]["version"]


def test_get_devices_lists_with_top(sim):
    with client(sim, HUB) as hub:
        devices = hub.get("/devices", params={"top": 3}).json()
        assert len(devices) == 3
        assert all(d["authentication"]["symmetricKey"]["primaryKey"] for d in devices)
        assert hub.get("/devices", params={"top": "many"}).status_code == 400


def test_device_create_conflict_update_and_delete_with_if_match(sim):
    with client(sim, HUB) as hub:
        body = {"deviceId": "new-device-1", "authentication": {"type": "sas"}}
        created = hub.put("/devices/new-device-1", json=body)
        assert created.status_code == 200
        device = created.json()
        assert device["authentication"]["symmetricKey"]["primaryKey"]
        assert hub.get("/twins/new-device-1").status_code == 200
        assert_hub_error(hub.put("/devices/new-device-1", json=body), 409, "DeviceAlreadyExists")
        stale = hub.put(
            "/devices/new-device-1",
            json=dict(body, status="disabled"),
            headers={"If-Match": '"not-the-etag"'},
        )
        assert_hub_error(stale, 412, "PreconditionFailed")
        updated = hub.put(
            "/devices/new-device-1",
            json=dict(body, status="disabled"),
            headers={"If-Match": f'"{device["etag"]}"'},
        )
        assert updated.json()["status"] == "disabled"
        assert updated.json()["etag"] != device["etag"]
        old = hub.delete("/devices/new-device-1", headers={"If-Match": f'"{device["etag"]}"'})
        assert_hub_error(old, 412, "PreconditionFailed")
        deleted = hub.delete("/devices/new-device-1", headers={"If-Match": '"*"'})
        assert deleted.status_code == 204 and deleted.content == b""
        assert_hub_error(hub.get("/devices/new-device-1"), 404, "DeviceNotFound")
        assert_hub_error(hub.delete("/devices/new-device-1"), 404, "DeviceNotFound")


def test_deleting_a_device_deletes_its_twin_and_modules(sim):
    device_id = sim.samples()["with_modules"][0]
    with client(sim, hub_of(sim, device_id)) as hub:
        modules = hub.get(f"/devices/{device_id}/modules").json()
        assert modules and all(m["authentication"]["symmetricKey"]["primaryKey"] for m in modules)
        module_id = modules[0]["moduleId"]
        assert hub.get(f"/twins/{device_id}/modules/{module_id}").status_code == 200
        assert hub.delete(f"/devices/{device_id}", headers={"If-Match": "*"}).status_code == 204
        assert_hub_error(hub.get(f"/twins/{device_id}"), 404, "DeviceNotFound")
        assert_hub_error(hub.get(f"/devices/{device_id}/modules"), 404, "DeviceNotFound")
        assert_hub_error(hub.get(f"/twins/{device_id}/modules/{module_id}"), 404, "DeviceNotFound")
        query = {"query": where_device("devices.modules", device_id)}
        assert hub.post("/devices/query", json=query).json() == []


def test_module_crud_and_module_twin(sim):
    device_id = sim.samples()["hub_only"][0]
    with client(sim, hub_of(sim, device_id)) as hub:
        path = f"/devices/{device_id}/modules/telemetry"
        created = hub.put(path, json={"moduleId": "telemetry", "deviceId": device_id})
        assert created.status_code == 200
        module = created.json()
        assert module["authentication"]["symmetricKey"]["primaryKey"]
        assert_hub_error(
            hub.put(path, json={"moduleId": "telemetry"}), 409, "ModuleAlreadyExistsOnDevice"
        )
        assert hub.get(path).json()["moduleId"] == "telemetry"
        twin_path = f"/twins/{device_id}/modules/telemetry"
        twin = hub.patch(twin_path, json={"properties": {"desired": {"rate": 5}}}).json()
        assert twin["moduleId"] == "telemetry" and twin["properties"]["desired"]["rate"] == 5
        assert_hub_error(
            hub.delete(path, headers={"If-Match": '"stale"'}), 412, "PreconditionFailed"
        )
        assert hub.delete(path, headers={"If-Match": '"*"'}).status_code == 204
        assert_hub_error(hub.get(path), 404, "ModuleNotFound")
        assert_hub_error(hub.get(twin_path), 404, "ModuleNotFound")
        assert_hub_error(hub.get("/devices/absent/modules/telemetry"), 404, "DeviceNotFound")


def test_twin_patch_merges_put_replaces_and_stale_etag_is_412(sim):
    device_id = sim.samples()["hub_only"][1]
    with client(sim, hub_of(sim, device_id)) as hub:
        twin = hub.get(f"/twins/{device_id}").json()
        patch = {"tags": {"site": None, "ticket": "DSR-7"}, "properties": {"desired": {"a": 1}}}
        patched = hub.patch(
            f"/twins/{device_id}", json=patch, headers={"If-Match": f'"{twin["etag"]}"'}
        )
        assert patched.status_code == 200
        new = patched.json()
        assert "site" not in new["tags"] and new["tags"]["ticket"] == "DSR-7"
        assert new["tags"]["owner"] == twin["tags"]["owner"]
        assert new["properties"]["desired"]["a"] == 1
        assert new["version"] == twin["version"] + 1 and new["etag"] != twin["etag"]
        stale = hub.patch(f"/twins/{device_id}", json=patch, headers={"If-Match": twin["etag"]})
        assert_hub_error(stale, 412, "PreconditionFailed")
        replaced = hub.put(f"/twins/{device_id}", json={"tags": {"only": True}}).json()
        assert replaced["tags"] == {"only": True}
        assert "a" not in replaced["properties"]["desired"]
        assert replaced["properties"]["reported"] == twin["properties"]["reported"]


def test_twin_query_pages_to_the_end_with_short_pages():
    sim = Simulator(seed=3, devices=300)
    with client(sim, HUB) as hub:
        items, lengths, types = query_all(
            hub, "/devices/query", {"query": "SELECT * FROM devices"}, 7
        )
    expected = {t["deviceId"] for t in sim.state()["hubs"][HUB]["twins"]}
    assert [t["deviceId"] for t in items] == sorted(expected)
    assert types == {"Twin"}
    assert any(n < 7 for n in lengths[:-1]), "some page before the last must be short"
    assert all(n >= 1 for n in lengths)


def test_query_filters_devices_modules_and_jobs(sim):
    samples = sim.samples()
    with_modules = samples["with_modules"][0]
    with_jobs = samples["with_jobs"][0]
    with client(sim, hub_of(sim, with_modules)) as hub:
        twins = hub.post(
            "/devices/query",
            json={"query": where_device("devices", with_modules)},
        ).json()
        assert [t["deviceId"] for t in twins] == [with_modules]
        response = hub.post(
            "/devices/query",
            json={"query": where_device("devices.modules", with_modules).lower()},
        )
        module_twins = response.json()
        assert module_twins and {t["deviceId"] for t in module_twins} == {with_modules}
        assert all(t["moduleId"] for t in module_twins)
        assert response.headers["x-ms-item-type"] == "Twin"
    with client(sim, hub_of(sim, with_jobs)) as hub:
        query = where_device("devices.jobs", with_jobs, "devices.jobs.deviceId")
        response = hub.post("/devices/query", json={"query": query})
        assert response.headers["x-ms-item-type"] == "DeviceJob"
        jobs = response.json()
        assert jobs and all(j["deviceId"] == with_jobs and j["jobId"] for j in jobs)
        bad = hub.post("/devices/query", json={"query": "SELECT deviceId FROM unknown"})
        assert_hub_error(bad, 400, "ArgumentInvalid")


def test_query_rejects_a_forged_continuation_token(sim):
    with client(sim, HUB) as hub:
        response = hub.post(
            "/devices/query",
            json={"query": "SELECT * FROM devices"},
            headers={"x-ms-continuation": "not-a-token"},
        )
        assert_hub_error(response, 400, "ArgumentInvalid")


def test_purging_the_c2d_queue(sim):
    device_id = next(
        d["deviceId"] for d in sim.state()["hubs"][HUB]["devices"] if d["cloudToDeviceMessageCount"]
    )
    with client(sim, HUB) as hub:
        first = hub.delete(f"/devices/{device_id}/commands")
        assert first.status_code == 200
        assert first.json()["deviceId"] == device_id and first.json()["totalMessagesPurged"] > 0
        assert hub.delete(f"/devices/{device_id}/commands").json()["totalMessagesPurged"] == 0
        assert_hub_error(hub.delete("/devices/absent/commands"), 404, "DeviceNotFound")


@pytest.mark.parametrize("version", ["2020-03-13", "2021-04-12", "2024-03-31"])
def test_hub_accepts_its_api_versions(sim, version):
    with client(sim, HUB) as hub:
        assert hub.get("/devices", params={"api-version": version}).status_code == 200


def test_hub_rejects_other_api_versions(sim):
    with client(sim, HUB) as hub:
        response = hub.get("/devices", params={"api-version": "2018-06-30"})
        assert_hub_error(response, 400, "InvalidProtocolVersion")


@pytest.mark.parametrize("device_id", ["d" * 129, "bad~device", "spa ce", "caf\u00e9"])
def test_hub_rejects_invalid_device_ids(sim, device_id):
    with client(sim, HUB) as hub:
        assert_hub_error(hub.get(f"/devices/{device_id}"), 400, "ArgumentInvalid")


def test_hub_accepts_every_legal_id_character(sim):
    device_id = "a-.+%_#*?!(),:=@$'" + "z" * 110
    with client(sim, HUB) as hub:
        url = "/devices/" + urllib.parse.quote(device_id, safe="")
        created = hub.put(url, json={"deviceId": device_id})
        assert created.status_code == 200, created.text
        assert hub.get(url).json()["deviceId"] == device_id


def test_hub_rejects_malformed_json_and_wrong_content_type(sim):
    with client(sim, HUB) as hub:
        broken = hub.put(
            "/devices/x1", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert_hub_error(broken, 400, "IotHubFormatError")
        text = hub.put("/devices/x1", content=b"{}", headers={"Content-Type": "text/plain"})
        assert_hub_error(text, 400, "IotHubFormatError")
        mismatch = hub.put("/devices/x1", json={"deviceId": "x2"})
        assert_hub_error(mismatch, 400, "ArgumentInvalid")


def test_read_only_policy_cannot_write(sim):
    device_id = sim.samples()["hub_only"][0]
    with client(sim, hub_of(sim, device_id), "registryRead") as hub:
        assert hub.get(f"/devices/{device_id}").status_code == 200
        denied = hub.delete(f"/devices/{device_id}", headers={"If-Match": "*"})
        assert_hub_error(denied, 401, "IotHubUnauthorizedAccess")
    with client(sim, DPS, "enrollmentread") as dps:
        enrollment = sim.samples()["individual_tpm"][0]
        assert dps.get(f"/enrollments/{enrollment}").status_code == 200
        assert_dps_error(dps.delete(f"/enrollments/{enrollment}"), 401, 401002)
    assert hub_of(sim, device_id)


# -- DPS --------------------------------------------------------------------------------


def test_symmetric_enrollment_get_and_query_omit_keys_attestation_mechanism_has_them(sim):
    registration_id = sim.samples()["individual_symmetric"][0]
    with client(sim, DPS) as dps:
        enrollment = dps.get(f"/enrollments/{registration_id}").json()
        assert enrollment["attestation"]["type"] == "symmetricKey"
        assert "primaryKey" not in enrollment["attestation"]["symmetricKey"]
        assert enrollment["registrationState"]["status"] == "assigned"
        listed = dps.post("/enrollments/query", json={"query": "*"}).json()
        assert listed and all("primaryKey" not in json.dumps(e) for e in listed)
        mechanism = dps.post(f"/enrollments/{registration_id}/attestationmechanism")
        assert mechanism.status_code == 200
        assert mechanism.json()["symmetricKey"]["primaryKey"]
        groups = dps.post("/enrollmentGroups/query", json={"query": "*"}).json()
        assert groups and all("primaryKey" not in json.dumps(g) for g in groups)
        group_id = next(g["enrollmentGroupId"] for g in groups if "sym" in g["enrollmentGroupId"])
        keys = dps.post(f"/enrollmentGroups/{group_id}/attestationmechanism").json()
        assert keys["symmetricKey"]["secondaryKey"]


def test_x509_and_tpm_enrollments(sim):
    samples = sim.samples()
    with client(sim, DPS) as dps:
        x509 = dps.get(f"/enrollments/{samples['individual_x509'][0]}").json()
        info = x509["attestation"]["x509"]["clientCertificates"]["primary"]["info"]
        assert info["subjectName"].startswith("CN=") and len(info["sha1Thumbprint"]) == 40
        tpm = dps.get(f"/enrollments/{samples['individual_tpm'][0]}").json()
        assert tpm["attestation"]["tpm"]["endorsementKey"]


def test_registration_ids_are_case_insensitive(sim):
    registration_id = sim.samples()["individual_tpm"][0]
    with client(sim, DPS) as dps:
        response = dps.get(f"/enrollments/{registration_id.upper()}")
        assert response.json()["registrationId"] == registration_id


def test_deleting_an_individual_enrollment_deletes_its_registration(sim):
    registration_id = sim.samples()["individual_x509"][0]
    with client(sim, DPS) as dps:
        assert dps.get(f"/registrations/{registration_id}").status_code == 200
        etag = dps.get(f"/enrollments/{registration_id}").json()["etag"]
        stale = dps.delete(f"/enrollments/{registration_id}", headers={"If-Match": '"old"'})
        assert_dps_error(stale, 412, 412201)
        assert (
            dps.delete(f"/enrollments/{registration_id}", headers={"If-Match": etag}).status_code
            == 204
        )
        assert_dps_error(dps.get(f"/enrollments/{registration_id}"), 404, 404201)
        assert_dps_error(dps.get(f"/registrations/{registration_id}"), 404, 404202)


def test_deleting_a_group_keeps_its_registrations(sim):
    registration_id = sim.samples()["group_provisioned"][0]
    with client(sim, DPS) as dps:
        assert_dps_error(dps.get(f"/enrollments/{registration_id}"), 404, 404201)
        groups = dps.post("/enrollmentGroups/query", json={"query": "*"}).json()
        group_id = next(
            g["enrollmentGroupId"]
            for g in groups
            if registration_id
            in [
                r["registrationId"]
                for r in dps.post(f"/registrations/{g['enrollmentGroupId']}/query").json()
            ]
        )
        assert dps.delete(f"/enrollmentGroups/{group_id}").status_code == 204
        assert_dps_error(dps.get(f"/enrollmentGroups/{group_id}"), 404, 404201)
        assert dps.get(f"/registrations/{registration_id}").json()["status"] == "assigned"
        remaining = dps.post(f"/registrations/{group_id}/query").json()
        assert registration_id in [r["registrationId"] for r in remaining]
        assert dps.delete(f"/registrations/{registration_id}").status_code == 204
        assert_dps_error(dps.get(f"/registrations/{registration_id}"), 404, 404202)
        assert_dps_error(dps.post("/registrations/no-such-group/query"), 404, 404201)


def test_blocking_a_group_device_with_a_disabled_individual_enrollment(sim):
    registration_id = sim.samples()["group_provisioned"][1]
    body = {
        "registrationId": registration_id,
        "attestation": {"type": "symmetricKey"},
        "provisioningStatus": "disabled",
    }
    with client(sim, DPS) as dps:
        created = dps.put(f"/enrollments/{registration_id}", json=body)
        assert created.status_code == 200, created.text
        enrollment = created.json()
        assert enrollment["provisioningStatus"] == "disabled"
        assert enrollment["attestation"]["symmetricKey"]["primaryKey"]
        assert dps.get(f"/enrollments/{registration_id}").json()["etag"] == enrollment["etag"]
        assert_dps_error(dps.put(f"/enrollments/{registration_id}", json=body), 409, 409201)
        stale = dps.put(
            f"/enrollments/{registration_id}", json=body, headers={"If-Match": '"stale"'}
        )
        assert_dps_error(stale, 412, 412201)
        update = dps.put(
            f"/enrollments/{registration_id}",
            json=dict(body, provisioningStatus="enabled"),
            headers={"If-Match": enrollment["etag"]},
        )
        assert update.json()["provisioningStatus"] == "enabled"
        # The group device's registration is not the enrollment's: it survives the delete.
        assert dps.delete(f"/enrollments/{registration_id}").status_code == 204
        assert dps.get(f"/registrations/{registration_id}").status_code == 200


@pytest.mark.parametrize(
    "path, kind, item_type",
    [
        ("/enrollments/query", "enrollments", "Enrollment"),
        ("/enrollmentGroups/query", "enrollmentGroups", "EnrollmentGroup"),
    ],
)
def test_dps_queries_page_to_the_end(path, kind, item_type):
    sim = Simulator(seed=5, devices=400)
    with client(sim, DPS) as dps:
        items, lengths, types = query_all(dps, path, {"query": "*"}, 4)
    key = "registrationId" if kind == "enrollments" else "enrollmentGroupId"
    expected = [e[key] for e in sim.state()["dps"][DPS][kind]]
    assert [i[key] for i in items] == expected
    assert types == {item_type}
    assert len(lengths) > 2 and any(n < 4 for n in lengths[:-1])


def test_group_registrations_query_pages_to_the_end():
    sim = Simulator(seed=5, devices=400)
    registrations = sim.state()["dps"][DPS]["registrations"]
    group_id = registrations[[r["enrollmentGroupId"] for r in registrations].index("grp-sym-01")][
        "enrollmentGroupId"
    ]
    expected = sorted(
        r["registrationId"] for r in registrations if r["enrollmentGroupId"] == group_id
    )
    with client(sim, DPS) as dps:
        items, lengths, types = query_all(dps, f"/registrations/{group_id}/query", None, 3)
    assert [i["registrationId"] for i in items] == expected
    assert types == {"DeviceRegistration"}
    assert all(i["assignedHub"] and i["deviceId"] for i in items)


@pytest.mark.parametrize("registration_id", ["r" * 129, "bad id", "bad!id", "caf\u00e9"])
def test_dps_rejects_invalid_registration_ids(sim, registration_id):
    with client(sim, DPS) as dps:
        assert_dps_error(dps.get(f"/enrollments/{registration_id}"), 400, 400004)


def test_dps_rejects_malformed_bodies_and_api_versions(sim):
    with client(sim, DPS) as dps:
        broken = dps.put(
            "/enrollments/abc", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_dps_error(broken, 400, 400004)
        text = dps.post("/enrollments/query", content=b"{}", headers={"Content-Type": "text/xml"})
        assert_dps_error(text, 400, 400004)
        no_type = dps.put("/enrollments/abc", json={"registrationId": "abc", "attestation": {}})
        assert_dps_error(no_type, 400, 400004)
        old = dps.get("/enrollments/abc", params={"api-version": "2017-11-15"})
        assert_dps_error(old, 400, 400001)


# -- authentication -----------------------------------------------------------------------


def bad_tokens(sim, host):
    policy = "iothubowner" if host != DPS else "provisioningserviceowner"
    other_key = sim.policy_key(hosts.HUB2_HOST, "iothubowner")
    return {
        "bad signature": sas(sim, host, policy, key=other_key),
        "expired": sas(sim, host, policy, expiry=time.time() - 5),
        "wrong audience": sas(sim, host, policy, audience=hosts.HUB2_HOST),
        "unknown policy": sas(sim, host, "nosuchpolicy", key=other_key),
        "bad bearer": "Bearer not-the-token",
        "no scheme": "Basic dXNlcjpwYXNz",
        "missing": "",
    }


@pytest.mark.parametrize("case", list(bad_tokens(Simulator(devices=1), HUB)))
def test_hub_rejects_bad_credentials_with_its_own_401(case):
    sim = Simulator(seed=1, devices=5, entra_token="the-entra-token")
    with client(sim, HUB, token=bad_tokens(sim, HUB)[case]) as hub:
        assert_hub_error(hub.get("/devices"), 401, "IotHubUnauthorizedAccess")


@pytest.mark.parametrize("case", list(bad_tokens(Simulator(devices=1), DPS)))
def test_dps_rejects_bad_credentials_with_its_own_401(case):
    sim = Simulator(seed=1, devices=5, entra_token="the-entra-token")
    with client(sim, DPS, token=bad_tokens(sim, DPS)[case]) as dps:
        assert_dps_error(dps.post("/enrollments/query", json={"query": "*"}), 401, 401002)


def test_good_credentials_variants(sim):
    entra = Simulator(seed=1, devices=5, entra_token="the-entra-token")
    with client(entra, HUB, token="Bearer the-entra-token") as hub:
        assert hub.get("/devices").status_code == 200
    with client(sim, HUB, token="Bearer anything") as hub:
        assert hub.get("/devices").status_code == 401  # no Entra token configured
    for audience in (HUB.upper(), f"{HUB}/devices", f"https://{HUB}"):
        with client(sim, HUB, token=sas(sim, HUB, audience=audience)) as hub:
            assert hub.get("/devices").status_code == 200, audience
    # Keys come from the seed: another seed signs with other keys.
    with client(sim, HUB, token=sas(Simulator(seed=2, devices=1), HUB)) as hub:
        assert hub.get("/devices").status_code == 401


def test_connection_string_names_the_owner_policy(sim):
    text = sim.connection_string(HUB)
    fields = dict(part.split("=", 1) for part in text.split(";"))
    assert fields["HostName"] == HUB and fields["SharedAccessKeyName"] == "iothubowner"
    assert fields["SharedAccessKey"] == sim.policy_key(HUB, "iothubowner")
    assert "provisioningserviceowner" in sim.connection_string(DPS)


# -- throttling ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_hub_queries_are_throttled_at_the_s1_rate_with_retry_after():
    clock = FakeClock()
    sim = Simulator(seed=1, devices=5, throttle_scale=1, clock=clock, retry_after=True)
    query = {"query": "SELECT * FROM devices"}
    with client(sim, HUB) as hub:
        # S1, 1 unit: 20 queries/min; the bucket holds ten seconds' worth (3.3 queries).
        statuses = [hub.post("/devices/query", json=query).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        throttled = hub.post("/devices/query", json=query)
        assert_hub_error(throttled, 429, "ThrottlingException")
        assert int(throttled.headers["Retry-After"]) >= 1
        # Registry operations have their own bucket.
        assert hub.get("/devices").status_code == 200
        # Another hub has its own buckets.
        with client(sim, hosts.HUB2_HOST) as hub2:
            assert hub2.post("/devices/query", json=query).status_code == 200
        clock.now += 3.0  # one query's worth at 20/min
        assert hub.post("/devices/query", json=query).status_code == 200
        assert hub.post("/devices/query", json=query).status_code == 429


class ShapingClock(FakeClock):
    """A clock the simulator's traffic-shaping sleep moves forward."""

    def __init__(self):
        super().__init__()
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_bursts_above_the_throttle_are_queued_for_a_while_then_refused():
    clock = ShapingClock()
    # Registry at 100/min × 1.2 = 2/s; ten seconds' burst (20) is served at once.
    sim = Simulator(
        seed=1, devices=5, throttle_scale=1.2, clock=clock, sleep=clock.sleep, retry_after=True
    )
    with client(sim, HUB) as hub:
        assert all(hub.get("/devices/absent").status_code == 404 for _ in range(20))
        assert clock.slept == []
        # Traffic shaping: the next ones wait in the queue, answered at the limit rate.
        assert hub.get("/devices/absent").status_code == 404
        assert clock.slept == [0.5]
        assert hub.get("/devices/absent").status_code == 404
        assert clock.slept == [0.5, 0.5]
        sim.set_faults(shaping_seconds=0.4)  # a shorter queue: the next wait (0.5 s) is refused
        refused = hub.get("/devices/absent")
        assert_hub_error(refused, 429, "ThrottlingException")
        assert refused.headers["Retry-After"] == "1"
        assert clock.slept == [0.5, 0.5]


@pytest.mark.parametrize(
    ("method", "path", "body", "kind"),
    [
        ("GET", "/devices/absent", None, "registry"),
        ("GET", "/devices/absent/modules", None, "registry"),
        ("POST", "/devices/query", {"query": "SELECT * FROM devices"}, "query"),
        ("GET", "/twins/absent", None, "twin_read"),
        ("GET", "/twins/absent/modules/m", None, "twin_read"),
        ("PATCH", "/twins/absent", {"tags": {}}, "twin_update"),
    ],
)
def test_each_hub_request_counts_against_its_own_bucket(method, path, body, kind):
    # At this scale every hub bucket holds one token: the second call of a kind is refused.
    sim = Simulator(seed=1, devices=5, throttle_scale=0.0005, clock=FakeClock(), shaping_seconds=0)
    kinds = ("registry", "query", "twin_read", "twin_update")
    with client(sim, HUB) as hub:
        first = hub.request(method, path, json=body)
        assert first.status_code != 429
        assert hub.request(method, path, json=body).status_code == 429
        # The other buckets are untouched: one call of each still passes.
        others = {
            "registry": ("GET", "/devices", None),
            "query": ("POST", "/devices/query", {"query": "SELECT * FROM devices"}),
            "twin_read": ("GET", "/twins/other", None),
            "twin_update": ("PATCH", "/twins/other", {"tags": {}}),
        }
        for other in kinds:
            if other != kind:
                other_method, other_path, other_body = others[other]
                answer = hub.request(other_method, other_path, json=other_body)
                assert answer.status_code != 429, other


def test_dps_throttle_body_and_no_retry_after_by_default():
    sim = Simulator(seed=1, devices=5, throttle_scale=0.006, clock=FakeClock())  # 6 ops/min
    with client(sim, DPS) as dps:
        assert dps.post("/enrollments/query", json={"query": "*"}).status_code == 200
        throttled = dps.post("/enrollments/query", json={"query": "*"})
        assert_dps_error(throttled, 429, 429001)
        assert "Retry-After" not in throttled.headers


def test_a_busy_hub_refuses_a_share_of_calls_with_azures_429_whatever_the_rate():
    """busy_rate: other applications spend the same throttles (a 429 storm)."""
    sim = Simulator(seed=1, devices=5, busy_rate=1.0, retry_after=True)
    with client(sim, HUB) as hub, client(sim, DPS) as dps:
        throttled = hub.get("/devices")
        assert_hub_error(throttled, 429, "ThrottlingException")
        assert throttled.headers["Retry-After"] == "1"
        assert_dps_error(dps.post("/enrollments/query", json={"query": "*"}), 429, 429001)
        sim.set_faults(busy_rate=0.5)
        statuses = [hub.get("/devices").status_code for _ in range(40)]
        assert 5 < statuses.count(429) < 35 and set(statuses) == {200, 429}
    with pytest.raises(ValueError, match="busy_rate out of range"):
        sim.set_faults(busy_rate=1.5)


def test_throttle_scale_speeds_up_and_zero_disables():
    clock = FakeClock()
    sim = Simulator(seed=1, devices=5, throttle_scale=60, clock=clock)
    with client(sim, HUB) as hub:
        # 100/min × 60 = 100/s, ten seconds' burst: 1000 registry calls pass at once.
        assert all(hub.get("/devices/absent").status_code == 404 for _ in range(300))
        sim.set_faults(throttle_scale=0)
        assert all(hub.get("/devices").status_code == 200 for _ in range(50))
        sim.set_faults(throttle_scale=0.01)
        codes = [hub.get("/devices").status_code for _ in range(3)]
        assert codes == [200, 429, 429]


# -- faults and latency -------------------------------------------------------------------


def statuses_under_faults(seed):
    sim = Simulator(seed=seed, devices=5, error_rate=0.3)
    with client(sim, HUB) as hub:
        return [hub.get("/devices").status_code for _ in range(40)]


def test_injected_errors_are_deterministic_by_seed():
    first = statuses_under_faults(7)
    assert first == statuses_under_faults(7)
    assert first != statuses_under_faults(8)
    assert {500, 503} <= set(first) and 200 in first


def test_injected_errors_have_the_service_body_and_no_effect(sim):
    device_id = sim.samples()["hub_only"][0]
    host = hub_of(sim, device_id)
    sim.set_faults(error_rate=1)
    with client(sim, host) as hub, client(sim, DPS) as dps:
        failed = hub.delete(f"/devices/{device_id}", headers={"If-Match": "*"})
        assert failed.status_code in (500, 503)
        assert failed.headers["iothub-errorcode"] in ("ServerError", "ServiceUnavailable")
        dps_failed = dps.delete(f"/enrollments/{sim.samples()['individual_tpm'][0]}")
        assert dps_failed.json()["errorCode"] in (500001, 503001)
        sim.set_faults(error_rate=0)
        assert hub.get(f"/devices/{device_id}").status_code == 200


def test_a_drop_before_the_effect_raises_and_changes_nothing(sim):
    device_id = sim.samples()["hub_only"][0]
    host = hub_of(sim, device_id)
    sim.set_faults(drop_rate=1)
    with client(sim, host) as hub:
        with pytest.raises(httpx.TransportError):
            hub.delete(f"/devices/{device_id}", headers={"If-Match": "*"})
        sim.set_faults(drop_rate=0)
        assert hub.get(f"/devices/{device_id}").status_code == 200
    assert sim.calls[0]["fault"] == "drop" and sim.calls[0]["status"] == 0


def test_a_drop_after_the_effect_hides_the_outcome(sim):
    device_id = sim.samples()["hub_only"][0]
    host = hub_of(sim, device_id)
    sim.set_faults(drop_after_rate=1)
    with client(sim, host) as hub:
        with pytest.raises(httpx.TransportError):
            hub.delete(f"/devices/{device_id}", headers={"If-Match": "*"})
        sim.set_faults(drop_after_rate=0)
        assert_hub_error(hub.get(f"/devices/{device_id}"), 404, "DeviceNotFound")


def test_latency_is_fixed_plus_jitter():
    slept = []
    sim = Simulator(seed=1, devices=5, latency_ms=40, jitter_ms=20, sleep=slept.append)
    with client(sim, HUB) as hub:
        for _ in range(10):
            hub.get("/devices")
    assert len(slept) == 10 and all(0.04 <= s <= 0.06 for s in slept)
    assert len(set(slept)) > 1


def test_set_faults_validates(sim):
    with pytest.raises(ValueError):
        sim.set_faults(error_rate=2)
    with pytest.raises(ValueError):
        sim.set_faults(nonsense=1)


# -- introspection ------------------------------------------------------------------------


def test_introspection_endpoints(sim):
    raw = httpx.Client(transport=httpx.WSGITransport(app=sim), base_url=f"https://{HUB}")
    device_id = sim.samples()["hub_only"][0]
    with client(sim, hub_of(sim, device_id)) as hub:
        hub.get(f"/devices/{device_id}")
        hub.delete(f"/devices/{device_id}", headers={"If-Match": "*"})
    calls = raw.get("/_sim/calls").json()
    assert [c["method"] for c in calls["calls"]] == ["GET", "DELETE"]
    assert calls["calls"][1]["status"] == 204 and calls["calls"][1]["path"].endswith(device_id)
    assert {"time", "method", "host", "path", "status"} <= set(calls["calls"][0])
    assert raw.get("/_sim/calls", params={"since": 1}).json()["calls"] == calls["calls"][1:]
    state = raw.get("/_sim/state").json()
    assert set(state) == {"dps", "hubs"} and DPS in state["dps"]
    assert all(d["deviceId"] != device_id for h in state["hubs"].values() for d in h["devices"])
    faults = raw.post("/_sim/faults", json={"error_rate": 0.5, "retry_after": True}).json()
    assert faults["error_rate"] == 0.5 and sim.faults["retry_after"] is True
    assert raw.post("/_sim/faults", json={"error_rate": "lots"}).status_code == 400
    assert raw.post("/_sim/reset").status_code == 200
    assert sim.calls == [] and sim.faults["error_rate"] == 0
    assert any(
        d["deviceId"] == device_id for h in sim.state()["hubs"].values() for d in h["devices"]
    )
    # Introspection works on any host name and is never logged as a call.
    other = httpx.Client(transport=httpx.WSGITransport(app=sim), base_url="http://127.0.0.1:8701")
    assert other.get("/_sim/samples").json() == sim.samples()
    assert sim.calls == []


# -- seeded data --------------------------------------------------------------------------


def test_samples_match_the_seeded_data(sim):
    samples = sim.samples()
    state = sim.state()
    dps = state["dps"][DPS]
    enrollments = {e["registrationId"]: e for e in dps["enrollments"]}
    registrations = {r["registrationId"]: r for r in dps["registrations"]}
    devices = {d["deviceId"]: host for host, data in state["hubs"].items() for d in data["devices"]}
    for category, kind in (
        ("individual_symmetric", "symmetricKey"),
        ("individual_x509", "x509"),
        ("individual_tpm", "tpm"),
    ):
        assert samples[category]
        for rid in samples[category]:
            assert enrollments[rid]["attestation"]["type"] == kind
            assert registrations[rid]["status"] == "assigned"
            assert registrations[rid]["deviceId"] == rid
            assert devices[rid] == registrations[rid]["assignedHub"]
    for rid in samples["group_provisioned"]:
        assert rid not in enrollments and registrations[rid]["enrollmentGroupId"]
        assert devices[rid] in hosts.LINKED_HUBS
    for rid in samples["never_provisioned"]:
        assert rid in enrollments and rid not in registrations and rid not in devices
    for rid in samples["hub_only"]:
        assert rid not in enrollments and rid not in registrations
        assert devices[rid] in hosts.LINKED_HUBS
    for rid in samples["other_hub"]:
        assert registrations[rid]["assignedHub"] == hosts.OTHER_HUB_HOST
        assert devices[rid] == hosts.OTHER_HUB_HOST
    modules = {m["deviceId"] for h in state["hubs"].values() for m in h["modules"]}
    assert samples["with_modules"] and set(samples["with_modules"]) <= modules
    assert {
        devices[d] for d in samples["group_provisioned"] + samples["individual_symmetric"]
    } == set(hosts.LINKED_HUBS)
    group_types = {g["attestation"]["type"] for g in dps["enrollmentGroups"]}
    assert group_types == {"symmetricKey", "x509"}


def test_seed_is_deterministic_and_fast():
    assert Simulator(seed=4, devices=30).state() == Simulator(seed=4, devices=30).state()
    assert Simulator(seed=4, devices=30).state() != Simulator(seed=5, devices=30).state()
    started = time.monotonic()
    big = Simulator(seed=1, devices=10_000)
    assert time.monotonic() - started < 5
    assert sum(len(v) for k, v in big.samples().items() if k != "with_modules") > 9000


# -- the query store: IN lists, length, lag -------------------------------------------------


def _hub_devices_with_modules(sim):
    state = sim.state()["hubs"][HUB]
    with_modules = sorted({m["deviceId"] for m in state["modules"]})
    return [d["deviceId"] for d in state["devices"]], with_modules


def test_queries_select_devices_and_modules_by_an_in_list(sim):
    devices, with_modules = _hub_devices_with_modules(sim)
    wanted = devices[:3] + ["not-on-this-hub"]
    listed = ", ".join(f"'{d}'" for d in wanted)
    with client(sim, HUB) as hub:
        body = {"query": f"SELECT * FROM devices WHERE deviceId IN [{listed}]"}
        items, _, types = query_all(hub, "/devices/query", body, 100)
        assert sorted(t["deviceId"] for t in items) == sorted(devices[:3])
        assert types == {"Twin"}
        listed = ", ".join(f"'{d}'" for d in with_modules[:2])
        body = {"query": f"select * from devices.modules where deviceId in [{listed}]"}
        items, _, _ = query_all(hub, "/devices/query", body, 100)
        assert {t["deviceId"] for t in items} == set(with_modules[:2])
        assert all(t["moduleId"] for t in items)
        # IDs are case-sensitive, as in Azure.
        body = {"query": f"SELECT * FROM devices WHERE deviceId IN ['{devices[0].upper()}']"}
        assert query_all(hub, "/devices/query", body, 100)[0] == []


def test_a_query_past_8_kb_or_outside_the_subset_is_a_400_argument_invalid(sim):
    with client(sim, HUB) as hub:
        ids = ", ".join(f"'device-{n:05d}'" for n in range(700))
        too_long = hub.post(
            "/devices/query", json={"query": f"SELECT * FROM devices WHERE deviceId IN [{ids}]"}
        )
        assert_hub_error(too_long, 400, "ArgumentInvalid")
        assert "over 8192" in too_long.json()["Message"]
        odd = hub.post("/devices/query", json={"query": "SELECT * FROM devices WHERE x IN [1]"})
        assert_hub_error(odd, 400, "ArgumentInvalid")


def test_the_query_store_lags_the_registry_by_query_lag_seconds():
    clock = FakeClock()
    sim = Simulator(seed=1, devices=20, clock=clock, query_lag_seconds=5)
    devices, _ = _hub_devices_with_modules(sim)
    gone = devices[0]

    def listed(hub, device_id):
        body = {"query": f"SELECT * FROM devices WHERE deviceId = '{device_id}'"}
        return [t["deviceId"] for t in query_all(hub, "/devices/query", body, 10)[0]]

    with client(sim, HUB) as hub:
        assert hub.put("/devices/fresh", json={"deviceId": "fresh"}).status_code == 200
        assert hub.delete(f"/devices/{gone}", headers={"If-Match": "*"}).status_code == 204
        # The registry and the twins know at once; the query store does not yet.
        assert hub.get(f"/twins/{gone}").status_code == 404
        assert hub.get("/twins/fresh").status_code == 200
        assert listed(hub, gone) == [gone] and listed(hub, "fresh") == []
        clock.now += 5
        assert listed(hub, gone) == [] and listed(hub, "fresh") == ["fresh"]
