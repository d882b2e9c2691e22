"""Finding a data subject's devices by owner: the keys a query can carry, the search across two
hubs and DPS over real HTTP, the officer's confirmation, failures and retries, a 5,000-device
match, and forgetting the keys on time."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from requests_app.azure import configured_targets
from requests_app.azure.targets import TargetsError, load_targets
from requests_app.discovery import confirm as choosing
from requests_app.discovery import keys as subject_keys
from requests_app.discovery import queries, search
from requests_app.evidence import retention
from requests_app.models import (
    AuditEvent,
    DataRequest,
    Discovery,
    DiscoveryMatch,
    IllegalTransition,
    LegalHold,
    Status,
)
from requests_app.workflow import lifecycle
from simulator.hosts import DPS_HOST, HUB1_HOST, HUB2_HOST, OTHER_HUB_HOST
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db(transaction=True)


# --- keys and queries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("4711' OR '1'='1", "single quote"),
        ('4711" OR "1"="1', "double quote"),
        ("4711\\' OR 1=1", "backslash"),
        ("47\x0011", "U+0000"),
        ("4711\u200b", "U+200B"),  # zero-width space
        ("\u202e1174", "U+202E"),  # right-to-left override
        ("4711\uff07 OR \uff071\uff07=\uff071", 'stands for "\'"'),  # fullwidth apostrophes
        ("\uff14\uff17\uff11\uff11", "stands for '4'"),  # fullwidth digits look like 4711
        ("a" * 129, "over 128"),
        (" 4711", "space"),
    ],
)
def test_keys_that_could_change_a_query_are_refused_with_the_reason(key, said):
    assert said in subject_keys.check_key(key)
    with pytest.raises(queries.UnsafeQuery):
        queries.hub_query("tags.customerId", [key])


@pytest.mark.parametrize(
    "key",
    [
        "4711",
        "anna.berg@example.com",
        "x OR 1=1",
        "a] OR IS_DEFINED(tags",
        "--",
        "/* x */",
        "Müller",
    ],
)
def test_keys_with_query_words_inside_stay_inside_their_literal(key):
    assert subject_keys.check_key(key) == ""
    text = queries.hub_query("tags.customerId", [key])
    assert text == (
        f"SELECT deviceId, tags.customerId AS ownerValue FROM devices "
        f"WHERE tags.customerId = '{key}'"
    )


def test_several_keys_go_in_one_in_list_and_paths_are_checked_again():
    text = queries.hub_query("properties.reported.ownerRef", ["4711", "C-9"])
    assert text.endswith("WHERE properties.reported.ownerRef IN ['4711', 'C-9']")
    for path in ("tags.x OR 1=1", "tags", "deviceId", "tags.a-b", "properties.reported"):
        with pytest.raises(queries.UnsafeQuery):
            queries.hub_query(path, ["4711"])
    assert subject_keys.mask("found 4711 and C-9 in 4711x", ["4711", "C-9"]) == (
        "found ‹key 1› and ‹key 2› in ‹key 1›x"
    )


def test_parsing_pasted_keys_names_each_bad_line_and_merges_duplicates():
    keys, problems = subject_keys.parse_keys("4711\n\n4711\nbad'one\n C-9 \n")
    assert keys == ["4711", "C-9"]
    assert problems == [
        'line 4: the key "bad\'one" contains a single quote, which the query '
        "language cannot carry safely."
    ]
    _, problems = subject_keys.parse_keys("\n".join(str(n) for n in range(21)))
    assert problems == ["21 keys: one search takes at most 20."]


TARGETS = """
[[hub]]
hostname = "h.azure-devices.net"
auth = "entra"
owner_paths = {paths}

