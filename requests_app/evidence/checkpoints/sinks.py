"""Where a checkpoint is published, and the retries: an append-only directory, email to the
auditors, an optional webhook. Only the scheduler calls this: a slow or failing sink delays
the next checkpoint at worst, never a request. Each delivery is a row; a failed one is tried
again on a later tick (1 min, doubling to 1 h) and shows on the audit page until it succeeds.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from requests_app.access import roles
from requests_app.evidence.checkpoints.document import file_name, file_text
from requests_app.evidence.checkpoints.keys import CheckpointConfigError
from requests_app.models import AuditCheckpoint, CheckpointDelivery

log = logging.getLogger(__name__)
Sink = CheckpointDelivery.Sink
CLAIM = timedelta(minutes=5)  # another scheduler leaves a delivery alone this long
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class SinkError(Exception):
    """A sink did not take the checkpoint; the message says why (no secrets in it)."""


def checkpoint_dir() -> Path | None:
    """DSR_AUDIT_CHECKPOINT_DIR; in DEBUG without it, a directory under DSR_DATA_DIR."""
    if settings.DSR_AUDIT_CHECKPOINT_DIR:
        return Path(settings.DSR_AUDIT_CHECKPOINT_DIR)
    if settings.DEBUG:
        return Path(settings.DSR_DATA_DIR) / "audit" / "checkpoints"
    return None


def check_directory() -> Path:
    """The directory the scheduler writes to, made if need be. Production needs one: with
    email alone a single mailbox would be the only copy outside the database."""
    directory = checkpoint_dir()
    if directory is None:
        raise CheckpointConfigError(
            "DSR_AUDIT_CHECKPOINT_DIR: not set (required when DEBUG is off): the append-only "
            "directory that receives one file per checkpoint"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointConfigError(
            f"DSR_AUDIT_CHECKPOINT_DIR: cannot create {directory}: {exc.strerror}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CheckpointConfigError(f"DSR_AUDIT_CHECKPOINT_DIR: {directory} is not writable")
    return directory


def configured_sinks() -> list[Sink]:
    sinks = [Sink.DIRECTORY] if checkpoint_dir() else []
    if settings.DSR_AUDIT_CHECKPOINT_EMAIL:
        sinks.append(Sink.EMAIL)
    if settings.DSR_AUDIT_CHECKPOINT_WEBHOOK:
        sinks.append(Sink.WEBHOOK)
    return sinks


def published_text(checkpoint: AuditCheckpoint) -> str:
    return file_text(json.loads(checkpoint.body), checkpoint.signature)


def write_directory(checkpoint: AuditCheckpoint) -> None:
    """One new file per checkpoint, whole or not at all, never replacing one: written aside,
    then hard-linked into place (link fails if the name exists)."""
    directory = checkpoint_dir()
    if directory is None:  # a delivery made while a directory was configured, retried without
        raise SinkError("DSR_AUDIT_CHECKPOINT_DIR: not set")
    directory.mkdir(parents=True, exist_ok=True)
    text, final = published_text(checkpoint), directory / file_name(checkpoint.seq)
    temporary = directory / f".{final.name}.{secrets.token_hex(4)}.tmp"
    with open(temporary, "x", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    temporary.chmod(0o444)
    try:
        os.link(temporary, final)
    except FileExistsError:
        if final.read_text(encoding="utf-8") != text:
            raise SinkError(f"{final} already holds a different checkpoint") from None
    finally:
        temporary.unlink(missing_ok=True)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def auditor_emails() -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    users = users.filter(Q(groups__name=roles.AUDITOR)).distinct().order_by("username")
    return list(users.values_list("email", flat=True))


def send_email(checkpoint: AuditCheckpoint) -> None:
    """Text only, the JSON attached: the auditors keep it as evidence outside the portal."""
    recipients = auditor_emails()
    if not recipients:
        raise SinkError("no active auditor has an email address")
    statement = json.loads(checkpoint.body)
    guide = settings.SITE_URL + reverse("audit_offline_guide")
    body = (
        f"Audit checkpoint #{checkpoint.seq} of the DSR Portal at {settings.SITE_URL}\n\n"
        f"Event #{statement['seq']} had the hash {statement['head_hash']}\n"
        f"({statement['event_count']} events), signed at {statement['created_at']} with the "
        f"key whose fingerprint is {statement['key_fingerprint']}.\n\n"
        "Keep this email: it is evidence held outside the portal's database. To check the "
        f"audit log against it, save the attachment and follow {guide}\n\n"
        f"{published_text(checkpoint)}"
    )
    message = EmailMessage(
        f"DSR Portal audit checkpoint #{checkpoint.seq}",
        body,
        settings.DEFAULT_FROM_EMAIL,
        recipients,
    )
    message.attach(file_name(checkpoint.seq), published_text(checkpoint), "application/json")
    message.send()


def post_webhook(checkpoint: AuditCheckpoint) -> None:
    url = settings.DSR_AUDIT_CHECKPOINT_WEBHOOK
    if not url:  # a delivery made while a webhook was configured, retried without
        raise SinkError("DSR_AUDIT_CHECKPOINT_WEBHOOK: not set")
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise SinkError("DSR_AUDIT_CHECKPOINT_WEBHOOK: must be an https:// URL")
    post = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=published_text(checkpoint).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(post, timeout=10) as response:  # noqa: S310  # nosec B310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise SinkError(f"the webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SinkError(f"the webhook is unreachable: {getattr(exc, 'reason', exc)}") from None


PUBLISH: dict[str, Callable[[AuditCheckpoint], None]] = {
    Sink.DIRECTORY: write_directory,
    Sink.EMAIL: send_email,
    Sink.WEBHOOK: post_webhook,
}


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 3600))


def deliver(delivery: CheckpointDelivery, now: datetime | None = None) -> bool:
    """Try one delivery once; returns True when the sink has the checkpoint. A conditional
    UPDATE claims it, so two schedulers never send the same email twice."""
    now = now or timezone.now()
    attempts = delivery.attempts + 1
    claimed = CheckpointDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, delivered_at=None
    ).update(attempts=attempts, next_attempt_at=now + CLAIM)
    if not claimed:
        return False
    try:
        PUBLISH[delivery.sink](delivery.checkpoint)
    except Exception as exc:  # any failure of any sink: recorded, retried, shown
        error = f"{exc.__class__.__name__}: {exc}"[:300]
        log.warning("checkpoint #%s to %s: %s", delivery.checkpoint.seq, delivery.sink, error)
        CheckpointDelivery.objects.filter(pk=delivery.pk).update(
            last_error=error, next_attempt_at=now + backoff(attempts)
        )
        return False
    CheckpointDelivery.objects.filter(pk=delivery.pk).update(delivered_at=now, last_error="")
    return True


def deliver_due(now: datetime | None = None) -> int:
    """Every delivery whose time has come; returns how many were tried."""
    now = now or timezone.now()
    due = CheckpointDelivery.objects.filter(delivered_at=None, next_attempt_at__lte=now)
    tried = 0
    for delivery in due.select_related("checkpoint").order_by("checkpoint__seq", "sink")[:50]:
        deliver(delivery, now)
        tried += 1
    return tried
