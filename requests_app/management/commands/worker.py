"""Run one RQ worker serving every queue the portal uses. SIGTERM finishes the current job."""

from django.core.management.base import BaseCommand, CommandError

from requests_app.jobs.queues import worker


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
        record_targets_loaded()
        worker(name=name).work(burst=burst, with_scheduler=False)


def record_targets_loaded():
    """Which Azure targets a worker calls is a privileged fact: when the file a worker loads
    differs from the one last recorded, the new SHA-256 goes into the audit chain."""
    import hashlib
    from pathlib import Path

    from django.conf import settings

    from requests_app.models import AuditEvent

    if not settings.DSR_AZURE_TARGETS:
        return None
    digest = hashlib.sha256(Path(settings.DSR_AZURE_TARGETS).read_bytes()).hexdigest()
    last = AuditEvent.objects.filter(action="azure_targets_loaded").order_by("-seq").first()
    if last is not None and last.details.get("sha256") == digest:
        return None
    return AuditEvent.record(
        "azure_targets_loaded",
        actor_kind="system",
        actor_name="manage.py worker",
        path=settings.DSR_AZURE_TARGETS,
        sha256=digest,
        previous=last.details.get("sha256") if last else None,
    )
