"""An email backend for dev mode: keeps each message in the database for /dev/outbox/."""

from django.core.mail.backends.base import BaseEmailBackend


class OutboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        from requests_app.models import OutboxMessage

        for message in email_messages:
            html = ""
            for content, mimetype in getattr(message, "alternatives", []):
                if mimetype == "text/html":
                    html = content
            OutboxMessage.objects.create(
                subject=message.subject,
                from_email=message.from_email,
                to="\n".join(message.recipients()),
                text=message.body,
                html=html,
            )
        return len(email_messages)
