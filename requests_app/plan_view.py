"""The plan as a person reads it: one table per device with readable operation names, numbered
within the device, each device's outcome, tenses that follow the request's state, and for large
plans a summary by operation and hub with the devices 50 to a page.

``build(request, params)`` makes a ``PlanView`` in a fixed number of queries whatever the plan's
size (devices with their operation counts, the summary, one page of devices, their operations).
Shared by the request page and the approval page (``templates/requests_app/_plan.html``).
"""

from dataclasses import dataclass, field

from django.core.paginator import Paginator
from django.db.models import Count, Q

from requests_app.models import Operation, PlannedDevice, Status
from requests_app.models.requests import FINAL_STATUSES
from requests_app.timeline import short_host

DEVICES_PER_PAGE = 50
# Up to this many devices the plan needs no summary table, nor the device search.
SMALL_PLAN = 10
# Up to this many devices every device's table is open; beyond, only the ones that need a look
# (failed, and on small plans the ones running now).
OPEN_ALL = 3

State = Operation.State
FINISHED = (State.DONE, State.ALREADY_ABSENT, State.SKIPPED)

# action → (name, kind). The kind says how a finished operation reads: "read" (export),
# "delete", "block" (the disabled enrollment that keeps a group device out), "verify".
OPERATIONS = {
    "dps.get_enrollment": ("Read the DPS enrollment", "read"),
    "dps.get_enrollment_group": ("Read the enrollment group", "read"),
    "dps.get_registration": ("Read the DPS registration record", "read"),
    "hub.get_device": ("Read the hub device", "read"),
    "hub.get_twin": ("Read the device twin", "read"),
    "hub.get_module": ("Read module {module} and its twin", "read"),
    "dps.delete_enrollment": ("Delete the DPS enrollment", "delete"),
    "dps.block_reprovisioning": ("Add a disabled enrollment to stop re-provisioning", "block"),
    "dps.delete_registration": ("Delete the DPS registration record", "delete"),
    "hub.delete_module": ("Delete module {module}", "delete"),
    "hub.delete_device": ("Delete the hub device (and its twin)", "delete"),
    "verify.enrollment_absent": ("Check the DPS enrollment is gone", "verify"),
    "verify.enrollment_disabled": ("Check the enrollment is disabled", "verify"),
    "verify.registration_absent": ("Check the registration record is gone", "verify"),
    "verify.module_absent": ("Check module {module} is gone", "verify"),
    "verify.device_absent": ("Check the hub device is gone", "verify"),
}
ACTION_ORDER = {action: index for index, action in enumerate(OPERATIONS)}
# For the summary table, where modules are counted together.
SUMMARY_NAMES = {
    "hub.get_module": "Read the modules and their twins",
    "hub.delete_module": "Delete the modules",
    "verify.module_absent": "Check the modules are gone",
}

DONE_WORDS = {
    "read": "Read",
    "delete": "Deleted",
    "block": "Disabled enrollment in place",
    "verify": "Verified absent",
}
ABSENT_WORDS = {"read": "Not present any more", "delete": "Already absent"}

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


def operation_name(action, module_id=""):
    name = OPERATIONS.get(action, (action.replace("_", " ").replace(".", ": "), ""))[0]
    return name.format(module=module_id or "?")


def operation_result(op, request_status):
    """What happened to one operation, in the tense of its state and the request's."""
    kind = OPERATIONS.get(op.action, ("", "read"))[1]
    if op.state == State.DONE:
        if op.action == "verify.enrollment_disabled":
            return "Verified disabled"
        return DONE_WORDS.get(kind, "Done")
    if op.state == State.ALREADY_ABSENT:
        return ABSENT_WORDS.get(kind, "Already absent")
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


def device_outcome(counts, request):
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
        elif not request.includes_erasure:
            key = "exported"
        elif counts["erasure"] and counts["erasure_absent"] == counts["erasure"]:
            key = "already_absent"
        else:
            key = "exported_erased" if request.includes_export else "erased"
    elif counts["finished"] or counts["running"]:
        key = "running"
    elif request.status in FINAL_STATUSES:
        key = "not_run"
    elif device["state"] == PlannedDevice.State.UNREACHABLE:
        key = "unreachable"
    else:
        key = "planned"
    words, tone = OUTCOMES[key]
    if key == "running":
        verb = "stopped" if request.status == Status.FAILED else "in progress"
        words = f"{verb}: {counts['finished']} of {counts['total']} done"
    if key == "planned":
        words = _planned_words(request)
    return key, words, tone


def _planned_words(request):
    if request.includes_export and request.includes_erasure:
        return "will be exported, then deleted"
    return "will be deleted" if request.includes_erasure else "will be exported"


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
    request: object
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


