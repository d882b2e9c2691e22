"""Writing a targets file that points the portal at a running simulator.

The TOML file lists the demo DPS instance and both demo hubs (not ``other-hub``, so the portal
meets a registration whose hub is not configured), each with the owner paths the seed data
fills in. Connection strings go into ``*.connstr``
files beside it, readable by the owner only, referenced by ``connection_string_file``.
``write_entra_env`` writes the Entra sign-in settings (``entra.env``) the same way.
"""

import json
import os
from pathlib import Path

from .hosts import DPS_HOSTS, LINKED_HUBS

# Where the seeded devices record their owner (see seed.py), for finding them by owner.
OWNER_PATHS = {
    "dps": ["initialTwin.tags.customerId"],
    "hub": ["tags.customerId", "tags.owner.email", "properties.reported.ownerRef"],
}


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def write_targets(sim, path, endpoint):
    """Write the targets file at ``path`` for a simulator reachable at ``endpoint``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = []
    for section, hosts in (("dps", DPS_HOSTS), ("hub", LINKED_HUBS)):
        for host in hosts:
            secret = f"{host.split('.')[0]}.connstr"
            _write_private(path.parent / secret, sim.connection_string(host) + "\n")
            lines = [
                f"[[{section}]]",
                f'hostname = "{host}"',
                f'endpoint = "{endpoint}"',
                'auth = "sas"',
                f'connection_string_file = "{secret}"',
            ]
            lines.append(f"owner_paths = {json.dumps(OWNER_PATHS[section])}")
            if section == "hub":
                tier, units = sim.hub_tier(host)
                lines += [f'tier = "{tier}"', f"units = {units}"]
            scale = sim.faults.get("throttle_scale")
            if scale:
                # The simulator throttles at scale x Azure's rates; pace the portal to match.
                lines.append(f"rate_scale = {float(scale)}")
            blocks.append("\n".join(lines))
    header = "# Azure targets served by the local simulator (manage.py azuresim).\n\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + "\n\n".join(blocks) + "\n")
    os.replace(tmp, path)
    return path


def write_entra_env(sim, path, authority):
    """Write ``path`` (mode 0600): the settings that point the portal's "Sign in with
    Microsoft" at the simulator's Entra stand-in reachable at ``authority``."""
    entra = sim.entra
    lines = [
        f"DSR_OIDC_AUTHORITY={authority.rstrip('/')}",
        f"DSR_OIDC_TENANT={entra.tenant_id}",
        f"DSR_OIDC_CLIENT_ID={entra.client_id}",
        f"DSR_OIDC_CLIENT_SECRET={entra.client_secret}",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _write_private(tmp, "\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
