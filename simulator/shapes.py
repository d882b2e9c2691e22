"""The records DPS and IoT Hub hand out, in Azure's shapes: devices, modules and twins as the
hub writes them, certificate summaries as DPS does, each service's timestamp format and etag
style, and the key derivations. The seed (``seed``) and the handlers (``dps``, ``hub``) build
their records with these, so a record looks the same however it was made.
"""

import base64
import datetime
import hashlib
import hmac

NEVER = "0001-01-01T00:00:00Z"


def hub_time(moment):
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def dps_time(moment):
    # DPS writes seven fractional digits.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "0Z"


def derive_b64(*parts):
    return base64.b64encode(hashlib.sha256("/".join(map(str, parts)).encode()).digest()).decode()


def derived_device_key(group_key, registration_id):
    """The key a device of a symmetric-key group uses (Azure's documented derivation)."""
    mac = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def cert_info(subject, issuer, seed_text, moment):
    data = seed_text.encode()
    return {
        "subjectName": f"CN={subject}, O=Contoso Heating, C=FR",
        "sha1Thumbprint": hashlib.sha1(data, usedforsecurity=False).hexdigest().upper(),
        "sha256Thumbprint": hashlib.sha256(seed_text.encode()).hexdigest().upper(),
        "issuerName": f"CN={issuer}, O=Contoso Heating, C=FR",
        "notBeforeUtc": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "notAfterUtc": (moment + datetime.timedelta(days=730)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serialNumber": hashlib.md5(data, usedforsecurity=False).hexdigest().upper()[:20],
        "version": 3,
    }


def tpm_endorsement_key(seed, registration_id):
    blob = b"".join(
        hashlib.sha256(f"ek/{seed}/{registration_id}/{n}".encode()).digest() for n in range(12)
    )
    return base64.b64encode(b"\x00\x01\x00\x0b" + blob).decode()


def generation_id(*parts):
    digits = int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:12], 16)
    return f"638{digits % 10**15:015d}"


class Etags:
    """Monotonic etags in the styles each resource uses."""

    def __init__(self):
        self.counter = 0

    def _next(self):
        self.counter += 1
        return self.counter

    def dps(self):
        n = self._next()
        return f'"{n:08x}-0000-0300-0000-65e1{n:08x}"'

    def device(self):
        return base64.b64encode(str(self._next()).encode()).decode()

    def twin(self):
        return base64.b64encode(self._next().to_bytes(8, "big")).decode()


def new_hub():
    return {"devices": {}, "twins": {}, "modules": {}, "module_twins": {}, "jobs": {}}


def new_dps():
    return {"enrollments": {}, "groups": {}, "registrations": {}}


def hub_device(device_id, etag, primary, secondary, moment, c2d=0, status="enabled"):
    return {
        "deviceId": device_id,
        "generationId": generation_id(device_id),
        "etag": etag,
        "connectionState": "Disconnected",
        "status": status,
        "statusReason": None,
        "connectionStateUpdatedTime": NEVER,
        "statusUpdatedTime": NEVER,
        "lastActivityTime": hub_time(moment),
        "cloudToDeviceMessageCount": c2d,
        "authentication": {
            "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary},
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "type": "sas",
        },
        "capabilities": {"iotEdge": False},
    }


def hub_module(device_id, module_id, etag, primary, secondary, moment, managed_by=None):
    return {
        "moduleId": module_id,
        "managedBy": managed_by,
        "deviceId": device_id,
        "generationId": generation_id(device_id, module_id),
        "etag": etag,
        "connectionState": "Disconnected",
        "connectionStateUpdatedTime": NEVER,
        "lastActivityTime": hub_time(moment),
        "cloudToDeviceMessageCount": 0,
        "authentication": {
            "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary},
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "type": "sas",
        },
    }


def twin_for(device, etag, tags=None, desired=None, reported=None, module_id=None):
    now = device.get("lastActivityTime", NEVER)

    def collection(values, version):
        body = dict(values or {})
        body["$metadata"] = {"$lastUpdated": now}
        body["$version"] = version
        return body

    twin = {"deviceId": device["deviceId"]}
    if module_id:
        twin["moduleId"] = module_id
    twin.update(
        {
            "etag": etag,
            "deviceEtag": device["etag"],
            "status": device.get("status", "enabled"),
            "statusUpdateTime": NEVER,
            "connectionState": "Disconnected",
            "lastActivityTime": now,
            "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas",
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "modelId": "",
            "version": 2 if tags or desired or reported else 1,
            "tags": dict(tags or {}),
            "properties": {
                "desired": collection(desired, 1),
                "reported": collection(reported, 1),
            },
        }
    )
    if not module_id:
        twin["capabilities"] = {"iotEdge": False}
    return twin
