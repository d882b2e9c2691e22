"""DpsClient and IotHubClient against Azure's wire format: auth, errors, retries, paging.

The first part answers through httpx.MockTransport with Azure's exact bodies and headers (the one
allowed seam); the last part runs against the bundled simulator.
"""

import base64
import hashlib
import hmac
import urllib.parse

import httpx
import pytest

from requests_app.azure import (
    AzureClients,
    CallRecord,
    DpsClient,
    IotHubClient,
    NotFound,
    Permanent,
    PreconditionFailed,
    RetryPolicy,
    Throttled,
    Transient,
    Unauthorized,
    UnconfiguredTarget,
    load_targets,
)
from requests_app.azure.auth import EntraAuth, SasAuth, parse_connection_string
from requests_app.azure.http import Timeouts
from tests.azure_helpers import (
    DPS_HOST,
    HUB_CONN,
    HUB_HOST,
    KEY_B64,
    FakeTime,
    Scripted,
    dps_error,
    hub_error,
    json_response,
    make_clients,
    standard_targets,
    write_targets,
)


@pytest.fixture
def targets(tmp_path, monkeypatch):
    return standard_targets(tmp_path, monkeypatch)


# -- requests on the wire ---------------------------------------------------------------------


def test_get_enrollment_sends_sas_api_version_and_parses(targets):
    handler = Scripted(json_response({"registrationId": "reg-1", "etag": "AAA="}))
    clients, _ = make_clients(targets, handler)
    r = clients.dps().get_enrollment("reg-1")
    assert r.found and r.status == 200 and r.data["registrationId"] == "reg-1"
    assert r.attempts == 1 and r.ambiguous is False
    request = handler.requests[0]
    assert request.method == "GET"
    assert str(request.url) == f"https://{DPS_HOST}/enrollments/reg-1?api-version=2021-10-01"
    assert request.headers["host"] == DPS_HOST
    token = request.headers["authorization"]
    assert token.startswith("SharedAccessSignature sr=")
    fields = dict(part.split("=", 1) for part in token.split(" ", 1)[1].split("&"))
    assert fields["sr"] == DPS_HOST and fields["skn"] == "provisioningserviceowner"
    signed = f"{urllib.parse.quote(DPS_HOST, safe='')}\n{fields['se']}".encode()
    digest = hmac.new(base64.b64decode(KEY_B64), signed, hashlib.sha256).digest()
    assert urllib.parse.unquote(fields["sig"]) == base64.b64encode(digest).decode()


