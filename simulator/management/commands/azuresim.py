"""manage.py azuresim: serve the Azure DPS + IoT Hub simulator (see simulator/cli.py)."""

from django.core.management.base import BaseCommand

from simulator import cli


class Command(BaseCommand):
    help = "Serve a local, seeded simulator of the Azure DPS and IoT Hub service APIs."
    # The simulator stands in for Azure; it needs nothing of the portal to be configured.
    requires_system_checks = []

    def add_arguments(self, parser):
        cli.add_arguments(parser)

    def handle(self, *args, **options):
        names = [
            "bind", "seed", "devices", "tls_cert", "tls_key", "latency_ms", "jitter_ms",
            "fault_rate", "drop_rate", "drop_after_rate", "throttle_scale", "retry_after",
            "write_targets", "verbose", "entra_redirect_uri", "state_file", "reset_state",
        ]  # fmt: skip
        settings = type("Options", (), {name: options[name] for name in names})
        cli.run(settings, self.stdout)
