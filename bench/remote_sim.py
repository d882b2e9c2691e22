"""The simulator as its own process (``manage.py azuresim``), for ``bench/fulfilment.py
--simulator-process``: in process it shares this interpreter (and its GIL) with the planning
and the sampling loop, and serves a large fleet too slowly to measure the workers. The object
answers what the benchmark asks of an in-process ``Simulator`` (samples, state, calls) through
the simulator's ``/_sim/`` introspection API, and ``shutdown()`` stops the process."""

import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


class RemoteSimulator:
    def __init__(self, devices, scale, targets_path, timeout=600):
        targets_path.parent.mkdir(parents=True, exist_ok=True)
        self.targets_path = targets_path
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "azuresim",
                "--bind",
                "127.0.0.1:0",
                "--devices",
                str(devices),
                "--throttle-scale",
                str(scale),
                "--write-targets",
                str(targets_path),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = self._wait_until_ready(timeout)
        self.http = httpx.Client(base_url=self.url, timeout=300)

    def _wait_until_ready(self, timeout):
        """The URL, once the targets file is written (the last thing the simulator does)."""
        deadline = time.monotonic() + timeout
        url = None
        for line in self.proc.stdout:
            if "listening on" in line:
                url = line.rsplit(" ", 1)[-1].strip()
            if line.startswith("Targets written") and url:
                return url
            if time.monotonic() > deadline:
                break
        self.shutdown()
        raise SystemExit("the simulator process did not start")

    def samples(self, present=False):
        return self.http.get("/_sim/samples", params={"present": present}).json()

    def state(self):
        return self.http.get("/_sim/state").json()

    @property
    def calls(self):
        return self.http.get("/_sim/calls").json()["calls"]

    def shutdown(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
