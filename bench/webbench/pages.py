"""The pages under test, and what each costs in process: its SQL queries, its time alone and
the plan of its slowest query."""

import random
import statistics
import time

# (name, path or a function of the random generator giving a path)
PAGES = [
    ("list first page", lambda rng: "/requests/"),
    ("list page N<=200", lambda rng: f"/requests/?page={rng.randint(2, 200)}"),
    ("awaiting, by due", lambda rng: "/requests/?status=awaiting_approval&sort=due"),
    ("search q=DSR-2026-00", lambda rng: "/requests/?q=DSR-2026-00"),
    ("dashboard", lambda rng: "/dashboard/"),
]


def choose_page(rng):
    """A (name, path function) from ``PAGES``, each as likely."""
    return PAGES[rng.randrange(len(PAGES))]


def queries_per_page(officer):
    """For each page ({name: {...}}), signed in as ``officer`` with Django's test client: its
    path and HTTP status, its SQL queries (count, total ms, the slowest and its ms) and its
    median time alone."""
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(officer)
    rng = random.Random(7)
    return {name: _measure_page(client, make(rng)) for name, make in PAGES}


def _measure_page(client, path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

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
    return {
        "path": path,
        "status": response.status_code,
        "alone_ms": statistics.median(alone),
        "queries": len(queries),
        "sql_ms": sum(float(q["time"]) for q in queries) * 1000,
        "slowest_ms": float(slowest["time"]) * 1000 if slowest else 0.0,
        "slowest_sql": slowest["sql"] if slowest else "",
    }


def explain(sql_text, limit=25):
    """The first ``limit`` lines of ``EXPLAIN (ANALYZE, BUFFERS)`` of ``sql_text``."""
    from django.db import connection

    if not sql_text:
        return []
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql_text)
        lines = [row[0] for row in cursor.fetchall()]
    return lines[:limit] + (["  ..."] if len(lines) > limit else [])
