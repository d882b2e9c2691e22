"""Periodic work run by `manage.py scheduler`: each task with its interval in seconds.

A task runs in the scheduler process itself and must be quick (it enqueues or sends, it does not
call Azure). A Redis key per task (SET NX EX) makes a second scheduler harmless.
"""

import logging
import time

from django.conf import settings
from django.db import close_old_connections
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def tasks():
    """(name, interval seconds, callable) for each periodic task."""
    from requests_app import reconcile

    return [
        ("reconcile", settings.DSR_RECONCILE_SECONDS, reconcile.reconcile),
        ("reminders", 24 * 3600, reconcile.send_reminders),
    ]


def run_due(connection, now=None):
    """Run every task whose interval has passed; returns the names run."""
    ran = []
    for name, interval, func in tasks():
        try:
            claimed = connection.set(
                f"dsr:periodic:{name}", str(now or time.time()), nx=True, ex=interval
            )
        except RedisError as exc:
            log.warning("scheduler: Redis unavailable (%s); running %s anyway", exc, name)
            claimed = True
        if not claimed:
            continue
        close_old_connections()
        try:
            func()
            ran.append(name)
        except Exception:
            log.exception("periodic task %s failed; it will run again next interval", name)
    return ran
