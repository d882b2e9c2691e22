"""Dates and times as the portal writes them: ISO 8601, with the empty value said by the caller
(None in JSON, "" in a CSV cell, "-" in a PDF), never guessed."""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone


def iso(value: date | None, empty: str | None = None) -> str | None:
    """A date or datetime as ISO 8601 text (as stored, time zone included); ``empty`` for
    none."""
    return value.isoformat() if value else empty


def local_time(value: datetime | None, empty: str = "-") -> str:
    """A datetime in the portal's time zone, to the second, for people."""
    return timezone.localtime(value).isoformat(timespec="seconds") if value else empty


def day(value: object) -> str | None:
    """The YYYY-MM-DD day of a date, a datetime or their ISO text; None when it is none of
    these (only a well-formed date is ever copied from text)."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    for parse in (date.fromisoformat, lambda text: datetime.fromisoformat(text).date()):
        try:
            return parse(str(value)).isoformat()
        except ValueError:
            continue
    return None
