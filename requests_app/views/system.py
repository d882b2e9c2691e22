"""Views that are not about one request: health, the dev outbox."""

from django.conf import settings
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from requests_app.models import OutboxMessage


def _database_status():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:  # any driver error means "not answering"
        return f"error: {exc.__class__.__name__}"


def _redis_status():
    if not settings.REDIS_URL:
        return "error: REDIS_URL is not set"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        client.ping()
        client.close()
        return "ok"
    except redis.RedisError as exc:
        return f"error: {exc.__class__.__name__}"


@require_GET
@never_cache
def healthz(request):
    status = {"database": _database_status(), "redis": _redis_status()}
    healthy = all(value == "ok" for value in status.values())
    return JsonResponse(status, status=200 if healthy else 503)


def _outbox_enabled():
    if not settings.DSR_DEV_OUTBOX:
        raise Http404


def outbox(request):
    _outbox_enabled()
    return render(
        request, "requests_app/outbox.html", {"messages_list": OutboxMessage.objects.all()[:200]}
    )


def outbox_message(request, pk):
    _outbox_enabled()
    message = get_object_or_404(OutboxMessage, pk=pk)
    return render(request, "requests_app/outbox_message.html", {"message": message})
