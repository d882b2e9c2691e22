"""The evidence report of one request, as a PDF for auditors: what was asked, who approved it
and from where, every Azure call with its tracking IDs, the verification, the artifacts' hashes,
the request's audit timeline, the audit chain's head at completion and at report time, and the
signed audit checkpoint the certificate was anchored to and the latest one.

Built with fpdf2's core Helvetica font; text outside Latin-1 is escaped (``pdf.pdf_text``).
"""

from __future__ import annotations

import json
from typing import Any

from django.utils import timezone

from requests_app.dates import local_time
from requests_app.evidence.artifacts import artifact_path
from requests_app.evidence.certificate import (
    audit_checkpoint,
    checkpoint_lines,
    verification_result,
)
from requests_app.evidence.pdf import Heading, Line, PortalPdf, start_document
from requests_app.models import Approval, Artifact, AuditEvent, DataRequest, Operation
from requests_app.models.audit import verify_chain


def certificate_json(data_request: DataRequest) -> dict[str, Any] | None:
    """The stored certificate JSON as a dict, or None (none, unreadable, not an object)."""
    certificate = Artifact.objects.filter(
        request=data_request, kind=Artifact.Kind.CERTIFICATE_JSON
    ).first()
    if certificate is None:
        return None
    try:
        with artifact_path(certificate).open("rb") as fh:
            content = json.load(fh)
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def chain_head_at_completion(data_request: DataRequest) -> tuple[str, int | None, str] | None:
    """``(source, events, head_hash)`` for the chain when the request was completed, or None.

    Taken from the certificate JSON when there is one (it recorded the chain it verified),
    otherwise from the last audit event written up to ``completed_at``.
    """
    chain = (certificate_json(data_request) or {}).get("audit_chain")
    if isinstance(chain, dict) and chain.get("head_hash"):
        return ("deletion certificate", chain.get("events"), chain["head_hash"])
    if not data_request.completed_at:
        return None
    last = (
        AuditEvent.objects.filter(created_at__lte=data_request.completed_at)
        .order_by("-seq")
        .first()
    )
    if last is None:
        return None
    return (f"last audit event at completion (#{last.seq})", last.seq, last.hash)


def _checkpoints(data_request: DataRequest, heading: Heading, line: Line) -> None:
    heading("Audit checkpoint")
    certificate = certificate_json(data_request)
    if certificate is not None and "audit_checkpoint" in certificate:
        line("The deletion certificate was anchored to:")
        for text in checkpoint_lines(certificate["audit_checkpoint"]):
            line(text, 4)
    line("Latest at report time:")
    for text in checkpoint_lines(audit_checkpoint()):
        line(text, 4)


def render_evidence_pdf(data_request: DataRequest) -> bytes:
    """The report as PDF bytes."""
    generated = timezone.localtime().isoformat(timespec="seconds")
    pdf = PortalPdf(f"{data_request.reference} - evidence report generated {generated}")
    heading, line = start_document(pdf, f"Evidence report {data_request.reference}")

    heading(f"Evidence report - {data_request.reference}", 16)
    line(f"Generated {generated}")
    for section in (_summary, _approvals, _operations, _artifacts, _audit_chain, _timeline):
        section(data_request, heading, line)
    return bytes(pdf.output())


def _summary(data_request: DataRequest, heading: Heading, line: Line) -> None:
    heading("Summary")
    for label, value in (
        ("Reference", data_request.reference),
        ("Kind", data_request.get_kind_display()),
        ("Regulation", data_request.get_regulation_display()),
        ("Subject reference", data_request.subject_reference),
        ("Received via", data_request.created_via),
        ("Created by", data_request.created_by.get_username()),
        ("Received", data_request.received_at.isoformat()),
        ("Due", data_request.due_at.isoformat()),
        ("Extended until", data_request.extended_until and data_request.extended_until.isoformat()),
        ("Extension reason", data_request.extension_reason),
        ("Approved", data_request.approved_at and local_time(data_request.approved_at)),
        ("Started", data_request.started_at and local_time(data_request.started_at)),
        ("Completed", data_request.completed_at and local_time(data_request.completed_at)),
        ("Outcome", data_request.get_status_display()),
        ("Rejection reason", data_request.rejection_reason),
        ("Cancellation reason", data_request.cancel_reason),
        ("Failure", data_request.failure and json.dumps(data_request.failure, sort_keys=True)),
    ):
        if value:
            line(f"{label}: {value}")


