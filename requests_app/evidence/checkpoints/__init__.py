"""Signed checkpoints of the audit chain, published outside the database.

A checkpoint says "event #N had hash H" and is signed with an Ed25519 key that only the
scheduler reads (a file, never the database), then published to sinks the database's owner
cannot rewrite: an append-only directory, email to the auditors, optionally a webhook. Held
against the chain, it catches what the hashes alone cannot: a tail cut off, or a history
rebuilt with consistent hashes. Events after the latest checkpoint are protected only against
the application role (INSERT and SELECT), which is why one is written every
DSR_AUDIT_CHECKPOINT_SECONDS and soon after every certificate.

For other modules: ``request_checkpoint`` (worker, after a certificate), ``latest_checkpoint``
(certificates and evidence reports), ``checkpoint_status`` (the audit page),
``trusted_checkpoints`` (``verify_chain``). The scheduler calls ``write_checkpoint``,
``checkpoint_if_requested`` and ``sinks.deliver_due``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from requests_app.evidence.checkpoints import keys, sinks
from requests_app.evidence.checkpoints.document import (
    FILE_NAME,
    VERSION,
    Checkpoint,
    CheckpointSet,
    canonical,
    parse,
    parse_file,
)
from requests_app.evidence.checkpoints.document import file_name as document_name
from requests_app.models import AuditCheckpoint, AuditEvent, CheckpointDelivery

if TYPE_CHECKING:
    from requests_app.models import DataRequest

REQUESTED = "audit_checkpoint_requested"


def request_checkpoint(reason: str, data_request: DataRequest | None = None) -> AuditEvent:
    """Ask for a checkpoint soon (the scheduler looks every tick). Needs no key: the request
    is an audit event, so it survives a Redis restart and is itself covered."""
    return AuditEvent.record(REQUESTED, request=data_request, reason=reason)


def start_scheduler() -> list[str]:
    """Check what signing and publishing need before the scheduler starts; returns lines for
    its log. Raises CheckpointConfigError, whose one line names the variable to fix."""
    key, note = keys.signing_key()
    directory = sinks.check_directory()
    lines = [note] if note else []
    labels = [CheckpointDelivery.Sink(s).label for s in sinks.configured_sinks()]
    lines.append(
        f"audit checkpoints: key {keys.fingerprint(key.public_key())}, every "
        f"{settings.DSR_AUDIT_CHECKPOINT_SECONDS} s, to {', '.join(labels)} ({directory})"
    )
    if len(labels) < 2:
        lines.append(
            "warning: checkpoints have a single copy outside the database; turn on "
            "DSR_AUDIT_CHECKPOINT_EMAIL or set DSR_AUDIT_CHECKPOINT_WEBHOOK"
        )
    return lines


def write_checkpoint(
    key: Ed25519PrivateKey | None = None, now: datetime | None = None
) -> AuditCheckpoint | None:
    """Sign the chain's current head, store the copy, publish it. Returns the new
    ``AuditCheckpoint``, or None when the head already has one (or the chain is empty)."""
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    if last is None or AuditCheckpoint.objects.filter(seq=last[0]).exists():
        return None
    key = key or keys.signing_key()[0]
    now = now or timezone.now()
    statement = {
        "version": VERSION,
        "seq": last[0],
        "head_hash": last[1],
        "event_count": last[0],
        "created_at": now.isoformat(timespec="seconds"),
        "key_fingerprint": keys.fingerprint(key.public_key()),
    }
    body = canonical(statement)
    signature = base64.b64encode(key.sign(body.encode())).decode()
    try:
        with transaction.atomic():
            checkpoint = AuditCheckpoint.objects.create(
                seq=last[0], head_hash=last[1], created_at=now, body=body, signature=signature
            )
            CheckpointDelivery.objects.bulk_create(
                CheckpointDelivery(checkpoint=checkpoint, sink=sink, next_attempt_at=now)
                for sink in sinks.configured_sinks()
            )
    except IntegrityError:
        return None  # another scheduler signed this head first
    for delivery in checkpoint.deliveries.select_related("checkpoint"):
        sinks.deliver(delivery, now)
    return checkpoint


def checkpoint_if_requested() -> AuditCheckpoint | None:
    """A checkpoint when some event asked for one after the latest checkpoint."""
    latest = AuditCheckpoint.objects.aggregate(seq=Max("seq"))["seq"] or 0
    if AuditEvent.objects.filter(action=REQUESTED, seq__gt=latest).exists():
        return write_checkpoint()
    return None


def trusted_checkpoints(latest_only: bool = False) -> CheckpointSet:
    """The checkpoints to hold the chain against, from the directory when there is one (the
    anchor), else the database's copy; each verified with DSR_AUDIT_PUBLIC_KEY."""
    try:
        public = keys.public_keys()
    except keys.CheckpointConfigError as exc:
        return CheckpointSet({}, str(exc))
    directory = sinks.checkpoint_dir()
    if directory is not None and settings.DSR_AUDIT_CHECKPOINT_DIR and not directory.is_dir():
        return CheckpointSet({}, f"DSR_AUDIT_CHECKPOINT_DIR: {directory} is not a directory")
    if directory is not None and directory.is_dir():
        names = sorted(p.name for p in directory.iterdir() if FILE_NAME.match(p.name))
        chosen = names[-1:] if latest_only else names
        results = [parse_file(directory / name, public) for name in chosen]
        missing = _missing_file(directory, names)
    else:
        ordered = AuditCheckpoint.objects.order_by("-seq" if latest_only else "seq")
        rows = ordered[:1] if latest_only else ordered.iterator(chunk_size=1000)
        results, missing = [_parse_row(row, public) for row in rows], None
    found = CheckpointSet({}, total=len(results))
    for checkpoint, problem in results:
        if checkpoint is not None:
            found.valid[checkpoint.seq] = checkpoint
        found.problem = found.problem or problem
    found.problem = found.problem or missing
    return found


