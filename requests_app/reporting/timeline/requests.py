"""The request's events in words: its life, its Azure calls, emails, decisions, files."""

from requests_app.jobs.operations import operation_name
from requests_app.models import Status
from requests_app.reporting.timeline.words import (
    ARTIFACTS,
    azure_object,
    clock,
    day,
    readable,
    short_host,
    status,
)

# action → what a filter list calls it
ACTIONS = {
    "request_created": "Request created",
    "status_changed": "Status changed",
    "plan_stored": "Plan stored",
    "scoping_failed": "Planning failed",
    "email_sent": "Email sent",
    "email_failed": "Email not sent",
    "approval_emails_resent": "Approval emails sent again",
    "approval_link_opened": "Approval link opened",
    "approval_link_refused": "Approval link refused",
    "request_approved": "Approved",
    "request_rejected": "Rejected",
    "decision_refused": "Decision refused",
    "deadline_extended": "Deadline extended",
    "azure_call": "Azure call",
    "reconciler_enqueued": "Re-queued by the reconciler",
    "work_resumed": "Worker lost, work resumed",
    "artifact_created": "File stored",
    "artifact_downloaded": "File downloaded",
    "artifact_purged": "File deleted (retention)",
    "exported_documents_purged": "Exported documents deleted (retention)",
    "legal_hold_placed": "Legal hold placed",
    "discovery_started": "Search by owner started",
    "discovery_finished": "Search by owner finished",
    "discovery_retried": "Search by owner asked again",
    "discovery_confirmed": "Devices found by owner confirmed",
    "discovery_purged": "Subject keys deleted (retention)",
    "delivery_created": "Delivery link made",
    "delivery_opened": "Delivery opened by the data subject",
    "delivery_passphrase_refused": "Delivery: wrong passphrase",
    "delivery_downloaded": "Delivery downloaded",
    "delivery_refused": "Delivery link refused",
    "delivery_revoked": "Delivery link revoked",
    "legal_hold_released": "Legal hold released",
    "report_downloaded": "Report downloaded",
    "request_finished": "Request finished",
    "azure_targets_loaded": "Azure targets file loaded (changed)",
    "audit_checkpoint_requested": "Audit checkpoint asked for",
}

EMAILS = {
    "approval_request": "approval link",
    "request_rejected": "request rejected",
    "request_finished": "request finished",
    "deadline_digest": "deadline reminder",
}

REPORTS = {
    "register": "the register of requests",
    "evidence": "the evidence report",
    "audit_log": "the audit log",
}

# Why an approval link was refused (requests_app/tokens.py and lifecycle), said calmly: the
# link did nothing, which is what it is for.
LINK_REFUSALS = {
    "used": "Approval link opened again after it was used — nothing changed",
    "not_awaiting": "Approval link opened after the request left approval — nothing changed",
    "stale_plan": "Approval link for an earlier version of the plan opened — nothing changed",
    "expired": "Expired approval link opened — nothing changed",
    "other_approver": "Approval link opened while signed in as someone else — refused",
    "tampered": "Altered or invalid approval link opened — refused",
    "unknown": "Approval link for a request or approver that no longer exists — refused",
}

DECISION_REFUSALS = {
    "used": "this approver had already decided",
    "not_awaiting": "the request was no longer awaiting approval",
    "stale_plan": "the plan had changed",
    "self_approval": "nobody approves a request they created",
    "not_approver": "not an approver",
    "reason_required": "a reason is required to reject",
}


def _status_changed(e, d):
    text = f"Status: {status(d.get('from'))} → {status(d.get('to'))}"
    if d.get("retry"):
        text += " (retry)"
    if d.get("to") == Status.AWAITING_APPROVAL and d.get("devices") is not None:
        devices, operations = d["devices"], d.get("operations", "?")
        text += f" — plan of {devices} device{'s' if devices != 1 else ''}, {operations} operations"
    if d.get("reason"):
        text += f" — reason: {d['reason']}"
    if d.get("issues"):
        text += f" — {d['issues']} to handle by hand"
    failure = d.get("failure") or {}
    if failure:
        what = operation_name(failure["action"]) if failure.get("action") else "?"
        text += f" — {what} on {failure.get('device', '?')}"
        if failure.get("message"):
            text += f": {failure['message']}"
    return text


