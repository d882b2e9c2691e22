"""What a plan costs on Azure's throttles, and how long that takes at the configured tiers.

Each operation's HTTP calls are counted in the buckets its registry entry spends
(``AzureOperation.buckets``), per target. At the target's rate for that bucket (tier × units,
``azure.pacing``) a bucket needs ``calls ÷ rate``. Workers keep every bucket of every target
busy at once, so a plan takes about as long as its slowest bucket: that is the projection. It
is a floor — retries, 429s and Azure's latency add to it — and the request page shows the
actual progress against it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count

from requests_app.azure.pacing import bucket_for
from requests_app.azure.targets import Targets, configured_targets
from requests_app.jobs import operations
from requests_app.jobs.operations import UNFINISHED_STATES

if TYPE_CHECKING:
    from requests_app.models import DataRequest

BUCKET_WORDS = {
    "dps": "DPS operations",
    "registry": "identity-registry calls",
    "query": "queries",
    "twin_read": "twin reads",
    "twin_update": "twin updates",
}


@dataclass(frozen=True)
class BucketCost:
    """The calls a plan makes in one bucket of one target, and the time they need there."""

    host: str
    bucket: str
    calls: int
    per_second: float | None  # the target's rate; None when the host is not a configured target
    capacity: str  # "S1 × 2" for a hub, "DPS" for a DPS instance, "" when not configured

    @property
    def seconds(self) -> float | None:
        return self.calls / self.per_second if self.per_second else None

    @property
    def words(self) -> str:
        return BUCKET_WORDS.get(self.bucket, self.bucket)

    @property
    def per_minute_text(self) -> str:
        """ "100/min", "6,000/min" (a scaled simulator's rate shows as scaled)."""
        return f"{(self.per_second or 0) * 60:,.0f}/min"

    @property
    def duration(self) -> str:
        seconds = self.seconds
        if seconds is None:
            return ""
        if seconds < 60:
            return f"{max(1, math.ceil(seconds))} s"
        return duration_words(seconds).removeprefix("about ")


@dataclass(frozen=True)
class PlanCost:
    buckets: tuple[BucketCost, ...]

    @property
    def slowest(self) -> BucketCost | None:
        timed = [b for b in self.buckets if b.seconds is not None]
        return max(timed, key=lambda b: b.seconds or 0.0) if timed else None

    @property
    def seconds(self) -> float:
        slowest = self.slowest
        return (slowest.seconds or 0.0) if slowest is not None else 0.0

    def calls(self, bucket: str) -> int:
        return sum(b.calls for b in self.buckets if b.bucket == bucket)

    def sentence(self) -> str:
        """ "about 1 h 45 min on demo-hub-1's identity registry (S1 × 1)"."""
        slowest = self.slowest
        if slowest is None:
            return "no Azure calls"
        host = slowest.host.split(".", 1)[0]
        where = f"{host}'s {slowest.words}" if slowest.bucket != "dps" else host
        return f"{duration_words(self.seconds)}, set by {where} ({slowest.capacity})"


def duration_words(seconds: float) -> str:
    """ "under a minute", "about 12 min", "about 1 h 45 min" (rounded up to the minute)."""
    if seconds < 60:
        return "under a minute"
    minutes = math.ceil(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"about {minutes} min"
    return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"


def cost_of(
    counts: Mapping[tuple[str, str], int],
    targets: Targets,
    devices: Mapping[tuple[str, str], int] | None = None,
) -> PlanCost:
    """The cost of ``{(host, action): operations}`` at the rates of ``targets``; ``devices``
    counts the distinct devices per (host, action), for calls made once per device (without
    it, one device per operation)."""
    calls: Counter[tuple[str, str]] = Counter()
    for (host, action), n in counts.items():
        entry = operations.OPERATIONS.get(action)
        if entry is None:
            continue
        for bucket in entry.buckets():
            calls[(host, bucket)] += n
        for bucket in entry.once_per_device:
            calls[(host, bucket)] += (devices or counts)[(host, action)]
    costs = [_bucket_cost(host, bucket, n, targets) for (host, bucket), n in sorted(calls.items())]
    return PlanCost(tuple(costs))


def _bucket_cost(host: str, bucket: str, calls: int, targets: Targets) -> BucketCost:
    target = targets.get(host)
    if target is None:
        return BucketCost(host, bucket, calls, None, "")
    capacity = "DPS" if target.kind == "dps" else f"{target.tier} × {target.units}"
    if target.rate_scale != 1:  # the simulator's targets: its throttles run faster than Azure's
        capacity += f", rates × {target.rate_scale:g}"
    return BucketCost(host, bucket, calls, bucket_for(target, bucket).rate, capacity)


def plan_cost(
    data_request: DataRequest, *, remaining: bool = False, targets: Targets | None = None
) -> PlanCost:
    """The cost of a request's plan (``remaining``: of what is still to run), one query."""
    ops = data_request.operations.all()
    if remaining:
        ops = ops.filter(state__in=UNFINISHED_STATES)
    grouped = (
        ops.values("host", "action")
        .annotate(n=Count("id"), devices=Count("device", distinct=True))
        .order_by()
    )
    counts = {(row["host"], row["action"]): row["n"] for row in grouped}
    devices = {(row["host"], row["action"]): row["devices"] for row in grouped}
    chosen = targets if targets is not None else configured_targets(secrets=False)
    return cost_of(counts, chosen, devices)
