"""The DPS service API (api-version 2021-10-01): enrollments, enrollment groups, registrations.

IDs are case-insensitive, so records are keyed by the lower-cased ID and keep the spelling they
were created with. Keys of symmetric-key attestations are only returned by
``attestationmechanism`` (and by the PUT that set them), never by GET or query.
"""

import copy
import datetime
import hashlib

from .auth import READ, WRITE
from .errors import ApiError
from .request import (
    Response,
    check_dps_id,
    etag_matches,
    paginate,
    query_key,
)
from .shapes import cert_info, derive_b64, dps_time

API_VERSIONS = {"2021-10-01", "2019-03-31"}
ATTESTATION_TYPES = {"none", "tpm", "x509", "symmetricKey"}


def route(req):
    """Return (handler, needed right, *args) for the request, or raise 404/405."""
    parts, method = req.parts, req.method
    if len(parts) >= 2 and parts[0] in ("enrollments", "enrollmentGroups"):
        kind = "enrollments" if parts[0] == "enrollments" else "groups"
        if len(parts) == 2 and parts[1] == "query" and method == "POST":
            return query_records, READ, kind
        if len(parts) == 2:
            handlers = {"GET": (get_record, READ), "PUT": (put_record, WRITE)}
            handlers["DELETE"] = (delete_record, WRITE)
            if method in handlers:
                return (*handlers[method], kind, parts[1])
            raise ApiError("method_not_allowed", f"{method} is not allowed here.")
        if len(parts) == 3 and parts[2].lower() == "attestationmechanism":
            if method == "POST":
                return attestation_mechanism, READ, kind, parts[1]
            raise ApiError("method_not_allowed", f"{method} is not allowed here.")
    if len(parts) >= 2 and parts[0] == "registrations":
        if len(parts) == 3 and parts[2] == "query":
            if method == "POST":
                return query_registrations, READ, parts[1]
            raise ApiError("method_not_allowed", f"{method} is not allowed here.")
        if len(parts) == 2:
            if method == "GET":
                return get_registration, READ, parts[1]
            if method == "DELETE":
                return delete_registration, WRITE, parts[1]
            raise ApiError("method_not_allowed", f"{method} is not allowed here.")
    raise ApiError("route_not_found", f"The path '{req.path}' does not exist.")


def _now():
    return dps_time(datetime.datetime.now(datetime.UTC))


def _what(kind):
    return "enrollment" if kind == "enrollments" else "enrollment group"


def _not_found(kind, record_id):
    label = "Enrollment" if kind == "enrollments" else "Enrollment group"
    return ApiError(
        "enrollment_not_found", f"{label} '{record_id}' was not found.", {"id": record_id}
    )


def _public(record):
    """A record as GET and query show it: symmetric keys left out."""
    shown = copy.deepcopy(record)
    attestation = shown.get("attestation") or {}
    if attestation.get("type") == "symmetricKey":
        attestation["symmetricKey"] = {}
    return shown


def _render_enrollment(state, record, with_keys=False):
    shown = copy.deepcopy(record) if with_keys else _public(record)
    if "registrationId" in record:
        registration = state["registrations"].get(record["registrationId"].lower())
        if registration and registration["group"] is None:
            shown["registrationState"] = copy.deepcopy(registration["state"])
    return shown


def get_record(req, state, kind, record_id):
    check_dps_id(record_id, _what(kind) + " ID")
    record = state[kind].get(record_id.lower())
    if record is None:
        raise _not_found(kind, record_id)
    return Response(200, _render_enrollment(state, record))


def attestation_mechanism(req, state, kind, record_id):
    check_dps_id(record_id, _what(kind) + " ID")
    record = state[kind].get(record_id.lower())
    if record is None:
        raise _not_found(kind, record_id)
    return Response(200, copy.deepcopy(record["attestation"]))


def _validated_attestation(req, record_id, attestation):
    if not isinstance(attestation, dict) or attestation.get("type") not in ATTESTATION_TYPES:
        raise ApiError("bad_request", "attestation.type must be one of " + str(ATTESTATION_TYPES))
    attestation = copy.deepcopy(attestation)
    kind = attestation["type"]
    seed = req.sim.seed
    if kind == "symmetricKey":
        keys = attestation.get("symmetricKey") or {}
        attestation["symmetricKey"] = {
            "primaryKey": keys.get("primaryKey") or derive_b64(seed, record_id, _now(), "p"),
            "secondaryKey": keys.get("secondaryKey") or derive_b64(seed, record_id, _now(), "s"),
        }
    elif kind == "tpm":
        tpm = attestation.get("tpm") or {}
        if not tpm.get("endorsementKey"):
            raise ApiError("bad_request", "attestation.tpm.endorsementKey is required.")
    elif kind == "x509":
        x509 = attestation.get("x509") or {}
        certs = x509.get("clientCertificates") or x509.get("signingCertificates")
        if not certs and not x509.get("caReferences"):
            raise ApiError("bad_request", "attestation.x509 needs certificates or caReferences.")
        for slot in (certs or {}).values():
            if isinstance(slot, dict) and slot.get("certificate"):
                text = slot.pop("certificate")
                digest = hashlib.sha256(text.encode()).hexdigest()
                now = datetime.datetime.now(datetime.UTC)
                slot["info"] = cert_info(record_id, "Uploaded CA", digest, now)
    return attestation


