"""The portal's tables. Each module holds one concern; import models from here."""

from requests_app.models.accounts import ApiToken, ExternalIdentity
from requests_app.models.audit import AuditCheckpoint, AuditEvent, CheckpointDelivery
from requests_app.models.delivery import Delivery
from requests_app.models.discovery import Discovery, DiscoveryMatch
from requests_app.models.outbox import OutboxMessage
from requests_app.models.requests import (
    Approval,
    Artifact,
    DataRequest,
    IllegalTransition,
    Kind,
    Operation,
    PlannedDevice,
    ReferenceCounter,
    Regulation,
    RequestIdentifier,
    Status,
)
from requests_app.models.retention import LegalHold

__all__ = [
    "ApiToken",
    "Approval",
    "Artifact",
    "AuditCheckpoint",
    "AuditEvent",
    "CheckpointDelivery",
    "DataRequest",
    "Delivery",
    "Discovery",
    "DiscoveryMatch",
    "ExternalIdentity",
    "IllegalTransition",
    "Kind",
    "LegalHold",
    "Operation",
    "OutboxMessage",
    "PlannedDevice",
    "ReferenceCounter",
    "Regulation",
    "RequestIdentifier",
    "Status",
]
