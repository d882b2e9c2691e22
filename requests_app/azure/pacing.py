"""Pacing: one token bucket per target and kind of operation, shared by every worker through Redis.

Azure throttles per target, whatever the number of callers, so N workers must together stay under
the published rates. Each call first takes a token; the bucket lives in Redis and one Lua script
refills, takes and answers "wait this long" atomically, using the Redis server's clock so workers
on different machines agree. Without Redis the same bucket is kept in process.

Rates (Azure's published throttles, multiplied by the target's ``rate_scale``):

=========================  =================================================
bucket ``dps``             1,000 per minute per DPS instance (every service
                           operation)
bucket ``registry``        IoT Hub identity registry (device and module
                           create, get, list, update, delete): 100 per minute
                           per unit on S1/S2, 5,000 per minute per unit on S3
bucket ``query``           IoT Hub queries (``POST /devices/query``): 20 per
                           minute per unit on S1/S2, 1,000 on S3
bucket ``twin_read``       device and module twin reads (``GET /twins/...``):
                           100/s on S1, max(100/s, 10/s per unit) on S2,
                           500/s per unit on S3
bucket ``twin_update``     twin updates: 50/s on S1, max(50/s, 5/s per unit)
                           on S2, 250/s per unit on S3
=========================  =================================================

Burst: a bucket holds at most one second's worth of tokens (at least 1, at most 10), so a quiet
worker cannot bank a minute's allowance and spend it at once (Azure's meters tolerate far more).

A token is *reserved*: the script takes it even when the bucket is empty and answers how long the
caller must sleep before using it, so waiting callers are served in order with one round trip
each. If that wait would exceed the caller's maximum wait, nothing is taken and the caller gets
``PacingTimeout`` to report as throttling.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

    from .targets import Target

__all__ = [
    "HUB_KINDS",
    "KINDS",
    "Bucket",
    "LocalBuckets",
    "Pacer",
    "PacingTimeout",
    "bucket_for",
    "per_minute",
]

DPS_PER_MINUTE = 1000
REGISTRY_PER_UNIT = {"S1": 100, "S2": 100, "S3": 5000}
QUERY_PER_UNIT = {"S1": 20, "S2": 20, "S3": 1000}
# Twin throttles are per second: (per hub, per unit); the hub gets the larger of the two.
TWIN_READ_PER_SECOND = {"S1": (100, 0), "S2": (100, 10), "S3": (0, 500)}
TWIN_UPDATE_PER_SECOND = {"S1": (50, 0), "S2": (50, 5), "S3": (0, 250)}
KINDS = ("dps", "registry", "query", "twin_read", "twin_update")
HUB_KINDS = KINDS[1:]
BURST_SECONDS = 1.0
MAX_BURST = 10.0
KEY_PREFIX = "dsr:azure:pace"


class PacingTimeout(Exception):
    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"pacing {key}: next token in {wait:.1f}s, above the maximum wait")
        self.key = key
        self.wait = wait


class Bucket:
    """Parameters of one bucket: ``rate`` tokens per second, ``burst`` tokens at most."""

    __slots__ = ("key", "rate", "burst")

    def __init__(self, key: str, per_minute: float, *, scale: float = 1.0) -> None:
        self.key = key
        self.rate = per_minute * scale / 60.0
        self.burst = min(MAX_BURST, max(1.0, math.floor(self.rate * BURST_SECONDS)))

    def __repr__(self) -> str:
        return f"Bucket({self.key!r}, rate={self.rate:g}/s, burst={self.burst:g})"


def per_minute(kind: str, tier: str = "S1", units: int = 1) -> float:
    """Azure's throttle for ``kind`` on a target of ``tier`` × ``units``, in operations a minute."""
    if kind == "dps":
        return DPS_PER_MINUTE
    if kind == "registry":
        return REGISTRY_PER_UNIT[tier] * units
    if kind == "query":
        return QUERY_PER_UNIT[tier] * units
    if kind in ("twin_read", "twin_update"):
        table = TWIN_READ_PER_SECOND if kind == "twin_read" else TWIN_UPDATE_PER_SECOND
        per_hub, per_unit = table[tier]
        return max(per_hub, per_unit * units) * 60
    raise ValueError(f"unknown bucket kind {kind!r}")


def bucket_for(target: Target, kind: str, *, prefix: str = KEY_PREFIX) -> Bucket:
    """The bucket for ``kind`` (one of ``KINDS``) of a target."""
    rate = per_minute(kind, target.tier, target.units)
    return Bucket(f"{prefix}:{target.hostname}:{kind}", rate, scale=target.rate_scale)


# KEYS[1] bucket; ARGV rate (tokens/s), burst, max wait (s). Returns the wait in microseconds:
# >= 0 means a token is reserved for the caller after that wait, -wait means refused (not taken).
# State is the time (µs, server clock) at which the bucket will next hold zero tokens owed, as in
# GCRA: a new token is due `1/rate` after the previous one, with `burst` tokens of slack.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3]) * 1000000
local interval = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat + interval - burst * interval - now
if wait < 0 then wait = 0 end
if wait > max_wait then return -math.floor(wait) - 1 end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return math.floor(wait)
"""


class LocalBuckets:
    """The same algorithm in process, for when there is no Redis (one process, many threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def reserve(self, bucket: Bucket, max_wait: float) -> float:
        interval = 1.0 / bucket.rate
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(bucket.key, now), now)
            wait = max(0.0, tat + interval - bucket.burst * interval - now)
            if wait > max_wait:
                return -wait
            self._tat[bucket.key] = tat + interval
            return wait


_process_buckets = LocalBuckets()


class Pacer:
    """Takes a token from a bucket, sleeping as long as the bucket says (up to ``max_wait``)."""

    def __init__(
        self,
        redis: Redis | None = None,
        *,
        max_wait: float = 60.0,
        sleep: Callable[[float], object] = time.sleep,
        local: LocalBuckets | None = None,
    ) -> None:
        self.redis = redis
        self.max_wait = max_wait
        self._sleep = sleep
        self._local = local or _process_buckets
        self._script: Script | None = redis.register_script(_LUA) if redis is not None else None

    def reserve(self, bucket: Bucket, max_wait: float) -> float:
        """Reserve a token; return the seconds to wait before using it, or raise PacingTimeout."""
        if self._script is not None:
            args = [bucket.rate, bucket.burst, max_wait]
            micros = int(self._script(keys=[bucket.key], args=args))
            wait = micros / 1e6 if micros >= 0 else (-micros - 1) / 1e6
            refused = micros < 0
        else:
            wait = self._local.reserve(bucket, max_wait)
            refused = wait < 0
            wait = abs(wait)
        if refused:
            raise PacingTimeout(bucket.key, wait)
        return wait

    def acquire(self, bucket: Bucket, max_wait: float | None = None) -> float:
        """Block until a token of ``bucket`` may be used; return the seconds slept."""
        limit = self.max_wait if max_wait is None else min(max_wait, self.max_wait)
        wait = self.reserve(bucket, max(0.0, limit))
        if wait > 0:
            self._sleep(wait)
        return wait