def _approvals(data_request: DataRequest, heading: Heading, line: Line) -> None:
    heading("Approvals")
    approvals = Approval.objects.filter(request=data_request).order_by("created_at", "pk")
    if not approvals:
        line("No approval decisions recorded.")
    for row in approvals:
        line(
            f"{local_time(row.created_at)}  {row.approver_name}: {row.decision} via {row.via}, "
            f"IP {row.ip or '-'}, plan {row.plan_version}"
            + (f"; reason: {row.reason}" if row.reason else "")
        )


def _operations(data_request: DataRequest, heading: Heading, line: Line) -> None:
    """Every operation, then the verification GETs again with what they found."""
    heading("Operations")
    operations = Operation.objects.filter(request=data_request).order_by("seq")
    verify: list[Operation] = []
    count = 0
    for op in operations.iterator(chunk_size=1000):
        count += 1
        if op.phase == Operation.Phase.VERIFY:
            verify.append(op)
        ids = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("x-ms-request-id", op.azure_request_id),
                ("tracking", op.tracking_id),
                ("error", op.error_code),
            )
            if value
        )
        line(
            f"#{op.seq} [{op.phase}] {op.action}: {op.method} {op.host}{op.path} -> {op.state} "
            f"(HTTP {op.http_status or '-'}) {local_time(op.finished_at or op.started_at)}"
            + (f"; {ids}" if ids else "")
        )
    if not count:
        line("No operations.")

    heading("Verification results")
    if not verify:
        line("No verification step.")
    for op in verify:
        line(
            f"#{op.seq} {op.action} {op.host}{op.path}: {verification_result(op)} "
            f"(HTTP {op.http_status or '-'}) {local_time(op.finished_at or op.started_at)}"
        )


def _artifacts(data_request: DataRequest, heading: Heading, line: Line) -> None:
    heading("Artifacts")
    artifacts = Artifact.objects.filter(request=data_request).order_by("kind")
    if not artifacts:
        line("None.")
    for artifact in artifacts:
        line(
            f"{artifact.get_kind_display()}: {artifact.filename}, {artifact.size} bytes, "
            f"created {local_time(artifact.created_at)}"
        )
        line(f"SHA-256 {artifact.sha256}", 4)


def _audit_chain(data_request: DataRequest, heading: Heading, line: Line) -> None:
    heading("Audit chain")
    at_completion = chain_head_at_completion(data_request)
    if at_completion is None:
        line("At completion: the request is not completed.")
    else:
        source, events, head = at_completion
        line(f"At completion ({source}): {events} events, head {head}")
    ok, events, head, problem = verify_chain()
    line(
        f"At report time: {'verified' if ok else 'BROKEN - ' + str(problem)}, "
        f"{events} events, head {head}"
    )
    _checkpoints(data_request, heading, line)


def _timeline(data_request: DataRequest, heading: Heading, line: Line) -> None:
    heading("Timeline (audit events of this request)")
    timeline = AuditEvent.objects.filter(request_ref=data_request.reference).order_by("seq")
    for event in timeline.iterator(chunk_size=1000):
        details = json.dumps(event.details, sort_keys=True, ensure_ascii=False)
        line(
            f"#{event.seq} {local_time(event.created_at)} {event.actor_kind}:{event.actor_name} "
            f"{event.action} {details}"
        )
        line(f"hash {event.hash}", 4)
