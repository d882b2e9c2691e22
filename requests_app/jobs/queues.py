"""The one place that talks to RQ: queues, the Redis connection, enqueue-after-commit.

Jobs receive primary keys only and are serialized as JSON (RQ_QUEUES sets the serializer), so
no personal data, device IDs or keys are ever stored in Redis. If Redis is down when a job is
enqueued, nothing fails: the database already says what is left to do, and the reconciler
enqueues it once Redis answers again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import django_rq
from django.conf import settings
from django.db import close_old_connections, transaction
from redis.exceptions import RedisError
from rq.job import Job
from rq.worker import SimpleWorker

if TYPE_CHECKING:
    from redis import Redis
    from rq.queue import Queue

    from requests_app.models import DataRequest

log = logging.getLogger(__name__)

# The portal's jobs: the function each runs and the id each gets (one job per request and
# purpose, so enqueuing twice is harmless).
SCOPE_JOB = "requests_app.workflow.lifecycle.scope_job"
RUN_JOB = "requests_app.jobs.fulfilment.run_job"
DISCOVERY_JOB = "requests_app.discovery.search.discovery_job"


def scope_job_id(data_request: DataRequest) -> str:
    return f"dsr-scope-{data_request.pk}"


def run_job_id(data_request: DataRequest, lane: int = 0, turn: bool = False) -> str:
    """A fulfilment lane's job id; a job that hands its worker over re-enqueues the lane under
    the other of its two ids (``turn``), so the reconciler still finds it by id."""
    return f"{run_job_prefix(data_request.pk)}{lane}" + ("-b" if turn else "")


def run_job_prefix(request_id: int) -> str:
    """What every fulfilment job id of one request starts with."""
    return f"dsr-run-{request_id}-"


# The fulfilment queues, most urgent first (a worker listens to them in this order): a short
# request's jobs go before a long one's, so three devices never wait behind ten thousand.
FULFILMENT_QUEUES = ("fulfilment-short", "fulfilment")


def fulfilment_queue(data_request: DataRequest) -> str:
    """The queue a request's fulfilment jobs go to: short (at most
    ``DSR_SHORT_REQUEST_DEVICES`` devices) or long."""
    short = data_request.devices.count() <= settings.DSR_SHORT_REQUEST_DEVICES
    return FULFILMENT_QUEUES[0] if short else FULFILMENT_QUEUES[1]


def next_turn_id(job_id: str) -> str:
    """The id a lane's job re-enqueues itself under: the other of the lane's two ids."""
    return job_id.removesuffix("-b") if job_id.endswith("-b") else f"{job_id}-b"


# The only functions a portal worker runs. RQ would import and call whatever a job names, so
# anyone able to write to Redis could run code in the process that holds the Azure secrets;
# the worker refuses everything else (and any argument that is not a primary key).
# The paths of before the move to folders, for jobs still queued (requests_app/lifecycle.py and
# requests_app/fulfilment.py re-export them): one release, then these go.
LEGACY_JOBS = frozenset({"requests_app.lifecycle.scope_job", "requests_app.fulfilment.run_job"})
ALLOWED_JOBS = frozenset({SCOPE_JOB, RUN_JOB, DISCOVERY_JOB}) | LEGACY_JOBS


class JobRefused(Exception):
    """A job that names a function (or arguments) the portal never enqueues."""


class PortalJob(Job):
    """RQ's job, run only when it is one of ALLOWED_JOBS called with primary keys."""

    def _execute(self) -> Any:
        if self.func_name in settings.DSR_WORKER_EXTRA_JOBS:
            return super()._execute()
        if self.func_name not in ALLOWED_JOBS:
            log.error("refused job %s: %r is not a portal job function", self.id, self.func_name)
            raise JobRefused(f"{self.func_name!r} is not one of the portal's job functions")
        if self.kwargs or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in self.args
        ):
            log.error("refused job %s: arguments are not primary keys", self.id)
            raise JobRefused("job arguments must be primary keys (integers)")
        return super()._execute()


def redis_connection() -> Redis:
    return django_rq.get_connection("default")


def get_queue(name: str = "default") -> Queue:
    return django_rq.get_queue(name)


def enqueue_now(
    func_path: str,
    *args: int,
    queue: str = "default",
    job_id: str | None = None,
    timeout: int | None = None,
) -> Job | None:
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


def enqueue_on_commit(
    func_path: str, *args: int, queue: str = "default", job_id: str | None = None
) -> None:
    """Enqueue once the surrounding transaction commits (never for rolled-back work)."""
    transaction.on_commit(lambda: enqueue_now(func_path, *args, queue=queue, job_id=job_id))


class PortalWorker(SimpleWorker):
    """Runs jobs in the worker process itself (no fork, so Django's connections stay sane) and
    finishes the current job on SIGTERM, as RQ's warm shutdown does."""

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        close_old_connections()
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            close_old_connections()


def worker(name: str | None = None) -> PortalWorker:
    queues = [get_queue(queue_name) for queue_name in settings.RQ_QUEUE_NAMES]
    return PortalWorker(
        queues,
        name=name,
        connection=queues[0].connection,
        serializer=queues[0].serializer,
        job_class=PortalJob,
    )
