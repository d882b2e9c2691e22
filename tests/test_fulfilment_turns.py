"""Fairness between requests: a long request's job gives its worker back between devices once
its turn is over and other jobs wait, so a short request is not stuck behind it."""

import pytest

from requests_app.jobs import fulfilment
from requests_app.jobs.queues import next_turn_id
from requests_app.models import Status
from tests.lifecycle_helpers import make_request
from tests.test_fulfilment import (
    approve,
    plan,
    serve_simulator,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def azure(serve_simulator):  # noqa: F811
    return serve_simulator(devices=80, throttle_scale=60)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_turn_ends_after_the_slice_when_others_wait_or_at_half_the_timeout(settings, monkeypatch):
    settings.DSR_FULFILMENT_SLICE_SECONDS = 30
    waiting = []
    monkeypatch.setattr(fulfilment, "others_waiting", lambda request_id: bool(waiting))
    clock = Clock()
    turn = fulfilment.Turn(timeout=600, request_id=1, clock=clock)
    waiting.append("job")
    clock.now += 31
    assert not turn.ended()  # no device run yet in this turn: it never ends empty-handed
    turn.worked()
    waiting.clear()
    clock.now -= 2
    waiting.append("job")
    assert not turn.ended()  # inside the slice: keeps going even with others waiting
    waiting.clear()
    clock.now += 2
    assert not turn.ended()  # past the slice, nobody waiting: keeps going
    clock.now += 0.5
    waiting.append("job")
    assert not turn.ended()  # the queue is asked at most once a second
    clock.now += 1
    assert turn.ended() and turn.ended()  # over, and stays over
    alone = fulfilment.Turn(timeout=600, request_id=1, clock=clock)
    alone.worked()
    waiting.clear()
    clock.now += 299
    assert not alone.ended()
    clock.now += 1
    assert alone.ended()  # half the RQ timeout: hand over even when nobody waits


def test_only_another_requests_jobs_end_a_turn(officer, redis_db):
    from requests_app.jobs.queues import RUN_JOB, enqueue_now

    mine, theirs = make_request(officer, ["a"]), make_request(officer, ["b"])
    enqueue_now(RUN_JOB, mine.pk, queue="fulfilment", job_id=fulfilment.first_job_id(mine))
    assert not fulfilment.others_waiting(mine.pk)  # its own lane: nothing gained by handing over
    enqueue_now(RUN_JOB, theirs.pk, queue="fulfilment", job_id=fulfilment.first_job_id(theirs))
    assert fulfilment.others_waiting(mine.pk) and fulfilment.others_waiting(theirs.pk)


def test_the_lane_alternates_between_its_two_ids_and_the_reconciler_knows_both(officer):
    request = make_request(officer, ["r"])
    first = fulfilment.first_job_id(request)
    assert next_turn_id(next_turn_id(first)) == first != next_turn_id(first)
    assert {first, next_turn_id(first)} <= set(fulfilment.job_ids(request))


def test_a_short_request_finishes_while_a_long_one_is_still_running(
    azure, officer, approver, run_jobs, settings
):
    settings.DSR_FULFILMENT_SLICE_SECONDS = 0
    settings.DSR_PARALLEL_JOBS = 1
    settings.DSR_WORKER_THREADS = 1
    samples = azure.samples()
    regs = sorted(
        samples["individual_symmetric"] + samples["individual_x509"] + samples["individual_tpm"]
    )
    long = plan(make_request(officer, regs[:12]), officer, run_jobs)
    short = plan(make_request(officer, [regs[12]]), officer, run_jobs)
    approve(long, approver)
    approve(short, approver)  # queued behind the long request's job, on one worker
    run_jobs()
    long.refresh_from_db()
    short.refresh_from_db()
    assert long.status == short.status == Status.COMPLETED
    # The long request's job handed the worker over after a device: the short one was done
    # long before the long one.
    assert short.completed_at < long.completed_at
    done_before_short = long.operations.filter(finished_at__lt=short.completed_at).count()
    assert 0 < done_before_short < long.operations.count() // 2
