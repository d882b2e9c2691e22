"""The official Azure SDKs, unmodified, against the simulator served over TLS by host name.

A throwaway CA signs a certificate for the four simulator host names; the test process resolves
those names to the simulator's socket (``socket.getaddrinfo`` maps host:443 to 127.0.0.1:port)
and trusts the CA through ``REQUESTS_CA_BUNDLE``. The SDKs sign SAS tokens for the bare host
name, exactly as against Azure.
"""

import datetime
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from msrest.exceptions import HttpOperationError

from simulator import hosts
from simulator.app import Simulator
from simulator.server import serve
from tests.simulator_helpers import sas

iothub = pytest.importorskip("azure.iot.hub")
hub_models = pytest.importorskip("azure.iot.hub.models")
deviceprovisioning = pytest.importorskip("azure.iot.deviceprovisioning")
SUFFIXES = (".azure-devices.net", ".azure-devices-provisioning.net")


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_certificates(directory):
    """Write ca.pem, server.pem and server.key; return their paths."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("azuresim test CA"))
        .issuer_name(_name("azuresim test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(h) for h in hosts.ALL_HOSTS]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts.HUB1_HOST))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: directory / name for name in ("ca.pem", "server.pem", "server.key")}
    paths["ca.pem"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["server.pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["server.key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The simulator on TLS, reachable from this process as https://<azure host name>."""
    paths = make_certificates(tmp_path)
    sim = Simulator(seed=11, devices=40)
    server = serve(sim, "127.0.0.1", 0, str(paths["server.pem"]), str(paths["server.key"]))
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.lower().endswith(SUFFIXES):
            if int(port or 443) == 443:
                port = server.port
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(paths["ca.pem"]))
    monkeypatch.setenv("SSL_CERT_FILE", str(paths["ca.pem"]))
    yield sim
    server.shutdown()


def test_iot_hub_registry_manager_flows(served):
    sim = served
    manager = iothub.IoTHubRegistryManager.from_connection_string(
        sim.connection_string(hosts.HUB1_HOST)
    )
    created = manager.create_device_with_sas("sdk-device-1", None, None, "enabled")
    assert created.device_id == "sdk-device-1"
    assert created.authentication.symmetric_key.primary_key
    device = manager.get_device("sdk-device-1")
    assert device.etag == created.etag and device.status == "enabled"
    listed = manager.get_devices(max_number_of_devices=500)
    assert "sdk-device-1" in [d.device_id for d in listed]

    spec = hub_models.QuerySpecification(query="SELECT * FROM devices")
    first = manager.query_iot_hub(spec, None, 5)
    assert len(first.items) == 5 and first.continuation_token
    assert first.type == "Twin"
    seen = [t.device_id for t in first.items]
    token = first.continuation_token
    while token:
        page = manager.query_iot_hub(spec, token, 5)
        seen += [t.device_id for t in page.items]
        token = page.continuation_token
    assert "sdk-device-1" in seen and len(seen) == len(set(seen))

    module = manager.create_module_with_sas("sdk-device-1", "sdk-module", None, None, None)
    assert module.module_id == "sdk-module"
    assert [m.module_id for m in manager.get_modules("sdk-device-1")] == ["sdk-module"]
    twin = manager.get_twin("sdk-device-1")
    assert twin.device_id == "sdk-device-1"
    patch = hub_models.Twin(tags={"owner": {"customerRef": "CUST-1"}})
    updated = manager.update_twin("sdk-device-1", patch, twin.etag)
    assert updated.tags == {"owner": {"customerRef": "CUST-1"}}
    module_twin = manager.get_module_twin("sdk-device-1", "sdk-module")
    assert module_twin.module_id == "sdk-module"
    manager.delete_module("sdk-device-1", "sdk-module")
    assert manager.get_modules("sdk-device-1") == []
    manager.delete_device("sdk-device-1")
    with pytest.raises(HttpOperationError) as raised:
        manager.get_device("sdk-device-1")
    assert raised.value.response.status_code == 404

    seeded = sim.samples()["with_modules"]
    hub_devices = {d["deviceId"] for d in sim.state()["hubs"][hosts.HUB1_HOST]["devices"]}
    device_id = next(d for d in seeded if d in hub_devices)
    assert manager.get_modules(device_id)
    assert manager.get_twin(device_id).tags["owner"]["customerRef"].startswith("CUST-")
    calls = [c for c in sim.calls if c["host"] == hosts.HUB1_HOST]
    assert calls and all(c["status"] < 500 for c in calls)


