"""The audit trail: append-only events, each holding the hash of the one before (a chain), and
the database's copy of the signed checkpoints that anchor the chain outside the database.

An event's hash is SHA-256 over the previous hash and the event's canonical JSON, so editing,
removing or reordering any row breaks every hash after it. Whoever can write the table could
still rebuild a consistent chain (the hash is unkeyed) or cut its tail: signed checkpoints
(``requests_app.evidence.checkpoints``), published where the database's owner cannot reach,
catch that.

Appends are serialised by a lock that needs no UPDATE privilege (a PostgreSQL transaction-level
advisory lock; SQLite's ``BEGIN IMMEDIATE`` from settings), and the previous hash is read from
the last event itself: there is no mutable "head" row whose loss or reset could hide anything.
The application's database role may only INSERT and SELECT on these tables
(``manage.py setup_database``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn, Self, TypeVar

from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.functional import cached_property

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

    from requests_app.evidence.checkpoints.document import Checkpoint, CheckpointSet
    from requests_app.models.requests import DataRequest

    # Who did something: a signed-in user, or an anonymous visitor (recorded as the system).
    Actor = AbstractBaseUser | AnonymousUser

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key for "append to the audit chain" (any constant unique in the database).
CHAIN_LOCK = 0x6473725F61756474  # "dsr_audt"


_Row = TypeVar("_Row", bound=models.Model)


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event or checkpoint."""


class AppendOnlyQuerySet(models.QuerySet[_Row]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit records cannot be changed")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("audit records cannot be deleted")


class AppendOnlyModel(models.Model):
    """Refuses save() of an existing row and delete(); the database refuses them too
    (trigger on PostgreSQL, and the application role has no UPDATE/DELETE grant)."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("audit records cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit records cannot be deleted")


class AuditEvent(AppendOnlyModel):
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
    # The user's id as it was written: no foreign key, so deleting a user rewrites nothing.
    actor_user_id = models.IntegerField(null=True, blank=True, db_index=True)
    actor_name = models.CharField(max_length=254, help_text="Copied so it outlives the user")
    action = models.CharField(max_length=64, db_index=True)
    request_ref = models.CharField(max_length=32, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_name}"

    @cached_property
    def actor_user(self) -> User | None:
        """The acting user while their account exists (None for the system or once deleted)."""
        if self.actor_user_id is None:
            return None
        return get_user_model().objects.filter(pk=self.actor_user_id).first()

    def canonical(self) -> str:
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

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.canonical()).encode()).hexdigest()

    @classmethod
    def record(
        cls,
        action: str,
        *,
        actor: Actor | None = None,
        actor_kind: str | None = None,
        actor_name: str | None = None,
        request: DataRequest | str | None = None,
        **details: Any,
    ) -> Self:
        """Append one event. ``actor`` is a User (or None for the system)."""
        if actor is not None and getattr(actor, "is_authenticated", False):
            kind, name, user_id = actor_kind or "user", actor_name or actor.get_username(), actor.pk
        else:
            kind, name, user_id = actor_kind or "system", actor_name or "system", None
        # The details go through JSON once so the stored value is what was hashed.
        clean = json.loads(json.dumps(details, default=str))
        with transaction.atomic():
            _lock_chain()
            last = cls.objects.order_by("-seq").values_list("seq", "hash").first()
            seq, prev_hash = last if last else (0, GENESIS_HASH)
            event = cls(
                seq=seq + 1,
                created_at=timezone.now(),
                actor_kind=kind,
                actor_user_id=user_id,
                actor_name=name[:254],
                action=action,
                request_ref=getattr(request, "reference", request or "") or "",
                details=clean,
                prev_hash=prev_hash,
            )
            event.hash = event.compute_hash()
            event.save()
        return event


def _lock_chain() -> None:
    """Serialise appends until the transaction ends. PostgreSQL: an advisory lock (no table
    privilege needed). SQLite: the transaction already holds the database's write lock
    (``transaction_mode=IMMEDIATE``), and ``seq`` is unique as a last resort."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])


class AuditCheckpoint(AppendOnlyModel):
    """The database's copy of a signed checkpoint: "event #seq had this hash". A convenience
    for the audit page and reports; the anchor is the copies outside the database (files in
    DSR_AUDIT_CHECKPOINT_DIR, emails to the auditors), which is why ``body`` and
    ``signature`` are kept exactly as published and the columns only repeat ``body``."""

    seq = models.BigIntegerField(unique=True)
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    body = models.TextField(help_text="The canonical JSON that was signed")
    signature = models.CharField(max_length=100, help_text="Ed25519 over body, base64")

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"checkpoint #{self.seq}"


class CheckpointDelivery(models.Model):
    """Whether one checkpoint reached one sink. Mutable (retries), unlike the checkpoint."""

    class Sink(models.TextChoices):
        DIRECTORY = "directory", "Checkpoint directory"
        EMAIL = "email", "Email to the auditors"
        WEBHOOK = "webhook", "Webhook"

    checkpoint = models.ForeignKey(
        AuditCheckpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    sink = models.CharField(max_length=16, choices=Sink.choices)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "sink"], name="one_delivery_per_sink")
        ]

    def __str__(self) -> str:
        return f"checkpoint #{self.checkpoint_id} to {self.sink}"


