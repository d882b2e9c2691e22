"""The simulated IoT Hub's query language (``simulator/query.py``) over real HTTP: the simulator
served on a socket, each request addressed to a hub by its Host header as Azure's are."""

import contextlib

import httpx
import pytest

from simulator import hosts
from simulator.app import Simulator
from simulator.server import serve
from tests.simulator_helpers import DPS_API, HUB_API, client, query_all, sas

HUB = hosts.HUB1_HOST
HUB2 = hosts.HUB2_HOST
OTHER = hosts.OTHER_HUB_HOST
ABSENT = object()
# Customer 4711 owns devices 55 to 59 (seed.customer_id); with seed 1, device 56 was never
# provisioned and device 59 records its owner in a reported property only.
CUSTOMER_4711 = {
    HUB: {"valve-00100055", "gateway-00100058"},
    HUB2: {"valve-00100059"},
    OTHER: {"meter-00100057"},
}


@pytest.fixture
def sim():
    return Simulator(seed=1, devices=60)


@contextlib.contextmanager
def served(sim, host=HUB):
    """An HTTP client for ``host`` on the simulator served on a socket of its own."""
    server = serve(sim, "127.0.0.1", 0)
    headers = {"Host": host, "Authorization": sas(sim, host)}
    params = DPS_API if host == hosts.DPS_HOST else HUB_API
    try:
        with httpx.Client(base_url=server.url, headers=headers, params=params, timeout=30) as http:
            yield http
    finally:
        server.shutdown()


def ask(http, text, page_size=1000):
    """Every answer to the query ``text``, followed to the end; and the item types seen."""
    items, _, types = query_all(http, "/devices/query", {"query": text}, page_size)
    return items, types


def ids(items):
    return {item["deviceId"] for item in items}


def value_at(document, path):
    for step in path.split("."):
        if not isinstance(document, dict) or step not in document:
            return ABSENT
        document = document[step]
    return document


def twins(sim, host=HUB):
    return sim.state()["hubs"][host]["twins"]


