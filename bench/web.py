"""Web benchmark: the request list and the dashboard over a large PostgreSQL database.

    .venv/bin/python bench/web.py                       # 100,000 requests, 20 clients, 30 s
    .venv/bin/python bench/web.py --requests 2000 --seconds 5

It uses its own database (``dsr_bench`` unless ``--database-url``), creating and migrating it
when needed, and loads ``--requests`` data subject requests (spread over the last 14 months,
1-3 identifiers each, approvals for the approved ones) with COPY. A database that already holds
that many requests is reused; ``--reload`` forces a fresh load. It then serves the portal with
gunicorn (DEBUG off, the production middleware and static files), logs ``--clients`` officers in
and has them fetch the pages below as fast as they can for ``--seconds`` (or ``--iterations``
each), and prints the latency per page, the SQL queries each page runs (one in-process request
per page under ``CaptureQueriesContext``) and, for a page slower than ``--target-ms`` at p95,
the query plan of its slowest query.
"""

import argparse
import atexit
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dsr_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
OFFICER = "bench-officer"
APPROVERS = ("bench-approver-1", "bench-approver-2", "bench-approver-3")
OTHER_OFFICERS = ("bench-officer-2", "bench-officer-3")
MONTHS_BACK = 14

# (name, path or a function of the random generator giving a path)
PAGES = [
    ("list first page", lambda rng: "/requests/"),
    ("list page N<=200", lambda rng: f"/requests/?page={rng.randint(2, 200)}"),
    ("awaiting, by due", lambda rng: "/requests/?status=awaiting_approval&sort=due"),
    ("search q=DSR-2026-00", lambda rng: "/requests/?q=DSR-2026-00"),
    ("dashboard", lambda rng: "/dashboard/"),
]


# --- environment --------------------------------------------------------------------------------
def bench_env(args):
    """The environment both gunicorn and this process's Django run with."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        DSR_HTTPS="0",
        ALLOWED_HOSTS="127.0.0.1",
        SITE_URL="http://127.0.0.1",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DSR_DEV_OUTBOX", None)
    if args.pgoptions:
        env["PGOPTIONS"] = args.pgoptions
    return env


def ensure_database(url):
    """CREATE DATABASE when it is missing (connecting to the server's ``postgres`` database)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        sys.exit("--database-url: name the database, e.g. postgres://postgres@HOST:5432/dsr_bench")
    if name in ("postgres", "template0", "template1"):
        sys.exit(f"--database-url: refusing to use the {name!r} database for the benchmark")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            print(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(env, *argv, quiet=True):
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        env=env,
        capture_output=quiet,
        text=True,
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(argv)} failed:\n{result.stdout or ''}{result.stderr or ''}")


# --- data ----------------------------------------------------------------------------------------
def _choose(rng, weighted):
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def _status_for(rng, age_days, Status):
    """Old requests are almost all finished; the last two months hold the open work."""
    if age_days > 75:
        if rng.random() < 0.004:  # a few stuck ones: the overdue list is never empty
            return _choose(
                rng, [(Status.FAILED, 5), (Status.AWAITING_APPROVAL, 3), (Status.RUNNING, 2)]
            )
        return _choose(
            rng,
            [
                (Status.COMPLETED, 84),
                (Status.COMPLETED_WITH_ISSUES, 4),
                (Status.REJECTED, 5),
                (Status.CANCELLED, 7),
            ],
        )
    open_share = 0.9 if age_days < 7 else 0.5 if age_days < 30 else 0.15
    if rng.random() < open_share:
        return _choose(
            rng,
            [
                (Status.DRAFT, 8),
                (Status.PLANNING, 7),
                (Status.AWAITING_APPROVAL, 40),
                (Status.APPROVED, 10),
                (Status.RUNNING, 25),
                (Status.FAILED, 10),
            ],
        )
    return _choose(
        rng,
        [
            (Status.COMPLETED, 84),
            (Status.COMPLETED_WITH_ISSUES, 4),
            (Status.REJECTED, 5),
            (Status.CANCELLED, 7),
        ],
    )


def _row(model, values):
    """Every concrete column of ``model``, in ``_meta`` order: the given value, else the field's
    default (so a column added by a later migration still gets one)."""
    row = []
    for field in model._meta.concrete_fields:
        value = values[field.attname] if field.attname in values else field.get_default()
        if field.get_internal_type() == "JSONField" and value is not None:
            value = json.dumps(value)
        row.append(value)
    return row


def _copy(cursor, model, rows):
    table = model._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in model._meta.concrete_fields)
    with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def ensure_users():
    from django.contrib.auth.models import Group, User

    from requests_app.access import roles

    roles.ensure_groups()
    password = secrets.token_urlsafe(16)
    users = {}
    for name, role in [
        (OFFICER, roles.OFFICER),
        *[(n, roles.OFFICER) for n in OTHER_OFFICERS],
        *[(n, roles.APPROVER) for n in APPROVERS],
    ]:
        user, _ = User.objects.get_or_create(
            username=name, defaults={"email": f"{name}@example.org"}
        )
        user.groups.add(Group.objects.get(name=role))
        users[name] = user
    officer = users[OFFICER]
    officer.set_password(password)
    officer.save(update_fields=["password"])
    return users, password