[[dps]]
hostname = "d.azure-devices-provisioning.net"
auth = "entra"
owner_paths = {dps_paths}
"""


@pytest.mark.parametrize(
    ("paths", "dps_paths", "message"),
    [
        ('"tags.customerId"', "[]", "must be a list of paths"),
        ('["tags"]', "[]", "'tags' is not a path the portal can search"),
        ('["tags.owner-id"]', "[]", "'tags.owner-id' is not a path"),
        ('["deviceId"]', "[]", "must start with tags."),
        ('["tags.a", "tags.a"]', "[]", "listed twice"),
        ("[]", '["tags.customerId"]', "must start with initialTwin.tags."),
    ],
)
def test_owner_paths_in_the_targets_file_are_checked(tmp_path, paths, dps_paths, message):
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS.format(paths=paths, dps_paths=dps_paths))
    with pytest.raises(TargetsError, match=message):
        load_targets(path)


def test_owner_paths_are_read(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(
        TARGETS.format(
            paths='["tags.customerId", "properties.reported.ownerRef"]',
            dps_paths='["initialTwin.tags.customerId"]',
        )
    )
    targets = load_targets(path)
    assert targets.hubs["h.azure-devices.net"].owner_paths == (
        "tags.customerId",
        "properties.reported.ownerRef",
    )
    assert targets.dps["d.azure-devices-provisioning.net"].owner_paths == (
        "initialTwin.tags.customerId",
    )


# --- searching the simulator over HTTP ---------------------------------------------------------


def _twin(sim, host, device_id):
    return sim._state["hubs"][host]["twins"][device_id]


def own(sim, host, device_id, *, tag=None, reported=None, email=None):
    """Record an owner on a hub device's twin, as a device or back end would."""
    with sim._lock:
        twin = _twin(sim, host, device_id)
        if tag is not None:
            twin["tags"]["customerId"] = tag
        if email is not None:
            twin["tags"].setdefault("owner", {})["email"] = email
        if reported is not None:
            twin["properties"]["reported"]["ownerRef"] = reported


def hub_devices(sim, host):
    return sorted(sim._state["hubs"][host]["devices"])


def fast_pacing(path):
    """The portal paces queries at Azure's S1 rate (20 a minute); the simulator here does not
    throttle, so pace 100 times faster, as a targets file for a scaled simulator does."""
    path.write_text(path.read_text().replace('auth = "sas"', 'auth = "sas"\nrate_scale = 100.0'))
    configured_targets.cache_clear()


@pytest.fixture
def fleet(azure):
    """The simulator with no seeded owner tags left (so each test says who owns what)."""
    fast_pacing(Path(configured_targets().path))
    with azure._lock:
        for hub in azure._state["hubs"].values():
            for twin in hub["twins"].values():
                twin["tags"].pop("customerId", None)
                twin["tags"].pop("owner", None)
                twin["properties"]["reported"].pop("ownerRef", None)
        for enrollment in azure._state["dps"][DPS_HOST]["enrollments"].values():
            enrollment.pop("initialTwin", None)
    return azure


def owned(sim):
    """Customer 4711: a tagged device on each hub, one that only reports its owner, one
    enrollment whose initial twin names it, and a device on the hub the portal is not
    configured for."""
    one, two = hub_devices(sim, HUB1_HOST), hub_devices(sim, HUB2_HOST)
    own(sim, HUB1_HOST, one[0], tag="4711")
    own(sim, HUB2_HOST, two[0], tag="4711")
    own(sim, HUB2_HOST, two[1], reported="4711")
    own(sim, HUB1_HOST, one[1], tag="4712")  # somebody else
    own(sim, OTHER_HUB_HOST, hub_devices(sim, OTHER_HUB_HOST)[0], tag="4711")
    tagged = {one[0], two[0], two[1]}
    enrollment = next(
        e for e in sorted(sim._state["dps"][DPS_HOST]["enrollments"]) if e not in tagged
    )
    with sim._lock:
        sim._state["dps"][DPS_HOST]["enrollments"][enrollment]["initialTwin"] = {
            "tags": {"customerId": "4711"},
            "properties": {"desired": {}},
        }
    return {
        (HUB1_HOST, one[0], "", "tags.customerId"),
        (HUB2_HOST, two[0], "", "tags.customerId"),
        (HUB2_HOST, two[1], "", "properties.reported.ownerRef"),
        (DPS_HOST, enrollment, enrollment, "initialTwin.tags.customerId"),
    }