def _azure_call(e, d):
    status = d.get("status")
    answer = str(status) if status else "no answer"
    if d.get("error_code"):
        answer += f" {d['error_code']}"
    text = (
        f"Azure: {d.get('method', '?')} {azure_object(d.get('path'))} "
        f"on {short_host(d.get('host'))} → {answer}"
    )
    if (d.get("attempt") or 1) > 1:
        text += f" (attempt {d['attempt']})"
    if d.get("outcome") == "retry":
        text += ", will retry"
    return text


def _email(e, d):
    what = EMAILS.get(d.get("template"), readable(d.get("template")).lower())
    text = f"Email to {d.get('to') or '?'} ({what})"
    if e.action == "email_failed":
        text += f" could not be sent: {d.get('error') or 'error'}"
    return text


def _decision(e, d):
    verb = "Approved" if e.action == "request_approved" else "Rejected"
    via = "email link" if d.get("via") == "link" else "the portal"
    text = f"{verb} by {e.actor_name} via {via}"
    if d.get("ip"):
        text += f" from {d['ip']}"
    if d.get("reason"):
        text += f": {d['reason']}"
    return text


def _decision_refused(e, d):
    why = DECISION_REFUSALS.get(d.get("reason"), readable(d.get("reason")).lower())
    return f"Decision by {e.actor_name} not recorded: {why}"


def _link_refused(e, d):
    return LINK_REFUSALS.get(d.get("reason"), "Approval link refused — nothing changed")


def _link_opened(e, d):
    return f"Approval link opened by {d.get('approver') or e.actor_name}"


def _deadline_extended(e, d):
    text = f"Deadline extended from {day(d.get('from_'))} to {day(d.get('until'))}"
    if d.get("notice_date"):
        text += f" (subject told on {day(d['notice_date'])})"
    if d.get("reason"):
        text += f": {d['reason']}"
    return text


def _work_resumed(e, d):
    lost = d.get("lost_seconds")
    lost_text = f" ({lost} s lost)" if lost is not None else ""
    who = "another worker" if d.get("by") == "worker" else "the reconciler"
    return f"Worker lost; resumed by {who} at {clock(e.created_at)}{lost_text}"


def _artifact(e, d):
    what = ARTIFACTS.get(d.get("kind"), readable(d.get("kind")))
    if e.action == "artifact_downloaded":
        return f"Downloaded: {what}"
    parts = []
    if isinstance(d.get("size"), int):
        parts.append(f"{d['size']:,} bytes")
    if d.get("sha256"):
        parts.append(f"SHA-256 {d['sha256'][:12]}…")
    return f"Stored: {what}" + (f" ({', '.join(parts)})" if parts else "")


def _purged(e, d):
    what = ARTIFACTS.get(d.get("kind"), readable(d.get("kind")))
    days = d.get("days")
    rule = f"{d.get('rule')} rule, {days} days after completion" if days else d.get("rule")
    return f"Deleted under the retention rule ({rule}): {what}"


def _hold(e, d):
    verb = "placed" if e.action == "legal_hold_placed" else "released"
    return f"Legal hold {verb}: {d.get('reason', '')}"


DELIVERY_REFUSALS = {
    "expired": "after it expired",
    "exhausted": "after its last download",
    "revoked": "after it was revoked",
    "locked": "while locked after wrong passphrases",
    "purged": "after the archive was deleted",
}


