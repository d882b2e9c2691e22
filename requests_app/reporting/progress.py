"""How far a request's plan has run: the numbers the page, the API and emails share, and the
counts of operations by state they (and the plan page) are made of."""

from django.db.models import Count, Q

from requests_app.jobs.operations import FINISHED_STATES
from requests_app.models import Operation

State = Operation.State


def state_counts(prefix=""):
    """Count annotations of operations by state, for ``aggregate`` or ``annotate``: over
    Operation rows, or with ``prefix="operations__"`` over each device's operations."""
    field = prefix.removesuffix("__") or "id"

    def count(**where):
        return Count(field, filter=Q(**{prefix + key: value for key, value in where.items()}))

    return {
        "total": Count(field),
        "finished": count(state__in=FINISHED_STATES),
        "done": count(state=State.DONE),
        "absent": count(state=State.ALREADY_ABSENT),
        "failed": count(state=State.FAILED),
        "running": count(state=State.RUNNING),
        "skipped": count(state=State.SKIPPED),
    }


def progress_of(data_request):
    counts = data_request.operations.aggregate(**state_counts())
    current = (
        data_request.operations.filter(state__in=[State.RUNNING, State.PENDING])
        .select_related("device")
        .order_by("seq")
        .first()
    )
    total = counts["total"]
    return {
        "done": counts["finished"],
        "total": total,
        "failed": counts["failed"],
        "percent": round(100 * counts["finished"] / total) if total else 0,
        "current_device": current.device.label if current else "",
        "left": _left(data_request) if counts["finished"] < total else "",
    }


def _left(data_request):
    """ "about 12 min left at Azure's throttles": the projection (``jobs.cost``) of what is still
    to run, so the page shows progress against it."""
    from requests_app.jobs.cost import duration_words, plan_cost

    remaining = plan_cost(data_request, remaining=True)
    if remaining.slowest is None:
        return ""
    return f"{duration_words(remaining.seconds)} left at Azure's throttles"
