"""Handing the export to the data subject: a link that expires, counts its downloads and asks
for a passphrase sent by another channel.

- The link's token (256 bits) and the passphrase (100 bits, ``XXXX-XXXX-XXXX-XXXX-XXXX``) are
  shown once to the officer; the database keeps a SHA-256 of the token and a password hash of
  the passphrase. The email to the subject (optional) carries the link, never the passphrase.
- Everything is enforced here, on the server: expiry, the download limit (a conditional UPDATE,
  so two downloads at once cannot both take the last one), revocation, and the lock after
  ``DSR_DELIVERY_ATTEMPTS`` wrong passphrases (the officer makes a new delivery).
- Every event is audited: made, opened (passphrase accepted; through the anonymous-noise
  limiter, so a subject or anyone holding the passphrase cannot grow the trail without bound),
  each wrong passphrase (at most ``DSR_DELIVERY_ATTEMPTS``), each download, revoked; a refusal
  (expired, revoked, used up, locked, archive purged) is recorded the first time that link
  meets it. The subject's address is kept coarse (``/24``, ``/48``): it tells networks apart,
  it does not keep a person's address for years.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import secrets
import zipfile
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from requests_app.accounts import noise
from requests_app.evidence.artifacts import artifact_path
from requests_app.models import Artifact, AuditEvent, DataRequest, Delivery, Status

if TYPE_CHECKING:
    from django.contrib.auth.models import User

State = Delivery.State
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols: no 0/O, 1/I to misread
GROUPS, GROUP = 5, 4  # 20 symbols of 5 bits: 100 bits
LISTED = 200  # archive members listed on the subject's page; the rest are counted


@dataclasses.dataclass(frozen=True)
class Made:
    delivery: Delivery
    url: str  # absolute, with the token: shown once
    passphrase: str  # shown once


def new_passphrase() -> str:
    symbols = [secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP)]
    return "-".join("".join(symbols[i : i + GROUP]) for i in range(0, len(symbols), GROUP))


def normalise(passphrase: str) -> str:
    """What a person may type: any case, with or without the dashes and spaces."""
    return "".join(c for c in passphrase.upper() if c not in "- \t")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def archive_of(data_request: DataRequest) -> Artifact | None:
    return data_request.artifacts.filter(kind=Artifact.Kind.EXPORT_ARCHIVE).first()


def servable(archive: Artifact | None) -> bool:
    """The archive is there to serve: not purged, and its file on disk."""
    return archive is not None and not archive.purged_at and artifact_path(archive).is_file()


def coarse(ip: str) -> str:
    """The network of a data subject's address (IPv4 /24, IPv6 /48), for the audit trail."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def create(
    data_request: DataRequest, *, actor: User, days: int, downloads: int, email: str = ""
) -> Made:
    """A new delivery of the request's export archive; ValueError says what is wrong."""
    archive = archive_of(data_request)
    if data_request.status not in (Status.COMPLETED, Status.COMPLETED_WITH_ISSUES):
        raise ValueError("Only a completed export can be delivered.")
    if archive is None:
        raise ValueError("This request has no export archive to deliver.")
    if not servable(archive):
        raise ValueError("The export archive was deleted under the retention rule.")
    if not 1 <= days <= settings.DSR_DELIVERY_MAX_DAYS:
        raise ValueError(f"The link must expire within 1 to {settings.DSR_DELIVERY_MAX_DAYS} days.")
    if not 1 <= downloads <= settings.DSR_DELIVERY_MAX_DOWNLOADS:
        raise ValueError(f"Allow 1 to {settings.DSR_DELIVERY_MAX_DOWNLOADS} downloads.")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValueError(f"{email!r} is not an email address.") from None
    token, passphrase = secrets.token_urlsafe(32), new_passphrase()
    with transaction.atomic():
        delivery = Delivery.objects.create(
            request=data_request,
            token_hash=hash_token(token),
            passphrase_hash=make_password(normalise(passphrase)),
            created_by=actor,
            expires_at=timezone.now() + timedelta(days=days),
            max_downloads=downloads,
        )
        AuditEvent.record(
            "delivery_created",
            actor=actor,
            request=data_request,
            delivery=delivery.pk,
            expires_at=delivery.expires_at.isoformat(),
            max_downloads=downloads,
            sha256=archive.sha256,
            emailed=bool(email),
        )
    url = settings.SITE_URL + reverse("delivery_link", args=[token])
    return Made(delivery, url, passphrase)


