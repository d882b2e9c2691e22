"""How far a request's plan has run: the numbers the page, the API and emails share."""

from django.db.models import Count, Q

from requests_app.models import Operation

FINISHED = [Operation.State.DONE, Operation.State.ALREADY_ABSENT, Operation.State.SKIPPED]


def progress_of(request):
    counts = request.operations.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(state__in=FINISHED)),
        failed=Count("id", filter=Q(state=Operation.State.FAILED)),
    )
    current = (
        request.operations.filter(state__in=[Operation.State.RUNNING, Operation.State.PENDING])
        .select_related("device")
        .order_by("seq")
        .first()
    )
    total = counts["total"]
    return {
        "done": counts["done"],
        "total": total,
        "failed": counts["failed"],
        "percent": round(100 * counts["done"] / total) if total else 0,
        "current_device": current.device.label if current else "",
    }
