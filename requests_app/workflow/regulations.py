"""The regulation table: what each regulation the portal answers requests under asks for.

One entry per regulation, keyed by the code stored in ``DataRequest.regulation`` (a stored code
never changes). The model's choices and due dates, deadline extensions, the intake form, the
API's schema and the reports all read this table, so adding a regulation is one entry here
(and a test); nothing else names one.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import date, timedelta

NUMBERS = {1: "one", 2: "two", 3: "three"}


def add_months(day: date, months: int) -> date:
    """Same day N calendar months later, clamped to the month's end (31 Jan + 1 → 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _count(number: int, unit: str) -> str:
    return f"{NUMBERS.get(number, number)} {unit}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class Period:
    """A length of time in calendar months or in days (one of the two)."""

    months: int = 0
    days: int = 0

    def after(self, day: date) -> date:
        return add_months(day, self.months) + timedelta(days=self.days)

    def __str__(self) -> str:
        if self.months:
            return _count(self.months, "calendar month")
        return _count(self.days, "day")


@dataclass(frozen=True)
class Extension:
    """How far the due date may move (``by``, in all, beyond the original due date), in how
    many extensions (0: none), and what each must record: its reason and the date the data
    subject was told (which the regulations require within the original period)."""

    by: Period
    times: int = 1
    records: tuple[str, ...] = ("reason", "notice_date")


NO_EXTENSION = Extension(by=Period(), times=0, records=())


@dataclass(frozen=True)
class Rules:
    """One regulation: its stored code, how people see it, and its deadlines."""

    code: str  # stored in DataRequest.regulation and sent through the API: never changes
    label: str  # short, everywhere a request is shown: "GDPR"
    name: str  # in full, where there is room
    reference: str  # the provision that sets the deadlines, shown to users
    due: Period  # from the day the request was received
    extension: Extension = NO_EXTENSION

    def describe(self) -> str:
        """The deadline rule in a sentence, for the people who choose the regulation."""
        extension = self.extension
        if not extension.times:
            return f"{self.label}: {self.due} from receipt, not extendable ({self.reference})."
        often = "once" if extension.times == 1 else f"up to {extension.times} times"
        total = "" if extension.times == 1 else " in all"
        recorded = " and ".join(RECORDED[item] for item in extension.records)
        return (
            f"{self.label}: {self.due} from receipt, extendable {often} by up to "
            f"{extension.by}{total}{f', recording {recorded}' if recorded else ''} "
            f"({self.reference})."
        )


RECORDED = {"reason": "a reason", "notice_date": "the date the data subject was told"}

GDPR = Rules(
    code="gdpr",
    label="GDPR",
    name="EU General Data Protection Regulation (EU) 2016/679",
    reference="GDPR Art. 12(3)",
    due=Period(months=1),
    extension=Extension(by=Period(months=2)),
)

TABLE = {
    rules.code: rules
    for rules in (
        GDPR,
        # Retained in UK law with the GDPR's periods.
        replace(
            GDPR,
            code="uk_gdpr",
            label="UK GDPR",
            name="UK General Data Protection Regulation and Data Protection Act 2018",
            reference="UK GDPR Art. 12(3)",
        ),
        Rules(
            code="ccpa",
            label="CCPA/CPRA",
            name="California Consumer Privacy Act, as amended by the California Privacy Rights Act",
            reference="Cal. Civ. Code § 1798.130(a)(2)",
            due=Period(days=45),
            extension=Extension(by=Period(days=45)),
        ),
    )
}


def rules_for(code: str) -> Rules:
    """The entry for ``code``; KeyError names the code when there is none."""
    return TABLE[code]


def codes() -> list[str]:
    return list(TABLE)


def choices() -> list[tuple[str, str]]:
    """``(code, label)`` pairs, read afresh each time (a model field's and a form's choices)."""
    return [(rules.code, rules.label) for rules in TABLE.values()]


def due_date(code: str, received: date) -> date:
    """When a request under ``code`` received on ``received`` is due."""
    return rules_for(code).due.after(received)


def latest_extension(code: str, due: date) -> date:
    """The furthest extensions may move ``due`` (the original due date); ``due`` itself when
    the regulation allows none."""
    return rules_for(code).extension.by.after(due)
