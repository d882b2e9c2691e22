"""Run the periodic work (reconciler, reminders, audit checkpoints) until stopped."""

import signal
import time

from django.core.management.base import BaseCommand, CommandError

from requests_app.evidence import checkpoints
from requests_app.evidence.checkpoints.keys import CheckpointConfigError
from requests_app.jobs.periodic import run_due
from requests_app.jobs.queues import redis_connection


class Command(BaseCommand):
    help = (
        "Run the portal's periodic tasks (reconciler every minute, reminders daily, signed "
        "audit checkpoints every DSR_AUDIT_CHECKPOINT_SECONDS and after certificates)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run due tasks once and exit")
        parser.add_argument("--tick", type=float, default=5.0, help="Seconds between checks")

    def handle(self, once=False, tick=5.0, **options):
        # Without its signing key the scheduler would keep the chain unanchored in silence:
        # stop with the variable to fix (the web and the workers keep serving).
        try:
            lines = checkpoints.start_scheduler()
        except CheckpointConfigError as exc:
            raise CommandError(str(exc)) from None
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.append(True))
        connection = redis_connection()
        for line in lines:
            self.stdout.write(line)
        self.stdout.write("scheduler started")
        while not stopping:
            ran = run_due(connection)
            if ran:
                self.stdout.write(f"ran: {', '.join(ran)}")
            if once:
                break
            deadline = time.monotonic() + tick
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.2)
        self.stdout.write("scheduler stopped")
