"""The benchmark's data: its users and ``n`` generated requests, loaded with COPY.

The requests are received over the last ``MONTHS_BACK`` months, have 1-3 identifiers each and
approvals for the approved ones. One random generator, seeded, draws every value in a fixed
order, so a seed gives the same data (apart from the dates, which follow today).
"""

import json
import random
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

OFFICER = "bench-officer"
APPROVERS = ("bench-approver-1", "bench-approver-2", "bench-approver-3")
OTHER_OFFICERS = ("bench-officer-2", "bench-officer-3")
MONTHS_BACK = 14


# --- users ---------------------------------------------------------------------------------------
def ensure_users():
    """The benchmark's officers and approvers ({username: user}) and the password the clients
    sign in with (a new one each run, set on ``OFFICER``)."""
    from django.contrib.auth.models import Group, User

    from requests_app.access import roles

    roles.ensure_groups()
    password = secrets.token_urlsafe(16)
    users = {}
    for name, role in [
        (OFFICER, roles.OFFICER),
        *[(n, roles.OFFICER) for n in OTHER_OFFICERS],
        *[(n, roles.APPROVER) for n in APPROVERS],
    ]:
        user, _ = User.objects.get_or_create(
            username=name, defaults={"email": f"{name}@example.org"}
        )
        user.groups.add(Group.objects.get(name=role))
        users[name] = user
    officer = users[OFFICER]
    officer.set_password(password)
    officer.save(update_fields=["password"])
    return users, password


# --- random values -------------------------------------------------------------------------------
def _choose(rng, weighted):
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def _finished_status(rng, Status):
    return _choose(
        rng,
        [
            (Status.COMPLETED, 84),
            (Status.COMPLETED_WITH_ISSUES, 4),
            (Status.REJECTED, 5),
            (Status.CANCELLED, 7),
        ],
    )


def _status_for(rng, age_days, Status):
    """Old requests are almost all finished; the last two months hold the open work."""
    if age_days > 75:
        if rng.random() < 0.004:  # a few stuck ones: the overdue list is never empty
            return _choose(
                rng, [(Status.FAILED, 5), (Status.AWAITING_APPROVAL, 3), (Status.RUNNING, 2)]
            )
        return _finished_status(rng, Status)
    open_share = 0.9 if age_days < 7 else 0.5 if age_days < 30 else 0.15
    if rng.random() < open_share:
        return _choose(
            rng,
            [
                (Status.DRAFT, 8),
                (Status.PLANNING, 7),
                (Status.AWAITING_APPROVAL, 40),
                (Status.APPROVED, 10),
                (Status.RUNNING, 25),
                (Status.FAILED, 10),
            ],
        )
    return _finished_status(rng, Status)


class _Generator:
    """What every generated row draws on: the random generator, today, now and the users."""

    def __init__(self, rng, users):
        from requests_app.models import Status

        self.rng = rng
        self.today = date.today()
        self.now = datetime.now(UTC)
        self.creators = [users[OFFICER]] * 2 + [users[name] for name in OTHER_OFFICERS]
        self.approvers = [users[name] for name in APPROVERS]
        # An approval led to these: they have approved_at and approvals.
        self.approved_like = {
            Status.APPROVED,
            Status.RUNNING,
            Status.COMPLETED,
            Status.COMPLETED_WITH_ISSUES,
            Status.FAILED,
        }
        # Fulfilment began on these: they have started_at.
        self.started_like = {
            Status.RUNNING,
            Status.COMPLETED,
            Status.COMPLETED_WITH_ISSUES,
            Status.FAILED,
        }

    def at(self, day, lo_days=0, hi_days=0):
        """08:00 on ``day`` plus ``lo_days``-``hi_days`` days and up to 10 h, never after now."""
        moment = datetime.combine(day, dtime(8), tzinfo=UTC) + timedelta(
            days=self.rng.uniform(lo_days, hi_days), minutes=self.rng.randrange(600)
        )
        return min(moment, self.now)

    def received_dates(self, n):
        """``n`` days spread over the last ``MONTHS_BACK`` months, oldest first."""
        start = self.today - timedelta(days=round(MONTHS_BACK * 30.44))
        span = (self.today - start).days
        return sorted(start + timedelta(days=self.rng.randrange(span + 1)) for _ in range(n))


