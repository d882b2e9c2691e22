"""The deletion certificate: what was erased, how it was checked, what was kept and why.

Two artifacts say the same thing: canonical JSON (sorted keys, no insignificant whitespace,
UTF-8) for machines, and a PDF for people that prints the JSON's SHA-256, so the one can be
checked against the other. The PDF uses the core Helvetica font; text outside Latin-1 (device IDs
may hold anything) is written as ``\\uXXXX`` escapes rather than lost.
"""

import hashlib
import json

from django.utils import timezone
from fpdf import FPDF

from requests_app.archive import HANDLED_BY, NOT_REACHABLE, approvals, request_summary
from requests_app.artifacts import store_artifact
from requests_app.models import Artifact, Operation, PlannedDevice
from requests_app.models.audit import verify_chain
from requests_app.pdf import pdf_text, start_document

BLOCK_REPROVISIONING = "dps.block_reprovisioning"


def build_certificate(request):
    """Build and store the certificate as JSON and PDF: ``(json_artifact, pdf_artifact)``."""
    content = certificate_content(request)
    body = canonical_json(content)
    json_sha256 = hashlib.sha256(body).hexdigest()
    json_artifact = store_artifact(
        request,
        Artifact.Kind.CERTIFICATE_JSON,
        f"{request.reference}-certificate.json",
        "application/json",
        lambda fh: fh.write(body),
    )
    pdf = render_pdf(content, json_sha256)
    pdf_artifact = store_artifact(
        request,
        Artifact.Kind.CERTIFICATE_PDF,
        f"{request.reference}-certificate.pdf",
        "application/pdf",
        lambda fh: fh.write(pdf),
    )
    return json_artifact, pdf_artifact


def canonical_json(content):
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


# --- content ---------------------------------------------------------------------------------
def _when(value):
    return value.isoformat() if value else None


def operation_record(op):
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
        "time": _when(op.finished_at or op.started_at),
    }


# Verification GETs that expect the resource to exist, disabled (the enrollment kept to block
# re-provisioning); every other verify GET expects 404.
EXPECT_DISABLED = {"verify.enrollment_disabled"}
PASSED = {"absent", "disabled"}


def verification_result(op):
    """What a verify GET found: ``absent`` (404), ``disabled`` (the blocking enrollment),
    ``still present``, ``not disabled``, ``check failed`` or ``not checked``."""
    if op.state in (Operation.State.PENDING, Operation.State.RUNNING, Operation.State.SKIPPED):
        return "not checked"
    if op.action in EXPECT_DISABLED:
        if op.state == Operation.State.DONE:
            return "disabled"
        return "not disabled" if op.http_status == 200 else "check failed"
    if op.http_status == 404 or op.state == Operation.State.ALREADY_ABSENT:
        return "absent"
    if op.state == Operation.State.DONE and op.http_status is None:
        return "absent"  # fulfilment marks a verify GET done only when it met 404
    return "still present" if op.http_status == 200 else "check failed"


def device_record(device, operations):
    verification = [
        {
            "action": op.action,
            "host": op.host,
            "path": op.path,
            "http_status": op.http_status,
            "result": verification_result(op),
            "passed": verification_result(op) in PASSED,
            "time": _when(op.finished_at or op.started_at),
        }
        for op in operations
        if op.phase == Operation.Phase.VERIFY
    ]
    return {
        "position": device.position,
        "registration_id": device.registration_id,
        "device_id": device.device_id,
        "dps": device.dps,
        "hub": device.hub,
        "state": device.state,
        "enrollment": device.enrollment,
        "group_id": device.group_id,
        "modules": device.modules,
        "operations": [operation_record(op) for op in operations],
        "verification": verification,
        # Every verify GET found what erasure should leave: nothing, or the disabled enrollment.
        "verified": bool(verification) and all(v["passed"] for v in verification),
    }


def retained_records(device, operations):
    """Data deliberately kept for this device, with the reason."""
    kept = []
    for op in operations:
        if op.action == BLOCK_REPROVISIONING and op.state == Operation.State.DONE:
            kept.append(
                {
                    "what": "disabled individual enrollment",
                    "registration_id": device.registration_id,
                    "device_id": device.device_id,
                    "host": op.host,
                    "path": op.path,
                    "why": "Blocks this device from provisioning itself again through its "
                    "enrollment group (Microsoft's documented way to disallow one device of "
                    "a group). It holds the registration ID and no other data.",
                }
            )
    if device.enrollment == "group" and device.group_id:
        kept.append(
            {
                "what": "enrollment group",
                "group_id": device.group_id,
                "registration_id": device.registration_id,
                "device_id": device.device_id,
                "host": device.dps,
                "why": "The group serves other devices; it does not name this device.",
            }
        )
    return kept


