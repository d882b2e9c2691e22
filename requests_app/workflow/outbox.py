"""An email backend for dev mode: keeps each message in the database for /dev/outbox/."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.core.mail.backends.base import BaseEmailBackend

if TYPE_CHECKING:
    from django.core.mail import EmailMessage


class OutboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        from requests_app.models import OutboxMessage

        for message in email_messages:
            html = ""
            for content, mimetype in getattr(message, "alternatives", []):
                if mimetype == "text/html":
                    html = content
            OutboxMessage.objects.create(
                subject=str(message.subject),
                from_email=message.from_email,
                to="\n".join(message.recipients()),
                text=str(message.body),
                html=html,
            )
        return len(email_messages)
