"""The one place that talks to RQ: queues, the Redis connection, enqueue-after-commit.

Jobs receive primary keys only and are serialized as JSON (RQ_QUEUES sets the serializer), so
no personal data, device IDs or keys are ever stored in Redis. If Redis is down when a job is
enqueued, nothing fails: the database already says what is left to do, and the reconciler
enqueues it once Redis answers again.
"""

import logging

import django_rq
from django.conf import settings
from django.db import close_old_connections, transaction
from redis.exceptions import RedisError
from rq.worker import SimpleWorker

log = logging.getLogger(__name__)


def redis_connection():
    return django_rq.get_connection("default")


def get_queue(name="default"):
    return django_rq.get_queue(name)


def enqueue_now(func_path, *args, queue="default", job_id=None, timeout=None):
    """Enqueue immediately; returns the job, or None when Redis cannot be reached."""
    try:
        return get_queue(queue).enqueue(
            func_path,
            *args,
            job_id=job_id,
            job_timeout=timeout or settings.DSR_JOB_TIMEOUT,
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
        )
    except RedisError as exc:
        log.warning("Redis unavailable, %s left for the reconciler: %s", func_path, exc)
        return None


def enqueue_on_commit(func_path, *args, queue="default", job_id=None):
    """Enqueue once the surrounding transaction commits (never for rolled-back work)."""
    transaction.on_commit(lambda: enqueue_now(func_path, *args, queue=queue, job_id=job_id))


class PortalWorker(SimpleWorker):
    """Runs jobs in the worker process itself (no fork, so Django's connections stay sane) and
    finishes the current job on SIGTERM, as RQ's warm shutdown does."""

    def perform_job(self, job, queue, *args, **kwargs):
        close_old_connections()
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            close_old_connections()


def worker(name=None):
    queues = [get_queue(queue_name) for queue_name in settings.RQ_QUEUE_NAMES]
    return PortalWorker(
        queues,
        name=name,
        connection=queues[0].connection,
        serializer=queues[0].serializer,
    )
