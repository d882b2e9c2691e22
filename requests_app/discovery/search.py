"""Starting a discovery, the read-only job that runs it, and retrying the targets that failed.

The job gets the discovery's primary key and nothing else: subject keys never travel through
Redis and never reach a log line. It asks every configured target that declares
``owner_paths``, one at a time, and nothing else (a target not in the targets file is never
called). A hub is asked one query per owner path, paged by continuation and paced in the hub's
query bucket by the client; a DPS instance has no WHERE clause, so its individual enrollments
are read page by page and compared here. Matches are written in batches as the pages arrive,
so a match on thousands of devices never sits in memory at once. Each target's outcome is saved
as soon as it is known: a failure is kept (masked) with the hub's answer, and only the failed
targets are asked again on a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from requests_app.azure import AzureClients, AzureError, configured_targets
from requests_app.azure.targets import DPS, Target
from requests_app.discovery import keys as subject_keys
from requests_app.discovery import queries
from requests_app.jobs.queues import DISCOVERY_JOB, enqueue_on_commit
from requests_app.models import AuditEvent, DataRequest, Discovery, DiscoveryMatch, Status

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the most IoT Hub returns per page; its projected items are small
# Enrollments are whole documents (attestation, certificates, initial twin): fewer a page keeps
# the worker's memory low whatever the size of the fleet.
DPS_PAGE_SIZE = 100
BATCH = 500  # matches written per INSERT
# A discovery still running after this long lost its worker: it may be started again.
STALLED_AFTER = timedelta(minutes=10)
PENDING, ANSWERED, FAILED = "pending", "answered", "failed"


class DiscoveryRefused(ValueError):
    """The discovery cannot be started, retried or confirmed now; the message says why."""


def searchable_targets() -> list[Target]:
    """Configured targets that declare where devices record their owner, DPS first."""
    return [target for target in configured_targets(secrets=False) if target.owner_paths]


def _plan_for(target: Target, keys: list[str]) -> dict[str, object]:
    if target.kind == DPS:
        shown = [queries.masked_dps_search(path, keys) for path in target.owner_paths]
    else:
        shown = [queries.masked_hub_query(path, keys) for path in target.owner_paths]
    return {"state": PENDING, "kind": target.kind, "queries": shown, "matches": 0}


def start(data_request: DataRequest, *, keys: list[str], actor: User) -> Discovery:
    """Store the search and queue its job once the surrounding transaction commits."""
    if not keys:
        raise DiscoveryRefused("Enter at least one subject key to search for.")
    for key in keys:
        problem = subject_keys.check_key(key)
        if problem:
            raise DiscoveryRefused(f"The key {subject_keys.shown(key)} {problem}.")
    targets = searchable_targets()
    if not targets:
        raise DiscoveryRefused(
            "No DPS instance or hub in the targets file declares owner_paths, so there is "
            "nowhere to search: see the README's Finding a subject's devices."
        )
    with transaction.atomic():
        locked = DataRequest.objects.select_for_update().get(pk=data_request.pk)
        if locked.status != Status.DRAFT:
            raise DiscoveryRefused("Devices can only be searched for while the request is a draft.")
        if locked.discoveries.filter(state=Discovery.State.RUNNING).exists():
            raise DiscoveryRefused("A search is already running for this request.")
        discovery = Discovery.objects.create(
            request=locked,
            keys=keys,
            key_count=len(keys),
            targets={target.hostname: _plan_for(target, keys) for target in targets},
            created_by=actor,
        )
        AuditEvent.record(
            "discovery_started",
            actor=actor,
            request=locked,
            discovery=discovery.pk,
            keys=len(keys),
            key_sha256=[subject_keys.digest(locked.reference, key) for key in keys],
            queries={host: done["queries"] for host, done in discovery.targets.items()},
        )
        enqueue_on_commit(DISCOVERY_JOB, discovery.pk, job_id=f"dsr-discovery-{discovery.pk}")
    return discovery


def may_retry(discovery: Discovery) -> bool:
    """A finished search with targets that did not answer, or one whose worker was lost."""
    if discovery.purged_at:
        return False
    if discovery.state == Discovery.State.FINISHED:
        return bool(discovery.hosts_in(FAILED))
    stalled_since = timezone.now() - STALLED_AFTER
    return discovery.state == Discovery.State.RUNNING and discovery.created_at < stalled_since


def retry(discovery: Discovery, *, actor: User) -> Discovery:
    """Ask the targets that failed (or all unanswered ones of a stalled run) again."""
    with transaction.atomic():
        locked = Discovery.objects.select_for_update().get(pk=discovery.pk)
        if not may_retry(locked):
            raise DiscoveryRefused("Nothing to retry: every target answered or is being asked.")
        failed = locked.hosts_in(FAILED)
        for host in failed + locked.hosts_in(PENDING):
            locked.targets[host] = {**locked.targets[host], "state": PENDING}
            locked.targets[host].pop("error", None)
        locked.state = Discovery.State.RUNNING
        locked.save(update_fields=["targets", "state"])
        AuditEvent.record("discovery_retried", actor=actor, request=locked.request, hosts=failed)
        attempt = f"dsr-discovery-{locked.pk}-{timezone.now():%Y%m%d%H%M%S%f}"
        enqueue_on_commit(DISCOVERY_JOB, locked.pk, job_id=attempt)
    return locked


def discovery_job(discovery_id: int) -> None:
    """RQ job: search every pending target of the discovery, then mark it finished."""
    from requests_app.jobs.azure_calls import clients_for

    discovery = Discovery.objects.select_related("request").get(pk=discovery_id)
    if discovery.state != Discovery.State.RUNNING or discovery.purged_at:
        return
    with clients_for(discovery.request) as clients:
        for host in discovery.hosts_in(PENDING):
            outcome = _search_target(clients, discovery, host)
            _save_outcome(discovery, host, outcome)
    _finish(discovery)


def _search_target(clients: AzureClients, discovery: Discovery, host: str) -> dict[str, object]:
    target = configured_targets().get(host)
    if target is None or not target.owner_paths:
        # Never call a host the targets file no longer lists.
        return {"state": FAILED, "error": "no longer in the targets file with owner_paths"}
    # Matches of an earlier, failed attempt at this target are replaced, not counted twice.
    DiscoveryMatch.objects.filter(discovery=discovery, host=host).delete()
    try:
        found = _write_matches(discovery, host, _matches(clients, target, discovery.keys))
    except AzureError as exc:
        message = subject_keys.mask(str(exc), discovery.keys)
        log.warning("discovery %s: %s did not answer: %s", discovery.pk, host, message)
        return {"state": FAILED, "error": message, "status": exc.status, "code": exc.error_code}
    return {"state": ANSWERED, "matches": found}


def _matches(
    clients: AzureClients, target: Target, keys: list[str]
) -> Iterator[tuple[str, str, str, int]]:
    """(device ID, registration ID, path, key index) of every match, page by page."""
    if target.kind == DPS:
        dps = clients.dps(target.hostname)
        for enrollment in dps.query_enrollments(page_size=DPS_PAGE_SIZE):
            for path in target.owner_paths:
                value = queries.value_at(enrollment, path)
                if isinstance(value, str) and value in keys:
                    registration = str(enrollment.get("registrationId") or "")
                    device = str(enrollment.get("deviceId") or "")
                    yield device, registration, path, keys.index(value)
        return
    hub = clients.hub(target.hostname)
    for path in target.owner_paths:
        for item in hub.query(queries.hub_query(path, keys), page_size=PAGE_SIZE):
            value = item.get(queries.VALUE) if isinstance(item, dict) else None
            if isinstance(value, str) and value in keys and item.get("deviceId"):
                yield str(item["deviceId"]), "", path, keys.index(value)


def _write_matches(
    discovery: Discovery, host: str, found: Iterator[tuple[str, str, str, int]]
) -> int:
    count = 0
    batch: list[DiscoveryMatch] = []
    for device_id, registration_id, path, key_index in found:
        batch.append(
            DiscoveryMatch(
                discovery=discovery,
                host=host,
                device_id=device_id,
                registration_id=registration_id,
                path=path,
                key_index=key_index,
            )
        )
        if len(batch) >= BATCH:
            count += len(DiscoveryMatch.objects.bulk_create(batch, ignore_conflicts=True))
            batch = []
    if batch:
        count += len(DiscoveryMatch.objects.bulk_create(batch, ignore_conflicts=True))
    return count


def _save_outcome(discovery: Discovery, host: str, outcome: dict[str, object]) -> None:
    with transaction.atomic():
        locked = Discovery.objects.select_for_update().get(pk=discovery.pk)
        locked.targets[host] = {
            **locked.targets[host],
            **outcome,
            "at": timezone.now().isoformat(),
        }
        locked.save(update_fields=["targets"])
        discovery.targets = locked.targets


def _finish(discovery: Discovery) -> None:
    with transaction.atomic():
        locked = Discovery.objects.select_for_update().get(pk=discovery.pk)
        if locked.state != Discovery.State.RUNNING:
            return
        locked.state = Discovery.State.FINISHED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "finished_at"])
        AuditEvent.record(
            "discovery_finished",
            request=discovery.request,
            discovery=locked.pk,
            answered=locked.hosts_in(ANSWERED),
            failed=locked.hosts_in(FAILED),
            matches={host: done.get("matches", 0) for host, done in locked.targets.items()},
            errors={
                host: done.get("code") or done.get("status") or "no answer"
                for host, done in locked.targets.items()
                if done.get("state") == FAILED
            },
        )
