"""The targets file: what loads, and every refusal naming the entry and the field."""

import base64

import pytest

from requests_app.azure import Target, Targets, TargetsError, configured_targets, load_targets
from tests.azure_helpers import DPS_CONN, DPS_HOST, HUB2_HOST, HUB_CONN, HUB_HOST, KEY_B64
from tests.azure_helpers import write_targets as write

HUB2_CONN = HUB_CONN.replace(HUB_HOST, HUB2_HOST)


def test_loads_dps_and_hubs_with_every_kind_of_auth(tmp_path, monkeypatch):
    monkeypatch.setenv("DPS_CONN", DPS_CONN)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hub2").write_text(HUB2_CONN + "\n")
    path = write(
        tmp_path,
        f"""
        [[dps]]
        hostname = "{DPS_HOST}"
        auth = "sas"
        connection_string_env = "DPS_CONN"
        endpoint = "http://127.0.0.1:8701/"

        [[hub]]
        hostname = "Demo-Hub-1.azure-devices.net"
        auth = "entra"
        credential = "managed_identity"
        tier = "s3"
        units = 2

        [[hub]]
        hostname = "{HUB2_HOST}"
        auth = "sas"
        connection_string_file = "secrets/hub2"
        rate_scale = 60
        """,
    )
    targets = load_targets(path)
    dps = targets.dps[DPS_HOST]
    assert (dps.kind, dps.auth, dps.endpoint) == ("dps", "sas", "http://127.0.0.1:8701")
    assert dps.base_url == "http://127.0.0.1:8701"
    assert dps.connection.policy == "provisioningserviceowner"
    assert dps.connection.key == base64.b64decode(KEY_B64)
    hub1 = targets.hubs[HUB_HOST]
    assert (hub1.auth, hub1.credential, hub1.tier, hub1.units) == (
        "entra",
        "managed_identity",
        "S3",
        2,
    )
    assert hub1.connection is None and hub1.base_url == f"https://{HUB_HOST}"
    hub2 = targets.hubs[HUB2_HOST]
    assert (hub2.tier, hub2.units, hub2.rate_scale) == ("S1", 1, 60.0)
    assert hub2.connection.hostname == HUB2_HOST
    assert HUB_HOST.upper() in targets and "other-hub.azure-devices.net" not in targets
    assert [t.hostname for t in targets] == [DPS_HOST, HUB_HOST, HUB2_HOST]


def test_keys_never_appear_in_reprs(tmp_path, monkeypatch):
    monkeypatch.setenv("DPS_CONN", DPS_CONN)
    path = write(
        tmp_path,
        f"""
        [[dps]]
        hostname = "{DPS_HOST}"
        auth = "sas"
        connection_string_env = "DPS_CONN"
        """,
    )
    targets = load_targets(path)
    for text in (repr(targets), str(targets), repr(targets.dps[DPS_HOST].connection)):
        assert KEY_B64 not in text
        assert "<hidden>" in text or "connection" not in text


def test_secrets_false_skips_reading_connection_strings(tmp_path):
    path = write(
        tmp_path,
        f"""
        [[hub]]
        hostname = "{HUB_HOST}"
        auth = "sas"
        connection_string_env = "NOT_SET_ANYWHERE_123"
        """,
    )
    with pytest.raises(TargetsError):
        load_targets(path, environ={})
    targets = load_targets(path, secrets=False, environ={})
    assert targets.hubs[HUB_HOST].connection is None


def hub_entry(host=HUB_HOST, **fields):
    lines = [f'hostname = "{host}"']
    fields.setdefault("auth", '"sas"')
    if fields["auth"] == '"sas"':
        fields.setdefault("connection_string_env", '"HUB_CONN"')
    lines += [f"{name} = {value}" for name, value in fields.items() if value is not None]
    return "[[hub]]\n" + "\n".join(lines) + "\n"


