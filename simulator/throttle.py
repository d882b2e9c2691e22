"""Token buckets at Azure's published rates.

Rates (operations per minute, per target):
  DPS, every service operation ........................ 1,000 per instance
  IoT Hub identity registry (device/module CRUD, twins) . 100 per unit on S1/S2, 5,000 on S3
  IoT Hub queries ....................................... 20 per unit on S1/S2, 1,000 on S3

Each bucket refills continuously at ``per_minute / 60 * scale`` tokens per second and holds at
most ten seconds' worth (``per_minute * scale / 6``, at least 1), so a burst is allowed but a
sustained rate above the limit is not. Buckets start full. ``scale`` speeds time up (60 → the
minute's allowance in one second) so tests run fast; a scale of 0 or None turns throttling off.
"""

import math
import time

DPS_PER_MINUTE = 1000
HUB_REGISTRY_PER_UNIT = {"S1": 100, "S2": 100, "S3": 5000, "F1": 100, "B1": 100}
HUB_QUERY_PER_UNIT = {"S1": 20, "S2": 20, "S3": 1000, "F1": 20, "B1": 20}
BURST_SECONDS = 10


def per_minute(kind, tier="S1", units=1):
    if kind == "dps":
        return DPS_PER_MINUTE
    table = HUB_QUERY_PER_UNIT if kind == "query" else HUB_REGISTRY_PER_UNIT
    return table[tier] * units


class TokenBucket:
    def __init__(self, per_min, scale, clock=time.monotonic):
        self.rate = per_min * scale / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self):
        """Take one token; return 0 if granted, else the seconds until one is available."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_header(wait_seconds):
    return str(max(1, math.ceil(wait_seconds)))
