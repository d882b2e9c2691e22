"""``--state-file``: the simulator's state survives a restart (and a SIGKILL, but for the last
fraction of a second); a file for another seed or a corrupt one is reported and replaced by a
fresh seed, never a crash."""

import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from simulator.app import Simulator
from simulator.server import serve
from tests.simulator_helpers import HUB_API, sas

ROOT = Path(__file__).resolve().parent.parent


def hub_of(sim, device_id):
    for host, data in sim.state()["hubs"].items():
        if any(d["deviceId"] == device_id for d in data["devices"]):
            return host
    raise AssertionError(f"{device_id} is on no hub")


def device_url(server, device_id):
    return f"{server.url}/devices/{device_id}"


def call(server, sim, host, method, device_id, **kwargs):
    headers = {"Host": host, "Authorization": sas(sim, host), **kwargs.pop("headers", {})}
    return httpx.request(
        method, device_url(server, device_id), params=HUB_API, headers=headers, timeout=10
    )


def started(path, seed=5, devices=20, **kwargs):
    sim = Simulator(seed=seed, devices=devices, state_file=path, **kwargs)
    return sim, serve(sim)


def stop(sim, server):
    server.shutdown()
    sim.close()


def test_an_erased_device_stays_erased_after_a_restart(tmp_path):
    path = tmp_path / "state" / "sim.json"
    sim, server = started(path)
    assert sim.state_notice == f"No simulator state at {path} yet: seeded fresh."
    device_id = sim.samples()["hub_only"][0]
    host = hub_of(sim, device_id)
    first_kid = sim.entra.current_kid
    httpx.post(f"{server.url}/_sim/entra/rotate-keys", timeout=10)
    kid, cert = sim.entra.current_kid, sim.entra.client_certificate_pem()
    deleted = call(server, sim, host, "DELETE", device_id, headers={"If-Match": "*"})
    assert deleted.status_code == 204
    counter = sim.etags.counter
    stop(sim, server)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob("*.tmp"))

    again, server = started(path)
    try:
        assert again.state_notice.startswith(f"Simulator state loaded from {path} (saved ")
        assert again.calls == []
        assert call(server, again, host, "GET", device_id).status_code == 404
        assert device_id in again.samples()["hub_only"]
        assert device_id not in again.samples(present=True)["hub_only"]
        assert again.etags.counter == counter  # new etags do not repeat old ones
        assert again.entra.signing_kids == [first_kid, kid]  # Entra's keys are kept too
        assert again.entra.client_certificate_pem() == cert
        other = again.samples()["individual_symmetric"][0]
        assert call(server, again, hub_of(again, other), "GET", other).status_code == 200
    finally:
        stop(again, server)


def test_reset_reseeds_and_saves(tmp_path):
    path = tmp_path / "sim.json"
    sim, server = started(path)
    device_id = sim.samples()["hub_only"][0]
    host = hub_of(sim, device_id)
    call(server, sim, host, "DELETE", device_id, headers={"If-Match": "*"})
    assert httpx.post(f"{server.url}/_sim/reset", timeout=10).status_code == 200
    stop(sim, server)
    again = Simulator(seed=5, devices=20, state_file=path)
    try:
        assert any(d["deviceId"] == device_id for d in again.state()["hubs"][host]["devices"])
    finally:
        again.close()


def test_a_state_file_for_another_seed_is_ignored_with_one_line(tmp_path):
    path = tmp_path / "sim.json"
    first = Simulator(seed=5, devices=20, state_file=path)
    first.close()
    other = Simulator(seed=6, devices=20, state_file=path)
    other.close()
    notice = other.state_notice
    assert "\n" not in notice
    assert notice == (
        f"Ignoring simulator state in {path}: it was written for seed 5 with 20 devices, "
        "not seed 6 with 20; seeded fresh."
    )
    assert other.state() == Simulator(seed=6, devices=20).state()
    assert json.loads(path.read_text())["seed"] == 6  # the fresh seed replaced it
    fewer = Simulator(seed=6, devices=10, state_file=path)
    fewer.close()
    assert "20 devices, not seed 6 with 10" in fewer.state_notice


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        '{"format": "azuresim-state", "version": 1, "seed": 5, "devices": 20, "hubs": []}',
        '{"format": "something-else"}',
        "\x00\xff binary",
    ],
)
def test_a_corrupt_state_file_gives_a_clear_line_and_a_fresh_seed(tmp_path, content):
    path = tmp_path / "sim.json"
    path.write_text(content)
    sim = Simulator(seed=5, devices=20, state_file=path)
    sim.close()
    assert "\n" not in sim.state_notice
    assert sim.state_notice.startswith(f"Simulator state in {path} is unreadable (")
    assert sim.state_notice.endswith(f"kept it as {path}.bad and seeded fresh.")
    assert (tmp_path / "sim.json.bad").read_text() == content
    assert sim.state() == Simulator(seed=5, devices=20).state()
    assert json.loads(path.read_text())["format"] == "azuresim-state"


def test_reset_state_ignores_the_file(tmp_path):
    path = tmp_path / "sim.json"
    sim, server = started(path)
    device_id = sim.samples()["hub_only"][0]
    call(server, sim, hub_of(sim, device_id), "DELETE", device_id, headers={"If-Match": "*"})
    stop(sim, server)
    fresh = Simulator(seed=5, devices=20, state_file=path, reset_state=True)
    fresh.close()
    assert fresh.state_notice == f"--reset-state: seeded fresh, replacing {path}."
    assert device_id in fresh.samples(present=True)["hub_only"]
    kept = Simulator(seed=5, devices=20, state_file=path)
    kept.close()
    assert device_id in kept.samples(present=True)["hub_only"]


def read_lines(stream, lines):
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def run_cli(argv):
    """The runner in a process of its own (so it can be SIGKILLed); (process, url, lines)."""
    code = "import sys; from simulator.cli import main; main(sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, seen = queue.Queue(), []
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    while True:
        line = lines.get(timeout=30)
        if line is None:
            raise AssertionError("the simulator ended early:\n" + "\n".join(seen))
        seen.append(line)
        if "listening on" in line:
            return process, line.split()[-1], seen


@pytest.mark.slow
def test_the_cli_keeps_state_across_a_sigkill(tmp_path):
    path = tmp_path / "sim.json"
    argv = ["--bind", "127.0.0.1:0", "--seed", "5", "--devices", "20", "--state-file", str(path)]
    process, url, seen = run_cli(argv)
    probe = Simulator(seed=5, devices=20)
    device_id = probe.samples()["hub_only"][0]
    host = hub_of(probe, device_id)
    headers = {"Host": host, "Authorization": sas(probe, host), "If-Match": "*"}
    try:
        assert any(re.match(r"No simulator state at .* seeded fresh\.$", s) for s in seen)
        response = httpx.delete(f"{url}/devices/{device_id}", params=HUB_API, headers=headers)
        assert response.status_code == 204
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    process, url, seen = run_cli(argv)
    try:
        assert any(s.startswith(f"Simulator state loaded from {path}") for s in seen)
        response = httpx.get(f"{url}/devices/{device_id}", params=HUB_API, headers=headers)
        assert response.status_code == 404
        # And SIGTERM writes what is pending before the process ends.
        other = probe.samples()["hub_only"][1]
        other_host = hub_of(probe, other)
        headers = {"Host": other_host, "Authorization": sas(probe, other_host), "If-Match": "*"}
        response = httpx.delete(f"{url}/devices/{other}", params=HUB_API, headers=headers)
        assert response.status_code == 204
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    saved = json.loads(path.read_text())
    assert all(other not in hub["devices"] for hub in saved["hubs"].values())
