"""`manage.py azuresim`: serves the simulator, prints connection strings, writes targets, stops
cleanly on SIGTERM. Also the Django-free runner and the targets writer on their own."""

import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import tomllib
from io import StringIO
from pathlib import Path

import httpx

from simulator import cli, hosts
from simulator.app import Simulator
from simulator.targets import write_targets

ROOT = Path(__file__).resolve().parent.parent


def read_lines(stream, lines):
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def wait_for(lines, pattern, seen, timeout=30):
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError("process ended early:\n" + "\n".join(seen))
        seen.append(line)
        if re.search(pattern, line):
            return line


def check_targets(path, sim_or_strings):
    targets = tomllib.loads(path.read_text())
    assert [d["hostname"] for d in targets["dps"]] == [hosts.DPS_HOST]
    assert [h["hostname"] for h in targets["hub"]] == [hosts.HUB1_HOST, hosts.HUB2_HOST]
    assert all(h["tier"] == "S1" and h["units"] == 1 for h in targets["hub"])
    for target in targets["dps"] + targets["hub"]:
        assert target["auth"] == "sas"
        secret = path.parent / target["connection_string_file"]
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text().strip() == sim_or_strings[target["hostname"]]
    return targets


def test_manage_py_azuresim_serves_writes_targets_and_stops_on_sigterm(tmp_path):
    # As the README shows it, on a machine with no portal configuration at all.
    unset = {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["PYTHONUNBUFFERED"] = "1"
    targets_path = tmp_path / "targets" / "targets.toml"
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "azuresim",
            "--bind",
            "127.0.0.1:0",
            "--seed",
            "1",
            "--devices",
            "20",
            "--write-targets",
            str(targets_path),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, seen = queue.Queue(), []
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        url = wait_for(lines, r"listening on http://", seen).split()[-1]
        wait_for(lines, r"Targets written", seen)
        printed = dict(line.split(": ", 1) for line in seen if line.startswith(hosts.ALL_HOSTS))
        assert set(printed) == set(hosts.ALL_HOSTS)
        assert all(v.startswith(f"HostName={k};SharedAccessKeyName=") for k, v in printed.items())
        targets = check_targets(targets_path, printed)
        assert {t["endpoint"] for t in targets["dps"] + targets["hub"]} == {url}

        state = httpx.get(f"{url}/_sim/state", timeout=10).json()
        assert len(state["hubs"][hosts.HUB1_HOST]["devices"]) > 0
        # The API answers by Host header, with the printed credentials.
        expected = Simulator(seed=1, devices=20)
        assert printed[hosts.HUB1_HOST] == expected.connection_string(hosts.HUB1_HOST)
        response = httpx.get(
            f"{url}/devices/absent?api-version=2021-04-12",
            headers={"Host": hosts.HUB1_HOST, "Authorization": "Bearer wrong"},
            timeout=10,
        )
        assert response.status_code == 401
        assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, "\n".join(seen)
    rest = []
    while (line := lines.get(timeout=5)) is not None:
        rest.append(line)
    assert "Azure simulator stopped." in rest


def test_runner_without_django_serves_until_stopped(tmp_path):
    out, stop, ready = StringIO(), threading.Event(), threading.Event()
    found = {}

    def on_ready(sim, server):
        found.update(sim=sim, server=server)
        ready.set()

    argv = ["--bind", "127.0.0.1:0", "--devices", "12", "--seed", "3", "--throttle-scale", "0"]
    argv += ["--write-targets", str(tmp_path / "t.toml"), "--verbose"]
    runner = threading.Thread(target=cli.main, args=(argv, out, stop, on_ready), daemon=True)
    runner.start()
    assert ready.wait(15)
    server, sim = found["server"], found["sim"]
    samples = httpx.get(f"{server.url}/_sim/samples", timeout=10).json()
    assert samples == sim.samples()
    strings = {h: sim.connection_string(h) for h in hosts.ALL_HOSTS}
    check_targets(tmp_path / "t.toml", strings)
    assert sim.faults["throttle_scale"] is None
    stop.set()
    runner.join(15)
    assert not runner.is_alive()
    assert "Azure simulator stopped." in out.getvalue()


def test_write_targets_leaves_other_hub_out(tmp_path):
    sim = Simulator(seed=9, devices=3, hub_tiers={hosts.HUB2_HOST: ("S3", 2)})
    path = write_targets(sim, tmp_path / "nested" / "targets.toml", "http://127.0.0.1:9999")
    targets = tomllib.loads(path.read_text())
    assert hosts.OTHER_HUB_HOST not in path.read_text()
    assert targets["hub"][1]["tier"] == "S3" and targets["hub"][1]["units"] == 2
    assert all(t["endpoint"] == "http://127.0.0.1:9999" for t in targets["dps"] + targets["hub"])
    secret = path.parent / targets["dps"][0]["connection_string_file"]
    assert secret.read_text().strip() == sim.connection_string(hosts.DPS_HOST)