def _missing_file(directory: Path, names: list[str]) -> str | None:
    """A tripwire, not an anchor (the database's records could be edited too): the latest
    checkpoint recorded as written to the directory must still be there."""
    written = CheckpointDelivery.objects.filter(
        sink=CheckpointDelivery.Sink.DIRECTORY, delivered_at__isnull=False
    ).aggregate(seq=Max("checkpoint__seq"))["seq"]
    if written is None or document_name(written) in names:
        return None
    return f"checkpoint #{written} was written to {directory} but its file is gone"


def _parse_row(
    row: AuditCheckpoint, public: dict[str, Ed25519PublicKey]
) -> tuple[Checkpoint | None, str | None]:
    try:
        document = {"checkpoint": json.loads(row.body), "signature": row.signature}
    except ValueError:
        return None, f"checkpoint #{row.seq} in the database cannot be read"
    return parse(document, "database", public, label=f"checkpoint #{row.seq} in the database")


def latest_checkpoint() -> dict[str, Any] | None:
    """The latest checkpoint whose signature verifies, as published plus where it was read:
    ``{"checkpoint": {version, seq, head_hash, event_count, created_at, key_fingerprint},
    "signature": base64, "source": file name or "database"}``; None when there is none."""
    found = trusted_checkpoints(latest_only=True)
    latest = max(found.valid.values(), key=lambda c: c.seq, default=None)
    return latest.as_dict() if latest else None


@dataclass
class CheckpointStatus:
    """What the audit page shows about checkpoints."""

    latest: dict[str, Any] | None  # as latest_checkpoint() returns it
    problem: str | None  # the latest checkpoint cannot be trusted (forged, unreadable, no key)
    events_since: int  # events after the latest checkpoint (not yet anchored)
    overdue: bool  # an event waits longer than two checkpoint periods: is the scheduler running?
    sinks: list[str] = field(default_factory=list)  # labels of the configured sinks
    failing: list[dict[str, Any]] = field(default_factory=list)  # see _failure
    pending: int = 0  # deliveries not made yet, failing ones included


def checkpoint_status(now: datetime | None = None) -> CheckpointStatus:
    """For the audit page: the latest checkpoint, how far the chain is past it, and every
    delivery that failed (it is retried; it shows here until it succeeds)."""
    now = now or timezone.now()
    found = trusted_checkpoints(latest_only=True)
    latest = max(found.valid.values(), key=lambda c: c.seq, default=None)
    anchored = latest.seq if latest else 0
    head = AuditEvent.objects.aggregate(seq=Max("seq"))["seq"] or 0
    waiting = timedelta(seconds=2 * settings.DSR_AUDIT_CHECKPOINT_SECONDS + 60)
    oldest = AuditEvent.objects.filter(seq=anchored + 1).values_list("created_at", flat=True)
    undelivered = CheckpointDelivery.objects.filter(delivered_at=None)
    failing = undelivered.exclude(last_error="").select_related("checkpoint")
    return CheckpointStatus(
        latest=latest.as_dict() if latest else None,
        problem=found.problem,
        events_since=head - anchored,
        overdue=any(now - created > waiting for created in oldest),
        sinks=[CheckpointDelivery.Sink(s).label for s in sinks.configured_sinks()],
        failing=[_failure(d) for d in failing.order_by("-checkpoint__seq", "sink")[:20]],
        pending=undelivered.count(),
    )


def _failure(delivery: CheckpointDelivery) -> dict[str, Any]:
    return {
        "seq": delivery.checkpoint.seq,
        "sink": delivery.get_sink_display(),
        "attempts": delivery.attempts,
        "error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
    }