def test_endpoint_override_sends_the_target_host_header(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_CONN", HUB_CONN)
    path = write_targets(
        tmp_path,
        f"""
        [[hub]]
        hostname = "{HUB_HOST}"
        endpoint = "http://127.0.0.1:8701"
        auth = "sas"
        connection_string_env = "HUB_CONN"
        """,
        name="local.toml",
    )
    targets = load_targets(path)
    handler = Scripted(json_response({"deviceId": "d1"}))
    clients, _ = make_clients(targets, handler)
    clients.hub(HUB_HOST).get_device("d1")
    request = handler.requests[0]
    assert str(request.url) == "http://127.0.0.1:8701/devices/d1?api-version=2021-04-12"
    assert request.headers["host"] == HUB_HOST


def test_identifiers_are_percent_encoded(targets):
    handler = Scripted(default=json_response({}))
    clients, _ = make_clients(targets, handler)
    clients.hub(HUB_HOST).get_module_twin("dev/1#x?y", "m 1")
    assert handler.requests[0].url.raw_path == (
        b"/twins/dev%2F1%23x%3Fy/modules/m%201?api-version=2021-04-12"
    )


def test_every_hub_and_dps_operation_hits_the_documented_path(targets):
    handler = Scripted(default=httpx.Response(204))
    clients, _ = make_clients(targets, handler)
    dps, hub = clients.dps(), clients.hub(HUB_HOST)
    dps.get_enrollment_group("g1")
    dps.get_registration("r1")
    dps.delete_enrollment("r1")
    dps.delete_registration("r1", etag="abc")
    dps.create_or_update_enrollment({"registrationId": "r1", "provisioningStatus": "disabled"})
    hub.get_device("d")
    hub.get_twin("d")
    hub.list_modules("d")
    hub.get_module("d", "m")
    hub.get_module_twin("d", "m")
    hub.delete_module("d", "m")
    hub.delete_device("d")
    seen = [(r.method, r.url.path, r.headers.get("if-match")) for r in handler.requests]
    assert seen == [
        ("GET", "/enrollmentGroups/g1", None),
        ("GET", "/registrations/r1", None),
        ("DELETE", "/enrollments/r1", "*"),
        ("DELETE", "/registrations/r1", "abc"),
        ("PUT", "/enrollments/r1", None),
        ("GET", "/devices/d", None),
        ("GET", "/twins/d", None),
        ("GET", "/devices/d/modules", None),
        ("GET", "/devices/d/modules/m", None),
        ("GET", "/twins/d/modules/m", None),
        ("DELETE", "/devices/d/modules/m", '"*"'),
        ("DELETE", "/devices/d", '"*"'),
    ]
    assert handler.bodies[4] == {"registrationId": "r1", "provisioningStatus": "disabled"}
    assert handler.requests[4].headers["content-type"].startswith("application/json")


def test_explicit_timeouts_reach_httpx(targets):
    handler = Scripted(json_response({}))
    retry = RetryPolicy(timeouts=Timeouts(connect=1, read=2, write=3, pool=4))
    clients, _ = make_clients(targets, handler, retry=retry)
    clients.dps().get_registration("r")
    assert handler.requests[0].extensions["timeout"] == {
        "connect": 1,
        "read": 2,
        "write": 3,
        "pool": 4,
    }
    assert RetryPolicy().timeouts == Timeouts(connect=5, read=20, write=20, pool=5)


def test_worst_case_is_the_budget_plus_one_attempt():
    assert RetryPolicy().worst_case_seconds() == 90 + 5 + 5 + 20 + 20
    short = RetryPolicy(budget_seconds=10, timeouts=Timeouts(1, 2, 3, 4))
    assert short.worst_case_seconds() == 20


# -- 404 and error parsing --------------------------------------------------------------------


def test_dps_404_is_a_response_not_an_error(targets):
    handler = Scripted(dps_error(404, 404201, "Enrollment not found.", tracking="trk-1"))
    records = []
    clients, _ = make_clients(targets, handler, records=records)
    r = clients.dps().get_enrollment("nobody")
    assert not r.found and r.data is None
    assert (r.error_code, r.tracking_id, r.request_id) == ("404201", "trk-1", "req-dps")
    assert records[0].outcome == "not_found" and records[0].error_code == "404201"


def test_hub_404_parses_code_and_tracking_id(targets):
    handler = Scripted(
        hub_error(404, "DeviceNotFound", "Device d1 not registered", tracking="F00D")
    )
    clients, _ = make_clients(targets, handler)
    r = clients.hub(HUB_HOST).delete_device("d1")
    assert not r.found
    assert (r.error_code, r.tracking_id) == ("DeviceNotFound", "F00D")


def test_hub_code_parsed_from_the_message_when_the_header_is_missing(targets):
    body = {
        "Message": "ErrorCode:PreconditionFailed;Precondition failed: etag mismatch",
        "ExceptionMessage": "Tracking ID:abc123-G:4-TimeStamp:05/01/2024 10:11:12",
    }
    handler = Scripted(httpx.Response(412, json=body))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(PreconditionFailed) as caught:
        clients.hub(HUB_HOST).delete_device("d1", etag="old")
    error = caught.value
    assert (error.status, error.error_code, error.tracking_id) == (
        412,
        "PreconditionFailed",
        "abc123",
    )
    assert error.message == "Precondition failed: etag mismatch"
    assert error.permanent and len(handler.requests) == 1
    assert handler.requests[0].headers["if-match"] == '"old"'


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (dps_error(401, 401002, "Unauthorized"), Unauthorized, "401002"),
        (hub_error(403, "IotHubQuotaExceeded"), Unauthorized, "IotHubQuotaExceeded"),
        (dps_error(400, 400004, "Bad request"), Permanent, "400004"),
        (hub_error(409, "DeviceAlreadyExists"), Permanent, "DeviceAlreadyExists"),
        (httpx.Response(400, text="<html>proxy says no</html>"), Permanent, None),
    ],
)
def test_4xx_raise_the_typed_error_without_retrying(targets, answer, kind, code):
    handler = Scripted(answer, default=json_response({}))
    clients, fake = make_clients(targets, handler)
    with pytest.raises(kind) as caught:
        clients.dps().get_enrollment("reg")
    assert caught.value.error_code == code and caught.value.permanent
    assert len(handler.requests) == 1 and fake.sleeps == []