def _device_counts(request):
    """Every device (id, state, position) with its operation counts: one grouped query."""
    return list(
        PlannedDevice.objects.filter(request=request)
        .order_by("position")
        .values("id", "state", "position", "registration_id", "device_id")
        .annotate(
            total=Count("operations"),
            finished=Count("operations", filter=Q(operations__state__in=FINISHED)),
            failed=Count("operations", filter=Q(operations__state=State.FAILED)),
            running=Count("operations", filter=Q(operations__state=State.RUNNING)),
            skipped=Count("operations", filter=Q(operations__state=State.SKIPPED)),
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


def _summary(request):
    """Counts per phase, operation and host: one grouped query."""
    rows = (
        Operation.objects.filter(request=request)
        .order_by()
        .values("phase", "action", "host")
        .annotate(
            total=Count("id"),
            finished=Count("id", filter=Q(state__in=FINISHED)),
            done=Count("id", filter=Q(state=State.DONE)),
            absent=Count("id", filter=Q(state=State.ALREADY_ABSENT)),
            failed=Count("id", filter=Q(state=State.FAILED)),
            skipped=Count("id", filter=Q(state=State.SKIPPED)),
        )
    )
    phases = {}
    for row in rows:
        row["name"] = SUMMARY_NAMES.get(row["action"]) or operation_name(row["action"], "")
        row["host_name"] = short_host(row["host"])
        row["to_do"] = row["total"] - row["finished"] - row["failed"]
        phases.setdefault(row["phase"], []).append(row)
    result = []
    for phase in sorted(phases, key=lambda p: PHASE_ORDER.get(p, 9)):
        members = sorted(
            phases[phase], key=lambda r: (ACTION_ORDER.get(r["action"], 99), r["host_name"])
        )
        total = sum(r["total"] for r in members)
        finished = sum(r["finished"] for r in members)
        result.append(
            {
                "phase": phase,
                "heading": phase_heading(phase, total, finished, request.status),
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


def build(request, params=None, per_page=DEVICES_PER_PAGE):
    """The plan of ``request`` for one page of devices; ``params`` is the query string
    (``devices`` = page number, ``outcome`` = outcome filter, ``device`` = search text)."""
    params = params or {}
    counts = _device_counts(request)
    tally = {}
    outcome_of = {}
    for row in counts:
        outcome_of[row["id"]] = device_outcome(row, request)
        key = outcome_of[row["id"]][0]
        tally[key] = tally.get(key, 0) + 1
    outcome_filter = params.get("outcome", "")
    if outcome_filter not in OUTCOMES:
        outcome_filter = ""
    search = (params.get("device") or "").strip()[:128]
    wanted = [
        row["id"]
        for row in counts
        if (not outcome_filter or outcome_of[row["id"]][0] == outcome_filter)
        and (
            not search
            or search.lower() in row["registration_id"].lower()
            or search.lower() in row["device_id"].lower()
        )
    ]
    page = None
    devices = []
    if wanted:
        page = Paginator(wanted, per_page).get_page(_page_number(params.get("devices")))
        ids = list(page.object_list)
        by_id = {d.pk: d for d in PlannedDevice.objects.filter(pk__in=ids)}
        views = {}
        small = len(counts) <= SMALL_PLAN
        for pk in ids:
            key, words, tone = outcome_of[pk]
            opened = (
                len(counts) <= OPEN_ALL
                or key in ("failed", "unreachable")
                or (small and key == "running")
            )
            views[pk] = DeviceView(by_id[pk], key, words, tone, opened)
        ops = Operation.objects.filter(device_id__in=ids).order_by("device_id", "seq")
        for op in ops:
            view = views[op.device_id]
            view.rows.append(
                Row(
                    number=len(view.rows) + 1,
                    op=op,
                    name=operation_name(op.action, op.module_id),
                    call=f"{op.method} {short_host(op.host)}{op.path}",
                    result=operation_result(op, request.status),
                    tone=result_tone(op.state),
                )
            )
        devices = [views[pk] for pk in ids]
    summary = _summary(request) if counts else []
    return PlanView(
        request=request,
        ready=bool(counts),
        device_total=len(counts),
        operation_total=sum(row["total"] for row in counts),
        small=len(counts) <= SMALL_PLAN,
        outcomes=[
            (key, OUTCOMES[key][0] if key != "planned" else _planned_words(request), tone, n)
            for key, (_, tone) in OUTCOMES.items()
            if (n := tally.get(key))
        ],
        phases=summary,
        page=page,
        devices=devices,
        outcome_filter=outcome_filter,
        search=search,
        matching=len(wanted),
    )