# --- rows ----------------------------------------------------------------------------------------
def _request_values(gen, pk, day, reference):
    """The columns of request ``pk``, received on ``day``: what was asked and how far it got."""
    from requests_app.models import Kind, Regulation, Status
    from requests_app.models.requests import due_date

    rng = gen.rng
    kind = _choose(rng, [(Kind.EXPORT, 50), (Kind.ERASURE, 35), (Kind.EXPORT_AND_ERASURE, 15)])
    regulation = _choose(rng, [(Regulation.GDPR, 70), (Regulation.CCPA, 30)])
    status = _status_for(rng, (gen.today - day).days, Status)
    created = gen.at(day)
    values = {
        "id": pk,
        "reference": reference,
        "kind": kind,
        "regulation": regulation,
        "received_at": day,
        "due_at": due_date(regulation, day),
        "subject_reference": f"TCK-{rng.randrange(10**7):07d}"
        if rng.random() < 0.7
        else f"subject-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
        "status": status,
        "created_by_id": rng.choice(gen.creators).pk,
        "created_via": "form" if rng.random() < 0.8 else "api",
        "created_at": created,
        "updated_at": created,
        "failure": {},
    }
    _add_progress(gen, day, values)
    return values


def _add_progress(gen, day, values):
    """Add the columns ``values["status"]`` implies: extension, plan, approval, start, finish
    and why it failed or stopped."""
    from requests_app.models import Status
    from requests_app.models.requests import FINAL_STATUSES, latest_extension

    rng, status, due = gen.rng, values["status"], values["due_at"]
    if rng.random() < 0.05:
        values["extended_until"] = latest_extension(values["regulation"], due)
        values["extension_reason"] = "Complex request: many devices across hubs."
        values["extension_notice_date"] = min(due, gen.today)
    if status == Status.PLANNING and rng.random() < 0.2:
        values["scoping_error"] = "Hub unreachable: timed out"
    if status not in (Status.DRAFT, Status.PLANNING) and not (
        status == Status.CANCELLED and rng.random() < 0.5
    ):
        values["plan_version"] = f"{rng.getrandbits(64):016x}"
        values["plan_ready_at"] = gen.at(day, 0, 1)
    if status in gen.approved_like:
        values["approved_at"] = gen.at(day, 1, 4)
    if status in gen.started_like:
        values["started_at"] = gen.at(day, 4, 5)
    if status in FINAL_STATUSES:
        late = rng.random() < 0.06
        effective = values.get("extended_until") or due
        budget = (effective - day).days
        done = gen.at(day, budget + 1, budget + 10) if late else gen.at(day, 2, max(3, budget - 2))
        values["completed_at"] = done
        values["updated_at"] = done
    if status == Status.FAILED:
        values["failure"] = {"code": "AzureError", "message": "429 Too Many Requests"}
    if status == Status.REJECTED:
        values["rejection_reason"] = "Identity of the requester could not be verified."
    if status == Status.CANCELLED:
        values["cancel_reason"] = "Withdrawn by the data subject."


def _identifier_values(gen, request_id, first_id):
    """1-3 identifiers of the request: a DPS registration or a device on one of 8 hubs."""
    rng = gen.rng
    identifiers = []
    for line in range(1, rng.choice((1, 1, 2, 3)) + 1):
        device = f"dev-{rng.getrandbits(40):010x}"  # drawn for both kinds: keeps the sequence
        ident = {"id": first_id + len(identifiers), "request_id": request_id, "line": line}
        if rng.random() < 0.4:
            ident["registration_id"] = f"reg-{rng.getrandbits(40):010x}"
        else:
            ident["device_id"] = device
            ident["hub"] = f"hub-{rng.randrange(8)}.azure-devices.net"
        identifiers.append(ident)
    return identifiers


