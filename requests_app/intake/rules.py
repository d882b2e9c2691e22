"""Taking in a request: the identifier rules, parsing pasted lines and CSV files, and creation.

The browser form and the JSON API both validate through here and both create through
``create_request``, so a request is the same whichever way it arrived.

Identifier syntax, one entry per pasted line (blank lines are ignored)::

    my-registration-id                       a DPS registration ID
    my-device-id@my-hub.azure-devices.net    a device in a configured IoT hub

A CSV file has a header line naming the columns ``registration_id``, ``device_id`` and ``hub``;
each row gives a registration ID, or a device ID and its hub, or all three.
"""

import csv
import dataclasses
import io
import re
from datetime import date

from django.db import transaction
from django.utils import timezone

from requests_app.models import (
    AuditEvent,
    DataRequest,
    Kind,
    ReferenceCounter,
    RequestIdentifier,
    Status,
)
from requests_app.workflow import regulations

MAX_IDENTIFIERS = 10_000
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_ID_LENGTH = 128
# Enough to fix a file by; a list with thousands of bad lines is the wrong file.
MAX_REPORTED_ERRORS = 50

# Azure DPS: "a case-insensitive string (up to 128 characters long) of alphanumeric characters
# plus the special characters '-', '.', '_', ':'".
REGISTRATION_ID_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:"
)
# Azure IoT Hub: "a case-sensitive string (up to 128 characters long) of ASCII 7-bit
# alphanumeric characters plus certain special characters: - . + % _ # * ? ! ( ) , : = @ $ '".
DEVICE_ID_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.+%_#*?!(),:=@$'"
)
PLURAL = {"line": "lines", "index": "indexes"}
CSV_COLUMNS = ("registration_id", "device_id", "hub")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[a-z]{2,}", re.IGNORECASE)


def configured_hub_names():
    """Hostnames of the configured IoT hubs; empty when no targets file is set or loadable."""
    try:
        from requests_app.azure import configured_targets

        return {name.lower() for name in configured_targets(secrets=False).hubs}
    except Exception:  # no targets means no hub can be named, not a broken form
        return set()


@dataclasses.dataclass(frozen=True)
class Identifier:
    """One entry: a registration ID, a hub device, or both. ``line`` is where it came from."""

    line: int
    registration_id: str = ""
    device_id: str = ""
    hub: str = ""

    @property
    def key(self):
        # Registration IDs and host names are case-insensitive in Azure; device IDs are not.
        return (self.registration_id.lower(), self.device_id, self.hub.lower())


@dataclasses.dataclass
class IdentifierList:
    """The outcome of reading a list: what is valid, what is wrong (by line), what was merged."""

    identifiers: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)  # (line, message)
    error_count: int = 0
    duplicate_lines: list = dataclasses.field(default_factory=list)
    problem: str = ""  # about the list as a whole: empty, too long, unreadable

    def add_error(self, line, message):
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((line, message))

    def messages(self, unit="line"):
        """Every problem as a sentence naming its line (or ``unit``), for a person to fix."""
        found = [f"{unit} {line}: {message}" for line, message in self.errors]
        if self.error_count > len(self.errors):
            found.append(f"… and {self.error_count - len(self.errors)} more {unit}s with errors")
        return ([self.problem] if self.problem else []) + found

    def duplicates_notice(self, unit="line", offset=0):
        """A sentence such as "2 duplicate identifiers collapsed (lines 5, 9)", or "" for none.
        ``offset`` shifts the numbers: the API counts indexes from 0."""
        count = len(self.duplicate_lines)
        if not count:
            return ""
        shown = ", ".join(str(line + offset) for line in self.duplicate_lines[:20])
        if count > 20:
            shown += f", … ({count - 20} more)"
        if count == 1:
            return f"1 duplicate identifier collapsed ({unit} {shown})"
        return f"{count} duplicate identifiers collapsed ({PLURAL[unit]} {shown})"


