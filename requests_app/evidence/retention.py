"""Forgetting on time: each kind of file is deleted a set number of days after its request's
completion, unless the request is under a legal hold.

- ``export``: the export archive (the subject's data) and any loose exported documents, kept
  ``DSR_EXPORT_RETENTION_DAYS`` (30);
- ``subject keys``: the keys a discovery searched for and the devices it found, cleared
  ``DSR_EXPORT_RETENTION_DAYS`` after the request closed (completed, rejected or cancelled);
- ``evidence``: the deletion certificate, PDF and JSON, kept ``DSR_EVIDENCE_RETENTION_DAYS``
  (6 years).

A purged file keeps its row: kind, size, SHA-256 (the hash the manifest and the audit trail
name), ``purged_at`` and the rule. Each purge is one ``artifact_purged`` audit event, written in
the same transaction that marks the row, with the request's row locked (so a legal hold placed
at the same moment wins or waits). The file is deleted after that transaction commits: a
scheduler that dies before the commit leaves everything as it was (file, row, no event), one
that dies after it leaves a marked row whose file the next run deletes (never served: a marked
row answers 410). A file that cannot be purged is logged and skipped; the others go on. The
audit trail itself is append-only and is not purged here (see the README's *Retention*).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app.evidence.artifacts import artifact_path
from requests_app.evidence.store import ExportStore
from requests_app.models import Artifact, AuditEvent, DataRequest, Discovery, LegalHold

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    kinds: tuple[str, ...]
    setting: str  # the days, from settings
    what: str  # in words, for the request page and the 410 page

    @property
    def days(self) -> int:
        return int(getattr(settings, self.setting))

    def deadline(self, completed_at: datetime) -> datetime:
        return completed_at + timedelta(days=self.days)

    def describe(self) -> str:
        return f"{self.what} are kept {self.days} days after the request is completed"


RULES = (
    Rule("export", (Artifact.Kind.EXPORT_ARCHIVE,), "DSR_EXPORT_RETENTION_DAYS", "Export archives"),
    Rule(
        "evidence",
        (Artifact.Kind.CERTIFICATE_PDF, Artifact.Kind.CERTIFICATE_JSON),
        "DSR_EVIDENCE_RETENTION_DAYS",
        "Deletion certificates",
    ),
)
BY_NAME = {rule.name: rule for rule in RULES}


def rule_for(kind: str) -> Rule:
    return next(rule for rule in RULES if kind in rule.kinds)


def purge_due(now: datetime | None = None) -> int:
    """Purge every file past its rule's deadline; returns how many were purged. The
    scheduler's ``retention`` task."""
    now = now or timezone.now()
    purged = 0
    for rule in RULES:
        due = Artifact.objects.filter(
            kind__in=rule.kinds,
            purged_at__isnull=True,
            request__completed_at__lt=now - timedelta(days=rule.days),
            request__legal_hold__isnull=True,
        ).values_list("pk", flat=True)
        for pk in list(due):
            try:
                purged += purge(pk, rule, now)
            except Exception:  # one file's trouble must not keep the others
                log.exception("retention: artifact %s could not be purged; next run again", pk)
    delete_leftovers()
    discard_loose_documents(now)
    forget_subject_keys(now)
    return purged


def forget_subject_keys(now: datetime) -> None:
    """Discoveries of requests closed longer than the export rule: keys emptied, matches and
    per-hub error texts deleted, one ``discovery_purged`` event each. The masked queries, the
    counts and the key digests stay: they are what the audit trail already holds."""
    due = Discovery.objects.filter(
        purged_at__isnull=True,
        request__completed_at__lt=now - timedelta(days=BY_NAME["export"].days),
        request__legal_hold__isnull=True,
    ).values_list("pk", flat=True)
    for pk in list(due):
        try:
            _forget(pk, now)
        except Exception:  # one discovery's trouble must not keep the others
            log.exception("retention: discovery %s could not be purged; next run again", pk)


def _forget(discovery_pk: int, now: datetime) -> None:
    with transaction.atomic():
        discovery = Discovery.objects.select_related("request").get(pk=discovery_pk)
        DataRequest.objects.select_for_update().filter(pk=discovery.request_id).first()
        held = LegalHold.objects.filter(request_id=discovery.request_id).exists()
        if discovery.purged_at or held:
            return
        matches, _ = discovery.matches.all().delete()
        targets = {
            host: {k: v for k, v in done.items() if k != "error"}
            for host, done in discovery.targets.items()
        }
        Discovery.objects.filter(pk=discovery.pk).update(keys=[], targets=targets, purged_at=now)
        AuditEvent.record(
            "discovery_purged",
            request=discovery.request,
            discovery=discovery.pk,
            keys=discovery.key_count,
            matches=matches,
            rule="export",
            days=BY_NAME["export"].days,
        )