def found(discovery):
    return {(m.host, m.device_id, m.registration_id, m.path) for m in discovery.matches.all()}


def test_search_finds_tags_and_reported_properties_on_two_hubs_and_dps(
    fleet, officer, run_jobs, redis_db
):
    expected = owned(fleet)
    draft = make_request(officer, [])
    discovery = search.start(draft, keys=["4711"], actor=officer)
    # The job carries the discovery's key only: the subject key is nowhere in Redis.
    assert not any(b"4711" in (redis_db.dump(k) or b"") for k in redis_db.keys("*"))
    run_jobs()
    discovery.refresh_from_db()
    assert discovery.state == Discovery.State.FINISHED
    assert found(discovery) == expected
    assert discovery.hosts_in(search.ANSWERED) == sorted([DPS_HOST, HUB1_HOST, HUB2_HOST])
    assert discovery.targets[HUB2_HOST]["matches"] == 2
    # The unconfigured hub is never called, though one of its devices carries the key.
    assert OTHER_HUB_HOST not in {call["host"] for call in fleet.calls}
    queries_sent = [c for c in fleet.calls if c["path"].startswith("/devices/query")]
    assert len(queries_sent) == 2 * 3  # two hubs, three owner paths each
    # The audit trail has the masked queries and the key's digest, never the key.
    started = AuditEvent.objects.get(action="discovery_started")
    assert started.details["queries"][HUB1_HOST][0] == (
        "SELECT deviceId, tags.customerId AS ownerValue FROM devices "
        "WHERE tags.customerId = '‹key 1›'"
    )
    assert started.details["key_sha256"] == [subject_keys.digest(draft.reference, "4711")]
    finished = AuditEvent.objects.get(action="discovery_finished")
    assert finished.details["matches"] == {DPS_HOST: 1, HUB1_HOST: 1, HUB2_HOST: 2}
    assert not any("4711" in str(e.details) for e in AuditEvent.objects.all())


def test_query_syntax_inside_a_key_matches_only_that_literal_text(fleet, officer, run_jobs):
    one = hub_devices(fleet, HUB1_HOST)
    own(fleet, HUB1_HOST, one[0], tag="4711")
    own(fleet, HUB1_HOST, one[1], tag="x OR 1=1")
    draft = make_request(officer, [])
    keys = ["4711 OR 1=1", "x] OR IS_DEFINED(tags.customerId", "x OR 1=1", "-- 4711", "/* */"]
    discovery = search.start(draft, keys=keys, actor=officer)
    run_jobs()
    discovery.refresh_from_db()
    assert discovery.hosts_in(search.FAILED) == []
    # Only the device whose tag is literally "x OR 1=1"; not 4711, not every tagged device.
    assert found(discovery) == {(HUB1_HOST, one[1], "", "tags.customerId")}
    assert discovery.matches.get().key_index == 2
    with pytest.raises(search.DiscoveryRefused, match="single quote"):
        search.start(draft, keys=["4711' OR deviceId != '"], actor=officer)


def test_confirming_all_adds_each_device_once_and_the_plan_shows_the_search(
    client, fleet, officer, run_jobs
):
    expected = owned(fleet)
    draft = make_request(officer, [])
    discovery = search.start(draft, keys=["4711"], actor=officer)
    with pytest.raises(IllegalTransition, match="still running"):
        lifecycle.submit(draft, actor=officer)
    run_jobs()
    discovery.refresh_from_db()
    with pytest.raises(IllegalTransition, match="not confirmed yet"):
        lifecycle.submit(draft, actor=officer)
    added = choosing.confirm(discovery, actor=officer)
    assert added == len(expected)
    identifiers = {(i.registration_id, i.device_id, i.hub) for i in draft.identifiers.all()}
    assert identifiers == {
        (reg, "", "") if host == DPS_HOST else ("", dev, host) for host, dev, reg, _ in expected
    }
    with pytest.raises(search.DiscoveryRefused, match="not waiting"):
        choosing.confirm(discovery, actor=officer)
    lifecycle.submit(draft, actor=officer)
    run_jobs()
    draft.refresh_from_db()
    assert draft.status == Status.AWAITING_APPROVAL
    assert draft.devices.count() == len(expected)
    sign_in(client, officer)
    page = client.get(draft.get_absolute_url()).content.decode()
    assert "How the devices were found" in page
    assert "WHERE tags.customerId = &#x27;‹key 1›&#x27;" in page
    assert "4711" not in page.split('id="found-by-owner"')[1].split("</div>")[0]