def test_a_bare_404_is_not_taken_for_already_absent(targets):
    handler = Scripted(httpx.Response(404, text="<html>no such site</html>"))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(NotFound) as caught:
        clients.hub(HUB_HOST).delete_device("d")
    assert caught.value.permanent


def test_404_on_a_put_raises_not_found(targets):
    handler = Scripted(dps_error(404, 404000, "No route"))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(NotFound):
        clients.dps().create_or_update_enrollment({"registrationId": "r"})


def test_non_json_success_body_is_permanent(targets):
    handler = Scripted(httpx.Response(200, text="<html>login</html>"))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(Permanent, match="not JSON"):
        clients.dps().get_enrollment("r")


def test_unauthorized_renews_the_cached_token(targets):
    handler = Scripted(dps_error(401, 401002), json_response({}))
    clients, fake = make_clients(targets, handler)
    dps = clients.dps()
    with pytest.raises(Unauthorized):
        dps.get_enrollment("r")
    fake.now += 1  # a new token is signed (a new expiry); the policy key is the same
    dps.get_enrollment("r")
    assert len(handler.requests) == 2


@pytest.mark.parametrize(
    ("status", "headers", "content", "expected"),
    [
        (
            404,
            {},
            b'{"errorCode": 404202, "trackingId": "t", "message": "m"}',
            ("404202", "t", "m"),
        ),
        (
            404,
            {},
            b'{"Message": "{\\"errorCode\\": 404001, \\"message\\": \\"gone\\"}"}',
            ("404001", None, "gone"),
        ),
        (
            404,
            {"iothub-errorcode": "ModuleNotFound"},
            b'{"Message": "ErrorCode:ModuleNotFound;Module m not found",'
            b' "ExceptionMessage": "Tracking ID:abc-def-G:3-TimeStamp:05/01/2024 10:11:12"}',
            ("ModuleNotFound", "abc-def", "Module m not found"),
        ),
        (502, {}, b"<html>\n Bad   Gateway </html>", (None, None, "<html> Bad Gateway </html>")),
        (503, {}, b"\xff\xfe", (None, None, "\ufffd\ufffd")),
        (500, {}, b"", (None, None, None)),
    ],
)
def test_error_bodies_of_every_shape(status, headers, content, expected):
    from requests_app.azure.errors import parse_error_body

    assert parse_error_body(content, httpx.Headers(headers)) == expected


