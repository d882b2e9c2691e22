"""The portal's tables. Each module holds one concern; import models from here."""

from requests_app.models.audit import AuditEvent, AuditHead
from requests_app.models.outbox import OutboxMessage

__all__ = ["AuditEvent", "AuditHead", "OutboxMessage"]
