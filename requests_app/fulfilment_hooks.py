"""Entry points the scheduler calls; the lifecycle and fulfilment modules provide the work."""


def reconcile():
    return 0


def send_reminders():
    return 0