def test_retry_after_date_form_is_ignored_for_backoff(targets):
    answer = dps_error(429, 429001, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    handler = Scripted(answer, json_response({}))
    clients, fake = make_clients(targets, handler)
    clients.dps().get_enrollment("r")
    assert len(fake.sleeps) == 1 and 0 <= fake.sleeps[0] <= 0.5


def test_local_pacing_past_its_maximum_wait_raises_throttled(targets):
    handler = Scripted(default=json_response([]))
    retry = RetryPolicy(pacing_max_wait=1.0)
    clients, fake = make_clients(targets, handler, retry=retry)
    hub = clients.hub(HUB_HOST)
    assert list(hub.query("SELECT * FROM devices")) == []  # the one-token burst
    with pytest.raises(Throttled) as caught:
        list(hub.query("SELECT * FROM devices"))  # S1 queries: next token in 3 s
    assert caught.value.status is None and caught.value.retry_after == pytest.approx(3.0)
    assert len(handler.requests) == 1 and not caught.value.permanent
    fake.now += 3
    assert list(hub.query("SELECT * FROM devices")) == []


# -- retries ----------------------------------------------------------------------------------


def test_503_then_success_is_retried_with_jittered_backoff(targets):
    handler = Scripted(dps_error(503, 503001), hub_error(500, "ServerError"), json_response({}))
    records = []
    clients, fake = make_clients(targets, handler, records=records)
    r = clients.dps().get_registration("r")
    assert r.status == 200 and r.attempts == 3 and not r.ambiguous
    assert [rec.outcome for rec in records] == ["retry", "retry", "ok"]
    assert [rec.attempt for rec in records] == [1, 2, 3]
    assert 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[1] <= 1.0


def test_retry_after_seconds_is_honoured(targets):
    handler = Scripted(
        hub_error(429, "ThrottlingException", headers={"Retry-After": "7"}),
        json_response({"deviceId": "d"}),
    )
    clients, fake = make_clients(targets, handler)
    r = clients.hub(HUB_HOST).get_device("d")
    assert r.attempts == 2 and fake.sleeps == [7.0]


def test_throttled_until_max_attempts_raises_throttled(targets):
    handler = Scripted(default=dps_error(429, 429001, headers={"Retry-After": "1"}))
    records = []
    clients, fake = make_clients(targets, handler, records=records)
    with pytest.raises(Throttled) as caught:
        clients.dps().get_enrollment("r")
    assert len(handler.requests) == 6 and fake.sleeps == [1.0] * 5
    error = caught.value
    assert error.retry_after == 1.0 and error.attempts == 6 and not error.permanent
    assert error.error_code == "429001" and error.status == 429
    assert [r.outcome for r in records] == ["retry"] * 5 + ["error"]


def test_retry_after_beyond_the_budget_gives_up_at_once(targets):
    handler = Scripted(
        default=hub_error(429, "ThrottlingException", headers={"Retry-After": "120"})
    )
    clients, fake = make_clients(targets, handler)
    with pytest.raises(Throttled) as caught:
        clients.hub(HUB_HOST).get_device("d")
    assert len(handler.requests) == 1 and fake.sleeps == []
    assert caught.value.retry_after == 120


def test_time_budget_bounds_the_retries(targets):
    def slow_503(request):
        fake.now += 20  # each attempt takes 20 s before the service answers 503
        return dps_error(503, 503001)

    fake = FakeTime()
    handler = Scripted(default=slow_503)
    clients, _ = make_clients(targets, handler, fake_time=fake)
    started = fake.now
    with pytest.raises(Transient):
        clients.dps().get_enrollment("r")
    assert len(handler.requests) < 6
    assert fake.now - started <= RetryPolicy().worst_case_seconds()


def test_timeout_then_success_is_ambiguous(targets):
    handler = Scripted(httpx.ReadTimeout("timed out"), httpx.Response(204))
    records = []
    clients, _ = make_clients(targets, handler, records=records)
    r = clients.hub(HUB_HOST).delete_device("d")
    assert r.status == 204 and r.attempts == 2 and r.ambiguous
    assert records[0].status is None and records[0].outcome == "retry"


def test_connect_timeout_is_not_ambiguous(targets):
    handler = Scripted(httpx.ConnectTimeout("timed out"), httpx.Response(204))
    clients, _ = make_clients(targets, handler)
    r = clients.dps().delete_enrollment("r")
    assert r.attempts == 2 and not r.ambiguous


def test_dropped_connections_exhaust_into_transient(targets):
    handler = Scripted(default=httpx.RemoteProtocolError("Server disconnected"))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(Transient) as caught:
        clients.dps().delete_registration("r")
    error = caught.value
    assert error.status is None and error.attempts == 6 and error.ambiguous
    assert not error.permanent and "RemoteProtocolError" in error.message


def test_non_json_5xx_body_is_tolerated(targets):
    handler = Scripted(
        httpx.Response(502, text="<html>Bad Gateway</html>"), json_response({"ok": True})
    )
    clients, _ = make_clients(targets, handler)
    assert clients.dps().get_registration("r").data == {"ok": True}


def test_501_is_not_retried(targets):
    handler = Scripted(httpx.Response(501, text=""))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(Transient):
        clients.dps().get_registration("r")
    assert len(handler.requests) == 1


# -- observability ----------------------------------------------------------------------------


def test_call_records_carry_no_query_string_or_secrets(targets):
    handler = Scripted(
        hub_error(503, "ServiceUnavailable", headers={"x-ms-request-id": "rq-1"}),
        json_response({"authentication": {"symmetricKey": {"primaryKey": "SECRET"}}}),
    )
    records = []
    clients, _ = make_clients(targets, handler, records=records)
    clients.hub(HUB_HOST).get_device("d1")
    first = records[0]
    assert isinstance(first, CallRecord)
    assert (first.method, first.host, first.path) == ("GET", HUB_HOST, "/devices/d1")
    assert (first.status, first.request_id, first.error_code) == (503, "rq-1", "ServiceUnavailable")
    assert first.tracking_id == "A1B2C3D4E5" and first.attempt == 1
    text = repr(records)
    assert "api-version" not in text and "SECRET" not in text and "Signature" not in text


def test_a_failing_hook_does_not_fail_the_call(targets):
    def hook(record):
        raise RuntimeError("audit down")

    handler = Scripted(json_response({}))
    clients = AzureClients(targets, transport=handler.transport(), on_call=hook)
    assert clients.dps().get_enrollment("r").status == 200


# -- paging -----------------------------------------------------------------------------------


def test_paging_follows_continuation_through_short_and_empty_pages(targets):
    handler = Scripted(
        json_response([{"n": 1}, {"n": 2}], headers={"x-ms-continuation": "t1"}),
        json_response([{"n": 3}], headers={"x-ms-continuation": "t2"}),  # short page, not the end
        json_response([], headers={"x-ms-continuation": "t3"}),  # empty page, still not the end
        json_response([{"n": 4}]),
    )
    clients, _ = make_clients(targets, handler)
    items = list(clients.dps().query_enrollment_groups(page_size=2))
    assert [i["n"] for i in items] == [1, 2, 3, 4]
    assert [r.headers.get("x-ms-continuation") for r in handler.requests] == [
        None,
        "t1",
        "t2",
        "t3",
    ]
    assert {r.headers["x-ms-max-item-count"] for r in handler.requests} == {"2"}
    assert handler.bodies == [{"query": "SELECT *"}] * 4
    assert {r.url.path for r in handler.requests} == {"/enrollmentGroups/query"}


def test_group_registrations_and_hub_queries(targets):
    handler = Scripted(
        json_response([{"registrationId": "a"}], headers={"x-ms-continuation": "c"}),
        json_response([{"registrationId": "b"}]),
        json_response([{"deviceId": "d"}]),
    )
    clients, _ = make_clients(targets, handler)
    regs = list(clients.dps().query_group_registrations("grp 1", page_size=1))
    assert [r["registrationId"] for r in regs] == ["a", "b"]
    assert handler.requests[0].url.raw_path.startswith(b"/registrations/grp%201/query?")
    devices = list(clients.hub(HUB_HOST).query("SELECT * FROM devices WHERE deviceId = 'd'"))
    assert devices == [{"deviceId": "d"}]
    assert handler.bodies[2] == {"query": "SELECT * FROM devices WHERE deviceId = 'd'"}
    assert handler.requests[2].url.path == "/devices/query"


def test_a_page_that_is_not_an_array_is_permanent(targets):
    handler = Scripted(json_response({"value": []}))
    clients, _ = make_clients(targets, handler)
    with pytest.raises(Permanent, match="not a JSON array"):
        list(clients.dps().query_enrollments())


def test_a_failing_page_is_retried_mid_iteration(targets):
    handler = Scripted(
        json_response([1], headers={"x-ms-continuation": "t1"}),
        dps_error(503, 503001),
        json_response([2]),
    )
    clients, _ = make_clients(targets, handler)
    assert list(clients.dps().query_enrollments(page_size=1)) == [1, 2]
    assert handler.requests[2].headers["x-ms-continuation"] == "t1"


# -- which hosts may be called ----------------------------------------------------------------


def test_unconfigured_hosts_are_refused_without_a_call(targets):
    handler = Scripted()
    clients, _ = make_clients(targets, handler)
    for host in ("other-hub.azure-devices.net", "", None, "169.254.169.254"):
        with pytest.raises(UnconfiguredTarget):
            clients.for_host(host)
    with pytest.raises(UnconfiguredTarget):
        clients.hub(DPS_HOST)
    with pytest.raises(UnconfiguredTarget):
        clients.dps(HUB_HOST)
    assert handler.requests == []
    assert isinstance(clients.for_host(HUB_HOST.upper()), IotHubClient)
    assert isinstance(clients.for_host(DPS_HOST), DpsClient)
    assert clients.hub(HUB_HOST) is clients.hub(HUB_HOST)
    assert clients.is_configured(HUB_HOST) and not clients.is_configured("x.azure-devices.net")
    assert UnconfiguredTarget("x").permanent


# -- auth token caching -----------------------------------------------------------------------


def test_sas_token_is_cached_and_renewed_before_expiry():
    now = [1_000_000.0]
    auth = SasAuth(HUB_HOST, parse_connection_string(HUB_CONN), ttl=3600, clock=lambda: now[0])
    first = auth.header()
    now[0] += 3000
    assert auth.header() == first
    now[0] += 400  # less than five minutes left: renew
    second = auth.header()
    assert second != first and f"se={int(now[0]) + 3600}" in second
    assert KEY_B64 not in repr(auth)


class FakeCredential:
    def __init__(self, lifetime=3600, prefix="tok"):
        self.calls = []
        self.prefix = prefix
        self.lifetime = lifetime
        self.now = 1_000_000.0

    def get_token(self, *scopes):
        from azure.core.credentials import AccessToken

        self.calls.append(scopes)
        return AccessToken(f"{self.prefix}{len(self.calls)}", int(self.now + self.lifetime))


def test_entra_token_is_cached_until_near_expiry():
    credential = FakeCredential()
    auth = EntraAuth("https://iothubs.azure.net/.default", credential, clock=lambda: credential.now)
    assert auth.header() == "Bearer tok1"
    credential.now += 3000
    assert auth.header() == "Bearer tok1"
    credential.now += 400
    assert auth.header() == "Bearer tok2"
    assert credential.calls == [("https://iothubs.azure.net/.default",)] * 2


def test_entra_targets_use_the_right_scope(tmp_path):
    path = write_targets(
        tmp_path,
        f"""
        [[dps]]
        hostname = "{DPS_HOST}"
        auth = "entra"
        [[hub]]
        hostname = "{HUB_HOST}"
        auth = "entra"
        credential = "azure_cli"
        """,
    )
    credential = FakeCredential()
    handler = Scripted(default=json_response({}))
    clients, _ = make_clients(load_targets(path), handler, credential=credential)
    clients.dps().get_enrollment("r")
    clients.hub(HUB_HOST).get_device("d")
    assert [r.headers["authorization"] for r in handler.requests] == ["Bearer tok1", "Bearer tok2"]
    assert credential.calls == [
        ("https://azure-devices-provisioning.net/.default",),
        ("https://iothubs.azure.net/.default",),
    ]


# -- against the simulator ----------------------------------------------------------------------

try:
    from simulator import app as sim_app
except ImportError:  # built by another engineer; these tests skip until it is there
    sim_app = None
HUB2 = "demo-hub-2.azure-devices.net"


def sim_targets(tmp_path, sim, *, hub_conn=None, extra_hub="", endpoint=None):
    """A targets file for the demo DPS and both demo hubs, connection strings in files."""
    blocks = []
    for section, host in (("dps", DPS_HOST), ("hub", HUB_HOST), ("hub", HUB2)):
        secret = tmp_path / f"{host.split('.')[0]}.connstr"
        conn = hub_conn if (hub_conn and host == HUB_HOST) else sim.connection_string(host)
        secret.write_text(conn + "\n")
        lines = [f"[[{section}]]", f'hostname = "{host}"', 'auth = "sas"']
        lines.append(f'connection_string_file = "{secret.name}"')
        if endpoint:
            lines.append(f'endpoint = "{endpoint}"')
        if section == "hub":
            lines.append(extra_hub)
        blocks.append("\n".join(lines))
    return load_targets(write_targets(tmp_path, "\n\n".join(blocks)))


@pytest.fixture
def sim_time():
    if sim_app is None:
        pytest.skip("the simulator is not available")
    return FakeTime()


@pytest.fixture
def sim(sim_time):
    return sim_app.Simulator(seed=1, devices=20, sleep=sim_time.sleep, clock=sim_time.clock)


def sim_clients(targets, sim, fake, **kwargs):
    return AzureClients(
        targets,
        transport=httpx.WSGITransport(app=sim),
        sleep=fake.sleep,
        clock=fake.clock,
        **kwargs,
    )


def test_sim_export_reads_for_an_individual_device(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    device_id = sim.samples()["with_modules"][0]
    dps = clients.dps()
    enrollment = dps.get_enrollment(device_id)
    assert enrollment.found and enrollment.data["registrationId"] == device_id
    assert enrollment.request_id
    registration = dps.get_registration(device_id)
    hub = clients.for_host(registration.data["assignedHub"])
    device = hub.get_device(registration.data["deviceId"])
    assert device.found and device.data["deviceId"] == device_id
    assert hub.get_twin(device_id).data["deviceId"] == device_id
    modules = hub.list_modules(device_id)
    assert isinstance(modules.data, list) and modules.data
    for module in modules.data:
        twin = hub.get_module_twin(device_id, module["moduleId"])
        assert twin.data["moduleId"] == module["moduleId"]
        assert hub.get_module(device_id, module["moduleId"]).found


def test_sim_404s_are_not_found_responses(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    hub_only = sim.samples()["hub_only"][0]
    assert not clients.dps().get_enrollment(hub_only).found
    missing = clients.dps().get_registration("no-such-device")
    assert not missing.found and missing.error_code and missing.tracking_id
    missing = clients.hub(HUB_HOST).get_device("no-such-device")
    assert (missing.found, missing.error_code) == (False, "DeviceNotFound")
    assert missing.tracking_id


def test_sim_erasure_order_then_verify_absent(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    device_id = sim.samples()["with_modules"][0]
    dps = clients.dps()
    hub = clients.for_host(dps.get_registration(device_id).data["assignedHub"])
    assert dps.delete_enrollment(device_id).found
    # Deleting an individual enrollment removes its registration record too, as Azure does.
    assert dps.delete_registration(device_id).status in (204, 404)
    for module in hub.list_modules(device_id).data:
        assert hub.delete_module(device_id, module["moduleId"]).found
    assert hub.delete_device(device_id).found
    assert not hub.get_device(device_id).found
    assert not hub.get_twin(device_id).found
    assert not dps.get_enrollment(device_id).found
    assert not dps.get_registration(device_id).found
    again = hub.delete_device(device_id)  # a repeated delete meets 404: already absent
    assert not again.found


def test_sim_stale_etag_is_precondition_failed(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    device_id = sim.samples()["hub_only"][0]
    hub = next(
        c for c in (clients.hub(HUB_HOST), clients.hub(HUB2)) if c.get_device(device_id).found
    )
    with pytest.raises(PreconditionFailed):
        hub.delete_device(device_id, etag="not-the-etag")


def test_sim_disabled_enrollment_for_a_group_device(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    device_id = sim.samples()["group_provisioned"][0]
    dps = clients.dps()
    assert not dps.get_enrollment(device_id).found
    body = {
        "registrationId": device_id,
        "provisioningStatus": "disabled",
        "attestation": {"type": "symmetricKey"},
    }
    created = dps.create_or_update_enrollment(body)
    assert created.status in (200, 201)
    assert dps.get_enrollment(device_id).data["provisioningStatus"] == "disabled"


def test_sim_paging_reaches_the_end(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    state = sim.state()
    dps_state = state["dps"][DPS_HOST]
    dps = clients.dps()
    groups = list(dps.query_enrollment_groups(page_size=1))
    assert len(groups) == len(dps_state["enrollmentGroups"])
    enrollments = list(dps.query_enrollments(page_size=5))
    assert sorted(e["registrationId"] for e in enrollments) == sorted(
        e["registrationId"] for e in dps_state["enrollments"]
    )
    for group in sim.samples()["enrollment_groups"]:
        expected = {
            r["registrationId"]
            for r in dps_state["registrations"]
            if r["enrollmentGroupId"] == group
        }
        found = {r["registrationId"] for r in dps.query_group_registrations(group, page_size=2)}
        assert found == expected and found
    for host in (HUB_HOST, HUB2):
        devices = list(clients.hub(host).query("SELECT * FROM devices", page_size=2))
        assert len(devices) == len(state["hubs"][host]["devices"])


def test_sim_other_hub_is_never_called(tmp_path, sim, sim_time):
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time)
    device_id = sim.samples()["other_hub"][0]
    registration = clients.dps().get_registration(device_id)
    assert registration.data["assignedHub"] == "other-hub.azure-devices.net"
    before = len(sim.calls)
    with pytest.raises(UnconfiguredTarget):
        clients.for_host(registration.data["assignedHub"])
    assert len(sim.calls) == before


def test_sim_rejects_a_wrong_key(tmp_path, sim, sim_time):
    wrong = f"HostName={HUB_HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY_B64}"
    records = []
    clients = sim_clients(
        sim_targets(tmp_path, sim, hub_conn=wrong), sim, sim_time, on_call=records.append
    )
    with pytest.raises(Unauthorized) as caught:
        clients.hub(HUB_HOST).get_device(sim.samples()["hub_only"][0])
    assert caught.value.status == 401 and caught.value.attempts == 1
    assert records[-1].outcome == "error" and records[-1].status == 401


def test_sim_accepts_entra_tokens(tmp_path, sim_time):
    sim = sim_app.Simulator(seed=1, devices=10, entra_token="tok1", clock=sim_time.clock)
    path = write_targets(tmp_path, f'[[hub]]\nhostname = "{HUB_HOST}"\nauth = "entra"\n')
    credential = FakeCredential()
    clients = sim_clients(load_targets(path), sim, sim_time, credential=credential)
    assert list(clients.hub(HUB_HOST).query("SELECT * FROM devices"))
    stranger = FakeCredential(prefix="other")  # a token the simulator does not know
    clients = sim_clients(load_targets(path), sim, sim_time, credential=stranger)
    with pytest.raises(Unauthorized):
        clients.hub(HUB_HOST).get_device("x")


def test_sim_throttled_calls_are_retried_after_retry_after(tmp_path, sim, sim_time):
    sim.set_faults(throttle_scale=1.0, retry_after=True)
    records = []
    # The client paces 1000x faster than the simulator throttles, so it meets 429s.
    targets = sim_targets(tmp_path, sim, extra_hub="rate_scale = 1000")
    clients = sim_clients(targets, sim, sim_time, on_call=records.append)
    hub = clients.hub(HUB_HOST)
    for _ in range(6):
        assert list(hub.query("SELECT * FROM devices", page_size=100))
    throttled = [r for r in records if r.status == 429]
    assert throttled and all(r.outcome == "retry" for r in throttled)
    assert all(r.error_code == "ThrottlingException" for r in throttled)
    assert sim_time.sleeps and all(s >= 1 for s in sim_time.sleeps)


def test_sim_pacing_keeps_under_the_throttle(tmp_path, sim, sim_time):
    sim.set_faults(throttle_scale=1.0, retry_after=True)
    records = []
    clients = sim_clients(sim_targets(tmp_path, sim), sim, sim_time, on_call=records.append)
    hub = clients.hub(HUB_HOST)
    started = sim_time.now
    for _ in range(15):
        hub.get_device("anything")
    assert {r.status for r in records} == {404}
    # 100/min on S1 with a burst of one: 14 waits of 0.6 s.
    assert sim_time.now - started == pytest.approx(14 * 0.6)


def test_sim_faults_are_retried_to_success(tmp_path, sim, sim_time):
    sim.set_faults(error_rate=0.3, drop_rate=0.1)
    records = []
    retry = RetryPolicy(max_attempts=10)
    clients = sim_clients(
        sim_targets(tmp_path, sim), sim, sim_time, on_call=records.append, retry=retry
    )
    dps = clients.dps()
    ids = sim.samples()["individual_symmetric"]
    for device_id in ids:
        assert dps.get_enrollment(device_id).found
    assert len(list(dps.query_enrollments(page_size=2))) == 12
    outcomes = {(r.status, r.outcome) for r in records}
    assert (None, "retry") in outcomes and any(s in (500, 503) for s, _ in outcomes)


def test_sim_served_over_http_with_its_targets_file(tmp_path, sim_time):
    from simulator.server import serve
    from simulator.targets import write_targets as sim_write_targets

    sim = sim_app.Simulator(seed=1, devices=10)
    server = serve(sim, "127.0.0.1", 0)
    try:
        path = sim_write_targets(sim, tmp_path / "targets.toml", server.url)
        with AzureClients(load_targets(path)) as clients:
            dps = clients.dps()
            assert len(list(dps.query_enrollments(page_size=3))) == len(
                sim.state()["dps"][DPS_HOST]["enrollments"]
            )
            device_id = sim.samples()["individual_symmetric"][0]
            hub = clients.for_host(dps.get_registration(device_id).data["assignedHub"])
            assert hub.get_device(device_id).found
    finally:
        server.shutdown()
