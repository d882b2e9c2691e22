"""Fairness between requests: a long request's job gives its worker back between devices once
its turn is over and other jobs wait, and a short request's jobs go before a long one's, so a
short request is not stuck behind it."""

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
    waiting = set()  # the queues with another request's job in them
    monkeypatch.setattr(
        fulfilment, "others_waiting", lambda request_id, queues: bool(waiting & set(queues))
    )
    clock = Clock()
    turn = fulfilment.Turn(timeout=600, request_id=1, queue="fulfilment", clock=clock)
    waiting.add("fulfilment")
    clock.now += 31
    assert not turn.ended()  # no device run yet in this turn: it never ends empty-handed
    turn.worked()
    waiting.clear()
    clock.now -= 2
    waiting.add("fulfilment")
    assert not turn.ended()  # inside the slice: keeps going even with other long jobs waiting
    waiting.clear()
    clock.now += 2
    assert not turn.ended()  # past the slice, nobody waiting: keeps going
    clock.now += 0.2
    waiting.add("fulfilment")
    assert not turn.ended()  # the queues are asked at most every CHECK_SECONDS
    clock.now += fulfilment.CHECK_SECONDS
    assert turn.ended() and turn.ended()  # over, and stays over
    alone = fulfilment.Turn(timeout=600, request_id=1, queue="fulfilment", clock=clock)
    alone.worked()
    waiting.clear()
    clock.now += 299
    assert not alone.ended()
    clock.now += 1
    assert alone.ended()  # half the RQ timeout: hand over even when nobody waits
    # A short request's job waiting ends a long job's turn after the device in hand, inside
    # the slice; a short job never gives way to a long one.
    long = fulfilment.Turn(timeout=600, request_id=1, queue="fulfilment", clock=clock)
    short = fulfilment.Turn(timeout=600, request_id=2, queue="fulfilment-short", clock=clock)
    long.worked()
    short.worked()
    waiting.add("fulfilment-short")
    assert long.ended()
    waiting.add("fulfilment")
    waiting.discard("fulfilment-short")
    assert not short.ended()
    clock.now += 31
    assert not short.ended()


def test_only_another_requests_jobs_end_a_turn(officer, redis_db):
    from requests_app.jobs.queues import RUN_JOB, enqueue_now

    mine, theirs = make_request(officer, ["a"]), make_request(officer, ["b"])
    enqueue_now(RUN_JOB, mine.pk, queue="fulfilment", job_id=fulfilment.first_job_id(mine))
    assert not fulfilment.others_waiting(mine.pk)  # its own lane: nothing gained by handing over
    enqueue_now(RUN_JOB, theirs.pk, queue="fulfilment", job_id=fulfilment.first_job_id(theirs))
    assert fulfilment.others_waiting(mine.pk) and fulfilment.others_waiting(theirs.pk)
    # A short request's job does not give way to a long one's: a worker would take it back.
    assert not fulfilment.others_waiting(mine.pk, ("fulfilment-short",))


def test_a_requests_jobs_go_to_the_short_or_the_long_queue_by_its_devices(officer, settings):
    from requests_app.jobs.queues import fulfilment_queue
    from requests_app.models import PlannedDevice

    settings.DSR_SHORT_REQUEST_DEVICES = 2
    request = make_request(officer, ["a", "b", "c"])
    for position in (1, 2):
        PlannedDevice.objects.create(
            request=request, position=position, registration_id=f"r{position}", state="found"
        )
    assert fulfilment_queue(request) == "fulfilment-short"
    PlannedDevice.objects.create(request=request, position=3, registration_id="r3", state="found")
    assert fulfilment_queue(request) == "fulfilment"
    # Workers serve the short queue before the long one.
    assert settings.RQ_QUEUE_NAMES.index("fulfilment-short") < settings.RQ_QUEUE_NAMES.index(
        "fulfilment"
    )


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
    settings.DSR_SHORT_REQUEST_DEVICES = 0  # both in one queue: only the turns keep it fair
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


def test_a_short_request_approved_after_a_long_one_runs_first(
    azure, officer, approver, run_jobs, settings
):
    settings.DSR_FULFILMENT_SLICE_SECONDS = 100_000  # no turns: only the queues' order
    settings.DSR_PARALLEL_JOBS = 1
    settings.DSR_WORKER_THREADS = 1
    settings.DSR_SHORT_REQUEST_DEVICES = 3
    samples = azure.samples()
    regs = sorted(samples["individual_symmetric"] + samples["individual_x509"])
    long = plan(make_request(officer, regs[:8]), officer, run_jobs)
    short = plan(make_request(officer, regs[8:11]), officer, run_jobs)
    approve(long, approver)
    approve(short, approver)  # approved second, on one worker
    run_jobs()
    long.refresh_from_db()
    short.refresh_from_db()
    assert long.status == short.status == Status.COMPLETED
    assert not long.operations.filter(finished_at__lt=short.completed_at).exists()


def test_claims_interleave_the_hubs_so_each_hubs_throttles_are_busy(officer):
    """Devices listed hub by hub are claimed hub after hub: each hub has its own buckets."""
    from requests_app.jobs.claims import claim_device, release_device
    from requests_app.models import Operation, PlannedDevice

    request = make_request(officer, ["x"], kind="erasure")
    for position in range(1, 13):
        hub = "hub-a.azure-devices.net" if position <= 6 else "hub-b.azure-devices.net"
        device = PlannedDevice.objects.create(
            request=request, position=position, device_id=f"d{position}", hub=hub, state="found"
        )
        Operation.objects.create(
            request=request,
            device=device,
            seq=position,
            phase=Operation.Phase.ERASURE,
            action="hub.delete_device",
            method="DELETE",
            host=hub,
            path=f"/devices/d{position}",
        )
    phase = [Operation.Phase.ERASURE]
    held = [claim_device(request, phase, f"w{n}") for n in range(4)]
    assert [d.hub[:5] for d in held] == ["hub-a", "hub-b", "hub-a", "hub-b"]
    assert [d.position for d in held] == [1, 7, 2, 8]  # plan order within each hub
    release_device(held[0], "w0")
    release_device(held[2], "w2")  # hub-a is idle now: the next claim goes there
    assert claim_device(request, phase, "w5").hub.startswith("hub-a")
