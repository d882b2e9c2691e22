"""`manage.py worker` and `manage.py scheduler`, the processes make run and docker-compose use."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from requests_app.jobs.queues import get_queue

ROOT = Path(__file__).resolve().parent.parent


def test_worker_finishes_the_current_job_on_sigterm(tmp_path, redis_db):
    marker = tmp_path / "done.txt"
    job = get_queue("default").enqueue("tests.jobs.slow_write", str(marker), 3)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--name", f"sigterm-{os.getpid()}"],
        cwd=ROOT,
        env={
            **os.environ,
            "RQ_LOG_LEVEL": "WARNING",
            "DSR_WORKER_EXTRA_JOBS": "tests.jobs.slow_write",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != "started" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.get_status() == "started"
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert marker.read_text() == "finished"  # the job ran to its end before the worker left
    assert job.get_status(refresh=True) == "finished"


def test_worker_serves_every_portal_queue(redis_db, settings):
    from requests_app.jobs.queues import worker

    names = {queue.name for queue in worker().queues}
    assert names == set(settings.RQ_QUEUE_NAMES) == {"default", "fulfilment-short", "fulfilment"}


# transaction=True: the scheduler calls close_old_connections() like a long-running process,
# which closes a connection found inside a test's wrapping transaction.
@pytest.mark.django_db(transaction=True)
def test_scheduler_runs_each_task_once_per_interval(redis_db, capsys, settings, tmp_path):
    from requests_app.evidence.checkpoints import keys

    key = keys.generate_key_file(tmp_path / "signing.pem")  # production needs a real key
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.DSR_AUDIT_PUBLIC_KEY = keys.public_b64(key.public_key())
    settings.DSR_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    call_command("scheduler", "--once")
    assert "ran: reconcile, reminders, anonymous_noise, audit_checkpoint" in capsys.readouterr().out
    call_command("scheduler", "--once")  # a second scheduler, or the next tick: nothing is due
    assert "ran:" not in capsys.readouterr().out


def test_jobs_are_serialized_as_json(redis_db):
    """Job data in Redis is JSON (never pickle) and holds primary keys, not device IDs."""
    import json
    import zlib

    job = get_queue("fulfilment").enqueue("requests_app.jobs.fulfilment.run_job", 42)
    data = json.loads(zlib.decompress(redis_db.hget(f"rq:job:{job.id}", "data")))
    assert data == ["requests_app.jobs.fulfilment.run_job", None, [42], {}]


@pytest.mark.django_db(transaction=True)  # the worker closes old connections around each job
def test_the_worker_refuses_jobs_the_portal_never_enqueues(redis_db, tmp_path):
    """Whoever can write to Redis must not run code in the worker (which holds the Azure
    secrets): a job naming any other function, or passing anything but primary keys, fails
    without being imported or called."""
    from requests_app.jobs.queues import worker

    pwned = tmp_path / "pwned"
    queue = get_queue("default")
    foreign = queue.enqueue("os.system", f"touch {pwned}")
    smuggled = queue.enqueue("requests_app.workflow.lifecycle.scope_job", "1; DROP TABLE x")
    worker(name=f"refuse-{os.getpid()}").work(burst=True, with_scheduler=False)
    assert not pwned.exists()
    for job in (foreign, smuggled):
        job.refresh()
        assert job.get_status() == "failed"
        assert "JobRefused" in job.latest_result().exc_string


@pytest.mark.django_db(transaction=True)
def test_jobs_queued_under_the_old_paths_still_run(redis_db, officer):
    """Jobs enqueued before the move to folders name requests_app.lifecycle.scope_job and
    requests_app.fulfilment.run_job: they still run (for one release)."""
    from requests_app.jobs.queues import worker
    from requests_app.models import Status
    from tests.lifecycle_helpers import make_request

    request = make_request(officer, ["reg-1"])
    request.transition(Status.PLANNING, actor=officer)
    old = get_queue("default").enqueue("requests_app.lifecycle.scope_job", request.pk)
    also = get_queue("fulfilment").enqueue("requests_app.fulfilment.run_job", request.pk)
    worker(name=f"legacy-{os.getpid()}").work(burst=True, with_scheduler=False)
    for job in (old, also):
        job.refresh()
        assert job.get_status() == "finished", job.latest_result().exc_string
