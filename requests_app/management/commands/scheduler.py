"""Run the periodic work (reconciler, reminders) until stopped."""

import signal
import time

from django.core.management.base import BaseCommand

from requests_app.periodic import run_due
from requests_app.queues import redis_connection


class Command(BaseCommand):
    help = "Run the portal's periodic tasks (reconciler every minute, reminders daily)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run due tasks once and exit")
        parser.add_argument("--tick", type=float, default=5.0, help="Seconds between checks")

    def handle(self, once=False, tick=5.0, **options):
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.append(True))
        connection = redis_connection()
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
