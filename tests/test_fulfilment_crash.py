"""Fulfilment with real worker processes (``manage.py worker``) that get killed.

The children need the test database. On PostgreSQL that is simply ``test_<name>`` (committed
data, since these tests are transactional). pytest-django keeps an SQLite test database in
memory, which no other process can open, so on SQLite the test swaps the ``default`` connection
for a migrated file database in a temporary directory for its duration (and puts the in-memory
one back before pytest-django flushes it).
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections

from requests_app.access import roles
from requests_app.jobs import reconcile
from requests_app.jobs.operations import FINISHED_STATES
from requests_app.models import AuditEvent, DataRequest, Operation, PlannedDevice, Status
from tests.conftest import make_user
from tests.lifecycle_helpers import make_request
from tests.shared_database import SharedDatabase, migrated_sqlite_template
from tests.test_fulfilment import (
    approve,
    assert_operations_recorded,
    device_ids_of,
    hub_of,
    plan,
    serve_simulator,  # noqa: F401 (a fixture)
    split_state,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
LEASE = 5  # DSR_LEASE_SECONDS has a minimum of 5


@pytest.fixture
def child_database(tmp_path):
    """The DATABASE_URL a child process must use to see this test's database."""
    sqlite = connections["default"].vendor == "sqlite"
    database = SharedDatabase(tmp_path, migrated_sqlite_template(tmp_path) if sqlite else None)
    try:
        yield database.url
    finally:
        database.restore()


class Workers:
    """``manage.py worker`` subprocesses, started and killed by pid (never by name)."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = log_dir
        self.procs = []

    def start(self, n=1):
        for _ in range(n):
            log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "worker", "--name", f"crash-{len(self.procs)}"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            proc.log = log
            self.procs.append(proc)

    def alive(self):
        return [p for p in self.procs if p.poll() is None]

    def kill_all(self):
        for proc in self.alive():
            os.kill(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=10)

    def stop(self):
        for proc in self.alive():
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.log.close()


@pytest.fixture
def crash_setup(child_database, serve_simulator, settings, tmp_path, redis_db):  # noqa: F811
    settings.DSR_LEASE_SECONDS = LEASE
    sim = serve_simulator(devices=230, throttle_scale=200)
    env = {
        **os.environ,
        "DATABASE_URL": child_database,
        "DSR_AZURE_TARGETS": str(sim.targets_path),
        "DSR_LEASE_SECONDS": str(LEASE),
        "DSR_WORKER_THREADS": "4",  # several devices in flight per worker, as in production
        "DSR_DATA_DIR": str(django_settings.DSR_DATA_DIR),
        "RQ_LOG_LEVEL": "WARNING",
    }
    workers = Workers(env, tmp_path)
    officer = make_user("olivia", roles.OFFICER)
    approvers = [make_user("ada", roles.APPROVER), make_user("alan", roles.APPROVER)]
    yield sim, workers, officer, approvers
    workers.stop()


def drain_in_process():
    from tests.conftest import drain

    drain()


def erasure_of_200(sim, officer, approvers):
    samples, state = sim.samples(), sim.state()
    hub_only = set(samples["hub_only"])
    ids = [
        d
        for key in ("individual_symmetric", "individual_x509", "individual_tpm")
        for d in samples[key]
    ]
    ids += samples["group_provisioned"] + samples["never_provisioned"]
    hub_devices = [(d, hub_of(state, d)) for d in sorted(hub_only)]
    ids = ids[: 200 - len(hub_devices)]
    request = make_request(officer, ids, kind="erasure", hub_devices=hub_devices)
    assert request.identifiers.count() == 200
    # Scoping (read-only look-ups) runs in this process, like ``run_jobs``.
    return plan(request, officer, drain_in_process)


def finished_ops(request):
    return request.operations.filter(state__in=FINISHED_STATES).count()


def wait_for(predicate, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def recover_until_done(request, workers, timeout):
    """Reconcile every second (as the scheduler would, faster) until the request is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request.refresh_from_db()
        if request.status not in (Status.APPROVED, Status.RUNNING):
            return
        reconcile.reconcile()
        time.sleep(1)
    raise AssertionError(
        f"not finished: {request.status}, {finished_ops(request)}/{request.operations.count()}"
    )


