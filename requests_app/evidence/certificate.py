"""The deletion certificate: the outcome of an erasure, what was erased and verified absent,
what was kept and why, who approved it and when, and where it sits in the audit trail.

It is evidence for the organisation (not the data subject's copy), issued by
``completion.finish`` once the outcome is known: it states the final status and completion time
that the request is then given (see ``finish`` for the order that makes this crash-safe).

Two artifacts say the same thing: canonical JSON (sorted keys, no insignificant whitespace,
UTF-8) for machines, and a PDF for people (``certificate_pdf``) that prints the JSON's SHA-256,
so the one can be checked against the other.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from requests_app.dates import iso
from requests_app.evidence.artifacts import store_artifact
from requests_app.evidence.out_of_reach import not_reachable
from requests_app.jobs import operations
from requests_app.models import (
    Approval,
    Artifact,
    DataRequest,
    Operation,
    PlannedDevice,
    Status,
)
from requests_app.models.audit import verify_chain

FORMAT = "dsr-portal deletion certificate, version 2"
OUTCOMES = (Status.COMPLETED, Status.COMPLETED_WITH_ISSUES)

# Per device, one result; a device can have data retained on top (``retained``).
RESULTS = {
    "erased": "Erased, verified absent",
    "already_absent": "Already absent, verified",
    "not_found": "Found nowhere: nothing to erase",
    "retained": "Retained: to be handled by hand",
    "not_verified": "Not verified",
}


@dataclass(frozen=True)
class Certificate:
    """A rendered certificate, not yet stored: the JSON body, its SHA-256 and the PDF."""

    content: dict[str, Any]
    body: bytes
    json_sha256: str
    pdf: bytes


def build_certificate(
    data_request: DataRequest, *, status: str | None = None, completed: datetime | None = None
) -> tuple[Artifact, Artifact]:
    """Render and store the certificate: ``(json_artifact, pdf_artifact)``. Without ``status``
    and ``completed`` it states the request's recorded outcome (it must have one)."""
    return store_certificate(data_request, render_certificate(data_request, status, completed))


def render_certificate(
    data_request: DataRequest, status: str | None = None, completed: datetime | None = None
) -> Certificate:
    """Everything that takes time (reading every operation, the PDF), touching nothing."""
    from requests_app.evidence.certificate_pdf import render_pdf

    status = status or data_request.status
    completed = completed or data_request.completed_at
    if status not in OUTCOMES or completed is None:
        raise ValueError(f"{data_request.reference} has no final outcome to certify yet")
    content = certificate_content(data_request, status, completed)
    body = canonical_json(content)
    json_sha256 = hashlib.sha256(body).hexdigest()
    return Certificate(content, body, json_sha256, render_pdf(content, json_sha256))


def store_certificate(
    data_request: DataRequest, certificate: Certificate
) -> tuple[Artifact, Artifact]:
    """Store both files (each moved into place, with its row and audit event)."""
    json_artifact = store_artifact(
        data_request,
        Artifact.Kind.CERTIFICATE_JSON,
        f"{data_request.reference}-certificate.json",
        "application/json",
        lambda fh: fh.write(certificate.body),
    )
    pdf_artifact = store_artifact(
        data_request,
        Artifact.Kind.CERTIFICATE_PDF,
        f"{data_request.reference}-certificate.pdf",
        "application/pdf",
        lambda fh: fh.write(certificate.pdf),
    )
    return json_artifact, pdf_artifact


def canonical_json(content: object) -> bytes:
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


# --- the audit checkpoint --------------------------------------------------------------------
CHECKPOINT_FIELDS = ("seq", "head_hash", "created_at", "signature", "key_fingerprint")
NO_CHECKPOINT = "no checkpoint yet"


def audit_checkpoint() -> dict[str, object] | None:
    """The latest signed audit checkpoint (one whose signature verifies) as a dict of
    ``CHECKPOINT_FIELDS``, or None: the one place the certificate and the evidence report get
    it from."""
    from requests_app.evidence.checkpoints import latest_checkpoint

    published = latest_checkpoint()  # {"checkpoint": {...}, "signature", "source"} or None
    if published is None:
        return None
    checkpoint = {**published["checkpoint"], "signature": published.get("signature")}
    return {name: _plain(checkpoint.get(name)) for name in CHECKPOINT_FIELDS}


