"""Run one RQ worker serving every queue the portal uses. SIGTERM finishes the current job."""

from django.core.management.base import BaseCommand, CommandError

from requests_app.queues import worker


class Command(BaseCommand):
    help = "Run one RQ worker for all portal queues (scale by running more)."

    def add_arguments(self, parser):
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty")
        parser.add_argument("--name", help="Worker name (default: RQ's)")

    def handle(self, burst=False, name=None, **options):
        from requests_app.azure import TargetsError, configured_targets

        try:
            configured_targets()  # with secrets: refuse to start on a bad entry
        except TargetsError as exc:
            raise CommandError(str(exc)) from None
        worker(name=name).work(burst=burst, with_scheduler=False)
