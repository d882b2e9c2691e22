"""Audit events in words: one sentence per event for the request page and the audit page.

``describe(event)`` knows every action the code records (``ACTIONS`` lists them with a label
for filters); an action it does not know reads as its name in words, so a new event is never
an error, only plainer. Details come from the event as it was hashed: nothing here changes it.
The words live beside what they describe: ``requests`` (a request's life, Azure calls,
emails, decisions, files) and ``accounts`` (sign-in, lockouts, second factors, roles, tokens).
"""

from requests_app.models import Status
from requests_app.reporting.timeline import accounts, requests
from requests_app.reporting.timeline.words import azure_object, readable, short_host

__all__ = ["ACTIONS", "azure_object", "describe", "described", "readable", "short_host", "tone"]

# action → what a filter list calls it (every action recorded by requests_app/).
ACTIONS = {**requests.ACTIONS, **accounts.ACTIONS}
DESCRIBERS = {**requests.DESCRIBERS, **accounts.DESCRIBERS}


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
