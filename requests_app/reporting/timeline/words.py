"""The small words the timeline's sentences are made of: short host names, what an Azure path
names, statuses, dates and clock times, and the fallback for an action with no words."""

from datetime import datetime
from urllib.parse import unquote

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from requests_app import dates
from requests_app.models import Artifact, Status

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


def status(value):
    return STATUSES.get(value, str(value or "?").replace("_", " ")).lower()


def day(value):
    """An ISO date (or datetime) string from the details, as YYYY-MM-DD."""
    if not value:
        return "?"
    return dates.day(value) or str(value)


def clock(value):
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