def verify_chain(
    events: models.QuerySet[AuditEvent] | None = None, *, checkpoints: CheckpointSet | None = None
) -> tuple[bool, int, str, str | None]:
    """Recompute the chain and hold it against signed checkpoints. Returns
    ``(ok, count, head_hash, problem)``: problem names the first broken event and why, or None.

    ``checkpoints`` is a ``checkpoints.CheckpointSet``; by default the latest trusted one
    (``verify_audit`` passes them all). A checkpoint that fails its signature is reported
    before anything else: the chain cannot be held against a forgery.
    """
    if checkpoints is None:
        from requests_app.evidence.checkpoints import trusted_checkpoints

        checkpoints = trusted_checkpoints(latest_only=True)
    queryset = events if events is not None else AuditEvent.objects.order_by("seq")
    walk = _ChainWalk(checkpoints.valid)
    problem = walk.run(queryset.iterator(chunk_size=2000)) or walk.tail_problem()
    problem = checkpoints.problem or problem
    return problem is None, walk.count, walk.prev, problem


class _ChainWalk:
    """One pass over the events in seq order; ``run`` returns the first problem or None."""

    def __init__(self, anchors: dict[int, Checkpoint]) -> None:
        self.anchors = anchors  # {seq: Checkpoint} whose signatures verified
        self.count, self.prev, self.confirmed = 0, GENESIS_HASH, 0

    def run(self, events: Iterable[AuditEvent]) -> str | None:
        for event in events:
            expected = self.count + 1
            if event.seq != expected:
                return f"event #{expected} is missing (next present is #{event.seq})"
            if event.prev_hash != self.prev:
                return link_problem(event)
            if event.compute_hash() != event.hash:
                return f"event #{event.seq} was altered (hash mismatch)"
            anchor = self.anchors.get(event.seq)
            if anchor is not None and anchor.head_hash != event.hash:
                return (
                    f"history was rewritten: event #{event.seq} is not the one signed in "
                    f"checkpoint #{anchor.seq} ({anchor.created_at}); the change is in events "
                    f"#{self.confirmed + 1} to #{event.seq}"
                )
            if anchor is not None:
                self.confirmed = event.seq
            self.count, self.prev = event.seq, event.hash
        return None

    def tail_problem(self) -> str | None:
        latest = max(self.anchors.values(), key=lambda a: a.seq, default=None)
        if latest is None or latest.seq <= self.count:
            return None
        return (
            f"the last events were removed: the chain ends at event #{self.count} but "
            f"{latest.name} ({latest.created_at}) covers events up to #{latest.seq}"
        )


def link_problem(event: AuditEvent) -> str:
    """Why ``event`` does not link to the one before it, told from the event it links to."""
    seq = event.seq
    if seq == 1:
        return "event #1 does not start the chain (its prev_hash is not 64 zeros)"
    linked: int | None = 0
    if event.prev_hash != GENESIS_HASH:
        seqs = AuditEvent.objects.filter(hash=event.prev_hash).values_list("seq", flat=True)
        linked = seqs.first()
    if linked is not None and linked == seq - 2:
        return f"event #{seq - 1} was inserted (event #{seq} links to {_named(linked)})"
    if linked is not None:
        return f"event #{seq} is out of order (it links to {_named(linked)}, not #{seq - 1})"
    if event.compute_hash() == event.hash:
        return f"event #{seq - 1} was replaced (event #{seq} links to a hash no event has)"
    return f"event #{seq} does not link to event #{seq - 1} (removed or altered)"


def _named(seq: int) -> str:
    return f"event #{seq}" if seq else "the start of the chain"