# --- one identifier --------------------------------------------------------------------------


def _shown(value):
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _check_id(what, value, allowed):
    if not value:
        return f"{what} is empty"
    if len(value) > MAX_ID_LENGTH:
        return (
            f"{what} {_shown(value)} is {len(value)} characters long; "
            f"Azure allows at most {MAX_ID_LENGTH}"
        )
    bad = list(dict.fromkeys(char for char in value if char not in allowed))
    if bad:
        return f"{what} {_shown(value)} has characters Azure does not allow: " + ", ".join(
            repr(char) for char in bad
        )
    return ""


def check_registration_id(value):
    """Why ``value`` cannot be a DPS registration ID, or "" when it can."""
    return _check_id("registration ID", value, REGISTRATION_ID_CHARS)


def check_device_id(value):
    """Why ``value`` cannot be an IoT Hub device ID, or "" when it can."""
    return _check_id("device ID", value, DEVICE_ID_CHARS)


def check_hub(value, hubs):
    """Why ``value`` is not a hub the portal may call, or "" when it is one."""
    if value.lower() in hubs:
        return ""
    if not hubs:
        return f"hub {_shown(value)} is not configured (no IoT hubs are configured)"
    return f"hub {_shown(value)} is not configured; configured hubs: {', '.join(sorted(hubs))}"


def check_entry(registration_id, device_id, hub, hubs):
    """Why this combination is not a valid identifier, or "" when it is."""
    if not (registration_id or device_id or hub):
        return "give a registration ID, or a device ID and its hub"
    if device_id and not hub:
        return f"device ID {_shown(device_id)} needs its hub"
    if hub and not device_id:
        return f"hub {_shown(hub)} is given without a device ID"
    problems = []
    if registration_id:
        problems.append(check_registration_id(registration_id))
    if device_id:
        problems += [check_device_id(device_id), check_hub(hub, hubs)]
    return "; ".join(problem for problem in problems if problem)


# --- lists -----------------------------------------------------------------------------------


def collect(entries, hubs):
    """Check ``(line, registration_id, device_id, hub)`` entries; collapse duplicates.

    Stops reading once the list is over the limit, so an enormous list costs little.
    """
    result = IdentifierList()
    seen = set()
    for line, registration_id, device_id, hub in entries:
        error = check_entry(registration_id, device_id, hub, hubs)
        if error:
            result.add_error(line, error)
            continue
        identifier = Identifier(line, registration_id, device_id, hub.lower())
        if identifier.key in seen:
            result.duplicate_lines.append(line)
            continue
        seen.add(identifier.key)
        result.identifiers.append(identifier)
        if len(result.identifiers) > MAX_IDENTIFIERS:
            result.problem = (
                f"More than {MAX_IDENTIFIERS:,} identifiers: one request may name at most "
                f"{MAX_IDENTIFIERS:,}. Split the list into several requests."
            )
            return result
    if not result.identifiers and not result.error_count:
        result.problem = "No identifiers given: name at least one device."
    return result


def _pasted_entries(text):
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if "@" in line:
            # Registration IDs cannot hold "@", device IDs can: the hub is after the last one.
            device_id, hub = line.rsplit("@", 1)
            yield number, "", device_id.strip(), hub.strip()
        else:
            yield number, line, "", ""


def parse_pasted(text, hubs):
    """Read identifiers pasted one per line (``registration-id`` or ``device-id@hub-host``)."""
    return collect(_pasted_entries(text), hubs)


def _csv_rows(reader, columns):
    start = reader.line_num + 1  # a quoted field may span lines: report where a row starts
    for row in reader:
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in columns.items()}
        yield (
            line,
            cells.get("registration_id", ""),
            cells.get("device_id", ""),
            cells.get("hub", ""),
        )


