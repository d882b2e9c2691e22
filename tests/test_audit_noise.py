"""Anonymous traffic cannot grow the audit trail faster than a stated rate: at most
2 × DSR_NOISE_EVENTS_PER_MINUTE + 1 events a minute, and every attempt is still accounted for
(in an event, or in a count of a summary event)."""

import time

import pytest
from django.test import Client

from requests_app.accounts import noise
from requests_app.models import AuditEvent

pytestmark = pytest.mark.django_db


def accounted(events):
    """Attempts the events stand for: one per event, plus the repeats summaries count."""
    return sum(1 + (e.details.get("repeats", 0) - 1 if e.action == "anonymous_attempts" else 0)
               for e in events)  # fmt: skip


def test_a_flood_of_anonymous_failures_is_bounded_and_counted(settings, redis_db):
    settings.DSR_NOISE_EVENTS_PER_MINUTE = 20
    settings.DSR_LOGIN_MAX_FAILURES_PER_IP = 1000  # the lockout is not what is under test
    settings.DSR_LOGIN_MAX_FAILURES = 1000
    settings.AXES_FAILURE_LIMIT = 1000
    before = AuditEvent.objects.count()
    started = time.time()
    same = Client(REMOTE_ADDR="203.0.113.66")
    for n in range(40):  # one source, many bad approval tokens
        same.get(f"/approve/forged-{n}/")
    for n in range(60):  # many sources: one failed sign-in each
        Client(REMOTE_ADDR=f"198.51.{n // 250}.{n % 250}").post(
            "/accounts/login/", {"username": f"guess{n}", "password": "x"}
        )
    attempts = 100
    written = AuditEvent.objects.count() - before
    minutes = int(time.time() // 60) - int(started // 60) + 1
    assert written <= settings.DSR_NOISE_EVENTS_PER_MINUTE * minutes  # first occurrences only
    # Once the windows are over the counts are written: every attempt is accounted for.
    noise.flush(now=time.time() + 120)
    events = AuditEvent.objects.filter(seq__gt=before)
    assert accounted(events) == attempts
    assert events.count() <= 2 * settings.DSR_NOISE_EVENTS_PER_MINUTE * minutes + minutes
    repeated = events.get(action="anonymous_attempts", details__ip="203.0.113.66")
    assert repeated.details["of"] == "approval_link_refused" and repeated.details["repeats"] == 39
    print(f"\n{attempts} anonymous attempts -> {written} events at once, {events.count()} in all")


def test_without_redis_every_event_is_written(settings, monkeypatch, db):
    from redis.exceptions import ConnectionError as RedisDown

    def down():
        raise RedisDown("no Redis")

    monkeypatch.setattr(noise, "_redis", down)
    before = AuditEvent.objects.count()
    for _ in range(3):
        Client().get("/approve/forged/")
    assert AuditEvent.objects.count() - before == 3