def delete_leftovers() -> None:
    """Files of rows already marked purged that are still on disk (the scheduler died between
    the commit and the delete): deleted now, without a second event."""
    for artifact in Artifact.objects.filter(purged_at__isnull=False).only("pk", "path"):
        try:
            artifact_path(artifact).unlink(missing_ok=True)
        except (OSError, ValueError):
            log.exception("retention: the file of purged artifact %s stays", artifact.pk)


def discard_loose_documents(now: datetime) -> None:
    """Exported documents left on disk by a request that never built its archive (cancelled
    or finished with issues during the export) go with the export rule too."""
    work = Path(settings.DSR_DATA_DIR) / "work"
    references = [p.name for p in work.iterdir() if p.is_dir()] if work.is_dir() else []
    if not references:
        return
    stale = DataRequest.objects.filter(
        reference__in=references,
        completed_at__lt=now - timedelta(days=BY_NAME["export"].days),
        legal_hold__isnull=True,
    )
    for data_request in stale:
        with transaction.atomic():
            DataRequest.objects.select_for_update().filter(pk=data_request.pk).first()
            if LegalHold.objects.filter(request=data_request).exists():
                continue
            store = ExportStore(data_request)
            store.discard()
            if not store.root.exists():
                AuditEvent.record("exported_documents_purged", request=data_request, rule="export")


def purge(artifact_pk: int, rule: Rule, now: datetime) -> bool:
    """Delete one file and mark its row, audited once; False if another run did it first or a
    legal hold was placed meanwhile."""
    with transaction.atomic():
        artifact = Artifact.objects.filter(pk=artifact_pk, purged_at__isnull=True).first()
        if artifact is None:
            return False
        # The request's row lock orders this purge against placing a legal hold.
        DataRequest.objects.select_for_update().filter(pk=artifact.request_id).first()
        if LegalHold.objects.filter(request_id=artifact.request_id).exists():
            return False
        marked = Artifact.objects.filter(pk=artifact.pk, purged_at__isnull=True).update(
            purged_at=now, purge_rule=rule.name
        )
        if not marked:
            return False
        AuditEvent.record(
            "artifact_purged",
            request=artifact.request,
            kind=artifact.kind,
            sha256=artifact.sha256,
            size=artifact.size,
            rule=rule.name,
            days=rule.days,
            completed_at=artifact.request.completed_at.isoformat()
            if artifact.request.completed_at
            else None,
        )
    artifact_path(artifact).unlink(missing_ok=True)
    log.info("retention: purged %s of %s (%s)", artifact.kind, artifact.request, rule.name)
    return True


def place_hold(data_request: DataRequest, *, actor: User, reason: str) -> LegalHold:
    """Suspend every purge of the request; audited with the reason."""
    reason = reason.strip()
    if not reason:
        raise ValueError("Give the reason for the legal hold (e.g. the case or matter).")
    with transaction.atomic():
        DataRequest.objects.select_for_update().filter(pk=data_request.pk).first()
        if LegalHold.objects.filter(request=data_request).exists():
            raise ValueError("This request is already under a legal hold.")
        hold = LegalHold.objects.create(request=data_request, reason=reason, placed_by=actor)
        AuditEvent.record("legal_hold_placed", actor=actor, request=data_request, reason=reason)
    return hold


def release_hold(data_request: DataRequest, *, actor: User, reason: str) -> None:
    """End the hold: the retention rules apply again from the next scheduler run (a file past
    its deadline is purged then). Four eyes: an admin, or an officer other than the one who
    placed it."""
    from requests_app.access import roles

    reason = reason.strip()
    if not reason:
        raise ValueError("Give the reason for releasing the legal hold.")
    with transaction.atomic():
        DataRequest.objects.select_for_update().filter(pk=data_request.pk).first()
        hold = LegalHold.objects.filter(request=data_request).first()
        if hold is None:
            raise ValueError("This request is not under a legal hold.")
        if hold.placed_by_id == actor.pk and not roles.has_role(actor, roles.ADMIN):
            raise ValueError(
                "Another officer or an admin must release a hold you placed (four eyes)."
            )
        hold.delete()
        AuditEvent.record("legal_hold_released", actor=actor, request=data_request, reason=reason)