def test_a_device_found_on_dps_and_its_hub_becomes_one_identifier(fleet, officer, run_jobs):
    draft = make_request(officer, [])
    with fleet._lock:
        enrollments = fleet._state["dps"][DPS_HOST]["enrollments"]
        registration = next(
            r for r in sorted(enrollments) if r in fleet._state["hubs"][HUB1_HOST]["devices"]
        )
        enrollments[registration]["initialTwin"] = {"tags": {"customerId": "9"}}
    own(fleet, HUB1_HOST, registration, tag="9")
    discovery = search.start(draft, keys=["9"], actor=officer)
    run_jobs()
    discovery.refresh_from_db()
    assert choosing.confirm(discovery, actor=officer) == 1
    identifier = draft.identifiers.get()
    assert (identifier.registration_id, identifier.device_id, identifier.hub) == (
        registration,
        registration,
        HUB1_HOST,
    )


def _break_hub(azure_sim, host):
    """Give the portal a wrong key for ``host``: its calls are refused with 401."""
    path = Path(configured_targets().path).parent / f"{host.split('.')[0]}.connstr"
    good = path.read_text()
    key = good.split("SharedAccessKey=")[1].strip()
    path.write_text(good.replace(key, "A" * len(key)))
    configured_targets.cache_clear()
    return lambda: (path.write_text(good), configured_targets.cache_clear())


def test_a_hub_that_does_not_answer_is_named_and_asked_again_on_retry(
    client, fleet, officer, run_jobs, caplog
):
    own(fleet, HUB2_HOST, hub_devices(fleet, HUB2_HOST)[0], tag="4711")
    repair = _break_hub(fleet, HUB2_HOST)
    draft = make_request(officer, [])
    discovery = search.start(draft, keys=["4711"], actor=officer)
    run_jobs()
    discovery.refresh_from_db()
    assert discovery.hosts_in(search.FAILED) == [HUB2_HOST]
    assert "401" in discovery.targets[HUB2_HOST]["error"]
    sign_in(client, officer)
    page = client.get(f"/requests/{draft.reference}/discovery/").content.decode()
    assert f"No devices found on {DPS_HOST}, {HUB1_HOST} ({HUB2_HOST} did not answer)." in page
    assert 'id="retry-search"' in page
    repair()
    response = client.post(f"/requests/{draft.reference}/discovery/{discovery.pk}/retry")
    assert response.status_code == 302
    calls_before = len(fleet.calls)
    run_jobs()
    discovery.refresh_from_db()
    assert discovery.hosts_in(search.FAILED) == []
    assert discovery.matches.count() == 1
    # Only the hub that failed was asked again.
    assert {c["host"] for c in fleet.calls[calls_before:]} == {HUB2_HOST}
    assert AuditEvent.objects.filter(action="discovery_retried").count() == 1
    assert "4711" not in caplog.text


def new_request(client, keys):
    """The intake form with subject keys and no identifiers."""
    today = timezone.localdate().isoformat()
    fields = {"kind": "export", "regulation": "gdpr", "received_at": today}
    return client.post(
        "/requests/new/", {**fields, "subject_reference": "TICKET-9", "subject_keys": keys}
    )