REFUSALS = [
    (
        "missing env var",
        hub_entry() + hub_entry(HUB2_HOST, connection_string_env='"IOTHUB2_CONN"'),
        {"HUB_CONN": HUB_CONN},
        f"hub[2] ({HUB2_HOST}): connection_string_env: "
        "environment variable IOTHUB2_CONN is not set",
    ),
    (
        "unreadable file",
        hub_entry(connection_string_env=None, connection_string_file='"nope/secret"'),
        {},
        f"hub[1] ({HUB_HOST}): connection_string_file: cannot read ",
    ),
    (
        "missing part",
        hub_entry(),
        {"HUB_CONN": f"HostName={HUB_HOST};SharedAccessKey={KEY_B64}"},
        f"hub[1] ({HUB_HOST}): connection_string_env: connection string is missing "
        "SharedAccessKeyName",
    ),
    (
        "bad base64",
        hub_entry(),
        {"HUB_CONN": HUB_CONN.replace(KEY_B64, "not*base64!")},
        "SharedAccessKey is not valid base64",
    ),
    (
        "HostName mismatch",
        hub_entry(),
        {"HUB_CONN": HUB2_CONN},
        f"connection_string_env: HostName {HUB2_HOST} does not match the target hostname",
    ),
    (
        "device connection string",
        hub_entry(),
        {"HUB_CONN": HUB_CONN + ";DeviceId=dev1"},
        "unexpected part 'DeviceId'",
    ),
    ("unknown auth", hub_entry(auth='"password"'), {}, 'auth: must be "sas" or "entra"'),
    (
        "hostname outside azure",
        hub_entry("hub.example.com", auth='"entra"'),
        {},
        "hub[1] (hub.example.com): hostname: must end with .azure-devices.net",
    ),
    (
        "dps hostname on a hub suffix",
        f'[[dps]]\nhostname = "{HUB_HOST}"\nauth = "entra"\n',
        {},
        f"dps[1] ({HUB_HOST}): hostname: must end with .azure-devices-provisioning.net",
    ),
    (
        "duplicate",
        hub_entry() + hub_entry(HUB_HOST.upper()),
        {"HUB_CONN": HUB_CONN},
        "hub[2] (demo-hub-1.azure-devices.net): hostname: listed more than once",
    ),
    (
        "unknown field",
        hub_entry(auth='"entra"', sku='"S1"'),
        {},
        f"hub[1] ({HUB_HOST}): sku: unknown field",
    ),
    (
        "tier on a dps",
        f'[[dps]]\nhostname = "{DPS_HOST}"\nauth = "entra"\ntier = "S3"\n',
        {},
        "tier: unknown field",
    ),
    ("bad tier", hub_entry(auth='"entra"', tier='"F1"'), {}, "tier: must be one of S1, S2, S3"),
    ("zero units", hub_entry(auth='"entra"', units="0"), {}, "units: must be a whole number"),
    ("bool units", hub_entry(auth='"entra"', units="true"), {}, "units: must be a whole number"),
    ("bad rate_scale", hub_entry(auth='"entra"', rate_scale="-1"), {}, "rate_scale: must be"),
    ("unknown credential", hub_entry(auth='"entra"', credential='"magic"'), {}, "credential:"),
    ("credential with sas", hub_entry(credential='"azure_cli"'), {}, 'only for auth = "entra"'),
    (
        "both env and file",
        hub_entry(connection_string_file='"x"'),
        {"HUB_CONN": HUB_CONN},
        "needs exactly one of",
    ),
    ("neither env nor file", hub_entry(connection_string_env=None), {}, "needs exactly one of"),
    ("no hostname", '[[hub]]\nauth = "entra"\n', {}, "hub[1]: hostname: required"),
    ("bad endpoint", hub_entry(auth='"entra"', endpoint='"ftp://x"'), {}, "endpoint: must be"),
    ("unknown section", '[[hubs]]\nhostname = "x"\n', {}, "unknown section 'hubs'"),
    ("not toml", "[[hub]\n", {}, "not valid TOML"),
]


@pytest.mark.parametrize(
    ("text", "env", "expected"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_the_entry_and_field(tmp_path, text, env, expected):
    path = write(tmp_path, text)
    with pytest.raises(TargetsError) as caught:
        load_targets(path, environ=env)
    assert expected in str(caught.value)
    assert KEY_B64 not in str(caught.value)


def test_missing_file_is_a_targets_error(tmp_path):
    with pytest.raises(TargetsError, match="cannot read the targets file"):
        load_targets(tmp_path / "absent.toml")


def test_endpoint_allows_a_non_azure_hostname(tmp_path):
    path = write(
        tmp_path,
        '[[hub]]\nhostname = "hub.test"\nauth = "entra"\nendpoint = "http://127.0.0.1:9"\n',
    )
    assert load_targets(path).hubs["hub.test"].endpoint == "http://127.0.0.1:9"


def test_configured_targets_reads_the_setting_lazily(tmp_path, monkeypatch):
    django = pytest.importorskip("django")
    from django.conf import settings
    from django.test import override_settings

    if not settings.configured:
        settings.configure()
    assert django
    monkeypatch.setenv("DPS_CONN", DPS_CONN)
    path = write(
        tmp_path,
        f'[[dps]]\nhostname = "{DPS_HOST}"\nauth = "sas"\nconnection_string_env = "DPS_CONN"\n',
    )
    configured_targets.cache_clear()
    try:
        with override_settings(DSR_AZURE_TARGETS=str(path)):
            targets = configured_targets()
            assert isinstance(targets.dps[DPS_HOST], Target)
            assert configured_targets() is targets
        with override_settings(DSR_AZURE_TARGETS=None):
            assert configured_targets() == Targets()
    finally:
        configured_targets.cache_clear()
