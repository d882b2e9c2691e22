"""Token buckets at Azure's published rates, with Azure's traffic shaping.

Rates (per target; IoT Hub quotas and throttling, DPS limits):
  DPS, every service operation ........ 1,000/min per instance
  IoT Hub identity registry ........... 100/min per unit on S1/S2, 5,000/min per unit on S3
    (device and module create, get, list, update, delete)
  IoT Hub queries ..................... 20/min per unit on S1/S2, 1,000/min per unit on S3
  IoT Hub twin reads (device, module) . 100/s on S1, max(100/s, 10/s per unit) on S2,
                                        500/s per unit on S3
  IoT Hub twin updates ................ 50/s on S1, max(50/s, 5/s per unit) on S2,
                                        250/s per unit on S3

Each bucket refills continuously at ``per_minute / 60 * scale`` tokens per second and holds at
most ten seconds' worth (``per_minute * scale / 6``, at least 1): a burst is served at once.
Above that, as Azure does ("traffic shaping"), a request is queued — answered late, at the
limit rate — as long as its wait is at most ``shaping_seconds``; past that the queue is full and
it is refused with 429. Buckets start full. ``scale`` speeds time up (60 → the minute's
allowance in one second) so tests run fast; a scale of 0 or None turns throttling off.
"""

import math
import time

from .hosts import DPS_HOSTS

DPS_PER_MINUTE = 1000
HUB_REGISTRY_PER_UNIT = {"S1": 100, "S2": 100, "S3": 5000, "F1": 100, "B1": 100}
HUB_QUERY_PER_UNIT = {"S1": 20, "S2": 20, "S3": 1000, "F1": 20, "B1": 20}
# Per second: (per hub, per unit), the hub gets the larger.
TWIN_READ_PER_SECOND = {"S1": (100, 0), "S2": (100, 10), "S3": (0, 500), "F1": (100, 0)}
TWIN_UPDATE_PER_SECOND = {"S1": (50, 0), "S2": (50, 5), "S3": (0, 250), "F1": (50, 0)}
BURST_SECONDS = 10
KINDS = ("dps", "registry", "query", "twin_read", "twin_update")


def bucket_of_call(call):
    """Which bucket a call of the simulator's call log (``Simulator.calls``) counted against:
    the same rule as ``hub.bucket_of``, read from the method and path."""
    if call["host"] in DPS_HOSTS:
        return "dps"
    if call["path"] == "/devices/query":
        return "query"
    if call["path"].startswith("/twins/"):
        return "twin_read" if call["method"] == "GET" else "twin_update"
    return "registry"


def per_minute(kind, tier="S1", units=1):
    if kind == "dps":
        return DPS_PER_MINUTE
    if kind in ("twin_read", "twin_update"):
        table = TWIN_READ_PER_SECOND if kind == "twin_read" else TWIN_UPDATE_PER_SECOND
        per_hub, per_unit = table[tier]
        return max(per_hub, per_unit * units) * 60
    table = HUB_QUERY_PER_UNIT if kind == "query" else HUB_REGISTRY_PER_UNIT
    return table[tier] * units


class TokenBucket:
    def __init__(self, per_min, scale, clock=time.monotonic):
        self.rate = per_min * scale / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self, queue_seconds=0.0):
        """Take one token. Returns ``(delay, refused_for)``: serve the request after ``delay``
        seconds (0 when a token is there, up to ``queue_seconds`` when it is queued), or, when
        ``refused_for`` is above 0, refuse it: the queue frees a place in that many seconds."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0 - 1e-9:  # refills are floats: 0.9999999 is a token
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0, 0.0
        wait = (1.0 - self.tokens) / self.rate
        if wait > queue_seconds:
            return 0.0, wait - queue_seconds
        self.tokens -= 1.0  # below zero: a queued request holds its place
        return wait, 0.0


def retry_after_header(wait_seconds):
    return str(max(1, math.ceil(wait_seconds)))
