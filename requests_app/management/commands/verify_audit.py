"""Recompute the audit hash chain; exit non-zero naming the first broken event."""

from django.core.management.base import BaseCommand, CommandError

from requests_app.models.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain."

    def handle(self, **options):
        ok, count, head, problem = verify_chain()
        if not ok:
            raise CommandError(f"audit chain BROKEN after {count} good events: {problem}")
        self.stdout.write(f"audit chain OK: {count} events, head {head}")