def load(n, users, seed=1):
    """Replace every request (and what hangs off it) with ``n`` generated ones, using COPY."""
    from django.db import connection, transaction

    from requests_app.models import (
        Approval,
        DataRequest,
        Kind,
        ReferenceCounter,
        Regulation,
        RequestIdentifier,
        Status,
    )
    from requests_app.models.requests import FINAL_STATUSES, due_date, latest_extension

    rng = random.Random(seed)
    today = date.today()
    now = datetime.now(UTC)
    start = today - timedelta(days=round(MONTHS_BACK * 30.44))
    span = (today - start).days
    received = sorted(start + timedelta(days=rng.randrange(span + 1)) for _ in range(n))
    creators = [users[OFFICER]] * 2 + [users[name] for name in OTHER_OFFICERS]
    approvers = [users[name] for name in APPROVERS]
    approved_like = {
        Status.APPROVED,
        Status.RUNNING,
        Status.COMPLETED,
        Status.COMPLETED_WITH_ISSUES,
        Status.FAILED,
    }
    counters = {}
    requests, identifiers, approvals = [], [], []
    identifier_id = approval_id = 0

    def at(day, lo_days=0, hi_days=0):
        moment = datetime.combine(day, dtime(8), tzinfo=UTC) + timedelta(
            days=rng.uniform(lo_days, hi_days), minutes=rng.randrange(600)
        )
        return min(moment, now)

    for pk, day in enumerate(received, start=1):
        counters[day.year] = counters.get(day.year, 0) + 1
        kind = _choose(rng, [(Kind.EXPORT, 50), (Kind.ERASURE, 35), (Kind.EXPORT_AND_ERASURE, 15)])
        regulation = _choose(rng, [(Regulation.GDPR, 70), (Regulation.CCPA, 30)])
        status = _status_for(rng, (today - day).days, Status)
        due = due_date(regulation, day)
        created = at(day)
        values = {
            "id": pk,
            "reference": f"DSR-{day.year}-{counters[day.year]:04d}",
            "kind": kind,
            "regulation": regulation,
            "received_at": day,
            "due_at": due,
            "subject_reference": f"TCK-{rng.randrange(10**7):07d}"
            if rng.random() < 0.7
            else f"subject-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
            "status": status,
            "created_by_id": rng.choice(creators).pk,
            "created_via": "form" if rng.random() < 0.8 else "api",
            "created_at": created,
            "updated_at": created,
            "failure": {},
        }
        if rng.random() < 0.05:
            values["extended_until"] = latest_extension(regulation, due)
            values["extension_reason"] = "Complex request: many devices across hubs."
            values["extension_notice_date"] = min(due, today)
        if status == Status.PLANNING and rng.random() < 0.2:
            values["scoping_error"] = "Hub unreachable: timed out"
        if status not in (Status.DRAFT, Status.PLANNING) and not (
            status == Status.CANCELLED and rng.random() < 0.5
        ):
            values["plan_version"] = f"{rng.getrandbits(64):016x}"
            values["plan_ready_at"] = at(day, 0, 1)
        if status in approved_like:
            values["approved_at"] = at(day, 1, 4)
        if status in (
            Status.RUNNING,
            Status.COMPLETED,
            Status.COMPLETED_WITH_ISSUES,
            Status.FAILED,
        ):
            values["started_at"] = at(day, 4, 5)
        if status in FINAL_STATUSES:
            late = rng.random() < 0.06
            effective = values.get("extended_until") or due
            budget = (effective - day).days
            done = at(day, budget + 1, budget + 10) if late else at(day, 2, max(3, budget - 2))
            values["completed_at"] = done
            values["updated_at"] = done
        if status == Status.FAILED:
            values["failure"] = {"code": "AzureError", "message": "429 Too Many Requests"}
        if status == Status.REJECTED:
            values["rejection_reason"] = "Identity of the requester could not be verified."
        if status == Status.CANCELLED:
            values["cancel_reason"] = "Withdrawn by the data subject."
        requests.append(_row(DataRequest, values))

        for line in range(1, rng.choice((1, 1, 2, 3)) + 1):
            identifier_id += 1
            device = f"dev-{rng.getrandbits(40):010x}"
            ident = {"id": identifier_id, "request_id": pk, "line": line}
            if rng.random() < 0.4:
                ident["registration_id"] = f"reg-{rng.getrandbits(40):010x}"
            else:
                ident["device_id"] = device
                ident["hub"] = f"hub-{rng.randrange(8)}.azure-devices.net"
            identifiers.append(_row(RequestIdentifier, ident))

        deciders = []
        if status in approved_like:
            deciders = rng.sample(approvers, 1 if kind == Kind.EXPORT else 2)
            decision = Approval.Decision.APPROVED
        elif status == Status.REJECTED:
            deciders = rng.sample(approvers, 1)
            decision = Approval.Decision.REJECTED
        for approver in deciders:
            approval_id += 1
            approvals.append(
                _row(
                    Approval,
                    {
                        "id": approval_id,
                        "request_id": pk,
                        "approver_id": approver.pk,
                        "approver_name": approver.username,
                        "plan_version": values.get("plan_version", ""),
                        "decision": decision,
                        "via": rng.choice(("link", "portal")),
                        "ip": f"10.0.0.{rng.randrange(1, 255)}",
                        "user_agent": "Mozilla/5.0 (bench)",
                        "created_at": values.get("approved_at") or at(day, 1, 4),
                    },
                )
            )

    dependents = [
        m._meta.db_table
        for m in DataRequest._meta.apps.get_models()
        if any(
            f.is_relation and f.many_to_one and f.related_model is DataRequest
            for f in m._meta.concrete_fields
        )
    ]
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        tables = ", ".join(f'"{t}"' for t in [DataRequest._meta.db_table, *dependents])
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        _copy(cursor, DataRequest, requests)
        _copy(cursor, RequestIdentifier, identifiers)
        _copy(cursor, Approval, approvals)
        for model in (DataRequest, RequestIdentifier, Approval):
            table = model._meta.db_table
            # Table names come from the models, not from input.
            query = f"""SELECT setval(pg_get_serial_sequence('"{table}"', 'id'),
                COALESCE((SELECT MAX(id) FROM "{table}"), 0) + 1, false)"""  # noqa: S608
            cursor.execute(query)
        ReferenceCounter.objects.all().delete()
        ReferenceCounter.objects.bulk_create(
            [ReferenceCounter(year=year, last=last) for year, last in counters.items()]
        )
    with connection.cursor() as cursor:  # outside the transaction: VACUUM cannot run in one
        for model in (DataRequest, RequestIdentifier, Approval):
            cursor.execute(f'VACUUM ANALYZE "{model._meta.db_table}"')
    return len(requests), len(identifiers), len(approvals)


