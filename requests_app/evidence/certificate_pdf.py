"""The deletion certificate as a PDF, for a person first: the outcome, the request, who
approved it, a table of the devices with what happened to each, what was done (each operation's
label from the registry, with its counts), what was kept and why, and the audit anchor; then,
in an appendix, every Azure API call with its request and tracking IDs.

Drawn from the certificate's content (``certificate.certificate_content``), so the PDF and the
JSON cannot disagree; every page's footer carries the JSON's SHA-256. Core Helvetica font: text
outside Latin-1 (device IDs may hold anything) is written as ``\\uXXXX`` escapes (``pdf_text``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from requests_app.evidence.certificate import RESULTS, checkpoint_lines
from requests_app.evidence.pdf import Heading, Line, PortalPdf, start_document, table
from requests_app.jobs.operations import operation_name

VIA = {"link": "email link", "portal": "portal"}
# Up to this many devices kept the same thing for the same reason are named under the reason.
LIST_DEVICES = 20


def readable(value: str | None) -> str:
    """An ISO time as ``2026-01-06 10:22:13 UTC``; dates and anything else as they are."""
    if not value:
        return "-"
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    if when.tzinfo is None:
        return str(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_pdf(content: dict[str, Any], json_sha256: str) -> bytes:
    reference = content["request"]["reference"]
    pdf = PortalPdf(f"{reference} - deletion certificate - JSON SHA-256 {json_sha256}")
    heading, line = start_document(pdf, f"Deletion certificate {reference}")
    _summary(pdf, heading, line, content)
    _devices(pdf, heading, content)
    _steps(pdf, heading, content)
    _retained(pdf, heading, line, content)
    _anchor(heading, line, content, json_sha256)
    _appendix(pdf, heading, line, content)
    return bytes(pdf.output())


def outcome_sentence(content: dict[str, Any]) -> str:
    summary = content["summary"]
    parts = [
        f"{summary[result]} {label[0].lower()}{label[1:]}"
        for result, label in RESULTS.items()
        if summary[result]
    ]
    devices = summary["devices"]
    noun = "device" if devices == 1 else "devices"
    return f"{devices} {noun}: " + ("; ".join(parts) if parts else "none") + "."


def _summary(pdf: PortalPdf, heading: Heading, line: Line, content: dict[str, Any]) -> None:
    data_request = content["request"]
    heading(f"Deletion certificate - {data_request['reference']}", 16)
    line(
        f"{data_request['regulation_label']} request: {data_request['kind_label']}. Issued "
        f"{readable(content['generated'])} by the DSR portal."
    )
    heading(f"Outcome: {content['status_label']}", 14)
    line(f"Completed {readable(content['completed'])}")
    line(outcome_sentence(content))
    heading("The request")
    fields = (
        ("Reference", data_request["reference"]),
        ("Regulation", data_request["regulation_label"]),
        ("Request", data_request["kind_label"]),
        ("Subject reference", data_request["subject_reference"]),
        ("Received", data_request["received"]),
        ("Due", data_request["due"]),
        ("Extended until", data_request["extended_until"]),
        ("Extension reason", data_request["extension_reason"]),
        ("Approved", readable(data_request["approved"])),
        ("Fulfilment started", readable(data_request["started"])),
        ("Completed", readable(content["completed"])),
        ("Outcome", content["status_label"]),
    )
    rows = [(label, value) for label, value in fields if value]
    table(pdf, (("", 0.25), ("", 0.75)), rows, header=False, size=9)
    heading("Approved by")
    if not content["approvals"]:
        line("No approval recorded.")
    else:
        table(
            pdf,
            (("Approver", 0.34), ("Approved at", 0.26), ("Via", 0.18), ("Second factor", 0.22)),
            [
                (
                    a["approver"],
                    readable(a["time"]),
                    VIA.get(a["via"], a["via"]),
                    a["second_factor"],
                )
                for a in content["approvals"]
            ],
        )


def _devices(pdf: PortalPdf, heading: Heading, content: dict[str, Any]) -> None:
    heading("Devices")
    rows = []
    for device in content["devices"]:
        registration = device["registration_id"]
        if registration == device["device_id"]:
            registration = "(same)"
        kept = "; ".join(item["what"] for item in device["retained"]) or "-"
        rows.append(
            (
                device["position"],
                device["device_id"] or "-",
                registration or "-",
                device["result_label"],
                kept,
            )
        )
    table(
        pdf,
        (
            ("#", 0.06),
            ("Device ID", 0.24),
            ("Registration ID", 0.22),
            ("Result", 0.2),
            ("Kept", 0.28),
        ),
        rows,
    )


def _steps(pdf: PortalPdf, heading: Heading, content: dict[str, Any]) -> None:
    """What was done, one row per operation of the registry, with its certificate label."""
    heading("What was done")
    states = (("done", "Done"), ("already_absent", "Already absent"), ("skipped", "Skipped"))
    columns = (("Step", 0.46), *((title, 0.135) for _, title in states), ("Failed", 0.135))
    rows = [
        (step["label"], *(step[state] for state, _ in states), step["failed"])
        for step in content["steps"]
    ]
    table(pdf, columns, rows)


def _retained(pdf: PortalPdf, heading: Heading, line: Line, content: dict[str, Any]) -> None:
    heading("Retained, and why")
    reasons: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for device in content["devices"]:
        for item in device["retained"]:
            name = item.get("group_id") if item["what"] == "enrollment group" else None
            key = (item["what"] + (f" {name}" if name else ""), item["why"])
            reasons[key].append(device["device_id"] or device["registration_id"])
    if not reasons:
        line("Nothing was retained.")
    for (what, why), labels in reasons.items():
        pdf.set_font("Helvetica", "B", 9)
        line(f"{what} ({len(labels)} device{'s' if len(labels) != 1 else ''})")
        pdf.set_font("Helvetica", size=9)
        line(why, 4)
        if len(labels) <= LIST_DEVICES:
            line("Devices: " + ", ".join(labels), 4)
        else:
            line("Devices: see the Kept column of the table above.", 4)

    heading("Not reachable by the portal (to be handled by the tenant)")
    for item in content["not_reachable_by_portal"]:
        line(f"- {item['source']}: {item['detail']}")


def _anchor(heading: Heading, line: Line, content: dict[str, Any], json_sha256: str) -> None:
    heading("Audit anchor")
    chain = content["audit_chain"]
    line(
        f"Audit chain at issue time: {chain['events']} events, "
        f"{'verified' if chain['ok'] else 'BROKEN - ' + str(chain['problem'])}"
    )
    line(f"Head hash: {chain['head_hash']}")
    for text in checkpoint_lines(content["audit_checkpoint"]):
        line(text)
    line(
        "The portal's audit trail records this certificate (artifact_created, with its "
        "SHA-256) right after it is issued; the first signed checkpoint after the completion "
        "time covers that record."
    )
    line(f"SHA-256 of the certificate JSON: {json_sha256}")


def _appendix(pdf: PortalPdf, heading: Heading, line: Line, content: dict[str, Any]) -> None:
    pdf.add_page()
    heading("Appendix: every Azure API call", 14)
    line(
        "Per device, in the order they ran: the operation, method and path on its host, the "
        "HTTP status and outcome, Azure's x-ms-request-id and tracking ID, and the time."
    )
    for device in content["devices"]:
        pdf.set_font("Helvetica", "B", 9)
        line(
            f"{device['position']}. {device['device_id'] or device['registration_id']} - "
            f"{device['result_label']}"
        )
        pdf.set_font("Helvetica", size=8)
        if not device["operations"]:
            line(device["note"] or "No operations.", 4)
        for op in device["operations"]:
            name = operation_name(op["action"], op["module_id"])
            ids = ", ".join(
                f"{label} {op[key]}"
                for label, key in (
                    ("x-ms-request-id", "azure_request_id"),
                    ("tracking ID", "tracking_id"),
                    ("error", "error_code"),
                )
                if op[key]
            )
            line(
                f"#{op['seq']} {name}: {op['method']} {op['host']}{op['path']} -> HTTP "
                f"{op['http_status'] or '-'} ({op['state']}), {readable(op['time'])}"
                + (f"; {ids}" if ids else ""),
                4,
            )
        if device["verification"]:
            verdict = "verified" if device["verified"] else "NOT verified"
            line(f"Verification: {verdict}, by reading each resource again:", 4)
            for check in device["verification"]:
                line(
                    f"GET {check['host']}{check['path']} -> HTTP {check['http_status'] or '-'} "
                    f"({check['result']}), {readable(check['time'])}",
                    6,
                )
        pdf.set_font("Helvetica", size=9)
