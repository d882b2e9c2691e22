"""Dev mode only: the simulator's sample identifiers, offered on the intake form.

``make run`` (the devstack command) asks the simulator once at start what it holds and writes
``var/demo/samples.json``; the web process reads that file (it never calls the simulator or
Azure itself). The lists reflect the simulator's state at start: devices erased since then are
still listed until the next ``make run``.
"""

import json
import urllib.request
from pathlib import Path

from django.conf import settings

SHOWN_PER_GROUP = 6
# (sample list in /_sim/samples, label, how the identifier is written on the form)
GROUPS = [
    ("individual_symmetric", "Individually enrolled (symmetric key)", "registration"),
    ("individual_x509", "Individually enrolled (X.509)", "registration"),
    ("individual_tpm", "Individually enrolled (TPM)", "registration"),
    ("group_provisioned", "Provisioned through an enrollment group", "registration"),
    ("with_modules", "Devices with modules", "registration"),
    ("hub_only", "In a hub only, never through DPS", "device@hub"),
    ("never_provisioned", "Enrolled, never provisioned", "registration"),
    ("other_hub", "Assigned to a hub the portal is not configured for", "registration"),
]


def _get(url):
    # The dev simulator at http://127.0.0.1:<port> that devstack started: no other scheme.
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # nosec B310
        return json.load(response)


def write(path, simulator_url):
    """Ask the simulator (running at ``simulator_url``) and write the groups to ``path``."""
    samples = _get(f"{simulator_url}/_sim/samples")
    state = _get(f"{simulator_url}/_sim/state")
    hub_of = {
        device["deviceId"]: host for host, hub in state["hubs"].items() for device in hub["devices"]
    }
    present = set(hub_of) | {
        e["registrationId"] for dps in state["dps"].values() for e in dps["enrollments"]
    }
    groups = []
    for key, label, form in GROUPS:
        ids = [i for i in samples.get(key, []) if i in present or i in hub_of]
        if form == "device@hub":
            ids = [f"{i}@{hub_of[i]}" for i in ids if i in hub_of]
        groups.append({"label": label, "identifiers": ids[:SHOWN_PER_GROUP]})
    Path(path).write_text(json.dumps(groups, indent=1))


def read():
    """The groups for the intake form, or [] outside dev mode or before the file exists."""
    path = settings.DSR_DEV_SAMPLES
    if not (settings.DEBUG and path):
        return []
    try:
        return [g for g in json.loads(Path(path).read_text()) if g["identifiers"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