def _delivery(e, d):
    n = f"Delivery link {d.get('delivery', '?')}"
    if e.action == "delivery_created":
        emailed = ", link emailed" if d.get("emailed") else ""
        until = day(d.get("expires_at"))
        count = d.get("max_downloads")
        downloads = "1 download" if count == 1 else f"{count} downloads"
        return f"{n} made: {downloads} until {until}{emailed}"
    if e.action == "delivery_downloaded":
        return f"{n} downloaded by the data subject ({d.get('download')} of {d.get('of')})"
    if e.action == "delivery_passphrase_refused":
        locked = "; the link is now locked" if d.get("locked") else ""
        return f"{n}: wrong passphrase (attempt {d.get('attempt')}){locked}"
    if e.action == "delivery_refused":
        why = DELIVERY_REFUSALS.get(d.get("reason"), d.get("reason"))
        return f"{n} opened {why} — nothing served"
    if e.action == "delivery_revoked":
        return f"{n} revoked"
    return f"{n} opened by the data subject (passphrase accepted)"


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _discovery(e, d):
    n = f"Search {d.get('discovery', '?')}"
    if e.action == "discovery_started":
        hosts = ", ".join(short_host(h) for h in sorted(d.get("queries") or {}))
        return f"{n} by owner for {_plural(d.get('keys', 0), 'subject key')} on {hosts}"
    if e.action == "discovery_finished":
        found = sum((d.get("matches") or {}).values())
        failed = d.get("failed") or []
        missing = f"; {', '.join(map(short_host, failed))} did not answer" if failed else ""
        matches = "1 match" if found == 1 else f"{found} matches"
        return f"{n} finished: {matches}{missing}"
    if e.action == "discovery_retried":
        return f"{n}: asking {', '.join(map(short_host, d.get('hosts') or [])) or 'again'}"
    if e.action == "discovery_confirmed":
        added = _plural(d.get("identifiers_added", 0), "identifier")
        return f"{n} confirmed: {d.get('chosen')} of {d.get('found')} chosen, {added} added"
    return f"{n}: subject keys and devices found deleted (retention, {d.get('days')} days)"


def _report(e, d):
    what = REPORTS.get(d.get("kind"), readable(d.get("kind")).lower())
    text = f"Downloaded {what}"
    if d.get("from") and d.get("to"):
        text += f" for {day(d['from'])} to {day(d['to'])}"
    return text


def _request_created(e, d):
    count = d.get("identifiers")
    text = "Request created"
    if d.get("via"):
        text += " through the API" if d["via"] == "api" else " in the portal"
    if count is not None:
        text += f" with {count} identifier{'s' if count != 1 else ''}"
    return text


def _plan_stored(e, d):
    return f"Plan stored (version {(d.get('plan_version') or '?')[:12]}…)"


def _scoping_failed(e, d):
    return f"Planning failed: {d.get('error') or 'unknown error'}"


def _resent(e, d):
    return f"Approval emails sent again ({d.get('sent', '?')} sent)"


def _reconciler(e, d):
    return f"Re-queued by the reconciler (the request was {status(d.get('status'))})"


def _finished(e, d):
    return f"Finished: {status(d.get('status'))}"


def _checkpoint_requested(e, d):
    why = "after a certificate" if d.get("reason") == "certificate" else d.get("reason", "")
    return f"Signed audit checkpoint asked for ({why})"


def _targets_loaded(e, d):
    return f"Azure targets file loaded with a new SHA-256 {str(d.get('sha256'))[:12]}…"


DESCRIBERS = {
    "status_changed": _status_changed,
    "azure_call": _azure_call,
    "email_sent": _email,
    "email_failed": _email,
    "request_approved": _decision,
    "request_rejected": _decision,
    "decision_refused": _decision_refused,
    "approval_link_refused": _link_refused,
    "approval_link_opened": _link_opened,
    "deadline_extended": _deadline_extended,
    "work_resumed": _work_resumed,
    "artifact_created": _artifact,
    "artifact_downloaded": _artifact,
    "artifact_purged": _purged,
    "exported_documents_purged": lambda e, d: "Exported documents deleted (retention)",
    "legal_hold_placed": _hold,
    "legal_hold_released": _hold,
    "discovery_started": _discovery,
    "discovery_finished": _discovery,
    "discovery_retried": _discovery,
    "discovery_confirmed": _discovery,
    "discovery_purged": _discovery,
    "delivery_created": _delivery,
    "delivery_opened": _delivery,
    "delivery_passphrase_refused": _delivery,
    "delivery_downloaded": _delivery,
    "delivery_refused": _delivery,
    "delivery_revoked": _delivery,
    "report_downloaded": _report,
    "request_created": _request_created,
    "plan_stored": _plan_stored,
    "scoping_failed": _scoping_failed,
    "approval_emails_resent": _resent,
    "reconciler_enqueued": _reconciler,
    "request_finished": _finished,
    "audit_checkpoint_requested": _checkpoint_requested,
    "azure_targets_loaded": _targets_loaded,
}
