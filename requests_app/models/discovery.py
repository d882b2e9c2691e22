"""Finding a data subject's devices by the owner their twins or enrollments record."""

from django.conf import settings
from django.db import models

from requests_app.models.requests import DataRequest


class Discovery(models.Model):
    """One search for a request's subject keys across every configured target with owner paths.

    ``keys`` is personal data: retention empties it (and deletes the matches) once the request
    has been closed for ``DSR_EXPORT_RETENTION_DAYS``. ``targets`` holds, per hostname, what the
    search did there: ``state`` (pending, answered, failed), ``kind``, ``queries`` (masked),
    ``matches``, ``at``, and for a failure ``error`` (masked) — the discovery result says which
    hubs answered.
    """

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CONFIRMED = "confirmed", "Confirmed"

    request = models.ForeignKey(DataRequest, on_delete=models.CASCADE, related_name="discoveries")
    keys = models.JSONField(default=list, blank=True)
    key_count = models.PositiveIntegerField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    targets = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_count = models.PositiveIntegerField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"discovery {self.pk} for {self.request_id}"

    def hosts_in(self, state: str) -> list[str]:
        return sorted(host for host, done in self.targets.items() if done.get("state") == state)


class DiscoveryMatch(models.Model):
    """A device (hub) or individual enrollment (DPS) whose owner path holds a subject key."""

    discovery = models.ForeignKey(Discovery, on_delete=models.CASCADE, related_name="matches")
    host = models.CharField(max_length=255)
    device_id = models.CharField(max_length=128, blank=True)
    registration_id = models.CharField(max_length=128, blank=True)
    path = models.CharField(max_length=200)
    key_index = models.PositiveIntegerField(help_text="Which subject key matched, from 0")

    class Meta:
        ordering = ["host", "device_id", "registration_id", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["discovery", "host", "device_id", "registration_id", "path"],
                name="discovery_match_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.device_id or self.registration_id} on {self.host} by {self.path}"
