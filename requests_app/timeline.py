"""Audit events in words: one sentence per event for the request page and the audit page.

``describe(event)`` knows every action the code records (``ACTIONS`` lists them with a label
for filters); an action it does not know reads as its name in words, so a new event is never
an error, only plainer. Details come from the event as it was hashed: nothing here changes it.
"""

from datetime import datetime
from urllib.parse import unquote

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from requests_app.models import Artifact, Status

# action → what a filter list calls it (every action recorded by requests_app/, in life order).
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
    "report_downloaded": "Report downloaded",
    "request_finished": "Request finished",
    "login": "Signed in",
    "logout": "Signed out",
    "login_failed": "Sign-in failed",
    "login_throttled": "Sign-in locked out (old name)",
    "login_locked_out": "Sign-in locked out",
    "session_expired": "Signed out when idle",
    "reauthenticated": "Signed in again",
    "sso_refused": "Microsoft sign-in refused",
    "user_created": "Account created",
    "roles_changed": "Roles changed",
    "second_factor_enrolled": "Second factor set up",
    "recovery_codes_renewed": "Recovery codes renewed",
    "password_reset_completed": "Password reset",
    "password_reset_requested": "Password reset asked for",
    "password_changed": "Password changed",
    "anonymous_attempts": "Repeated anonymous attempts (counted)",
    "user_activated": "Account activated",
    "user_deactivated": "Account deactivated",
    "user_privileges_changed": "Staff or superuser flag changed",
    "permissions_changed": "Permissions changed",
    "second_factor_removed": "Second factor removed",
    "azure_targets_loaded": "Azure targets file loaded (changed)",
    "audit_checkpoint_requested": "Audit checkpoint asked for",
    "api_token_created": "API token created",
    "api_token_revoked": "API token revoked",
}

SIGN_IN_METHODS = {"password": "password", "entra": "Microsoft Entra ID", "sso": "Entra ID"}

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

ARTIFACTS = dict(Artifact.Kind.choices)
STATUSES = dict(Status.choices)


def short_host(host):
    """``demo-hub-1.azure-devices.net`` → ``demo-hub-1`` (the name people give a target)."""
    return (host or "").split(".", 1)[0] or "?"


def azure_object(path):
    """What a service API path names, in words: ``/devices/d1/modules/m1`` → module m1 of d1."""
    parts = [unquote(p) for p in (path or "").split("?", 1)[0].strip("/").split("/") if p]
    match parts:
        case ["enrollments", "query"]:
            return "query of the individual enrollments"
        case ["enrollments", rid]:
            return f"enrollment {rid}"
        case ["enrollmentGroups", "query"]:
            return "query of the enrollment groups"
        case ["enrollmentGroups", gid]:
            return f"enrollment group {gid}"
        case ["registrations", gid, "query"]:
            return f"query of the registrations of group {gid}"
        case ["registrations", rid]:
            return f"registration {rid}"
        case ["devices", "query"]:
            return "device query"
        case ["devices", did]:
            return f"device {did}"
        case ["devices", did, "modules"]:
            return f"modules of device {did}"
        case ["devices", did, "modules", mid]:
            return f"module {mid} of device {did}"
        case ["twins", did]:
            return f"twin of device {did}"
        case ["twins", did, "modules", mid]:
            return f"twin of module {mid} of device {did}"
    return "/" + "/".join(parts)


def _status(value):
    return STATUSES.get(value, str(value or "?").replace("_", " ")).lower()


def _day(value):
    """An ISO date (or datetime) string from the details, as YYYY-MM-DD."""
    if not value:
        return "?"
    parsed = parse_date(str(value)[:10])
    return parsed.isoformat() if parsed else str(value)


def _clock(value):
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime):
        return "?"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return f"{value:%H:%M:%S}"


def readable(action):
    """The fallback: ``some_new_thing`` → ``Some new thing``."""
    words = str(action or "event").replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:]


