"""The plan as a person reads it: one table per device with readable operation names, numbered
within the device, each device's outcome, tenses that follow the request's state, and for large
plans a summary by operation and hub with the devices 50 to a page.

``build(request, params)`` makes a ``PlanView`` in a fixed number of queries whatever the plan's
size (devices with their operation counts, the summary, one page of devices, their operations).
Shared by the request page and the approval page (``templates/requests_app/_plan.html``).
"""

from collections import Counter
from dataclasses import dataclass, field

from django.core.paginator import Paginator
from django.db.models import Count, Q

from requests_app.jobs.operations import (
    OPERATIONS,
    operation_name,
    outcome_for,
    plan_order,
)
from requests_app.models import Operation, PlannedDevice, Status
from requests_app.models.requests import FINAL_STATUSES
from requests_app.reporting.progress import state_counts
from requests_app.reporting.timeline import short_host

DEVICES_PER_PAGE = 50
# Up to this many devices the plan needs no summary table, nor the device search.
SMALL_PLAN = 10
# Up to this many devices every device's table is open; beyond, only the ones that need a look
# (failed, and on small plans the ones running now).
OPEN_ALL = 3

State = Operation.State

# phase → (future, in progress, past, not run)
PHASES = {
    Operation.Phase.EXPORT: ("Will be read (export)", "Reading (export)", "Read (export)"),
    Operation.Phase.ERASURE: (
        "Will be deleted, in this order",
        "Deleting",
        "Deleted",
    ),
    Operation.Phase.VERIFY: (
        "Will be verified afterwards (must be absent)",
        "Verifying",
        "Verified",
    ),
}
PHASE_ORDER = {phase: index for index, phase in enumerate(PHASES)}

OUTCOMES = {
    # outcome → (words, css tone)
    "exported": ("exported", "ok"),
    "erased": ("deleted & verified absent", "ok"),
    "exported_erased": ("exported, deleted & verified absent", "ok"),
    "already_absent": ("already absent", "ok"),
    "failed": ("failed", "bad"),
    "not_found": ("found nowhere", "muted"),
    "unreachable": ("unreachable: handle by hand", "warn"),
    "skipped": ("partly skipped", "warn"),
    "running": ("in progress", "live"),
    "planned": ("planned", ""),
    "not_run": ("not run", "muted"),
}


def operation_result(op, request_status):
    """What happened to one operation, in the tense of its state and the request's."""
    if op.state == State.DONE:
        return outcome_for(op.action).done
    if op.state == State.ALREADY_ABSENT:
        return outcome_for(op.action).absent
    if op.state == State.FAILED:
        return "Failed"
    if op.state == State.SKIPPED:
        return "Skipped: not a configured target"
    if op.state == State.RUNNING:
        return "Running…"
    if request_status in FINAL_STATUSES:
        return "Not run"
    return "To do" if request_status in (Status.RUNNING, Status.FAILED) else "Planned"


def result_tone(state):
    return {
        State.DONE: "ok",
        State.ALREADY_ABSENT: "ok",
        State.FAILED: "bad",
        State.SKIPPED: "warn",
        State.RUNNING: "live",
    }.get(state, "")


def phase_heading(phase, total, finished, request_status):
    future, ongoing, past = PHASES[phase]
    if total and finished == total:
        return past
    if request_status in FINAL_STATUSES and not finished:
        return future.replace("Will be", "Would have been")
    if finished:
        return f"{ongoing}: {finished:,} of {total:,} done"
    return future


def device_outcome(counts, data_request):
    """(outcome key, words, tone) for one device, from its row of ``_device_counts``."""
    device = counts
    if device["state"] == PlannedDevice.State.NOT_FOUND:
        key = "not_found"
    elif counts["failed"]:
        key = "failed"
    elif device["state"] == PlannedDevice.State.UNREACHABLE and not counts["total"]:
        key = "unreachable"
    elif counts["total"] and counts["finished"] == counts["total"]:
        if device["state"] == PlannedDevice.State.UNREACHABLE:
            key = "unreachable"
        elif counts["skipped"]:
            key = "skipped"
        elif not data_request.includes_erasure:
            key = "exported"
        elif counts["erasure"] and counts["erasure_absent"] == counts["erasure"]:
            key = "already_absent"
        else:
            key = "exported_erased" if data_request.includes_export else "erased"
    elif counts["finished"] or counts["running"]:
        key = "running"
    elif data_request.status in FINAL_STATUSES:
        key = "not_run"
    elif device["state"] == PlannedDevice.State.UNREACHABLE:
        key = "unreachable"
    else:
        key = "planned"
    words, tone = OUTCOMES[key]
    if key == "running":
        verb = "stopped" if data_request.status == Status.FAILED else "in progress"
        words = f"{verb}: {counts['finished']} of {counts['total']} done"
    if key == "planned":
        words = _planned_words(data_request)
    return key, words, tone


def _planned_words(data_request):
    if data_request.includes_export and data_request.includes_erasure:
        return "will be exported, then deleted"
    return "will be deleted" if data_request.includes_erasure else "will be exported"


@dataclass
class Row:
    number: int
    op: Operation
    name: str
    call: str
    result: str
    tone: str


@dataclass
class DeviceView:
    device: PlannedDevice
    outcome: str
    outcome_words: str
    outcome_tone: str
    open: bool = False
    rows: list = field(default_factory=list)

    @property
    def label(self):
        return self.device.label

    @property
    def hub_name(self):
        return short_host(self.device.hub) if self.device.hub else ""

    @property
    def enrollment_words(self):
        d = self.device
        if d.enrollment == "individual":
            return f"individual enrollment ({d.attestation or '?'})"
        if d.enrollment == "group":
            return f"enrollment group {d.group_id}"
        return "no DPS enrollment"


