"""A data subject request, what it names, its plan, approvals and results.

The status field changes only in ``DataRequest.transition``, which checks the move against
``TRANSITIONS`` under a row lock and writes the audit event in the same transaction.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from requests_app.models.audit import AuditEvent
from requests_app.workflow import regulations

# Re-exported: callers read deadlines through the model's module as they always did.
from requests_app.workflow.regulations import add_months as add_months
from requests_app.workflow.regulations import due_date as due_date
from requests_app.workflow.regulations import latest_extension as latest_extension

if TYPE_CHECKING:
    from requests_app.models.audit import Actor


class IllegalTransition(Exception):
    """A status change the state machine does not allow; nothing was changed."""


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    PLANNING = "planning", "Planning"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_ISSUES = "completed_with_issues", "Completed with issues"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


TRANSITIONS = {
    Status.DRAFT: {Status.PLANNING, Status.CANCELLED},
    # planning → planning is a retry of a failed scoping job.
    Status.PLANNING: {Status.AWAITING_APPROVAL, Status.PLANNING, Status.CANCELLED},
    Status.AWAITING_APPROVAL: {Status.APPROVED, Status.REJECTED, Status.CANCELLED},
    Status.APPROVED: {Status.RUNNING, Status.CANCELLED, Status.FAILED},
    Status.RUNNING: {Status.COMPLETED, Status.COMPLETED_WITH_ISSUES, Status.FAILED},
    Status.FAILED: {Status.APPROVED},
    Status.COMPLETED: set(),
    Status.COMPLETED_WITH_ISSUES: set(),
    Status.REJECTED: set(),
    Status.CANCELLED: set(),
}
OPEN_STATUSES = {
    Status.DRAFT,
    Status.PLANNING,
    Status.AWAITING_APPROVAL,
    Status.APPROVED,
    Status.RUNNING,
    Status.FAILED,
}
FINAL_STATUSES = {
    Status.COMPLETED,
    Status.COMPLETED_WITH_ISSUES,
    Status.REJECTED,
    Status.CANCELLED,
}


class Kind(models.TextChoices):
    EXPORT = "export", "Export (access / portability / right to know)"
    ERASURE = "erasure", "Erasure (right to be forgotten / delete)"
    EXPORT_AND_ERASURE = "export_and_erasure", "Export, then erasure"


# The stored codes as constants (Regulation.GDPR == "gdpr"). Everything else about a regulation,
# its label included, is its entry in requests_app.workflow.regulations, which the field's
# choices read. django-stubs types only the class form of TextChoices, not this functional one
# built from the table.
Regulation = models.TextChoices(  # type: ignore[call-overload]
    "Regulation", [(code.upper(), (code, label)) for code, label in regulations.choices()]
)


class ReferenceCounter(models.Model):
    year = models.IntegerField(primary_key=True)
    last = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"

    @classmethod
    def next_reference(cls, year: int) -> str:
        with transaction.atomic():
            counter, _ = cls.objects.select_for_update().get_or_create(year=year)
            counter.last += 1
            counter.save(update_fields=["last"])
        return f"DSR-{year}-{counter.last:04d}"


class DataRequest(models.Model):
    reference = models.CharField(max_length=32, unique=True, editable=False)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    regulation = models.CharField(max_length=16, choices=regulations.choices)
    received_at = models.DateField()
    due_at = models.DateField()
    extended_until = models.DateField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    extension_notice_date = models.DateField(null=True, blank=True)
    subject_reference = models.CharField(
        max_length=200, help_text="A ticket number or pseudonym, not the person's name"
    )
    block_reprovisioning = models.BooleanField(default=True)
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_requests"
    )
    created_via = models.CharField(max_length=8, default="form")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    plan_version = models.CharField(max_length=64, blank=True)
    plan_ready_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    scoping_error = models.TextField(blank=True)
    failure = models.JSONField(default=dict, blank=True)
    rejection_reason = models.TextField(blank=True)
    cancel_reason = models.TextField(blank=True)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)
    # One-worker-at-a-time steps (see claim()): planning, building the archive, finishing.
    scoping_claimed_until = models.DateTimeField(null=True, blank=True)
    archive_claimed_until = models.DateTimeField(null=True, blank=True)
    finish_claimed_until = models.DateTimeField(null=True, blank=True)
    approvers_reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["due_at"]), models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return self.reference

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("request_detail", args=[self.reference])

    # --- deadlines -------------------------------------------------------------------------
    @property
    def regulation_rules(self) -> regulations.Rules:
        """The regulation's entry in the table: label, legal reference, periods."""
        return regulations.rules_for(self.regulation)

    @property
    def effective_due(self) -> date:
        return self.extended_until or self.due_at

    def days_left(self, today: date | None = None) -> int:
        return (self.effective_due - (today or timezone.localdate())).days

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def approvals_required(self) -> int:
        if self.kind == Kind.EXPORT:
            return 1
        return settings.ERASURE_APPROVALS_REQUIRED

    @property
    def includes_export(self) -> bool:
        return self.kind in (Kind.EXPORT, Kind.EXPORT_AND_ERASURE)

    @property
    def includes_erasure(self) -> bool:
        return self.kind in (Kind.ERASURE, Kind.EXPORT_AND_ERASURE)

    def claim(self, field: str, seconds: float) -> bool:
        """Take a one-worker step (``*_claimed_until``) with a conditional UPDATE: True for
        exactly one caller until ``seconds`` pass or it is released."""
        now = timezone.now()
        free = models.Q(**{f"{field}__isnull": True}) | models.Q(**{f"{field}__lt": now})
        until = now + timedelta(seconds=seconds)
        return bool(DataRequest.objects.filter(free, pk=self.pk).update(**{field: until}))

    def release(self, field: str) -> None:
        DataRequest.objects.filter(pk=self.pk).update(**{field: None})

    # --- the one place the status changes ------------------------------------------------
    def transition(
        self,
        to: str,
        *,
        actor: Actor | None = None,
        actor_kind: str | None = None,
        actor_name: str | None = None,
        **details: Any,
    ) -> DataRequest:
        """Move to ``to`` if allowed, under a row lock, with its audit event; else raise."""
        with transaction.atomic():
            current = DataRequest.objects.select_for_update().get(pk=self.pk)
            if to not in TRANSITIONS[Status(current.status)]:
                raise IllegalTransition(
                    f"{current.reference} is {current.get_status_display().lower()}; "
                    f"it cannot become {Status(to).label.lower()}"
                )
            fields: dict[str, Any] = {"status": to, "updated_at": timezone.now()}
            now = timezone.now()
            if to == Status.APPROVED and not current.approved_at:
                fields["approved_at"] = now
            if to == Status.RUNNING and not current.started_at:
                fields["started_at"] = now
            if to in FINAL_STATUSES:
                fields["completed_at"] = now
            DataRequest.objects.filter(pk=self.pk).update(**fields)
            for name, value in fields.items():
                setattr(self, name, value)
            AuditEvent.record(
                "status_changed",
                actor=actor,
                actor_kind=actor_kind,
                actor_name=actor_name,
                request=self,
                **{"from": current.status, "to": to},
                **details,
            )
        return self