def test_intake_with_keys_only_starts_a_search_and_the_officer_chooses(
    client, fleet, officer, run_jobs
):
    expected = owned(fleet)
    sign_in(client, officer)
    response = new_request(client, "4711\n")
    assert response.status_code == 302, response.content.decode()[:2000]
    draft = DataRequest.objects.get(subject_reference="TICKET-9")
    assert draft.identifiers.count() == 0
    run_jobs()
    page = client.get(f"/requests/{draft.reference}/discovery/").content.decode()
    assert "4 matches to review" in page
    assert "properties.reported.ownerRef</code> = <code>4711" in page
    discovery = draft.discoveries.get()
    chosen = discovery.matches.filter(host=HUB1_HOST).get()
    response = client.post(
        f"/requests/{draft.reference}/discovery/{discovery.pk}/confirm",
        {"match": [str(chosen.pk)], "chosen": "chosen"},
    )
    assert response.status_code == 302
    assert [(i.device_id, i.hub) for i in draft.identifiers.all()] == [
        (chosen.device_id, HUB1_HOST)
    ]
    assert len(expected) == 4
    confirmed = AuditEvent.objects.get(action="discovery_confirmed")
    assert (confirmed.details["chosen"], confirmed.details["found"]) == (1, 4)


def test_intake_refuses_a_bad_key_and_stores_nothing(client, fleet, officer):
    sign_in(client, officer)
    response = new_request(client, "4711\nO'Brien")
    assert response.status_code == 200
    assert "line 2: the key &quot;O&#x27;Brien&quot; contains a single quote" in (
        response.content.decode()
    )
    assert not DataRequest.objects.exists() and not Discovery.objects.exists()


def test_a_search_that_finds_nothing_can_be_recorded_as_such(client, fleet, officer, run_jobs):
    draft = make_request(officer, [])
    discovery = search.start(draft, keys=["nobody"], actor=officer)
    run_jobs()
    sign_in(client, officer)
    page = client.get(f"/requests/{draft.reference}/discovery/").content.decode()
    assert f"No devices found on {DPS_HOST}, {HUB1_HOST}, {HUB2_HOST}." in page
    client.post(f"/requests/{draft.reference}/discovery/{discovery.pk}/confirm", {"chosen": "none"})
    discovery.refresh_from_db()
    assert (discovery.state, discovery.confirmed_count) == (Discovery.State.CONFIRMED, 0)
    with pytest.raises(IllegalTransition, match="names no device yet"):
        lifecycle.submit(draft, actor=officer)


# --- a match on thousands of devices ----------------------------------------------------------


@pytest.fixture
def big_fleet(tmp_path, settings):
    """6,250 seeded devices, 5,000 of them on the two configured hubs; every seeded twin has
    desired ``heatingMode = "eco"``, so searching that path matches all 5,000."""
    from simulator.app import Simulator
    from simulator.server import serve
    from simulator.targets import write_targets

    sim = Simulator(seed=1, devices=6250)
    server = serve(sim)
    path = write_targets(sim, tmp_path / "azure" / "targets.toml", server.url)
    path.write_text(
        path.read_text().replace(
            '"properties.reported.ownerRef"]', '"properties.desired.heatingMode"]'
        )
    )
    settings.DSR_AZURE_TARGETS = str(path)
    fast_pacing(path)
    yield sim
    server.shutdown()
    configured_targets.cache_clear()


