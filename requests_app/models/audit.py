"""The audit trail: append-only events, each holding the hash of the one before (a chain).

An event's hash is SHA-256 over the previous hash and the event's canonical JSON, so editing,
removing or reordering any row breaks every hash after it. Appends are serialised through the
single ``AuditHead`` row (``SELECT … FOR UPDATE``), so concurrent writers never fork the chain.
"""

import hashlib
import json

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

GENESIS_HASH = "0" * 64


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events cannot be changed")

    def delete(self):
        raise AppendOnlyError("audit events cannot be deleted")


class AuditHead(models.Model):
    """One row: the chain's current length and last hash; locking it serialises appends."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self):
        return f"audit head #{self.seq}"


class AuditEvent(models.Model):
    ACTOR_KINDS = [
        ("user", "Portal user"),
        ("approver", "Approver by email link"),
        ("api", "API token"),
        ("system", "System"),
        ("anonymous", "Anonymous"),
    ]

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=16, choices=ACTOR_KINDS)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=254, help_text="Copied so it outlives the user")
    action = models.CharField(max_length=64, db_index=True)
    request_ref = models.CharField(max_length=32, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]

    def __str__(self):
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events cannot be deleted")

    def canonical(self):
        """The exact bytes the hash covers; keep stable forever (old chains must verify)."""
        content = {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(timespec="microseconds"),
            "actor_kind": self.actor_kind,
            "actor_user_id": self.actor_user_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "request_ref": self.request_ref,
            "details": self.details,
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def compute_hash(self):
        return hashlib.sha256((self.prev_hash + self.canonical()).encode()).hexdigest()

    @classmethod
    def record(
        cls, action, *, actor=None, actor_kind=None, actor_name=None, request=None, **details
    ):
        """Append one event. ``actor`` is a User (or None for the system)."""
        if actor is not None and getattr(actor, "is_authenticated", False):
            kind, name, user = actor_kind or "user", actor_name or actor.get_username(), actor
        else:
            kind, name, user = actor_kind or "system", actor_name or "system", None
        # The details go through JSON once so the stored value is what was hashed.
        clean = json.loads(json.dumps(details, default=str))
        with transaction.atomic():
            head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
            event = cls(
                seq=head.seq + 1,
                created_at=timezone.now(),
                actor_kind=kind,
                actor_user=user,
                actor_name=name[:254],
                action=action,
                request_ref=getattr(request, "reference", request or "") or "",
                details=clean,
                prev_hash=head.hash,
            )
            event.hash = event.compute_hash()
            event.save()
            AuditHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
        return event


def verify_chain(events=None):
    """Recompute the chain. Returns (ok, count, head_hash, problem) where problem names the first
    broken event and why, or None."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    queryset = events if events is not None else AuditEvent.objects.order_by("seq")
    for event in queryset.iterator(chunk_size=2000):
        if event.seq != expected_seq:
            return (
                False,
                count,
                expected_prev,
                (f"event #{expected_seq} is missing (next present is #{event.seq})"),
            )
        if event.prev_hash != expected_prev:
            return (
                False,
                count,
                expected_prev,
                (
                    f"event #{event.seq} does not link to event #{event.seq - 1} "
                    "(removed or altered)"
                ),
            )
        if event.compute_hash() != event.hash:
            return False, count, expected_prev, f"event #{event.seq} was altered (hash mismatch)"
        expected_prev = event.hash
        expected_seq += 1
        count += 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != count or head.hash != expected_prev):
        return (
            False,
            count,
            expected_prev,
            (
                f"the chain ends at event #{count} but the head records #{head.seq}: "
                "the last events were removed"
            ),
        )
    return True, count, expected_prev, None
