"""Deterministic sample data: DPS enrollments and registrations, hub devices, twins, modules.

Device ``i`` falls into a category by ``i % 10`` (see ``CYCLE``), so every category is present as
soon as there are ten devices and the mix stays the same at any size. Registration ID equals the
device ID for everything that came through DPS, as Azure does by default.

Owner tags, for finding a data subject's devices: device ``i`` belongs to customer number
``4700 + i // 5``, so a customer's five devices fall into different categories and, the hub
being drawn at random, onto different hubs (with seed 1, customer 4711's devices 55 to 59 are on
both linked hubs, the other hub and unprovisioned). Four in five twins record it in
``tags.customerId``; the fifth (``i % 5 == 4``) only in ``properties.reported.ownerRef``, so a
search has to look in both. Every individual enrollment carries it in
``initialTwin.tags.customerId``. All are strings ("4711"). Twins also carry ``tags.owner``
(``customerRef``, ``name``, ``email`` as first.last@example.com), ``tags.site`` and
``tags.location``. The owner tags draw nothing from the random generator, so every other value
is what it was before they existed.
"""

import datetime
import random

from .hosts import DPS_HOST, LINKED_HUBS, OTHER_HUB_HOST
from .shapes import (
    cert_info,
    derive_b64,
    derived_device_key,
    dps_time,
    hub_device,
    hub_module,
    hub_time,
    new_dps,
    new_hub,
    tpm_endorsement_key,
    twin_for,
)

__all__ = ["build"]

CYCLE = (
    "individual_symmetric",
    "group_symmetric",
    "individual_x509",
    "hub_only",
    "individual_tpm",
    "group_x509",
    "never_provisioned",
    "other_hub",
    "individual_symmetric",
    "group_symmetric",
)
DEVICES_PER_GROUP = 40
MODULE_IDS = ("sensor-reader", "uploader", "diagnostics")
KINDS = ("thermostat", "meter", "gateway", "valve")
FIRST = ("Anna", "Jonas", "Maria", "Luca", "Sofia", "Noah", "Emma", "Karim", "Ines", "Pieter")
LAST = ("Schmidt", "Rossi", "Dubois", "Jansen", "Novak", "Garcia", "Berg", "Kowalski", "Silva")
CITIES = (
    ("Lyon", 45.764, 4.835),
    ("Utrecht", 52.090, 5.121),
    ("Bologna", 44.494, 11.342),
    ("Gdansk", 54.352, 18.646),
    ("Porto", 41.157, -8.629),
)
STREETS = ("Rue Garibaldi", "Oudegracht", "Via Indipendenza", "Dluga", "Rua de Santa Catarina")
FIRMWARE = ("1.8.2", "2.0.0", "2.3.1", "2.4.0-rc1")
BASE_TIME = datetime.datetime(2024, 3, 1, 8, 0, 0, tzinfo=datetime.UTC)
FIRST_CUSTOMER = 4700
DEVICES_PER_CUSTOMER = 5


def customer_id(i):
    """Device ``i``'s customer number, as the owner tags record it."""
    return str(FIRST_CUSTOMER + i // DEVICES_PER_CUSTOMER)


def customer_tags(rng, i):
    city, lat, lon = CITIES[i % len(CITIES)]
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "owner": {
            "customerRef": f"CUST-{rng.randrange(100000, 999999)}",
            "name": f"{first} {last}",
            "email": f"{first}.{last}@example.com".lower(),
        },
        "site": {
            "name": f"{city}-{i % 7 + 1:02d}",
            "address": f"{rng.randrange(1, 200)} {STREETS[i % len(STREETS)]}, {city}",
        },
        "location": {
            "lat": round(lat + rng.uniform(-0.05, 0.05), 5),
            "lon": round(lon + rng.uniform(-0.05, 0.05), 5),
        },
    }


SAMPLE_KINDS = (
    "individual_symmetric",
    "individual_x509",
    "individual_tpm",
    "group_provisioned",
    "never_provisioned",
    "hub_only",
    "other_hub",
    "with_modules",
    "with_jobs",
    "enrollment_groups",
    "empty_groups",
)