def assert_erased_once(request, sim, before, calls_before):
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure
    assert_operations_recorded(request)
    calls = sim.calls[calls_before:]
    ok_deletes = Counter(
        (c["host"], c["path"])
        for c in calls
        if c["method"] == "DELETE" and 200 <= c["status"] < 300
    )
    assert ok_deletes and max(ok_deletes.values()) == 1, ok_deletes.most_common(3)
    ids = device_ids_of(request)
    mine, others = split_state(sim.state(), ids)
    blocked = [
        e
        for (_, name), items in mine.items()
        if name == "enrollments"
        for e in items
        if e["provisioningStatus"] == "disabled"
    ]
    group_devices = set(
        request.devices.filter(enrollment="group").values_list("registration_id", flat=True)
    )
    assert {e["registrationId"] for e in blocked} == group_devices
    leftover = {k: v for k, v in mine.items() if k[1] != "enrollments"}
    assert leftover == {}
    assert len(blocked) == sum(len(v) for k, v in mine.items() if k[1] == "enrollments")
    assert others == split_state(before, ids)[1]


def test_workers_killed_mid_erasure_nothing_lost_nothing_done_twice(crash_setup):
    sim, workers, officer, approvers = crash_setup
    started = time.monotonic()
    request = erasure_of_200(sim, officer, approvers)
    total = request.operations.count()
    before, calls_before = sim.state(), len(sim.calls)
    approve(request, *approvers)
    workers.start(2)
    kills = 0
    interrupted = set()  # operations a worker was in the middle of when it was killed
    caught_mid_work = 0  # kills that left a lease or a RUNNING row behind
    for fraction in (0.15, 0.45, 0.75):
        target = int(total * fraction)
        wait_for(lambda t=target: finished_ops(request) >= t, 180, f"{target} operations")
        workers.kill_all()  # SIGKILL, mid-operation: leases and RUNNING rows are left behind
        kills += 1
        running = set(
            request.operations.filter(state=Operation.State.RUNNING).values_list("pk", flat=True)
        )
        interrupted |= running
        if running or request.devices.filter(lease_until__isnull=False).exists():
            caught_mid_work += 1
        workers.start(2)
        # Nothing moves the dead worker's device until its lease expired and the reconciler ran.
        time.sleep(LEASE + 0.5)
        reconcile.reconcile()
    recover_until_done(request, workers, timeout=180)
    assert kills == 3
    assert caught_mid_work >= 1  # (a kill may also land between two devices)
    assert_erased_once(request, sim, before, calls_before)
    # Every operation a killed worker was in the middle of was taken over and run again (a
    # kill can also land between two operations, when only the device lease is left).
    attempts = dict(request.operations.filter(pk__in=interrupted).values_list("pk", "attempt"))
    assert all(attempt >= 2 for attempt in attempts.values()), attempts
    # Each takeover is on the request's timeline with the time the dead worker cost.
    resumed = AuditEvent.objects.filter(action="work_resumed", request_ref=request.reference)
    assert resumed.count() >= caught_mid_work
    assert all(e.details["lost_seconds"] >= LEASE for e in resumed), [e.details for e in resumed]
    assert time.monotonic() - started < 300  # ~40 s alone on SQLite


def test_redis_flushed_mid_run_reconciler_re_enqueues(crash_setup, redis_db):
    sim, workers, officer, approvers = crash_setup
    request = erasure_of_200(sim, officer, approvers)
    total = request.operations.count()
    before, calls_before = sim.state(), len(sim.calls)
    approve(request, *approvers)
    workers.start(1)
    wait_for(lambda: finished_ops(request) >= total // 3, 180, "a third of the operations")
    workers.kill_all()  # the worker is stopped ...
    redis_db.flushdb()  # ... and Redis loses every queue, job and pacing key
    assert not redis_db.keys("rq:*")
    workers.start(2)
    time.sleep(LEASE + 0.5)
    assert reconcile.reconcile() == 1
    recover_until_done(request, workers, timeout=180)
    assert_erased_once(request, sim, before, calls_before)
    assert (
        DataRequest.objects.get(pk=request.pk)
        .devices.filter(state=PlannedDevice.State.FOUND)
        .count()
        >= 150
    )