def test_device_provisioning_client_flows(served):
    sim = served
    client = deviceprovisioning.DeviceProvisioningClient.from_connection_string(
        sim.connection_string(hosts.DPS_HOST)
    )
    enrollment = client.enrollment.create_or_update(
        id="sdk-enrollment-1",
        enrollment={
            "registrationId": "sdk-enrollment-1",
            "attestation": {"type": "symmetricKey"},
            "provisioningStatus": "disabled",
        },
    )
    assert enrollment["provisioningStatus"] == "disabled"
    fetched = client.enrollment.get(id="sdk-enrollment-1")
    assert fetched["etag"] == enrollment["etag"]
    assert "primaryKey" not in fetched["attestation"]["symmetricKey"]
    keys = client.enrollment.get_attestation_mechanism(id="sdk-enrollment-1")
    assert keys["symmetricKey"]["primaryKey"]
    enrollments = list(client.enrollment.query(query_specification={"query": "*"}, top=4))
    ids = [e["registrationId"] for e in enrollments]
    expected = [e["registrationId"] for e in sim.state()["dps"][hosts.DPS_HOST]["enrollments"]]
    assert ids == expected and "sdk-enrollment-1" in ids
    client.enrollment.delete(id="sdk-enrollment-1", if_match=fetched["etag"])
    with pytest.raises(ResourceNotFoundError):
        client.enrollment.get(id="sdk-enrollment-1")

    groups = list(client.enrollment_group.query(query_specification={"query": "*"}, top=1))
    group_ids = [g["enrollmentGroupId"] for g in groups]
    assert "grp-sym-01" in group_ids
    group = client.enrollment_group.get(id="grp-sym-01")
    assert group["attestation"]["type"] == "symmetricKey"
    new_group = client.enrollment_group.create_or_update(
        id="sdk-group",
        enrollment_group={
            "enrollmentGroupId": "sdk-group",
            "attestation": {"type": "symmetricKey"},
        },
    )
    assert new_group["enrollmentGroupId"] == "sdk-group"
    client.enrollment_group.delete(id="sdk-group")

    registrations = list(client.device_registration_state.query(id="grp-sym-01", top=2))
    assert registrations and all(r["status"] == "assigned" for r in registrations)
    registration_id = registrations[0]["registrationId"]
    state = client.device_registration_state.get(id=registration_id)
    assert state["assignedHub"] in hosts.LINKED_HUBS
    client.device_registration_state.delete(id=registration_id)
    with pytest.raises(ResourceNotFoundError):
        client.device_registration_state.get(id=registration_id)


def test_served_drop_closes_the_connection_without_an_answer(served):
    sim = served
    sim.set_faults(drop_rate=1)
    with httpx.Client(verify=False) as http, pytest.raises(httpx.TransportError):  # noqa: S501
        http.get(f"https://{hosts.HUB1_HOST}/devices?api-version=2021-04-12")
    assert sim.calls[-1]["fault"] == "drop"


def test_served_simulator_handles_concurrent_workers():
    sim = Simulator(seed=2, devices=40)
    server = serve(sim, "127.0.0.1", 0)
    try:
        token = sas(sim, hosts.HUB1_HOST)
        headers = {"Host": hosts.HUB1_HOST, "Authorization": token}

        def create(n):
            with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
                path = f"/devices/worker-{n}?api-version=2021-04-12"
                created = http.put(path, json={"deviceId": f"worker-{n}"}).status_code
                return created, http.get(path).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(create, range(40)))
        assert results == [(200, 200)] * 40
        devices = {d["deviceId"] for d in sim.state()["hubs"][hosts.HUB1_HOST]["devices"]}
        assert {f"worker-{n}" for n in range(40)} <= devices
        assert len(sim.calls) == 80 and len({c["request_id"] for c in sim.calls}) == 80
    finally:
        server.shutdown()
