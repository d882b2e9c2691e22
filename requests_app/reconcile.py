"""Periodic recovery and reminders, run by the scheduler."""

import logging

log = logging.getLogger(__name__)


def reconcile():
    """Re-enqueue work the database says is left (filled in by the fulfilment module)."""
    from requests_app import fulfilment_hooks

    return fulfilment_hooks.reconcile()


def send_reminders():
    from requests_app import fulfilment_hooks

    return fulfilment_hooks.send_reminders()