# --- one function per action that needs more than its label ----------------------------------


def _status_changed(e, d):
    text = f"Status: {_status(d.get('from'))} → {_status(d.get('to'))}"
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
        text += f" — {failure.get('action', '?')} on {failure.get('device', '?')}"
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
    text = f"Deadline extended from {_day(d.get('from_'))} to {_day(d.get('until'))}"
    if d.get("notice_date"):
        text += f" (subject told on {_day(d['notice_date'])})"
    if d.get("reason"):
        text += f": {d['reason']}"
    return text


def _work_resumed(e, d):
    lost = d.get("lost_seconds")
    lost_text = f" ({lost} s lost)" if lost is not None else ""
    who = "another worker" if d.get("by") == "worker" else "the reconciler"
    return f"Worker lost; resumed by {who} at {_clock(e.created_at)}{lost_text}"


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


def _report(e, d):
    what = REPORTS.get(d.get("kind"), readable(d.get("kind")).lower())
    text = f"Downloaded {what}"
    if d.get("from") and d.get("to"):
        text += f" for {_day(d['from'])} to {_day(d['to'])}"
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
    return f"Re-queued by the reconciler (the request was {_status(d.get('status'))})"


def _finished(e, d):
    return f"Finished: {_status(d.get('status'))}"


def _login(e, d):
    where = f" from {d['ip']}" if d.get("ip") else ""
    if e.action == "login":
        how = SIGN_IN_METHODS.get(d.get("method"), "")
        factor = d.get("second_factor")
        with_factor = f" and {factor.upper()}" if factor and factor not in ("none", "") else ""
        return f"Signed in{f' with {how}{with_factor}' if how else ''}{where}"
    if e.action == "logout":
        return f"Signed out{where}"
    if e.action == "login_failed":
        return f"Sign-in failed for “{e.actor_name}”{where}"
    minutes = f" for {d['minutes']} min" if d.get("minutes") else ""
    return f"Sign-in locked out for “{e.actor_name}” after too many failures{minutes}{where}"


def _account(e, d):
    if e.action == "anonymous_attempts":
        what = ACTIONS.get(d.get("of"), readable(d.get("of"))).lower()
        where = f" from {d['ip']}" if d.get("ip") else ""
        n = d.get("repeats", 0)
        return f"{n} more “{what}” attempt{'s' if n != 1 else ''} by “{e.actor_name}”{where}"
    if e.action == "password_changed":
        return "Password changed"
    if e.action == "password_reset_requested":
        return f"Password reset asked for “{e.actor_name}”"
    if e.action == "session_expired":
        idle = d.get("idle_seconds")
        return f"Signed out after {round(idle / 60)} min idle" if idle else "Signed out when idle"
    if e.action == "reauthenticated":
        factor = d.get("second_factor")
        return f"Signed in again{f' with {factor.upper()}' if factor else ''}"
    if e.action == "sso_refused":
        return f"Microsoft sign-in refused ({readable(d.get('reason')).lower()})"
    if e.action == "user_created":
        via = " at the first Entra ID sign-in" if d.get("via") == "entra" else ""
        return f"Account {d.get('user') or e.actor_name} created{via}"
    if e.action == "roles_changed":
        parts = []
        if d.get("added"):
            parts.append("added " + ", ".join(d["added"]))
        if d.get("removed"):
            parts.append("removed " + ", ".join(d["removed"]))
        via = " from Entra ID" if d.get("via") == "entra" else ""
        who = d.get("user") or e.actor_name
        return f"Roles of {who} changed{via} by {e.actor_name}: {'; '.join(parts) or 'none'}"
    if e.action in ("user_activated", "user_deactivated"):
        done = "activated" if e.action == "user_activated" else "deactivated"
        return f"Account {d.get('user')} {done} by {e.actor_name}"
    if e.action == "user_privileges_changed":
        flags = ", ".join(
            f"{name.removeprefix('is_')} {'on' if new else 'off'}"
            for name, (_, new) in sorted((k, v) for k, v in d.items() if k.startswith("is_"))
        )
        return f"Account {d.get('user')}: {flags} (by {e.actor_name})"
    if e.action == "permissions_changed":
        added, removed = ", ".join(d.get("added") or []), ", ".join(d.get("removed") or [])
        change = f"added {added}" if added else f"removed {removed}"
        return f"Permissions of {d.get('user')} changed by {e.actor_name}: {change}"
    if e.action == "second_factor_removed":
        return f"Second factor of {d.get('user')} removed ({d.get('kind')}) by {e.actor_name}"
    if e.action == "audit_checkpoint_requested":
        why = "after a certificate" if d.get("reason") == "certificate" else d.get("reason", "")
        return f"Signed audit checkpoint asked for ({why})"
    if e.action == "azure_targets_loaded":
        return f"Azure targets file loaded with a new SHA-256 {str(d.get('sha256'))[:12]}…"
    if e.action == "second_factor_enrolled":
        who = d.get("user") or e.actor_name
        return f"Second factor ({(d.get('kind') or '?').upper()}) set up for {who}"
    return ACTIONS[e.action]