# --- in-process: queries per page -----------------------------------------------------------------
def queries_per_page(officer):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(officer)
    rng = random.Random(7)
    result = {}
    for name, make in PAGES:
        path = make(rng)
        client.get(path)  # once to warm the connection and templates
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        queries = list(captured.captured_queries)  # the next request resets the query log
        alone = []
        for _ in range(5):  # one request at a time: the page's own cost, no queueing
            started = time.perf_counter()
            client.get(path)
            alone.append((time.perf_counter() - started) * 1000)
        slowest = max(queries, key=lambda q: float(q["time"]), default=None)
        result[name] = {
            "path": path,
            "status": response.status_code,
            "alone_ms": statistics.median(alone),
            "queries": len(queries),
            "sql_ms": sum(float(q["time"]) for q in queries) * 1000,
            "slowest_ms": float(slowest["time"]) * 1000 if slowest else 0.0,
            "slowest_sql": slowest["sql"] if slowest else "",
        }
    return result


def explain(sql_text, limit=25):
    from django.db import connection

    if not sql_text:
        return []
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql_text)
        lines = [row[0] for row in cursor.fetchall()]
    return lines[:limit] + (["  ..."] if len(lines) > limit else [])


# --- gunicorn ------------------------------------------------------------------------------------
class Server:
    def __init__(self, env, workers, threads):
        self.env, self.workers, self.threads = env, workers, threads
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (gunicorn writes it until stop)
            prefix="bench-gunicorn-", suffix=".log", delete=False
        )

    def start(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "-w",
                str(self.workers),
                "--threads",
                str(self.threads),
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "60",
                "--no-control-socket",  # the default path is shared by every gunicorn
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop it in stop()
        )
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/accounts/login/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s:\n{self.tail()}")

    def tail(self, lines=30):
        try:
            return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: gunicorn's graceful shutdown of its workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- clients -------------------------------------------------------------------------------------