@dataclass
class PlanView:
    data_request: object
    ready: bool
    device_total: int
    operation_total: int
    small: bool
    outcomes: list  # [(key, words, tone, count)] in OUTCOMES order, counts > 0
    phases: list  # [{"phase", "heading", "total", "finished", "rows": [summary rows]}]
    page: object  # a Paginator page of device pks (None when empty)
    devices: list  # [DeviceView] of the page
    outcome_filter: str
    search: str
    matching: int

    @property
    def filtered(self):
        return bool(self.outcome_filter or self.search)


def _device_counts(data_request):
    """Every device (id, state, position) with its operation counts: one grouped query."""
    return list(
        PlannedDevice.objects.filter(request=data_request)
        .order_by("position")
        .values("id", "state", "position", "registration_id", "device_id")
        .annotate(
            **state_counts("operations__"),
            erasure=Count("operations", filter=Q(operations__phase=Operation.Phase.ERASURE)),
            erasure_absent=Count(
                "operations",
                filter=Q(
                    operations__phase=Operation.Phase.ERASURE,
                    operations__state=State.ALREADY_ABSENT,
                ),
            ),
        )
    )


def _summary(data_request):
    """Counts per phase, operation and host: one grouped query."""
    rows = (
        Operation.objects.filter(request=data_request)
        .order_by()
        .values("phase", "action", "host")
        .annotate(**state_counts())
    )
    phases = {}
    for row in rows:
        entry = OPERATIONS.get(row["action"])
        row["name"] = entry.summary_name() if entry else operation_name(row["action"])
        row["host_name"] = short_host(row["host"])
        row["to_do"] = row["total"] - row["finished"] - row["failed"]
        phases.setdefault(row["phase"], []).append(row)
    result = []
    order = plan_order()
    for phase in sorted(phases, key=lambda p: PHASE_ORDER.get(p, 9)):
        members = sorted(
            phases[phase], key=lambda r: (order.get(r["action"], len(order)), r["host_name"])
        )
        total = sum(r["total"] for r in members)
        finished = sum(r["finished"] for r in members)
        result.append(
            {
                "phase": phase,
                "heading": phase_heading(phase, total, finished, data_request.status),
                "ongoing": 0 < finished < total,
                "total": total,
                "finished": finished,
                "rows": members,
            }
        )
    return result


def _page_number(value):
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def _matching(counts, outcomes, outcome_filter, search):
    """The ids of the devices that pass the outcome filter and the search, in plan order."""
    text = search.lower()
    return [
        row["id"]
        for row in counts
        if (not outcome_filter or outcomes[row["id"]][0] == outcome_filter)
        and (not text or text in row["registration_id"].lower() or text in row["device_id"].lower())
    ]


def _device_views(data_request, ids, outcomes, plan_size):
    """The DeviceViews of one page of devices, each with its rows: two queries."""
    by_id = {d.pk: d for d in PlannedDevice.objects.filter(pk__in=ids)}
    views = {}
    for pk in ids:
        key, words, tone = outcomes[pk]
        opened = (
            plan_size <= OPEN_ALL
            or key in ("failed", "unreachable")
            or (plan_size <= SMALL_PLAN and key == "running")
        )
        views[pk] = DeviceView(by_id[pk], key, words, tone, opened)
    for op in Operation.objects.filter(device_id__in=ids).order_by("device_id", "seq"):
        view = views[op.device_id]
        view.rows.append(
            Row(
                number=len(view.rows) + 1,
                op=op,
                name=operation_name(op.action, op.module_id),
                call=f"{op.method} {short_host(op.host)}{op.path}",
                result=operation_result(op, data_request.status),
                tone=result_tone(op.state),
            )
        )
    return [views[pk] for pk in ids]


def _outcome_counts(data_request, tally):
    """``[(key, words, tone, count)]`` in OUTCOMES order, for the outcomes some device has."""
    return [
        (key, OUTCOMES[key][0] if key != "planned" else _planned_words(data_request), tone, n)
        for key, (_, tone) in OUTCOMES.items()
        if (n := tally.get(key))
    ]


def build(data_request, params=None, per_page=DEVICES_PER_PAGE):
    """The plan of ``request`` for one page of devices; ``params`` is the query string
    (``devices`` = page number, ``outcome`` = outcome filter, ``device`` = search text)."""
    params = params or {}
    counts = _device_counts(data_request)
    outcomes = {row["id"]: device_outcome(row, data_request) for row in counts}
    tally = Counter(key for key, _, _ in outcomes.values())
    outcome_filter = params.get("outcome", "")
    if outcome_filter not in OUTCOMES:
        outcome_filter = ""
    search = (params.get("device") or "").strip()[:128]
    wanted = _matching(counts, outcomes, outcome_filter, search)
    page, devices = None, []
    if wanted:
        page = Paginator(wanted, per_page).get_page(_page_number(params.get("devices")))
        devices = _device_views(data_request, list(page.object_list), outcomes, len(counts))
    return PlanView(
        data_request=data_request,
        ready=bool(counts),
        device_total=len(counts),
        operation_total=sum(row["total"] for row in counts),
        small=len(counts) <= SMALL_PLAN,
        outcomes=_outcome_counts(data_request, tally),
        phases=_summary(data_request) if counts else [],
        page=page,
        devices=devices,
        outcome_filter=outcome_filter,
        search=search,
        matching=len(wanted),
    )