def test_five_thousand_matches_are_paged_and_written_in_batches(
    big_fleet, officer, run_jobs, monkeypatch, client
):
    batches = []
    real_bulk_create = DiscoveryMatch.objects.bulk_create

    def spy(objs, **kwargs):
        batches.append(len(objs))
        return real_bulk_create(objs, **kwargs)

    monkeypatch.setattr(DiscoveryMatch.objects, "bulk_create", spy)
    draft = make_request(officer, [])
    discovery = search.start(draft, keys=["eco"], actor=officer)
    run_jobs()
    discovery.refresh_from_db()
    assert discovery.matches.count() == 5000
    assert max(batches) <= search.BATCH
    heating = [
        c
        for c in big_fleet.calls
        if c["path"].startswith("/devices/query") and c["host"] == HUB1_HOST
    ]
    # Three owner paths; the heatingMode one alone takes several pages of at most 1,000.
    assert len(heating) >= 3 + 2
    sign_in(client, officer)
    page = client.get(f"/requests/{draft.reference}/discovery/?page=50").content.decode()
    assert "5,000 matches to review" in page and "Page 50 of 50" in page
    assert page.count('name="match"') == 100
    response = client.post(
        f"/requests/{draft.reference}/discovery/{discovery.pk}/confirm", {"all": "all"}
    )
    assert response.status_code == 302
    assert draft.identifiers.count() == 5000


# --- forgetting the keys ------------------------------------------------------------------------


def test_subject_keys_and_matches_are_forgotten_after_the_request_closes(
    settings, fleet, officer, run_jobs
):
    settings.DSR_EXPORT_RETENTION_DAYS = 30
    owned(fleet)
    draft = make_request(officer, [])
    discovery = search.start(draft, keys=["4711"], actor=officer)
    run_jobs()
    choosing.confirm(discovery, actor=officer)
    closed = timezone.now() - timedelta(days=1)
    DataRequest.objects.filter(pk=draft.pk).update(status=Status.CANCELLED, completed_at=closed)
    retention.purge_due(now=closed + timedelta(days=29))
    discovery.refresh_from_db()
    assert discovery.keys == ["4711"] and discovery.matches.count() == 4
    hold = LegalHold.objects.create(request=draft, reason="Case 12", placed_by=officer)
    retention.purge_due(now=closed + timedelta(days=31))
    discovery.refresh_from_db()
    assert discovery.purged_at is None
    hold.delete()
    for _ in range(2):  # a second run finds nothing left to do
        retention.purge_due(now=closed + timedelta(days=31))
    discovery.refresh_from_db()
    assert discovery.keys == [] and discovery.matches.count() == 0
    assert discovery.purged_at is not None
    assert discovery.targets[HUB1_HOST]["queries"]  # what was asked stays
    purged = AuditEvent.objects.filter(action="discovery_purged")
    assert purged.count() == 1
    assert purged.get().details["matches"] == 4
    # The identifiers the officer confirmed are the request's, not the search's: they stay.
    assert draft.identifiers.count() == 4


def test_the_api_takes_subject_keys_instead_of_identifiers(fleet, officer, run_jobs):
    from django.test import Client

    from requests_app.api import issue_token

    owned(fleet)
    _, raw = issue_token(officer, name="ticketing")
    api = Client()
    auth = {"Authorization": f"Bearer {raw}"}
    body = {"kind": "export", "regulation": "gdpr", "subject_reference": "JIRA-7"}

    def post(extra):
        return api.post(
            "/api/v1/requests", {**body, **extra}, content_type="application/json", headers=auth
        )

    refused = post({"subject_keys": ["4711", "O'Brien"]})
    assert refused.status_code == 400
    assert refused.json()["fields"]["subject_keys"] == [
        'index 1: the key "O\'Brien" contains a single quote, which the query language '
        "cannot carry safely"
    ]
    neither = post({})
    assert neither.json()["fields"]["identifiers"] == [
        "required: a list of at least one identifier, or subject_keys"
    ]
    assert not DataRequest.objects.exists() and not Discovery.objects.exists()
    created = post({"subject_keys": ["4711"]})
    assert created.status_code == 201, created.content
    assert created.json()["identifiers"] == 0
    assert created.json()["discovery"]["state"] == "running"
    run_jobs()
    reference = created.json()["reference"]
    answer = api.get(f"/api/v1/requests/{reference}", headers=auth).json()["discovery"]
    assert (answer["state"], answer["found"]) == ("finished", 4)
    assert answer["url"] == f"/requests/{reference}/discovery/"
    assert "4711" not in json.dumps(answer)