def find(token: str) -> Delivery | None:
    if not token or len(token) > 100:
        return None
    return Delivery.objects.select_related("request").filter(token_hash=hash_token(token)).first()


def state_of(delivery: Delivery, now: datetime | None = None) -> str:
    """The first reason the link cannot be used, or ``active``."""
    now = now or timezone.now()
    archive = archive_of(delivery.request)
    if delivery.revoked_at:
        return State.REVOKED
    if not servable(archive):
        return State.PURGED
    if delivery.failed_attempts >= settings.DSR_DELIVERY_ATTEMPTS:
        return State.LOCKED
    if delivery.downloads >= delivery.max_downloads:
        return State.EXHAUSTED
    if delivery.expires_at <= now:
        return State.EXPIRED
    return State.ACTIVE


def _subject_event(action: str, delivery: Delivery, ip: str, **details: Any) -> None:
    """An event of the data subject's on the audit trail, with their network, not address."""
    AuditEvent.record(
        action,
        actor_kind="data_subject",
        actor_name="data subject",
        request=delivery.request,
        delivery=delivery.pk,
        ip=coarse(ip),
        **details,
    )


def record_refusal(delivery: Delivery, state: str, ip: str) -> None:
    """The first time a link meets this refusal, on the audit trail; after that, nothing."""
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if state in locked.refusals_recorded:
            return
        locked.refusals_recorded = [*locked.refusals_recorded, state]
        locked.save(update_fields=["refusals_recorded"])
        _subject_event("delivery_refused", delivery, ip, reason=str(state))


def check_passphrase(delivery: Delivery, passphrase: str, ip: str) -> tuple[bool, int]:
    """(accepted, attempts left). Every try is audited; the link locks at the last one."""
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if state_of(locked) != State.ACTIVE:
            return False, 0
        if check_password(normalise(passphrase), locked.passphrase_hash):
            noise.record_anonymous(  # once per link, network and noise window
                "delivery_opened",
                actor_name=f"data subject, link {delivery.pk}",
                ip=coarse(ip),
                request=delivery.request,
                delivery=delivery.pk,
            )
            return True, settings.DSR_DELIVERY_ATTEMPTS - locked.failed_attempts
        locked.failed_attempts += 1
        locked.save(update_fields=["failed_attempts"])
        left = max(0, settings.DSR_DELIVERY_ATTEMPTS - locked.failed_attempts)
        _subject_event(
            "delivery_passphrase_refused",
            delivery,
            ip,
            attempt=locked.failed_attempts,
            locked=left == 0,
        )
        return False, left


def claim_download(delivery: Delivery, ip: str) -> tuple[Artifact, BinaryIO] | None:
    """Count one download if the link still allows it (one conditional UPDATE); the archive
    and its file, opened before the count (a file gone is never counted), or None."""
    archive = archive_of(delivery.request)
    if archive is None or archive.purged_at:
        return None
    try:
        fh = artifact_path(archive).open("rb")
    except OSError:
        return None
    counted = False
    try:
        counted = _count_download(delivery, archive, ip)
    finally:
        if not counted:
            fh.close()
    return (archive, fh) if counted else None


def _count_download(delivery: Delivery, archive: Artifact, ip: str) -> bool:
    with transaction.atomic():
        counted = Delivery.objects.filter(
            pk=delivery.pk,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            downloads__lt=F("max_downloads"),
            failed_attempts__lt=settings.DSR_DELIVERY_ATTEMPTS,
        ).update(downloads=F("downloads") + 1)
        if not counted:
            return False
        delivery.refresh_from_db(fields=["downloads"])
        _subject_event(
            "delivery_downloaded",
            delivery,
            ip,
            download=delivery.downloads,
            of=delivery.max_downloads,
            sha256=archive.sha256,
        )
    return True


def revoke(delivery: Delivery, *, actor: User) -> None:
    with transaction.atomic():
        revoked = Delivery.objects.filter(pk=delivery.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=actor
        )
        if not revoked:
            raise ValueError("This link was already revoked.")
        AuditEvent.record(
            "delivery_revoked", actor=actor, request=delivery.request, delivery=delivery.pk
        )


def contents(archive: Artifact) -> tuple[list[tuple[str, int]], int, int]:
    """(the first LISTED members as (name, size), how many members, their total size), read
    from the ZIP's central directory (the members are not read)."""
    with zipfile.ZipFile(artifact_path(archive)) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    listed = [(i.filename, i.file_size) for i in infos[:LISTED]]
    return listed, len(infos), sum(i.file_size for i in infos)
