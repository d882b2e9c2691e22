"""gunicorn serving the portal, on a free port, as in production (DEBUG off, static files)."""

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from webbench import ROOT


class Server:
    """``workers`` gunicorn workers with ``threads`` threads each, logging to a temp file."""

    def __init__(self, env, workers, threads):
        self.env, self.workers, self.threads = env, workers, threads
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (gunicorn writes it until stop)
            prefix="bench-gunicorn-", suffix=".log", delete=False
        )

    def start(self):
        """Start gunicorn and wait (up to 60 s) until its login page answers."""
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
        """The last ``lines`` lines of gunicorn's log, for an error message."""
        try:
            return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        """Stop gunicorn if it runs; safe to call more than once."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: gunicorn's graceful shutdown of its workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