def put_record(req, state, kind, record_id):
    check_dps_id(record_id, _what(kind) + " ID")
    body = req.json()
    id_field = "registrationId" if kind == "enrollments" else "enrollmentGroupId"
    body_id = body.get(id_field)
    if not isinstance(body_id, str) or body_id.lower() != record_id.lower():
        raise ApiError("bad_request", f"{id_field} in the body must match the URL.")
    if body.get("provisioningStatus", "enabled") not in ("enabled", "disabled"):
        raise ApiError("bad_request", "provisioningStatus must be 'enabled' or 'disabled'.")
    attestation = _validated_attestation(req, record_id, body.get("attestation"))
    existing = state[kind].get(record_id.lower())
    condition = req.if_match()
    if existing is not None and condition is None:
        raise ApiError("conflict", f"The {_what(kind)} '{record_id}' already exists.")
    if existing is None and condition not in (None, "*"):
        raise ApiError("precondition", "The ETag does not match: the record does not exist.")
    if existing is not None and not etag_matches(condition, existing["etag"]):
        raise ApiError("precondition", "The ETag in If-Match does not match the record's ETag.")
    now = _now()
    record = {
        key: copy.deepcopy(value)
        for key, value in body.items()
        if key not in ("etag", "registrationState", "createdDateTimeUtc", "lastUpdatedDateTimeUtc")
    }
    record[id_field] = existing[id_field] if existing else record_id
    record["attestation"] = attestation
    record.setdefault("capabilities", {"iotEdge": False})
    record.setdefault("provisioningStatus", "enabled")
    record.setdefault("reprovisionPolicy", {"updateHubAssignment": True, "migrateDeviceData": True})
    record.setdefault("allocationPolicy", "hashed")
    record["etag"] = req.sim.etags.dps()
    record["createdDateTimeUtc"] = existing["createdDateTimeUtc"] if existing else now
    record["lastUpdatedDateTimeUtc"] = now
    state[kind][record_id.lower()] = record
    return Response(200, _render_enrollment(state, record, with_keys=True))


def delete_record(req, state, kind, record_id):
    check_dps_id(record_id, _what(kind) + " ID")
    record = state[kind].get(record_id.lower())
    if record is None:
        raise _not_found(kind, record_id)
    if not etag_matches(req.if_match(), record["etag"]):
        raise ApiError("precondition", "The ETag in If-Match does not match the record's ETag.")
    del state[kind][record_id.lower()]
    if kind == "enrollments":
        # The registration record belongs to the individual enrollment and goes with it; a
        # group's registrations outlive the group.
        registration = state["registrations"].get(record_id.lower())
        if registration and registration["group"] is None:
            del state["registrations"][record_id.lower()]
    return Response(204)


def query_records(req, state, kind):
    body = req.json()
    if not isinstance(body.get("query"), str):
        raise ApiError("bad_request", "The query specification needs a 'query' string.")
    records = [_render_enrollment(state, r) for r in state[kind].values()]
    if kind == "enrollments":
        key, item_type = (lambda r: r["registrationId"].lower()), "Enrollment"
    else:
        key, item_type = (lambda r: r["enrollmentGroupId"].lower()), "EnrollmentGroup"
    return paginate(req, records, key, query_key(kind + body["query"]), item_type, req.sim.seed)


def _registration_not_found(registration_id):
    return ApiError(
        "registration_not_found",
        f"Device registration '{registration_id}' was not found.",
        {"registrationId": registration_id},
    )


def get_registration(req, state, registration_id):
    check_dps_id(registration_id)
    registration = state["registrations"].get(registration_id.lower())
    if registration is None:
        raise _registration_not_found(registration_id)
    return Response(200, copy.deepcopy(registration["state"]))


def delete_registration(req, state, registration_id):
    check_dps_id(registration_id)
    registration = state["registrations"].get(registration_id.lower())
    if registration is None:
        raise _registration_not_found(registration_id)
    if not etag_matches(req.if_match(), registration["state"].get("etag")):
        raise ApiError("precondition", "The ETag in If-Match does not match the record's ETag.")
    del state["registrations"][registration_id.lower()]
    return Response(204)


def query_registrations(req, state, group_id):
    check_dps_id(group_id, "enrollment group ID")
    group_key = group_id.lower()
    found = [
        copy.deepcopy(r["state"])
        for r in state["registrations"].values()
        if r["group"] == group_key
    ]
    if not found and group_key not in state["groups"]:
        raise _not_found("groups", group_id)
    key = lambda r: r["registrationId"].lower()  # noqa: E731
    return paginate(
        req, found, key, query_key("reg/" + group_key), "DeviceRegistration", req.sim.seed
    )
