"""The whole stack for the browser tests: one database that several processes share, a live
server in a thread, the Azure simulator over HTTP, a real ``manage.py worker`` subprocess and
Debian's Chromium driven by Playwright.

Why not pytest-django's ``live_server``: it is session-scoped and, on SQLite, hands its threads
the in-memory test connection, which the worker subprocess cannot open. Here, on SQLite, the
test runs against a migrated file database (copied from a template migrated once per module)
that the test thread, every server thread and the worker open by name; on PostgreSQL all of
them use pytest-django's ``test_<name>`` database (committed data: the tests are transactional).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"


def chromium_path():
    """Debian's Chromium (or DSR_CHROMIUM); None means Playwright's own download, which
    ``bin/ensure-browser`` (run by ``make test``) falls back to where apt is not available."""
    for candidate in (os.environ.get("DSR_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class LiveServer:
    """Django's own threaded live server (one thread per request, each with its own database
    connection), serving static files through the finders."""

    def __init__(self):
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.test.testcases import LiveServerThread

        self.thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
        self.thread.daemon = True
        self.thread.start()
        self.thread.is_ready.wait(timeout=30)
        if self.thread.error:
            raise self.thread.error
        self.url = f"http://127.0.0.1:{self.thread.port}"

    def stop(self):
        self.thread.terminate()
        self.thread.join(timeout=10)


class Worker:
    """One ``manage.py worker`` subprocess; stopped by its own pid only."""

    def __init__(self, env, log_path):
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--name", f"browser-{os.getpid()}"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({self.proc.returncode}):\n{self.output()}")

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: RQ finishes the current job (ours are short)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def serve_simulator(directory, throttle_scale=60):
    """The simulator over HTTP with a targets file the portal and the worker load.

    Throttled (and paced) at 60x Azure's rates so that an erasure takes seconds, not minutes.
    """
    from simulator.app import Simulator
    from simulator.server import serve
    from simulator.targets import write_targets

    sim = Simulator(seed=1, devices=30, throttle_scale=throttle_scale)
    server = serve(sim)
    path = write_targets(sim, Path(directory) / "azure" / "targets.toml", server.url)
    return sim, server, path


OUTBOX_BACKEND = "requests_app.workflow.outbox.OutboxBackend"


@contextlib.contextmanager
def running_stack(tmp_path, sqlite_template, settings, *, dev_outbox=False):
    """The whole stack for one browser test: the shared database, the simulator over HTTP,
    the live server and one ``manage.py worker`` subprocess. Yields an object with ``url``
    (the live server), ``sim``, ``sim_url`` and ``worker``."""
    from django.conf import settings as django_settings

    from requests_app.azure import configured_targets
    from tests.shared_database import SharedDatabase

    database = SharedDatabase(tmp_path, sqlite_template)
    sim, sim_server, targets = serve_simulator(tmp_path)
    server = worker = None
    try:
        server = LiveServer()
        settings.DSR_AZURE_TARGETS = str(targets)
        settings.DSR_DEV_OUTBOX = dev_outbox
        settings.EMAIL_BACKEND = OUTBOX_BACKEND
        settings.SITE_URL = server.url
        settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
        configured_targets.cache_clear()
        env = {
            **os.environ,
            "DATABASE_URL": database.url,
            "DSR_AZURE_TARGETS": str(targets),
            "DSR_DATA_DIR": str(django_settings.DSR_DATA_DIR),
            "SITE_URL": server.url,
            "EMAIL_BACKEND": OUTBOX_BACKEND,
            "DSR_DEV_OUTBOX": "0",
            "DSR_WORKER_THREADS": "4",  # as in production (the file database is shared)
            "RQ_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        worker = Worker(env, tmp_path / "worker.log")
        stack = type("Stack", (), {})()
        stack.url, stack.sim, stack.worker = server.url, sim, worker
        stack.sim_url = sim_server.url
        yield stack
    finally:
        if worker:
            worker.stop()
        if server:
            server.stop()
        sim_server.shutdown()
        configured_targets.cache_clear()
        database.restore()


def browser_sqlite_template(tmp_path_factory, name):
    """A migrated SQLite file the stack's database is copied from (None on PostgreSQL)."""
    from django.db import connections

    from tests.shared_database import migrated_sqlite_template

    if connections["default"].vendor != "sqlite":
        return None
    return migrated_sqlite_template(tmp_path_factory.mktemp(name))


@contextlib.contextmanager
def launched_browser():
    """One Chromium, for a module's ``browser`` fixture. Playwright's sync API leaves an event
    loop running in this thread, so Django would refuse ORM calls as "async unsafe" while it is
    up: allowed here, for as long as the browser runs."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            raise AssertionError(
                "no Chromium to drive: run `make test` (bin/ensure-browser installs Debian's "
                f"chromium) or `apt-get install chromium`. Playwright said: {exc}"
            ) from None
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def shot(page, name, full_page=True):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def wait_until(predicate, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
