"""Periodic work run by `manage.py scheduler`: each task with its interval in seconds, and the
work looked at on every tick.

A task runs in the scheduler process itself and must be quick (it enqueues or sends, it does not
call Azure). A Redis key per task (SET NX EX) makes a second scheduler harmless. Tick work waits
on others (a certificate asks for a checkpoint, a failed checkpoint sink is due again) and guards
itself against a second scheduler in the database (a unique seq, a conditional UPDATE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import close_old_connections
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)
_FAILED = object()  # what _run returns for a task that raised


def tasks() -> list[tuple[str, int, Callable[[], object]]]:
    """(name, interval seconds, callable) for each periodic task."""
    from requests_app.accounts import noise
    from requests_app.evidence import checkpoints, retention
    from requests_app.jobs import reconcile

    return [
        ("reconcile", settings.DSR_RECONCILE_SECONDS, reconcile.reconcile),
        ("reminders", 24 * 3600, reconcile.send_reminders),
        # Anonymous repeats counted in Redis are written as summaries once their window ends.
        ("anonymous_noise", settings.DSR_NOISE_WINDOW_SECONDS, noise.flush),
        ("audit_checkpoint", settings.DSR_AUDIT_CHECKPOINT_SECONDS, checkpoints.write_checkpoint),
        # Files past their retention deadline are deleted, each deletion audited.
        ("retention", settings.DSR_RETENTION_CHECK_SECONDS, retention.purge_due),
    ]


def tick_tasks() -> list[tuple[str, Callable[[], object]]]:
    """(name, callable) run on every tick; each is a query or two when idle and returns
    something true when it did work."""
    from requests_app.evidence import checkpoints
    from requests_app.evidence.checkpoints import sinks

    return [
        ("audit_checkpoint_requested", checkpoints.checkpoint_if_requested),
        ("checkpoint_delivery", sinks.deliver_due),
    ]


def run_due(connection: Redis, now: float | None = None) -> list[str]:
    """Run every task whose interval has passed, then the tick work; returns the names run."""
    ran = []
    for name, interval, func in tasks():
        try:
            claimed = connection.set(
                f"dsr:periodic:{name}", str(now or time.time()), nx=True, ex=interval
            )
        except RedisError as exc:
            log.warning("scheduler: Redis unavailable (%s); running %s anyway", exc, name)
            claimed = True
        if claimed and _run(name, func) is not _FAILED:
            ran.append(name)
    ran.extend(name for name, func in tick_tasks() if _run(name, func) not in (None, 0, _FAILED))
    return ran


def _run(name: str, func: Callable[[], object]) -> object:
    close_old_connections()
    try:
        return func()
    except Exception:
        log.exception("periodic task %s failed; it will run again next interval", name)
        return _FAILED
