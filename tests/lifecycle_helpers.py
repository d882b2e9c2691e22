"""Building requests for tests without going through the intake form."""

import re

from django.utils import timezone

from requests_app.models import DataRequest, ReferenceCounter, RequestIdentifier
from requests_app.models.requests import due_date


def make_request(officer, ids, kind="export", regulation="gdpr", block=True, hub_devices=()):
    today = timezone.localdate()
    request = DataRequest.objects.create(
        reference=ReferenceCounter.next_reference(today.year),
        kind=kind,
        regulation=regulation,
        received_at=today,
        due_at=due_date(regulation, today),
        subject_reference="TICKET-1",
        block_reprovisioning=block,
        created_by=officer,
    )
    line = 0
    for line, registration_id in enumerate(ids, start=1):
        RequestIdentifier.objects.create(
            request=request, line=line, registration_id=registration_id
        )
    for offset, (device_id, hub) in enumerate(hub_devices, start=line + 1):
        RequestIdentifier.objects.create(request=request, line=offset, device_id=device_id, hub=hub)
    return request


def approval_links(outbox, username=None):
    """Approval URLs (path only) from the emails in Django's locmem outbox."""
    links = []
    for message in outbox:
        if username and not message.to[0].startswith(username):
            continue
        found = re.search(r"http://testserver(/approve/[^/\s]+/)", message.body)
        if found:
            links.append(found.group(1))
    return links