def _approval_values(gen, request, first_id):
    """The approvals of ``request`` (its column values): one approver for an export, two for
    an erasure; one rejection for a rejected request; none before a decision."""
    from requests_app.models import Approval, Kind, Status

    rng, status, day = gen.rng, request["status"], request["received_at"]
    deciders = []
    if status in gen.approved_like:
        deciders = rng.sample(gen.approvers, 1 if request["kind"] == Kind.EXPORT else 2)
        decision = Approval.Decision.APPROVED
    elif status == Status.REJECTED:
        deciders = rng.sample(gen.approvers, 1)
        decision = Approval.Decision.REJECTED
    return [
        {
            "id": first_id + index,
            "request_id": request["id"],
            "approver_id": approver.pk,
            "approver_name": approver.username,
            "plan_version": request.get("plan_version", ""),
            "decision": decision,
            "via": rng.choice(("link", "portal")),
            "ip": f"10.0.0.{rng.randrange(1, 255)}",
            "user_agent": "Mozilla/5.0 (bench)",
            "created_at": request.get("approved_at") or gen.at(day, 1, 4),
        }
        for index, approver in enumerate(deciders)
    ]


def _row(model, values):
    """Every concrete column of ``model``, in ``_meta`` order: the given value, else the field's
    default (so a column added by a later migration still gets one)."""
    row = []
    for field in model._meta.concrete_fields:
        value = values[field.attname] if field.attname in values else field.get_default()
        if field.get_internal_type() == "JSONField" and value is not None:
            value = json.dumps(value)
        row.append(value)
    return row


def generate(n, users, seed=1):
    """``n`` requests with their identifiers and approvals, as COPY rows per model
    ({model: [row]}), and the last reference number given out per year ({year: number})."""
    from requests_app.models import Approval, DataRequest, RequestIdentifier

    gen = _Generator(random.Random(seed), users)
    rows = {DataRequest: [], RequestIdentifier: [], Approval: []}
    counters = {}
    for pk, day in enumerate(gen.received_dates(n), start=1):
        counters[day.year] = counters.get(day.year, 0) + 1
        reference = f"DSR-{day.year}-{counters[day.year]:04d}"
        request = _request_values(gen, pk, day, reference)
        rows[DataRequest].append(_row(DataRequest, request))
        for ident in _identifier_values(gen, pk, first_id=len(rows[RequestIdentifier]) + 1):
            rows[RequestIdentifier].append(_row(RequestIdentifier, ident))
        for approval in _approval_values(gen, request, first_id=len(rows[Approval]) + 1):
            rows[Approval].append(_row(Approval, approval))
    return rows, counters


# --- writing -------------------------------------------------------------------------------------
def _copy(cursor, model, rows):
    table = model._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in model._meta.concrete_fields)
    with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def _tables_pointing_at(target):
    """The tables of the models with a foreign key to ``target``."""
    return [
        m._meta.db_table
        for m in target._meta.apps.get_models()
        if any(
            f.is_relation and f.many_to_one and f.related_model is target
            for f in m._meta.concrete_fields
        )
    ]


def _replace_requests(rows, counters):
    """In one transaction: empty the requests and every table pointing at them, COPY ``rows``
    in, move the id sequences past them and set the reference counters."""
    from django.db import connection, transaction

    from requests_app.models import DataRequest, ReferenceCounter

    dependents = _tables_pointing_at(DataRequest)
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        tables = ", ".join(f'"{t}"' for t in [DataRequest._meta.db_table, *dependents])
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        for model, model_rows in rows.items():
            _copy(cursor, model, model_rows)
        for model in rows:
            table = model._meta.db_table
            # Table names come from the models, not from input.
            query = f"""SELECT setval(pg_get_serial_sequence('"{table}"', 'id'),
                COALESCE((SELECT MAX(id) FROM "{table}"), 0) + 1, false)"""  # noqa: S608
            cursor.execute(query)
        ReferenceCounter.objects.all().delete()
        ReferenceCounter.objects.bulk_create(
            [ReferenceCounter(year=year, last=last) for year, last in counters.items()]
        )


def load(n, users, seed=1):
    """Replace every request (and what hangs off it) with ``n`` generated ones, using COPY;
    returns the numbers of requests, identifiers and approvals."""
    from django.db import connection

    rows, counters = generate(n, users, seed)
    _replace_requests(rows, counters)
    with connection.cursor() as cursor:  # outside the transaction: VACUUM cannot run in one
        for model in rows:
            cursor.execute(f'VACUUM ANALYZE "{model._meta.db_table}"')
    return tuple(len(model_rows) for model_rows in rows.values())
