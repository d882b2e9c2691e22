"""An approval token (or a password reset token) never reaches a log line the portal writes:
runserver's access log, gunicorn's access log (as the Dockerfile runs it) and error reports."""

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from portal.logging import RedactTokens, redact

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "eyJyIjoxLCJhIjoyLCJ2IjoiYWJjIn0:1vQxYz:Q2hhbmdlZC10b2tlbi1zaWduYXR1cmUtdmFsdWU"
RESET = "/accounts/reset/MQ/cxyz12-0123456789abcdef0123456789abcdef/"


def test_redact_removes_tokens_and_keeps_what_is_not_secret():
    assert redact(f'"GET /approve/{TOKEN}/ HTTP/1.1" 302') == (
        '"GET /approve/[redacted]/ HTTP/1.1" 302'
    )
    assert redact(f"GET {RESET} HTTP/1.1") == "GET /accounts/reset/MQ/[redacted]/ HTTP/1.1"
    assert redact("/accounts/reset/MQ/set-password/") == "/accounts/reset/MQ/set-password/"
    assert redact("GET /approve/t/abc123/ HTTP/1.1") == "GET /approve/t/abc123/ HTTP/1.1"
    # The data subject's delivery link; its session-bound page and download are not secret.
    delivery = "oXfvSxeCeXwipnrGltNYA0123456789abcdefghij_-"
    assert redact(f'"GET /d/{delivery}/ HTTP/1.1" 302') == '"GET /d/[redacted]/ HTTP/1.1" 302'
    assert redact(f"Not Found: /d/{delivery}") == "Not Found: /d/[redacted]"
    assert redact('"POST /d/download HTTP/1.1" 200') == '"POST /d/download HTTP/1.1" 200'
    assert redact('"GET /d/ HTTP/1.1" 200') == '"GET /d/ HTTP/1.1" 200'


def test_the_logging_filter_rewrites_messages_and_drops_the_request():
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s",
        (f"/approve/{TOKEN}/",), None,
    )  # fmt: skip
    record.request = type("Request", (), {"path": f"/approve/{TOKEN}/"})()
    assert RedactTokens().filter(record)
    assert record.getMessage() == "Internal Server Error: /approve/[redacted]/"
    assert record.request is None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redaction")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        DEBUG="1",
        PYTHONUNBUFFERED="1",
        ALLOWED_HOSTS="127.0.0.1",
        REDIS_URL="redis://127.0.0.1:1/0",  # never used by these pages
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return env, tmp


def fetch_until_up(url, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (our own test server)
            return
        except urllib.error.HTTPError:
            return  # an answer, whatever the status
        except OSError:
            if process.poll() is not None:
                raise AssertionError("the server exited") from None
            time.sleep(0.3)
    raise AssertionError("the server did not answer")


def fetch_secrets(base, process):
    fetch_until_up(f"{base}/healthz", process)
    for path in (f"/approve/{TOKEN}/", RESET):
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}{path}", timeout=5)  # noqa: S310


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_runserver_access_log_has_no_token(server_env):
    env, tmp = server_env
    port = free_port()
    log = tmp / "runserver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            fetch_secrets(f"http://127.0.0.1:{port}", process)
            time.sleep(0.5)
        finally:
            stop(process)
    text = log.read_text()
    assert "GET /approve/[redacted]/" in text, text
    assert "/accounts/reset/MQ/[redacted]/" in text
    assert TOKEN not in text and "cxyz12" not in text


def test_gunicorn_access_log_has_no_token(server_env):
    env, tmp = server_env
    port = free_port()
    access = tmp / "access.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--logger-class", "portal.logging.RedactingGunicornLogger",
            "--access-logfile", str(access),
            "--access-logformat", '%(h)s "%(r)s" %(s)s "%(f)s" %(U)s?%(q)s',
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        fetch_secrets(f"http://127.0.0.1:{port}", process)
        time.sleep(0.5)
    finally:
        stop(process)
    text = access.read_text()
    assert '"GET /approve/[redacted]/ HTTP/1.1"' in text, text
    assert TOKEN not in text and "cxyz12" not in text
