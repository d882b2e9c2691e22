"""The officer's confirmation: the chosen matches become the request's identifiers.

A device found on a hub becomes ``device-id@hub``; an individual enrollment found on DPS becomes
its registration ID, joined to the hub device of the same ID when that was chosen too (one
identifier, so the plan holds the device once). Identifiers the request already names are not
added twice. Matching by two owner paths gives one identifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from requests_app.discovery.search import DiscoveryRefused
from requests_app.intake import rules as intake
from requests_app.models import AuditEvent, DataRequest, Discovery, RequestIdentifier, Status

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.contrib.auth.models import User


def confirm(discovery: Discovery, *, actor: User, match_ids: Iterable[int] | None = None) -> int:
    """Add the chosen matches (``None``: all of them) to the request; returns how many
    identifiers were added. Confirming none is allowed: it records that nothing was taken."""
    with transaction.atomic():
        data_request = DataRequest.objects.select_for_update().get(pk=discovery.request_id)
        locked = Discovery.objects.select_for_update().get(pk=discovery.pk)
        if data_request.status != Status.DRAFT:
            raise DiscoveryRefused("Devices can only be added while the request is a draft.")
        if locked.state != Discovery.State.FINISHED or locked.purged_at:
            raise DiscoveryRefused("This search is not waiting for a confirmation.")
        chosen = locked.matches.all()
        if match_ids is not None:
            chosen = chosen.filter(pk__in=list(match_ids))
        rows = chosen.values_list("host", "device_id", "registration_id")
        entries = _entries(rows.iterator(chunk_size=2000))
        added = _add(data_request, entries)
        locked.state = Discovery.State.CONFIRMED
        locked.confirmed_at = timezone.now()
        locked.confirmed_count = added
        locked.save(update_fields=["state", "confirmed_at", "confirmed_count"])
        AuditEvent.record(
            "discovery_confirmed",
            actor=actor,
            request=data_request,
            discovery=locked.pk,
            chosen=chosen.count(),
            found=locked.matches.count(),
            identifiers_added=added,
        )
    return added


def _entries(rows: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(registration ID, device ID, hub) per chosen device, hub and DPS finds of one device
    joined."""
    hub_devices: dict[str, str] = {}  # device ID → hub
    enrollments: dict[str, str] = {}  # registration ID → its device ID
    for host, device_id, registration_id in rows:
        if registration_id:
            enrollments[registration_id] = device_id or registration_id
        else:
            hub_devices.setdefault(device_id, host)
    entries = []
    for registration_id, device_id in enrollments.items():
        hub = hub_devices.pop(device_id, "")
        entries.append((registration_id, device_id if hub else "", hub))
    entries.extend(("", device_id, hub) for device_id, hub in hub_devices.items())
    return sorted(entries)


def _add(data_request: DataRequest, entries: list[tuple[str, str, str]]) -> int:
    named = data_request.identifiers.values_list("registration_id", "device_id", "hub")
    registrations = {reg.lower() for reg, _, _ in named if reg}
    devices = {(dev, hub.lower()) for _, dev, hub in named if dev}
    line = (data_request.identifiers.aggregate(last=Max("line"))["last"] or 0) + 1
    new: list[RequestIdentifier] = []
    for reg, dev, hub in entries:
        # Registration IDs and host names are case-insensitive in Azure; device IDs are not.
        if (reg and reg.lower() in registrations) or (dev and (dev, hub.lower()) in devices):
            continue
        new.append(
            RequestIdentifier(
                request=data_request,
                line=line + len(new),
                registration_id=reg,
                device_id=dev,
                hub=hub,
            )
        )
    total = len(named) + len(new)
    if total > intake.MAX_IDENTIFIERS:
        raise DiscoveryRefused(
            f"That would give the request {total:,} identifiers; one request may name at most "
            f"{intake.MAX_IDENTIFIERS:,}. Choose fewer devices."
        )
    RequestIdentifier.objects.bulk_create(new, batch_size=1000)
    return len(new)