def parse_csv(data, hubs):
    """Read a CSV file (bytes) with a header line naming registration_id, device_id, hub.

    UTF-8 with or without a byte-order mark, CRLF or LF line ends, quoted fields, and the
    semicolon separator some spreadsheet locales write are all accepted.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        return IdentifierList(problem=_too_big(len(data)))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return IdentifierList(
            problem=f"The file is not UTF-8 text (byte {exc.start + 1}); save it as “CSV UTF-8”."
        )
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return IdentifierList(problem="The file is empty.")
        names = [cell.strip().lower() for cell in header]
        columns = {name: names.index(name) for name in CSV_COLUMNS if name in names}
        if "registration_id" not in columns and not {"device_id", "hub"} <= columns.keys():
            return IdentifierList(
                problem=(
                    "The first line of the file must name the columns: registration_id, "
                    "or device_id and hub (or all three). "
                    f"It names: {', '.join(name for name in names if name) or 'nothing'}."
                )
            )
        return collect(_csv_rows(reader, columns), hubs)
    except csv.Error as exc:
        return IdentifierList(problem=f"Line {reader.line_num}: the file is not valid CSV ({exc}).")


def _too_big(size):
    return (
        f"The file is {size / 1024 / 1024:.1f} MB; "
        f"the limit is {MAX_UPLOAD_BYTES // 1024 // 1024} MB."
    )


def check_upload_size(size):
    """Why an upload of ``size`` bytes is refused (before reading it), or ""."""
    return _too_big(size) if size > MAX_UPLOAD_BYTES else ""


# --- the other fields ------------------------------------------------------------------------


def check_received_at(received, today=None):
    """Why ``received`` cannot be the date the request was received, or ""."""
    today = today or timezone.localdate()
    if received > today:
        return "The received date cannot be in the future."
    earliest = regulations.add_months(today, -12)
    if received < earliest:
        return (
            f"The received date is more than a year ago (before {earliest.isoformat()}); "
            "check the date."
        )
    return ""


def check_subject_reference(value):
    """Why ``value`` is not a usable subject reference, or ""."""
    if not value.strip():
        return "A subject reference (a ticket number or pseudonym) is required."
    if len(value) > 200:
        return f"The subject reference is {len(value)} characters long; the limit is 200."
    if _EMAIL.search(value):
        return "Use a ticket number or pseudonym, not an email address."
    return ""


# --- creation --------------------------------------------------------------------------------


def create_request(
    *,
    user,
    kind,
    regulation,
    received_at,
    subject_reference,
    identifiers,
    block_reprovisioning,
    via="form",
):
    """Store a checked request as a draft with its identifiers and audit event; one transaction.

    ``identifiers`` are ``Identifier`` values (already checked, duplicates collapsed).
    """
    if not isinstance(received_at, date):
        raise TypeError("received_at must be a date")
    with transaction.atomic():
        data_request = DataRequest.objects.create(
            reference=ReferenceCounter.next_reference(received_at.year),
            kind=kind,
            regulation=regulation,
            received_at=received_at,
            due_at=regulations.due_date(regulation, received_at),
            subject_reference=subject_reference.strip(),
            # Blocking re-provisioning is a step of erasure; an export never does it.
            block_reprovisioning=bool(block_reprovisioning) and kind != Kind.EXPORT,
            status=Status.DRAFT,
            created_by=user,
            created_via=via,
        )
        RequestIdentifier.objects.bulk_create(
            (
                RequestIdentifier(
                    request=data_request,
                    line=identifier.line,
                    registration_id=identifier.registration_id,
                    device_id=identifier.device_id,
                    hub=identifier.hub,
                )
                for identifier in identifiers
            ),
            batch_size=1000,
        )
        # Counts only: identifiers and the subject reference stay out of the audit trail.
        AuditEvent.record(
            "request_created",
            actor=user,
            request=data_request,
            via=via,
            identifiers=len(identifiers),
            kind=kind,
            regulation=regulation,
        )
    return data_request