class RequestIdentifier(models.Model):
    request = models.ForeignKey(DataRequest, on_delete=models.CASCADE, related_name="identifiers")
    line = models.PositiveIntegerField(help_text="Line in the pasted list or CSV")
    registration_id = models.CharField(max_length=128, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    hub = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["line"]

    def __str__(self) -> str:
        return self.registration_id or f"{self.device_id}@{self.hub}"


class PlannedDevice(models.Model):
    """What the scoping job found for one identifier."""

    class State(models.TextChoices):
        FOUND = "found", "Found"
        NOT_FOUND = "not_found", "Found nowhere"
        UNREACHABLE = "unreachable", "Hub not configured: to be handled by hand"

    request = models.ForeignKey(DataRequest, on_delete=models.CASCADE, related_name="devices")
    identifier = models.ForeignKey(RequestIdentifier, on_delete=models.CASCADE, null=True)
    position = models.PositiveIntegerField()
    registration_id = models.CharField(max_length=128, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    dps = models.CharField(max_length=255, blank=True)
    hub = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=16, choices=State.choices)
    enrollment = models.CharField(max_length=16, blank=True, help_text="individual, group or ''")
    attestation = models.CharField(max_length=32, blank=True)
    group_id = models.CharField(max_length=128, blank=True)
    has_registration = models.BooleanField(default=False)
    has_device = models.BooleanField(default=False)
    modules = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.device_id or self.registration_id

    @property
    def label(self) -> str:
        return self.device_id or self.registration_id


class Operation(models.Model):
    """One planned Azure call. Workers claim it with a conditional UPDATE and record its end."""

    class Phase(models.TextChoices):
        EXPORT = "export", "Export"
        ERASURE = "erasure", "Erasure"
        VERIFY = "verify", "Verify"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        ALREADY_ABSENT = "already_absent", "Already absent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    request = models.ForeignKey(DataRequest, on_delete=models.CASCADE, related_name="operations")
    device = models.ForeignKey(PlannedDevice, on_delete=models.CASCADE, related_name="operations")
    seq = models.PositiveIntegerField(help_text="Order within the request")
    phase = models.CharField(max_length=8, choices=Phase.choices)
    action = models.CharField(max_length=48)
    method = models.CharField(max_length=8)
    host = models.CharField(max_length=255)
    path = models.CharField(max_length=600)
    module_id = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    claimed_by = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    azure_request_id = models.CharField(max_length=128, blank=True)
    tracking_id = models.CharField(max_length=128, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["request", "seq"], name="op_seq_unique")]
        indexes = [models.Index(fields=["request", "state"])]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def finished(self) -> bool:
        from requests_app.jobs.operations import FINISHED_STATES  # it imports the models

        return self.state in FINISHED_STATES


class Approval(models.Model):
    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    request = models.ForeignKey(DataRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    approver_name = models.CharField(max_length=254)
    plan_version = models.CharField(max_length=64)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(blank=True)
    via = models.CharField(max_length=8, help_text="link or portal")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # What the approver's session proved: the second factor and when they signed in.
    second_factor = models.CharField(max_length=32, blank=True)
    signed_in_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver", "plan_version"], name="one_decision_per_approver"
            )
        ]

    def __str__(self) -> str:
        return f"{self.approver_name} {self.decision} {self.request_id}"


class Artifact(models.Model):
    class Kind(models.TextChoices):
        EXPORT_ARCHIVE = "export_archive", "Export archive (ZIP)"
        CERTIFICATE_PDF = "certificate_pdf", "Deletion certificate (PDF)"
        CERTIFICATE_JSON = "certificate_json", "Deletion certificate (JSON)"

    request = models.ForeignKey(DataRequest, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    path = models.CharField(max_length=500, help_text="Relative to DSR_DATA_DIR")
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Deleted under a retention rule: the file is gone, this row (and its hash) stays.
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_rule = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "kind"], name="one_per_kind")]

    def __str__(self) -> str:
        return self.filename