def checkpoint_lines(checkpoint: Mapping[str, object] | None) -> list[str]:
    """The checkpoint in words, for the PDFs."""
    if not checkpoint:
        return [f"Audit checkpoint: {NO_CHECKPOINT}."]
    return [
        f"Audit checkpoint #{checkpoint['seq']}, signed {checkpoint['created_at']}",
        f"Head hash: {checkpoint['head_hash']}",
        f"Key fingerprint: {checkpoint['key_fingerprint']}",
        f"Signature: {checkpoint['signature']}",
    ]


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


# --- content ---------------------------------------------------------------------------------


def operation_record(op: Operation) -> dict[str, object]:
    return {
        "seq": op.seq,
        "phase": op.phase,
        "action": op.action,
        "module_id": op.module_id,
        "method": op.method,
        "host": op.host,
        "path": op.path,
        "state": op.state,
        "http_status": op.http_status,
        "error_code": op.error_code,
        "azure_request_id": op.azure_request_id,
        "tracking_id": op.tracking_id,
        "time": iso(op.finished_at or op.started_at),
    }


PASSED = {"absent", "disabled"}


def verification_result(op: Operation) -> str:
    """What a verify GET found: ``absent`` (404), ``disabled`` (the blocking enrollment),
    ``still present``, ``not disabled``, ``check failed`` or ``not checked``."""
    if op.state in (Operation.State.PENDING, Operation.State.RUNNING, Operation.State.SKIPPED):
        return "not checked"
    # The one check that expects the resource to exist, disabled (the enrollment kept to block
    # re-provisioning); every other verify GET expects 404.
    if operations.outcome_for(op.action) is operations.VERIFIED_DISABLED:
        if op.state == Operation.State.DONE:
            return "disabled"
        return "not disabled" if op.http_status == 200 else "check failed"
    if op.http_status == 404 or op.state == Operation.State.ALREADY_ABSENT:
        return "absent"
    if op.state == Operation.State.DONE and op.http_status is None:
        return "absent"  # fulfilment marks a verify GET done only when it met 404
    return "still present" if op.http_status == 200 else "check failed"


def device_result(device: PlannedDevice, ops: Sequence[Operation], verified: bool) -> str:
    """One of ``RESULTS``: found nowhere, retained (hub not configured, or a step not run),
    not verified, erased (a DELETE took effect) or already absent (every DELETE met 404)."""
    erasure = [op for op in ops if op.phase == Operation.Phase.ERASURE]
    if device.state == PlannedDevice.State.NOT_FOUND:
        return "not_found"
    if device.state == PlannedDevice.State.UNREACHABLE or any(
        op.state == Operation.State.SKIPPED for op in erasure
    ):
        return "retained"
    if not verified:
        return "not_verified"
    if any(op.method == "DELETE" and op.state == Operation.State.DONE for op in erasure):
        return "erased"
    return "already_absent"


def device_record(
    data_request: DataRequest, device: PlannedDevice, ops: Sequence[Operation]
) -> dict[str, Any]:
    verification = [
        {
            "action": op.action,
            "host": op.host,
            "path": op.path,
            "http_status": op.http_status,
            "result": verification_result(op),
            "passed": verification_result(op) in PASSED,
            "time": iso(op.finished_at or op.started_at),
        }
        for op in ops
        if op.phase == Operation.Phase.VERIFY
    ]
    # Every verify GET found what erasure should leave: nothing, or the disabled enrollment.
    verified = bool(verification) and all(v["passed"] for v in verification)
    result = device_result(device, ops, verified)
    return {
        "position": device.position,
        "registration_id": device.registration_id,
        "device_id": device.device_id,
        "dps": device.dps,
        "hub": device.hub,
        "plan": device.state,
        "note": device.note,
        "enrollment": device.enrollment,
        "group_id": device.group_id,
        "modules": device.modules,
        "result": result,
        "result_label": RESULTS[result],
        "verified": verified,
        "verification": verification,
        "retained": retained_records(data_request, device, ops),
        "operations": [operation_record(op) for op in ops],
    }