def _api_token(e, d):
    if e.action == "api_token_created":
        name = f" ({d['name']})" if d.get("name") else ""
        return f"API token created for {d.get('user', '?')}{name}"
    return f"API token {d.get('prefix', '?')}… revoked"


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
    "report_downloaded": _report,
    "request_created": _request_created,
    "plan_stored": _plan_stored,
    "scoping_failed": _scoping_failed,
    "approval_emails_resent": _resent,
    "reconciler_enqueued": _reconciler,
    "request_finished": _finished,
    "login": _login,
    "logout": _login,
    "login_failed": _login,
    "login_throttled": _login,
    "login_locked_out": _login,
    "session_expired": _account,
    "reauthenticated": _account,
    "sso_refused": _account,
    "anonymous_attempts": _account,
    "password_changed": _account,
    "password_reset_requested": _account,
    "user_activated": _account,
    "user_deactivated": _account,
    "user_privileges_changed": _account,
    "permissions_changed": _account,
    "second_factor_removed": _account,
    "azure_targets_loaded": _account,
    "audit_checkpoint_requested": _account,
    "user_created": _account,
    "roles_changed": _account,
    "second_factor_enrolled": _account,
    "api_token_created": _api_token,
    "api_token_revoked": _api_token,
}


def describe(event):
    """One sentence for ``event`` (an AuditEvent, or anything with action, details,
    actor_name and created_at). Never raises on odd details: it falls back to the label."""
    details = event.details if isinstance(event.details, dict) else {}
    describer = DESCRIBERS.get(event.action)
    if describer is not None:
        try:
            return describer(event, details)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    return ACTIONS.get(event.action) or readable(event.action)


def tone(event):
    """A CSS hint for the row: refusals and failures stand out, Azure calls recede."""
    details = event.details if isinstance(event.details, dict) else {}
    if event.action in ("scoping_failed", "email_failed", "login_throttled"):
        return "bad"
    if event.action == "status_changed" and details.get("to") == Status.FAILED:
        return "bad"
    if event.action == "azure_call":
        if details.get("outcome") == "error":
            return "bad"
        return "warn" if details.get("outcome") == "retry" else "quiet"
    if event.action == "work_resumed":
        return "warn"
    return ""


def described(events):
    """``events`` with ``.text`` and ``.tone`` set, for templates."""
    events = list(events)
    for event in events:
        event.text = describe(event)
        event.tone = tone(event)
        # Who did it, when the sentence does not say so already (the system goes unnamed).
        event.by = (
            event.actor_name
            if event.actor_kind != "system" and event.actor_name not in event.text
            else ""
        )
    return events
