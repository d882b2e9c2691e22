"""Anonymous traffic must not grow the audit trail (or hold its append lock) without bound.

Failed sign-ins, refused approval links and refused single sign-on answers come from people
nobody has identified. Each kind of such an event, from one source (its action, the name it
claimed and its address), is recorded once per window of ``DSR_NOISE_WINDOW_SECONDS``; the
repeats in that window are counted in Redis and written as one ``anonymous_attempts`` event
with the count when the window is over (the scheduler's ``flush``). On top of that at most
``DSR_NOISE_EVENTS_PER_MINUTE`` first occurrences are recorded per minute across all sources;
beyond it, attempts are only counted, into one summary per minute.

So anonymous traffic adds at most 2 × DSR_NOISE_EVENTS_PER_MINUTE + 1 events a minute (first
occurrences, their summaries, one overflow summary), whatever its volume: 121 with the
default of 60. Nothing is lost: every attempt is in an event or in a count. Without Redis the
events are recorded one by one (completeness first).
"""

import json
import logging
import time

from django.conf import settings
from redis.exceptions import RedisError

from requests_app.models import AuditEvent

log = logging.getLogger(__name__)
PREFIX = "dsr:noise"


def _redis():
    from requests_app.jobs.queues import redis_connection

    return redis_connection()


def record_anonymous(action, *, actor_name="unknown", ip="", **details):
    """Record an anonymous ``action`` (or count it, see the module docstring)."""
    window = settings.DSR_NOISE_WINDOW_SECONDS
    now = time.time()
    start = int(now // window * window)
    source = json.dumps([action, actor_name, ip], separators=(",", ":"))
    key = f"{PREFIX}:w:{start}:{source}"
    try:
        redis = _redis()
        seen = redis.incr(key)
        if seen == 1:
            redis.expire(key, window * 10)
            minute = f"{PREFIX}:m:{int(now // 60)}"
            first_this_minute = redis.incr(minute)
            redis.expire(minute, 600)
            if first_this_minute > settings.DSR_NOISE_EVENTS_PER_MINUTE:
                redis.delete(key)
                redis.incr(f"{PREFIX}:over:{int(now // 60)}")
                redis.expire(f"{PREFIX}:over:{int(now // 60)}", 600)
                return None
        else:
            return None  # counted; written by flush() once the window is over
    except RedisError as exc:
        log.warning("noise limiter without Redis (%s): recording the event itself", exc)
    return AuditEvent.record(
        action, actor_kind="anonymous", actor_name=actor_name, ip=ip, **details
    )


def flush(now=None):
    """Write the counts of finished windows as summary events (the scheduler runs this).
    Returns how many summaries were written."""
    now = now or time.time()
    window = settings.DSR_NOISE_WINDOW_SECONDS
    redis = _redis()
    written = 0
    for raw in redis.scan_iter(f"{PREFIX}:w:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        _, _, _, start, source = key.split(":", 4)
        if int(start) + window > now:
            continue  # the window is still open
        count = int(redis.getdel(key) or 0)
        action, actor_name, ip = json.loads(source)
        if count > 1:
            AuditEvent.record(
                "anonymous_attempts",
                actor_kind="anonymous",
                actor_name=actor_name,
                of=action,
                ip=ip,
                repeats=count - 1,
                window_start=int(start),
                window_seconds=window,
            )
            written += 1
    for raw in redis.scan_iter(f"{PREFIX}:over:*", count=100):
        key = raw.decode() if isinstance(raw, bytes) else raw
        minute = int(key.rsplit(":", 1)[1])
        if (minute + 1) * 60 > now:
            continue
        count = int(redis.getdel(key) or 0)
        if count:
            AuditEvent.record(
                "anonymous_attempts",
                actor_kind="anonymous",
                actor_name="many sources",
                of="over the per-minute limit",
                repeats=count,
                window_start=minute * 60,
                window_seconds=60,
            )
            written += 1
    return written
