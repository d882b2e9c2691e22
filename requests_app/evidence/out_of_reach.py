"""Data about a device that the portal has no way to read or remove: every export archive and
every deletion certificate lists it, as "to be handled by the tenant"."""

from __future__ import annotations

NOT_REACHABLE = (
    {
        "source": "IoT Hub message routing endpoints",
        "detail": "Event Hubs, Service Bus queues and topics, and Storage containers that "
        "received device messages routed by the hub (and the built-in Event Hub-compatible "
        "endpoint while it retains messages).",
    },
    {
        "source": "Event Grid subscribers",
        "detail": "Systems subscribed to IoT Hub or DPS events through Azure Event Grid "
        "(device created, deleted, connected, telemetry) keep their own copies.",
    },
    {
        "source": "Diagnostic logs and Log Analytics",
        "detail": "Azure Monitor resource logs and diagnostic settings that sent device "
        "operations and connections to Log Analytics workspaces, Storage or Event Hubs.",
    },
    {
        "source": "Blobs from import/export jobs",
        "detail": "Storage blobs written by IoT Hub bulk import/export jobs; they can hold "
        "device identities and keys.",
    },
    {
        "source": "File upload storage",
        "detail": "Files devices uploaded through IoT Hub file upload to the linked Storage "
        "account.",
    },
)
HANDLED_BY = "to be handled by the tenant"


def not_reachable() -> list[dict[str, str]]:
    return [{**item, "handled_by": HANDLED_BY} for item in NOT_REACHABLE]
