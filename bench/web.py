"""Web benchmark: the request list and the dashboard over a large PostgreSQL database.

    .venv/bin/python bench/web.py                       # 100,000 requests, 20 clients, 30 s
    .venv/bin/python bench/web.py --requests 2000 --seconds 5

It uses its own database (``dsr_bench`` unless ``--database-url``), creating and migrating it
when needed, and loads ``--requests`` data subject requests (spread over the last 14 months,
1-3 identifiers each, approvals for the approved ones) with COPY. A database that already holds
that many requests is reused; ``--reload`` forces a fresh load. It then serves the portal with
gunicorn (DEBUG off, the production middleware and static files), logs ``--clients`` officers in
and has them fetch the pages (``webbench/pages.py``) as fast as they can for ``--seconds`` (or
``--iterations`` each), and prints the latency per page, the SQL queries each page runs (one
in-process request per page under ``CaptureQueriesContext``) and, for a page slower than
``--target-ms`` at p95, the query plan of its slowest query.

The parts are in ``bench/webbench/``: the environment and database, the data, the pages, the
gunicorn server, the clients and the printed report; this script puts them in order.
"""

import argparse
import atexit
import os
import signal
import sys
import time

from webbench import ROOT
from webbench.clients import run_clients, sign_in_clients
from webbench.data import OFFICER, ensure_users, load
from webbench.environment import bench_env, machine, prepare_database, setup_django
from webbench.pages import queries_per_page
from webbench.report import print_pages, print_plans, print_totals
from webbench.server import Server

sys.path.insert(0, str(ROOT))  # the portal's packages (portal, requests_app)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dsr_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--requests", type=int, default=100_000, help="requests to load")
    parser.add_argument("--reload", action="store_true", help="load even if the count matches")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--iterations", type=int, help="requests per client instead of --seconds")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up traffic")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0,
        help="mean pause between a client's requests (0: back to back, the default)",
    )
    parser.add_argument(
        "--pgoptions",
        default="",
        help='PGOPTIONS for every connection, to try a server setting, e.g. "-c jit=off"',
    )
    parser.add_argument("--target-ms", type=float, default=100, help="p95 goal per page")
    parser.add_argument("--no-explain", action="store_true", help="skip EXPLAIN of slow pages")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1:
        parser.error("--requests and --clients must be at least 1")
    return args


def print_setting(args):
    """The machine, its load, the PostgreSQL options and the database the figures come from."""
    from django.db import connection

    cpus, model, memory, pg = machine()
    print(f"machine: {cpus} CPUs, {model}, {memory} RAM; PostgreSQL {pg}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.pgoptions:
        print(f"PGOPTIONS: {args.pgoptions}")
    print(f"database: {connection.settings_dict['NAME']} on {connection.settings_dict['HOST']}")


def ensure_requests(count, reload, users):
    """Load ``count`` requests unless the database holds that many already (and no
    ``--reload``), then print what it holds."""
    from requests_app.models import Approval, DataRequest, RequestIdentifier

    have = DataRequest.objects.count()
    if have == count and not reload:
        print(f"data: {have:,} requests already loaded (--reload to load again)")
    else:
        started = time.monotonic()
        n, ni, na = load(count, users)
        print(
            f"data: loaded {n:,} requests, {ni:,} identifiers, {na:,} approvals "
            f"in {time.monotonic() - started:.1f} s"
        )
    print(
        "data: "
        f"{DataRequest.objects.count():,} requests, {RequestIdentifier.objects.count():,} "
        f"identifiers, {Approval.objects.count():,} approvals"
    )


def describe_run(args, url):
    """The line that says how the portal is served and how hard the clients push."""
    return (
        f"gunicorn: {args.workers} workers x {args.threads} threads on {url}; "
        f"{args.clients} clients, "
        + (f"{args.iterations} requests each" if args.iterations else f"{args.seconds:g} s")
        + f" after {args.warmup:g} s warm-up"
        + (f", {args.think_ms:g} ms think time" if args.think_ms else ", no think time")
    )


def serve_and_measure(env, args, password):
    """Serve the portal with gunicorn and run the clients against it; returns their results
    and the seconds they took, or None when interrupted (Ctrl-C)."""
    server = Server(env, args.workers, args.threads)

    def on_signal(signum, frame):
        server.stop()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(server.stop)
    try:
        server.start()
        print(describe_run(args, server.url), flush=True)
        clients = sign_in_clients(server, args.clients, password)
        measured = run_clients(clients, args.seconds, args.iterations, args.warmup, args.think_ms)
        for client in clients:
            client.close()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping gunicorn")
        server.stop()
        return None
    finally:
        server.stop()
    return measured


def main(argv=None):
    args = parse_args(argv)
    env = bench_env(args)
    prepare_database(env, args.database_url)
    setup_django(env, args.pgoptions)
    from django.db import connection

    print_setting(args)
    users, password = ensure_users()
    ensure_requests(args.requests, args.reload, users)
    per_page = queries_per_page(users[OFFICER])
    connection.close()

    measured = serve_and_measure(env, args, password)
    if measured is None:
        return 130
    results, elapsed = measured
    load_after = os.getloadavg()
    print()
    slow = print_pages(results, per_page, args.target_ms)
    print_totals(results, elapsed, args.target_ms, slow, load_after)
    if slow and not args.no_explain:
        print_plans(slow, per_page)
    return 1 if any(e for _, e in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