def login(url, username, password):
    import httpx

    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    page = client.get("/accounts/login/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if page.status_code != 200 or not match:
        raise RuntimeError(f"login page: HTTP {page.status_code}, no CSRF token")
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": match[1]},
    )
    if response.status_code != 302 or "sessionid" not in client.cookies:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")
    return client


def run_clients(clients, seconds, iterations, warmup, think_ms=0):
    """Each client fetches a random page, again and again; returns {page: ([ms], errors)}."""
    results = {name: ([], []) for name, _ in PAGES}
    lock = threading.Lock()
    state = {"started": None, "stop_at": None}

    def begin():  # run once, when every client has warmed up, before any is released
        state["started"] = time.monotonic()
        state["stop_at"] = state["started"] + seconds

    barrier = threading.Barrier(len(clients) + 1, action=begin)

    def worker(index, client):
        rng = random.Random(1000 + index)
        try:  # warm-up: every page once, plus --warmup seconds
            for _name, make in PAGES:
                client.get(make(rng))
            end = time.monotonic() + warmup
            while time.monotonic() < end:
                client.get(_choose_page(rng)[1](rng))
        except Exception:  # noqa: S110 (a lasting failure shows as errors in the measured run)
            pass
        barrier.wait()
        local = {name: ([], []) for name, _ in PAGES}
        done = 0
        while True:
            if iterations is not None and done >= iterations:
                break
            if iterations is None and time.monotonic() >= state["stop_at"]:
                break
            name, make = _choose_page(rng)
            started = time.perf_counter()
            try:
                response = client.get(make(rng))
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    local[name][0].append(elapsed)
                else:
                    local[name][1].append(f"HTTP {response.status_code}")
            except Exception as exc:  # a timeout or dropped connection is a failed request
                local[name][1].append(exc.__class__.__name__)
            done += 1
            if think_ms:
                time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
        with lock:
            for name, (times, errors) in local.items():
                results[name][0].extend(times)
                results[name][1].extend(errors)

    threads = [
        threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - state["started"]


def _choose_page(rng):
    return PAGES[rng.randrange(len(PAGES))]


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- machine -------------------------------------------------------------------------------------
def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return os.cpu_count(), model, memory, pg


# --- main ----------------------------------------------------------------------------------------
def main(argv=None):
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

    env = bench_env(args)
    ensure_database(args.database_url)
    print("migrating ...", flush=True)
    manage(env, "migrate", "--noinput")
    # DEBUG off serves hashed files from the manifest, as in the Docker image.
    manage(env, "collectstatic", "--noinput")

    os.environ.update(
        {
            k: env[k]
            for k in (
                "DJANGO_SETTINGS_MODULE",
                "DATABASE_URL",
                "REDIS_URL",
                "SECRET_KEY",
                "DEBUG",
                "DSR_HTTPS",
                "ALLOWED_HOSTS",
                "SITE_URL",
                "LOG_LEVEL",
            )
        }
    )
    os.environ.pop("DSR_DEV_OUTBOX", None)
    if args.pgoptions:
        os.environ["PGOPTIONS"] = args.pgoptions
    import django

    django.setup()
    from django.db import connection

    from requests_app.models import Approval, DataRequest, RequestIdentifier

    cpus, model, memory, pg = machine()
    print(f"machine: {cpus} CPUs, {model}, {memory} RAM; PostgreSQL {pg}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.pgoptions:
        print(f"PGOPTIONS: {args.pgoptions}")
    print(f"database: {connection.settings_dict['NAME']} on {connection.settings_dict['HOST']}")

    users, password = ensure_users()
    have = DataRequest.objects.count()
    if have == args.requests and not args.reload:
        print(f"data: {have:,} requests already loaded (--reload to load again)")
    else:
        started = time.monotonic()
        n, ni, na = load(args.requests, users)
        print(
            f"data: loaded {n:,} requests, {ni:,} identifiers, {na:,} approvals "
            f"in {time.monotonic() - started:.1f} s"
        )
    print(
        "data: "
        f"{DataRequest.objects.count():,} requests, {RequestIdentifier.objects.count():,} "
        f"identifiers, {Approval.objects.count():,} approvals"
    )

    per_page = queries_per_page(users[OFFICER])
    connection.close()

    server = Server(env, args.workers, args.threads)

    def on_signal(signum, frame):
        server.stop()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(server.stop)
    try:
        server.start()
        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads on {server.url}; "
            f"{args.clients} clients, "
            + (f"{args.iterations} requests each" if args.iterations else f"{args.seconds:g} s")
            + f" after {args.warmup:g} s warm-up"
            + (f", {args.think_ms:g} ms think time" if args.think_ms else ", no think time"),
            flush=True,
        )
        clients = [None] * args.clients

        def sign_in(i):
            clients[i] = login(server.url, OFFICER, password)

        logins = [threading.Thread(target=sign_in, args=(i,)) for i in range(args.clients)]
        for thread in logins:
            thread.start()
        for thread in logins:
            thread.join()
        if any(c is None for c in clients):
            raise RuntimeError(
                "some clients could not sign in; see gunicorn's log:\n" + server.tail()
            )
        results, elapsed = run_clients(
            clients, args.seconds, args.iterations, args.warmup, args.think_ms
        )
        for client in clients:
            client.close()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping gunicorn")
        server.stop()
        return 130
    finally:
        server.stop()

    total = sum(len(t) + len(e) for t, e in results.values())
    load_after = os.getloadavg()
    print()
    header = (
        f"{'page':<22} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'queries':>7} {'SQL ms':>7} {'alone':>6}  path"
    )
    print(header)
    print("-" * len(header))
    slow = []
    for name, _ in PAGES:
        times, errors = results[name]
        info = per_page[name]
        p95 = percentile(times, 95)
        print(
            f"{name:<22} {len(times):>6} {percentile(times, 50):>8.1f} {p95:>8.1f} "
            f"{percentile(times, 99):>8.1f} {len(errors):>6} {info['queries']:>7} "
            f"{info['sql_ms']:>7.1f} {info['alone_ms']:>6.1f}  {info['path']}"
        )
        if info["status"] != 200:
            print(f"  ! in-process request answered HTTP {info['status']}")
        if errors:
            print(f"  ! errors: {sorted(set(errors))}")
        if not times or p95 > args.target_ms:
            slow.append(name)
    print(
        f"\n{total:,} requests in {elapsed:.1f} s = {total / elapsed:.0f} req/s; "
        f"goal p95 <= {args.target_ms:g} ms: "
        + ("met on every page" if not slow else f"missed on {', '.join(slow)}")
    )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*load_after))
    print(
        "(queries, SQL ms: one in-process request per page with the Django test client; "
        "alone: that page's median in-process time, one request at a time, no queueing)"
    )

    if slow and not args.no_explain:
        for name in slow:
            info = per_page[name]
            print(f"\n--- {name}: slowest query {info['slowest_ms']:.1f} ms (of {info['queries']})")
            print(info["slowest_sql"])
            for line in explain(info["slowest_sql"]):
                print("  " + line)
    return 1 if any(e for _, e in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