def certificate_content(request):
    devices, retained, not_found, unreachable = [], [], [], []
    ops_by_device = {}
    for op in Operation.objects.filter(request=request).order_by("seq").iterator(chunk_size=1000):
        ops_by_device.setdefault(op.device_id, []).append(op)
    for device in PlannedDevice.objects.filter(request=request).order_by("position"):
        operations = ops_by_device.get(device.pk, [])
        devices.append(device_record(device, operations))
        retained.extend(retained_records(device, operations))
        unresolved = {
            "registration_id": device.registration_id,
            "device_id": device.device_id,
            "hub": device.hub,
            "note": device.note,
        }
        if device.state == PlannedDevice.State.NOT_FOUND:
            not_found.append(unresolved)
        elif device.state == PlannedDevice.State.UNREACHABLE:
            unreachable.append(unresolved)
    ok, count, head, problem = verify_chain()
    return {
        "certificate": "dsr-portal deletion certificate, version 1",
        "generated": timezone.now().isoformat(),
        "request": {
            **request_summary(request),
            "subject_reference": request.subject_reference,
            "completed": _when(request.completed_at),
            "extension_reason": request.extension_reason,
        },
        "approvals": approvals(request),
        "devices": devices,
        "retained": retained,
        "not_found": not_found,
        "unreachable": unreachable,
        "not_reachable_by_portal": [{**item, "handled_by": HANDLED_BY} for item in NOT_REACHABLE],
        "audit_chain": {"ok": ok, "events": count, "head_hash": head, "problem": problem},
    }


# --- PDF -------------------------------------------------------------------------------------


class _CertificatePdf(FPDF):
    json_sha256 = ""
    reference = ""

    def footer(self):
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.cell(
            0,
            5,
            pdf_text(
                f"{self.reference} - certificate JSON SHA-256 {self.json_sha256} - "
                f"page {self.page_no()}/{{nb}}"
            ),
            align="C",
        )


def render_pdf(content, json_sha256):
    request = content["request"]
    pdf = _CertificatePdf(format="A4")
    pdf.json_sha256, pdf.reference = json_sha256, request["reference"]
    heading, line = start_document(pdf, f"Deletion certificate {request['reference']}")

    heading(f"Deletion certificate - {request['reference']}", 16)
    line(f"Generated {content['generated']}")
    line(f"SHA-256 of the certificate JSON: {json_sha256}")

    heading("The request")
    for label, key in (
        ("Reference", "reference"),
        ("Kind", "kind"),
        ("Regulation", "regulation"),
        ("Subject reference", "subject_reference"),
        ("Received", "received"),
        ("Due", "due"),
        ("Extended until", "extended_until"),
        ("Approved", "approved"),
        ("Completed", "completed"),
        ("Status", "status"),
    ):
        if request.get(key):
            line(f"{label}: {request[key]}")

    heading("Approvals")
    for approval in content["approvals"] or [{"approver": "none recorded", "time": ""}]:
        line(f"{approval['approver']}  {approval['time'] or ''}  {approval.get('via') or ''}")

    heading("Devices")
    for device in content["devices"]:
        label = device["device_id"] or device["registration_id"]
        pdf.set_font("Helvetica", "B", 10)
        line(f"{label}  (plan: {device['state']})")
        pdf.set_font("Helvetica", size=9)
        line(
            f"registration {device['registration_id'] or '-'}, device {device['device_id'] or '-'}"
            f", DPS {device['dps'] or '-'}, hub {device['hub'] or '-'}",
            4,
        )
        for op in device["operations"]:
            ids = ", ".join(
                f"{name} {op[key]}"
                for name, key in (
                    ("error", "error_code"),
                    ("x-ms-request-id", "azure_request_id"),
                    ("tracking", "tracking_id"),
                )
                if op[key]
            )
            line(
                f"[{op['phase']}] {op['action']}: {op['method']} {op['host']}{op['path']} -> "
                f"{op['state']} (HTTP {op['http_status'] or '-'}) {op['time'] or ''}"
                + (f"; {ids}" if ids else ""),
                4,
            )
        if device["verification"]:
            verdict = "verified" if device["verified"] else "NOT verified"
            line(f"Verification: {verdict}", 4)
            for check in device["verification"]:
                line(
                    f"GET {check['host']}{check['path']} -> HTTP {check['http_status'] or '-'}: "
                    f"{check['result']}",
                    8,
                )

    heading("Retained, and why")
    if not content["retained"]:
        line("Nothing was retained.")
    for item in content["retained"]:
        name = item.get("group_id") or item.get("registration_id")
        line(f"{item['what']} {name} ({item.get('host') or ''}): {item['why']}")

    heading("Identifiers not found or not reachable")
    if not content["not_found"] and not content["unreachable"]:
        line("None.")
    for item in content["not_found"]:
        line(f"Not found: {item['registration_id'] or item['device_id']} {item['note']}")
    for item in content["unreachable"]:
        line(
            f"Unreachable (hub not configured, to be handled by hand): "
            f"{item['registration_id'] or item['device_id']} {item['hub']} {item['note']}"
        )

    heading("Not reachable by the portal (to be handled by the tenant)")
    for item in content["not_reachable_by_portal"]:
        line(f"- {item['source']}: {item['detail']}")

    heading("Audit chain at completion")
    chain = content["audit_chain"]
    line(f"Verified: {'yes' if chain['ok'] else 'NO - ' + str(chain['problem'])}")
    line(f"Events: {chain['events']}")
    line(f"Head hash: {chain['head_hash']}")
    return bytes(pdf.output())