def build(seed, devices, etags):
    """Return (state, samples) for ``devices`` identities, identical for the same seed."""
    rng = random.Random(seed)
    dps = new_dps()
    hubs = {host: new_hub() for host in (*LINKED_HUBS, OTHER_HUB_HOST)}
    samples = {name: [] for name in SAMPLE_KINDS}
    group_count = max(1, devices // DEVICES_PER_GROUP)
    groups = _add_groups(seed, group_count, dps, etags, samples)
    for i in range(devices):
        _add_device(seed, i, rng, dps, hubs, groups, etags, samples)
    return {"dps": {DPS_HOST: dps}, "hubs": hubs}, samples


def _add_groups(seed, group_count, dps, etags, samples):
    """The enrollment groups (symmetric key and X.509), and one that no device uses."""
    groups = {"symmetricKey": [], "x509": []}
    for n in range(group_count):
        for kind, prefix in (("symmetricKey", "grp-sym"), ("x509", "grp-x509")):
            gid = f"{prefix}-{n + 1:02d}"
            dps["groups"][gid] = _group(seed, gid, kind, etags)
            groups[kind].append(gid)
            samples["enrollment_groups"].append(gid)
    empty = "grp-sym-unused"
    dps["groups"][empty] = _group(seed, empty, "symmetricKey", etags)
    samples["empty_groups"].append(empty)
    return groups


def _add_device(seed, i, rng, dps, hubs, groups, etags, samples):
    """Device ``i``: its enrollment (individual, group or none), registration and hub device,
    by its place in ``CYCLE``."""
    category = CYCLE[i % len(CYCLE)]
    device_id = f"{KINDS[i % len(KINDS)]}-{seed % 1000:03d}{i:05d}"
    moment = BASE_TIME + datetime.timedelta(minutes=17 * i)
    hub = LINKED_HUBS[rng.randrange(len(LINKED_HUBS))]
    if category == "other_hub":
        hub = OTHER_HUB_HOST
    keys, group_id = _enroll(seed, i, category, device_id, moment, dps, groups, etags)
    if category == "never_provisioned":
        samples["never_provisioned"].append(device_id)
        return
    if category != "hub_only":
        dps["registrations"][device_id] = _registration(device_id, group_id, hub, moment, etags)
    samples_key = "group_provisioned" if category.startswith("group") else category
    samples[samples_key].append(device_id)
    if keys is None:
        keys = (derive_b64(seed, device_id, "p"), derive_b64(seed, device_id, "s"))
    _add_hub_device(hubs[hub], rng, seed, i, device_id, keys, moment, etags, samples)


def _enroll(seed, i, category, device_id, moment, dps, groups, etags):
    """(device keys or None, group id or None): the device's individual enrollment, or the
    group it provisions through."""
    if category.startswith("individual") or category in ("never_provisioned", "other_hub"):
        attestation = {"individual_x509": "x509", "individual_tpm": "tpm"}.get(
            category, "symmetricKey"
        )
        enrollment = _enrollment(seed, device_id, attestation, etags, moment)
        enrollment["initialTwin"] = {
            "tags": {"customerId": customer_id(i)},
            "properties": {"desired": {}},
        }
        if category == "never_provisioned" and i % 20 == 16:
            enrollment["provisioningStatus"] = "disabled"
        dps["enrollments"][device_id] = enrollment
        if attestation == "symmetricKey":
            sym = enrollment["attestation"]["symmetricKey"]
            return (sym["primaryKey"], sym["secondaryKey"]), None
        return None, None
    if not category.startswith("group"):
        return None, None
    kind = "symmetricKey" if category == "group_symmetric" else "x509"
    kinds = groups[kind]
    group_id = kinds[(i // len(CYCLE)) % len(kinds)]
    if kind != "symmetricKey":
        return None, group_id
    sym = dps["groups"][group_id]["attestation"]["symmetricKey"]
    keys = (
        derived_device_key(sym["primaryKey"], device_id),
        derived_device_key(sym["secondaryKey"], device_id),
    )
    return keys, group_id


def _registration(device_id, group_id, hub, moment, etags):
    return {
        "group": group_id,
        "state": {
            "registrationId": device_id,
            "createdDateTimeUtc": dps_time(moment),
            "assignedHub": hub,
            "deviceId": device_id,
            "status": "assigned",
            "substatus": "initialAssignment",
            "lastUpdatedDateTimeUtc": dps_time(moment + datetime.timedelta(seconds=3)),
            "etag": etags.dps(),
        },
    }


def _symmetric_key(seed, name, prefix):
    """A symmetric-key attestation; its keys derived from the seed and the record's name."""
    return {
        "type": "symmetricKey",
        "symmetricKey": {
            "primaryKey": derive_b64(seed, name, f"{prefix}-p"),
            "secondaryKey": derive_b64(seed, name, f"{prefix}-s"),
        },
    }


def _x509(certificates, info):
    """X.509: a group's ``signingCertificates`` or a device's ``clientCertificates``."""
    return {"type": "x509", "x509": {certificates: {"primary": {"info": info}, "secondary": None}}}


def _group(seed, gid, kind, etags):
    moment = BASE_TIME - datetime.timedelta(days=30)
    if kind == "symmetricKey":
        attestation = _symmetric_key(seed, gid, "group")
    else:
        info = cert_info(f"{gid} Intermediate CA", "Contoso Root CA", f"{seed}/{gid}", moment)
        attestation = _x509("signingCertificates", info)
    return {
        "enrollmentGroupId": gid,
        "attestation": attestation,
        "capabilities": {"iotEdge": False},
        "etag": etags.dps(),
        "provisioningStatus": "enabled",
        "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True},
        "createdDateTimeUtc": dps_time(moment),
        "lastUpdatedDateTimeUtc": dps_time(moment),
        "allocationPolicy": "hashed",
        "iotHubs": list(LINKED_HUBS),
    }


def _enrollment(seed, registration_id, kind, etags, moment):
    if kind == "symmetricKey":
        attestation = _symmetric_key(seed, registration_id, "enr")
    elif kind == "x509":
        info = cert_info(registration_id, "Contoso Devices CA", f"{seed}/{registration_id}", moment)
        attestation = _x509("clientCertificates", info)
    else:
        attestation = {
            "type": "tpm",
            "tpm": {"endorsementKey": tpm_endorsement_key(seed, registration_id)},
        }
    return {
        "registrationId": registration_id,
        "deviceId": registration_id,
        "attestation": attestation,
        "capabilities": {"iotEdge": False},
        "etag": etags.dps(),
        "provisioningStatus": "enabled",
        "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True},
        "createdDateTimeUtc": dps_time(moment - datetime.timedelta(days=2)),
        "lastUpdatedDateTimeUtc": dps_time(moment - datetime.timedelta(days=2)),
        "allocationPolicy": "hashed",
        "iotHubs": list(LINKED_HUBS),
    }


def _add_hub_device(hub, rng, seed, i, device_id, keys, moment, etags, samples):
    device = hub_device(device_id, etags.device(), keys[0], keys[1], moment, c2d=i % 3)
    hub["devices"][device_id] = device
    tags = customer_tags(rng, i)
    desired = {"telemetryIntervalSec": rng.choice((30, 60, 300)), "heatingMode": "eco"}
    reported = {
        "firmware": {"version": FIRMWARE[i % len(FIRMWARE)], "updatedAt": hub_time(moment)},
        "lastTemperatureC": round(rng.uniform(16, 24), 1),
    }
    if i % DEVICES_PER_CUSTOMER == DEVICES_PER_CUSTOMER - 1:
        reported["ownerRef"] = customer_id(i)
    else:
        tags["customerId"] = customer_id(i)
    hub["twins"][device_id] = twin_for(device, etags.twin(), tags, desired, reported)
    hub["twins"][device_id]["cloudToDeviceMessageCount"] = device["cloudToDeviceMessageCount"]
    if i % 4 == 0 or i % 20 == 3:
        samples["with_modules"].append(device_id)
        hub["modules"][device_id] = {}
        for module_id in MODULE_IDS[: 1 + i % len(MODULE_IDS)]:
            module = hub_module(
                device_id,
                module_id,
                etags.device(),
                derive_b64(seed, device_id, module_id, "p"),
                derive_b64(seed, device_id, module_id, "s"),
                moment,
            )
            hub["modules"][device_id][module_id] = module
            hub["module_twins"][(device_id, module_id)] = twin_for(
                device,
                etags.twin(),
                desired={"sampleRateHz": 2},
                reported={"moduleVersion": "1.0.4", "readings": rng.randrange(100, 90000)},
                module_id=module_id,
            )
    if i % 5 == 1:
        samples["with_jobs"].append(device_id)
        hub["jobs"][device_id] = [
            {
                "jobId": f"fw-rollout-{i:05d}",
                "queryCondition": f"deviceId IN ['{device_id}']",
                "createdTime": hub_time(moment),
                "startTime": hub_time(moment),
                "endTime": hub_time(moment + datetime.timedelta(minutes=2)),
                "maxExecutionTimeInSeconds": 3600,
                "type": "scheduleUpdateTwin",
                "status": "completed",
                "deviceId": device_id,
                "outcome": {"deviceMethodResponse": None},
                "lastUpdatedDateTimeUtc": hub_time(moment + datetime.timedelta(minutes=2)),
                "createdDateTimeUtc": hub_time(moment),
            }
        ]