def literal(value):
    """``value`` as a query string literal, escaped as the language documents it."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def assert_query_error(response, *fragments):
    assert response.status_code == 400, response.text
    assert response.headers["iothub-errorcode"] == "ArgumentInvalid"
    body = response.json()
    assert set(body) == {"Message", "ExceptionMessage"}
    assert body["Message"].startswith("ErrorCode:ArgumentInvalid;")
    assert body["ExceptionMessage"].startswith("Tracking ID:")
    for fragment in fragments:
        assert fragment in body["Message"], body["Message"]


# -- the seeded owner tags ------------------------------------------------------------------


def test_customer_4711_is_found_on_every_hub_only_by_searching_both_owner_paths(sim):
    found = {}
    for host in CUSTOMER_4711:
        with served(sim, host) as hub:
            both = "tags.customerId = '4711' OR properties.reported.ownerRef = '4711'"
            found[host] = ids(ask(hub, f"SELECT * FROM devices WHERE {both}")[0])
            tags_only = ids(ask(hub, "SELECT * FROM devices WHERE tags.customerId = '4711'")[0])
            assert tags_only == found[host] - {"valve-00100059"}
    assert found == CUSTOMER_4711
    with served(sim, HUB2) as hub:
        reported = "SELECT * FROM devices WHERE properties.reported.ownerRef = '4711'"
        twin = ask(hub, reported)[0][0]
    assert twin["deviceId"] == "valve-00100059" and "customerId" not in twin["tags"]


def test_individual_enrollments_carry_the_customer_in_their_initial_twin(sim):
    with served(sim, hosts.DPS_HOST) as dps:
        listed = dps.post("/enrollments/query", json={"query": "*"}).json()
        owners = {e["registrationId"] for e in listed if "customerId" in e["initialTwin"]["tags"]}
        assert owners == {e["registrationId"] for e in listed}
        of_4711 = {
            e["registrationId"]
            for e in listed
            if e["initialTwin"] == {"tags": {"customerId": "4711"}, "properties": {"desired": {}}}
        }
        assert of_4711 == {"thermostat-00100056", "meter-00100057", "gateway-00100058"}
        one = dps.get("/enrollments/thermostat-00100056").json()
        assert one["initialTwin"]["tags"] == {"customerId": "4711"}


# -- WHERE ----------------------------------------------------------------------------------


def _customer(twin):
    return value_at(twin, "tags.customerId")


def _reported(twin, name):
    return value_at(twin, f"properties.reported.{name}")


WHERE_CASES = [
    ("tags.customerId = '4703'", lambda t: _customer(t) == "4703"),
    ("tags.customerId IN ['4701', '4711', 'nobody']", lambda t: _customer(t) in ("4701", "4711")),
    (
        "tags.customerId NIN ['4701', '4711']",
        lambda t: _customer(t) not in (ABSENT, "4701", "4711"),
    ),
    ("IS_DEFINED(properties.reported.ownerRef)", lambda t: _customer(t) is ABSENT),
    ("NOT IS_DEFINED(tags.customerId)", lambda t: _customer(t) is ABSENT),
    # Undefined stays undefined under NOT: a twin without the tag matches neither way.
    (
        "NOT (tags.customerId = '4701' OR tags.customerId = '4702')",
        lambda t: _customer(t) not in (ABSENT, "4701", "4702"),
    ),
    ("tags.customerId != '4701'", lambda t: _customer(t) not in (ABSENT, "4701")),
    (
        "status = 'enabled' and tags.customerId <> '4701'",
        lambda t: _customer(t) not in (ABSENT, "4701"),
    ),
    (
        "(tags.customerId = '4702' OR properties.reported.ownerRef = '4708') "
        "AND properties.reported.firmware.version = '2.3.1'",
        lambda t: (
            (_customer(t) == "4702" or _reported(t, "ownerRef") == "4708")
            and _reported(t, "firmware")["version"] == "2.3.1"
        ),
    ),
    (
        "properties.desired.telemetryIntervalSec >= 60 AND tags.location.lon < 0",
        lambda t: (
            t["properties"]["desired"]["telemetryIntervalSec"] >= 60
            and t["tags"]["location"]["lon"] < 0
        ),
    ),
    # AND binds tighter than OR.
    (
        "tags.customerId = '4701' OR tags.customerId = '4702' AND status = 'disabled'",
        lambda t: _customer(t) == "4701",
    ),
]


@pytest.mark.parametrize("condition, expected", WHERE_CASES)
def test_where_conditions_select_what_they_say(sim, condition, expected):
    everything = twins(sim)
    wanted = {t["deviceId"] for t in everything if expected(t)}
    assert 0 < len(wanted) < len(everything), "the case must tell matches from the rest"
    with served(sim) as hub:
        items, types = ask(hub, f"SELECT * FROM devices WHERE {condition}", page_size=7)
    assert ids(items) == wanted and len(items) == len(wanted)
    assert types == {"Twin"}


def test_the_grouping_parentheses_change_the_answer(sim):
    with served(sim) as hub:
        grouped = "(tags.customerId = '4701' OR tags.customerId = '4702') AND status = 'disabled'"
        assert ask(hub, f"SELECT * FROM devices WHERE {grouped}")[0] == []
        flat = "tags.customerId = '4701' OR tags.customerId = '4702' AND status = 'disabled'"
        assert ask(hub, f"SELECT * FROM devices WHERE {flat}")[0]


def test_strings_compare_case_sensitively_and_never_equal_another_type(sim):
    twin = next(t for t in twins(sim) if _customer(t) == "4711")
    email = twin["tags"]["owner"]["email"]
    with served(sim) as hub:
        exact = ask(hub, f"SELECT * FROM devices WHERE tags.owner.email = {literal(email)}")[0]
        assert twin["deviceId"] in ids(exact)
        shouted = f"SELECT * FROM devices WHERE tags.owner.email = {literal(email.upper())}"
        assert ask(hub, shouted)[0] == []
        assert ask(hub, "SELECT * FROM devices WHERE tags.customerId = 4711")[0] == []
        assert ask(hub, "SELECT * FROM devices WHERE tags.customerId != 4711")[0] == []
        # Names below the top level are case-sensitive; keywords and top-level names are not.
        assert ask(hub, "SELECT * FROM devices WHERE tags.CustomerId = '4711'")[0] == []
        relaxed = ask(hub, 'select * from DEVICES where TAGS.customerId = "4711"')[0]
        assert ids(relaxed) == CUSTOMER_4711[HUB]


def test_modules_and_jobs_filter_with_their_collection_prefix(sim):
    state = sim.state()["hubs"][HUB]
    modules = {(m["deviceId"], m["moduleId"]) for m in state["modules"]}
    uploaders = {m for m in modules if m[1] == "uploader"}
    assert uploaders and uploaders != modules
    job = state["jobs"][0]
    with served(sim) as hub:
        text = "SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'uploader'"
        items, types = ask(hub, text)
        assert {(t["deviceId"], t["moduleId"]) for t in items} == uploaders
        assert types == {"Twin"}
        text = f"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{job['jobId']}'"
        items, types = ask(hub, text)
        assert [j["jobId"] for j in items] == [job["jobId"]] and types == {"DeviceJob"}


# -- SELECT ---------------------------------------------------------------------------------


def test_projections_name_values_by_alias_or_last_step_and_leave_out_what_is_missing(sim):
    listed = "'valve-00100055', 'valve-00100059'"
    text = (
        "SELECT DeviceId, tags.customerId AS ownerValue, properties.reported.firmware.version, "
        f"tags.location, properties.reported.ownerRef FROM devices WHERE deviceId IN [{listed}]"
    )
    with served(sim, HUB) as hub1, served(sim, HUB2) as hub2:
        tagged, types = ask(hub1, text)
        reported, _ = ask(hub2, text)
    assert types == {"Raw"}
    seeded = {t["deviceId"]: t for host in (HUB, HUB2) for t in twins(sim, host)}
    twin = seeded["valve-00100055"]
    assert tagged == [
        {
            "deviceId": "valve-00100055",
            "ownerValue": "4711",
            "version": twin["properties"]["reported"]["firmware"]["version"],
            "location": twin["tags"]["location"],
        }
    ]
    twin = seeded["valve-00100059"]
    version = twin["properties"]["reported"]["firmware"]["version"]
    location = twin["tags"]["location"]
    expected = {"deviceId": "valve-00100059", "version": version, "location": location}
    assert reported == [dict(expected, ownerRef="4711")]


def test_a_module_projection_and_a_count(sim):
    everything = twins(sim)
    with served(sim) as hub:
        items, types = ask(hub, "SELECT deviceId, moduleId FROM devices.modules")
        assert items and all(set(item) == {"deviceId", "moduleId"} for item in items)
        assert types == {"Raw"}
        counted, types = ask(
            hub, "SELECT COUNT() AS numberOfDevices FROM devices WHERE IS_DEFINED(tags.customerId)"
        )
    expected = sum(1 for t in everything if _customer(t) is not ABSENT)
    assert counted == [{"numberOfDevices": expected}] and 0 < expected < len(everything)
    assert types == {"Raw"}


def test_paging_through_a_5000_device_match_with_continuation_tokens():
    sim = Simulator(seed=7, devices=17_000)
    everything = twins(sim)
    wanted = {t["deviceId"]: _customer(t) for t in everything if _customer(t) is not ABSENT}
    assert len(wanted) >= 5000 and len(wanted) < len(everything)
    where = "WHERE IS_DEFINED(tags.customerId)"
    text = f"SELECT deviceId, tags.customerId AS ownerValue FROM devices {where}"
    with served(sim) as hub:
        items, lengths, types = query_all(hub, "/devices/query", {"query": text}, 1000)
        first = hub.post(
            "/devices/query", json={"query": text}, headers={"x-ms-max-item-count": "1000"}
        )
        token = first.headers["x-ms-continuation"]
        other = f"SELECT * FROM devices {where}"
        foreign = hub.post(
            "/devices/query", json={"query": other}, headers={"x-ms-continuation": token}
        )
    assert {item["deviceId"]: item["ownerValue"] for item in items} == wanted
    assert len(items) == len(wanted) and [i["deviceId"] for i in items] == sorted(wanted)
    assert len(lengths) >= 6 and max(lengths) == 1000 and types == {"Raw"}
    assert_query_error(foreign, "another query")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_query_store_lag_applies_to_where_matches():
    clock = FakeClock()
    sim = Simulator(seed=1, devices=20, clock=clock, query_lag_seconds=5)
    gone = next(t["deviceId"] for t in twins(sim) if _customer(t) == "4700")
    text = "SELECT * FROM devices WHERE tags.customerId IN ['4700', '9999']"
    with served(sim) as hub:
        assert hub.put("/devices/fresh", json={"deviceId": "fresh"}).status_code == 200
        patch = {"tags": {"customerId": "9999"}}
        assert hub.patch("/twins/fresh", json=patch).status_code == 200
        assert hub.delete(f"/devices/{gone}", headers={"If-Match": "*"}).status_code == 204
        before = ids(ask(hub, text)[0])
        clock.now += 5
        after = ids(ask(hub, text)[0])
    assert gone in before and "fresh" not in before
    assert gone not in after and "fresh" in after


# -- errors ---------------------------------------------------------------------------------

ERROR_CASES = [
    ("", "character 1: expected 'SELECT'"),
    ("SELECT * FROM devices WHERE", "character 28: expected", "found the end of the query"),
    ("SELECT * FROM devices WHERE tags.customerId = '4711", "character 47: this string is never"),
    ("SELECT * FROM devices WHERE tags.customerId = '4711'' OR 1=1", "character 53: this string"),
    # No doubled-quote escape exists: 'it''s' is two literals side by side.
    ("SELECT * FROM devices WHERE tags.customerId = 'it''s'", "character 51:", "found \"'s'\""),
    ("SELECT * FROM devices -- every one", "character 23: comments"),
    ("SELECT * FROM devices /* every one */", "character 23: comments"),
    ("SELECT * FROM devices WHERE tags.customerId = '1' -- x", "character 51: comments"),
    ("SELECT * FROM things", "character 15: unknown collection 'things'"),
    ("SELECT * FROM devices WHERE tags.customerId = '1' extra", "character 51:", "found 'extra'"),
    ("SELECT * FROM devices WHERE LOWER(tags.customerId) = 'a'", "character 29: unknown function"),
    ("SELECT * FROM devices WHERE tags.customerId = 'a\\q'", "character 49: the only escapes"),
    ("SELECT * FROM devices WHERE tags.customerId = ;", "character 47: unexpected character ';'"),
    ("SELECT * FROM devices WHERE tags.customerId IN ['a' 'b']", "character 53:", "',' or ']'"),
    ("SELECT * FROM devices WHERE tag.customerId = '1'", "character 29:", "'tag.customerId'"),
    ("SELECT TOP 5 * FROM devices", "character 8: 'TOP'", "does not answer"),
    ("SELECT tags.a.x, tags.b.x FROM devices", "character 18: two values are named 'x'"),
    ("SELECT deviceId FROM devices.jobs", "devices.jobs support SELECT * only"),
    ("SELECT * FROM devices WHERE " + "(" * 100 + "status = 'enabled'" + ")" * 100, "nested over"),
    ("SELECT * FROM devices WHERE " + "NOT " * 100 + "status = 'enabled'", "nested over 64"),
    ("SELECT * FROM devices WHERE deviceId IN [" + "'x', " * 2000 + "'y']", "over 8192"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda case: case[0][:60])
def test_every_malformed_query_is_a_400_in_the_hub_error_shape(sim, case):
    text, *fragments = case
    with served(sim) as hub:
        assert_query_error(hub.post("/devices/query", json={"query": text}), *fragments)


# -- literals cannot change a query's meaning -----------------------------------------------

TRICKY = [
    "x' OR 'a'='a",
    "x OR 1=1",
    "a -- b",
    "c /* d */",
    "]",
    "['e', 'f']",
    "back\\slash\\",
    'say "hi"',
]


def test_a_literal_is_matched_literally_whatever_it_contains(sim):
    devices = sorted(t["deviceId"] for t in twins(sim))[: len(TRICKY)]
    with served(sim) as hub:
        for device_id, value in zip(devices, TRICKY, strict=True):
            patch = {"tags": {"customerId": value}}
            assert hub.patch(f"/twins/{device_id}", json=patch).status_code == 200
        for device_id, value in zip(devices, TRICKY, strict=True):
            text = f"SELECT * FROM devices WHERE tags.customerId = {literal(value)}"
            assert ids(ask(hub, text)[0]) == {device_id}, value
            listed = f"SELECT * FROM devices WHERE tags.customerId IN [{literal(value)}, ']']"
            assert ids(ask(hub, listed)[0]) == {device_id, devices[4]}, value
        double = "SELECT * FROM devices WHERE tags.customerId = \"x' OR 'a'='a\""
        assert ids(ask(hub, double)[0]) == {devices[0]}
        unescaped = "SELECT * FROM devices WHERE tags.customerId = 'x OR 1=1'"
        assert ids(ask(hub, unescaped)[0]) == {devices[1]}
        # Outside quotes the same words are language, and mean exactly what they say.
        everything = "SELECT * FROM devices WHERE tags.customerId = 'x' OR 'a'='a'"
        assert ids(ask(hub, everything)[0]) == {t["deviceId"] for t in twins(sim)}
        unicode = "SELECT * FROM devices WHERE tags.customerId = '\\u005D'"
        assert ids(ask(hub, unicode)[0]) == {devices[4]}


def test_an_in_process_client_sees_the_same_answers(sim):
    """The WSGI transport the other simulator tests use answers queries as the socket does."""
    text = "SELECT deviceId FROM devices WHERE tags.customerId = '4711'"
    with client(sim, HUB) as in_process, served(sim) as hub:
        assert ask(in_process, text) == ask(hub, text)