def retained_records(
    data_request: DataRequest, device: PlannedDevice, ops: Sequence[Operation]
) -> list[dict[str, str]]:
    """Data deliberately (or necessarily) kept for this device, with the reason."""
    ids = {"registration_id": device.registration_id, "device_id": device.device_id}
    kept: list[dict[str, str]] = []
    for op in ops:
        entry = operations.OPERATIONS.get(op.action)
        if entry is not None and entry.retains and op.state == Operation.State.DONE:
            what, why = entry.retains
            kept.append({"what": what, **ids, "host": op.host, "path": op.path, "why": why})
        elif op.phase == Operation.Phase.ERASURE and op.state == Operation.State.SKIPPED:
            kept.append(
                {
                    "what": f"{op.method} {op.path} not run",
                    **ids,
                    "host": op.host,
                    "path": op.path,
                    "why": "Not a configured target when fulfilment ran: to be handled by hand.",
                }
            )
    if device.enrollment == "group" and device.group_id:
        why = "The group serves other devices; it does not name this device."
        if not data_request.block_reprovisioning:
            why += " Re-provisioning was not blocked (as the request asked): the device could "
            why += "provision again through the group."
        kept.append(
            {
                "what": "enrollment group",
                "group_id": device.group_id,
                **ids,
                "host": device.dps,
                "why": why,
            }
        )
    if device.state == PlannedDevice.State.UNREACHABLE:
        kept.append(
            {
                "what": "hub device, its twin and modules",
                **ids,
                "host": device.hub,
                "why": "Hub not configured: to be handled by hand (the portal calls only "
                "configured targets).",
            }
        )
    return kept


def approval_records(data_request: DataRequest) -> list[dict[str, str | None]]:
    """Who approved and when (usernames: the certificate is the organisation's evidence;
    where they approved from stays in the evidence report and the audit trail)."""
    rows = Approval.objects.filter(request=data_request, decision=Approval.Decision.APPROVED)
    return [
        {
            "approver": row.approver_name,
            "time": iso(row.created_at),
            "via": row.via,
            "second_factor": row.second_factor,
            "plan_version": row.plan_version,
        }
        for row in rows.order_by("created_at", "pk")
    ]


def request_record(data_request: DataRequest) -> dict[str, str | None]:
    return {
        "reference": data_request.reference,
        "kind": data_request.kind,
        "kind_label": data_request.get_kind_display(),
        "regulation": data_request.regulation,
        "regulation_label": data_request.get_regulation_display(),
        "subject_reference": data_request.subject_reference,
        "received": iso(data_request.received_at),
        "due": iso(data_request.due_at),
        "extended_until": iso(data_request.extended_until),
        "extension_reason": data_request.extension_reason,
        "approved": iso(data_request.approved_at),
        "started": iso(data_request.started_at),
    }


def step_records(counts: Mapping[tuple[str, str], int]) -> list[dict[str, object]]:
    """What was done, for a person: per operation of the registry (in plan order) its label
    and how many of its operations ended in each state. ``counts``: ``{(action, state): n}``."""
    order = operations.plan_order()
    actions = sorted({action for action, _ in counts}, key=lambda a: (order.get(a, len(order)), a))
    return [
        {
            "action": action,
            "label": operations.label_of(action),
            **{str(state): counts.get((action, state), 0) for state in Operation.State},
        }
        for action in actions
    ]


def certificate_content(
    data_request: DataRequest, status: str, completed: datetime
) -> dict[str, Any]:
    ops_by_device: dict[int, list[Operation]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for op in (
        Operation.objects.filter(request=data_request).order_by("seq").iterator(chunk_size=1000)
    ):
        ops_by_device.setdefault(op.device_id, []).append(op)
        counts[(op.action, op.state)] += 1
    devices = [
        device_record(data_request, device, ops_by_device.get(device.pk, []))
        for device in PlannedDevice.objects.filter(request=data_request).order_by("position")
    ]
    results = Counter(device["result"] for device in devices)
    ok, count, head, problem = verify_chain()
    return {
        "certificate": FORMAT,
        "generated": timezone.now().isoformat(),
        "status": str(status),
        "status_label": Status(status).label,
        "completed": iso(completed),
        "request": request_record(data_request),
        "summary": {"devices": len(devices), **{result: results[result] for result in RESULTS}},
        "steps": step_records(counts),
        "approvals": approval_records(data_request),
        "devices": devices,
        "not_reachable_by_portal": not_reachable(),
        "audit_chain": {"ok": ok, "events": count, "head_hash": head, "problem": problem},
        "audit_checkpoint": audit_checkpoint(),
    }
