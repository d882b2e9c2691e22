"""A new request as the API takes it: the ``NewRequest`` schema, validated through the rules
the intake form uses (``requests_app.intake.rules``) and answering in the API's words: every
problem is a sentence, by field and, for identifiers, by index (counted from 0).
"""

import re
import string
from datetime import date
from typing import Annotated

from django.utils import timezone
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from requests_app import models
from requests_app.api.schemas import KindCode, RegulationCode, checked_by, problem, said
from requests_app.discovery import keys as subject_keys
from requests_app.intake import rules as intake

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SUBJECT_MAX_LENGTH = models.DataRequest._meta.get_field("subject_reference").max_length


def _id_pattern(allowed):
    """A JSON Schema pattern for strings made of the characters of ``allowed`` only (which
    holds every ASCII letter and digit, as Azure's ID rules do)."""
    alphanumeric = set(string.ascii_letters + string.digits)
    specials = "".join(sorted(allowed - alphanumeric)).replace("-", r"\-")
    return f"^[A-Za-z0-9{specials}]+$"


def _id_field(allowed):
    # Documented, and checked by intake's rules (whose messages name the offending characters).
    extra = {"maxLength": intake.MAX_ID_LENGTH, "pattern": _id_pattern(allowed)}
    return Field(None, json_schema_extra=extra)


class Identifier(BaseModel):
    """A DPS registration ID (letters, digits and - . _ :), or a device ID and the configured
    IoT hub it is in, or all three."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": ["registration_id"]}, {"required": ["device_id", "hub"]}]
        },
    )

    registration_id: str | None = _id_field(intake.REGISTRATION_ID_CHARS)
    device_id: str | None = _id_field(intake.DEVICE_ID_CHARS)
    hub: str | None = Field(None, examples=["my-hub.azure-devices.net"])


IDENTIFIER = TypeAdapter(Identifier)


def _item_problem(errors):
    """What is wrong with one item of ``identifiers``, from its validation errors."""
    first = min(errors, key=lambda error: (error["type"] != "extra_forbidden", error["loc"]))
    if first["type"] == "model_type":
        return "must be an object"
    if first["type"] == "extra_forbidden":
        return f"unknown field {first['loc'][0]!r}"
    return f"{first['loc'][0]} must be a string"


def _entries(items, problems):
    """(line, registration_id, device_id, hub) per well-formed item; others go to problems."""
    for index, item in enumerate(items):
        try:
            entry = IDENTIFIER.validate_python(item)
        except ValidationError as exc:
            problems.append({"index": index, "error": _item_problem(exc.errors())})
            continue
        yield (
            index + 1,
            (entry.registration_id or "").strip(),
            (entry.device_id or "").strip(),
            (entry.hub or "").strip(),
        )


def _identifier_list(items, handler):
    """``identifiers`` → an ``intake.IdentifierList`` (checked by intake's rules, duplicates
    collapsed), or one error carrying every problem by index (counted from 0)."""
    if not isinstance(items, list) or not items:
        raise problem("required: a list of at least one identifier")
    if len(items) > intake.MAX_IDENTIFIERS:
        limit = intake.MAX_IDENTIFIERS
        raise problem(f"{len(items):,} identifiers; one request may name at most {limit:,}")
    problems = []
    parsed = intake.collect(_entries(items, problems), intake.configured_hub_names())
    problems += [{"index": line - 1, "error": message} for line, message in parsed.errors]
    problems.sort(key=lambda found: found["index"])
    summary = ""
    if parsed.problem and not problems:
        summary = parsed.problem
    elif parsed.error_count > len(parsed.errors):
        summary = (
            f"{parsed.error_count:,} identifiers are invalid; the first "
            f"{len(parsed.errors)} are listed"
        )
    if problems or summary:
        raise PydanticCustomError(
            "identifiers", "{message}", {"message": summary, "problems": problems}
        )
    return parsed


def _subject_keys(value):
    """``subject_keys`` → the checked keys, duplicates merged; each problem names its index."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
        raise problem('must be a list of strings such as ["4711"]')
    keys, problems = [], []
    for index, key in enumerate(value):
        why = subject_keys.check_key(key)
        if why:
            problems.append(f"index {index}: the key {subject_keys.shown(key)} {why}")
        elif key not in keys:
            keys.append(key)
    if len(keys) > subject_keys.MAX_KEYS:
        problems.append(f"{len(keys)} keys: one search takes at most {subject_keys.MAX_KEYS}")
    if problems:
        raise problem("; ".join(problems))
    return keys


def _received_at(value):
    if value is None:
        return timezone.localdate()
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise problem("must be a date as YYYY-MM-DD")


class NewRequest(BaseModel):
    """A request to create: nothing is stored unless all of it is valid."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "erasure",
                    "regulation": "gdpr",
                    "subject_reference": "JIRA-123",
                    "identifiers": [{"registration_id": "sensor-0042"}],
                }
            ]
        },
    )

    kind: KindCode
    regulation: RegulationCode
    received_at: Annotated[
        date | None, BeforeValidator(_received_at), checked_by(intake.check_received_at)
    ] = Field(
        default_factory=timezone.localdate,
        description="Default today; not in the future, not over a year ago",
    )
    subject_reference: Annotated[
        str,
        said("required: a ticket number or pseudonym"),
        checked_by(intake.check_subject_reference),
    ] = Field(
        description="A ticket number or pseudonym; no personal data",
        json_schema_extra={"minLength": 1, "maxLength": SUBJECT_MAX_LENGTH},
    )
    # Validated into an intake.IdentifierList (see _identifier_list). Optional only when
    # subject_keys are given (the view checks that one of the two is).
    identifiers: Annotated[
        list[Identifier] | None,
        Field(min_length=1, max_length=intake.MAX_IDENTIFIERS),
        WrapValidator(_identifier_list),
    ] = None
    subject_keys: Annotated[list[str] | None, BeforeValidator(_subject_keys)] = Field(
        None,
        max_length=subject_keys.MAX_KEYS,
        description=(
            "The data subject's keys (a customer number, an email address) to find their "
            "devices by the owner paths of the targets file; the officer confirms the devices "
            "found in the portal. No quotes, backslashes or invisible characters."
        ),
    )
    block_reprovisioning: Annotated[bool, Strict(), said("must be true or false")] = Field(
        True, description="Erasure only; always false for an export"
    )


MISSING = {
    "subject_reference": "required: a ticket number or pseudonym",
    "identifiers": "required: a list of at least one identifier, or subject_keys",
}


def invalid_fields(errors):
    """``(fields, identifiers)``: the problems of a create body by field and by identifier
    index, from its validation errors (each at ``loc[-1]``, a field of NewRequest)."""
    fields, identifiers = {}, []
    for error in errors:
        name = error["loc"][-1]
        if error["type"] == "identifiers":
            identifiers = error["ctx"]["problems"]
            if error["ctx"]["message"]:
                fields[name] = [error["ctx"]["message"]]
        elif error["type"] == "missing":
            fields[name] = [MISSING.get(name, "required")]
        elif error["type"] == "extra_forbidden":
            fields[name] = ["unknown field"]
        else:
            fields[name] = [error["msg"]]
    return fields, identifiers
