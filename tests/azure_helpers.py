"""Helpers for the Azure client tests: targets files, Azure-shaped answers, a scripted transport.

The answers reproduce what the services send (bodies and headers), so the clients are tested
against the wire format rather than against themselves.
"""

import base64
import json
import textwrap

import httpx

from requests_app.azure import AzureClients, RetryPolicy, load_targets

DPS_HOST = "demo-dps.azure-devices-provisioning.net"
HUB_HOST = "demo-hub-1.azure-devices.net"
HUB2_HOST = "demo-hub-2.azure-devices.net"
KEY_B64 = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DPS_CONN = (
    f"HostName={DPS_HOST};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={KEY_B64}"
)
HUB_CONN = f"HostName={HUB_HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY_B64}"


def write_targets(tmp_path, text, name="targets.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def standard_targets(tmp_path, monkeypatch, *, dps_conn=DPS_CONN, hub_conn=HUB_CONN, extra=""):
    """One DPS and one hub with SAS auth (connection strings from the environment)."""
    monkeypatch.setenv("TEST_DPS_CONN", dps_conn)
    monkeypatch.setenv("TEST_HUB_CONN", hub_conn)
    path = write_targets(
        tmp_path,
        f"""
        [[dps]]
        hostname = "{DPS_HOST}"
        auth = "sas"
        connection_string_env = "TEST_DPS_CONN"

        [[hub]]
        hostname = "{HUB_HOST}"
        auth = "sas"
        connection_string_env = "TEST_HUB_CONN"
        """
        + textwrap.dedent(extra),
    )
    return load_targets(path)


def dps_error(status, code, message="Error.", headers=None, tracking="7ff1c1b0-trk"):
    body = {
        "errorCode": code,
        "trackingId": tracking,
        "message": message,
        "timestampUtc": "2024-05-01T10:11:12.1234567Z",
        "info": {},
    }
    return httpx.Response(
        status,
        json=body,
        headers={"x-ms-error-code": str(code), "x-ms-request-id": "req-dps", **(headers or {})},
    )


def hub_error(status, name, message="Error.", headers=None, tracking="A1B2C3D4E5"):
    body = {
        "Message": f"ErrorCode:{name};{message}",
        "ExceptionMessage": f"Tracking ID:{tracking}-G:10-TimeStamp:05/01/2024 10:11:12",
    }
    return httpx.Response(status, json=body, headers={"iothub-errorcode": name, **(headers or {})})


class Scripted:
    """A MockTransport handler answering from a list (a Response, an exception, or a callable)."""

    def __init__(self, *answers, default=None):
        self.answers = list(answers)
        self.default = default
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        if self.answers:
            answer = self.answers.pop(0)
        elif self.default is not None:
            answer = self.default
        else:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        if callable(answer) and not isinstance(answer, httpx.Response):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def transport(self):
        return httpx.MockTransport(self)

    @property
    def bodies(self):
        return [json.loads(r.content) if r.content else None for r in self.requests]


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_clients(targets, handler, *, retry=None, records=None, fake_time=None, **kwargs):
    fake_time = fake_time or FakeTime()
    clients = AzureClients(
        targets,
        transport=handler.transport(),
        on_call=records.append if records is not None else None,
        retry=retry or RetryPolicy(),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,
    )
    return clients, fake_time


def json_response(data, status=200, headers=None):
    return httpx.Response(status, json=data, headers=headers or {})
