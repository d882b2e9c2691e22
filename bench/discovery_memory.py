"""Finding devices by owner on a large match: the search job's peak Python memory
(tracemalloc) for a match on A devices against one on B devices (goal: flat, B/A near 1), and
its time and query calls.

    python bench/discovery_memory.py --devices 1250,6250

The simulator runs as its own process (``manage.py azuresim``, ``remote_sim``), so only the
portal's side is measured. Every seeded device has desired ``heatingMode = "eco"``; with that
path added to the owner paths, the key ``eco`` matches every device of the two configured hubs
(80 % of the seed: 1,000 and 5,000 devices for the defaults). The job runs in this process,
as a worker would run it. Database and Redis as ``bench/fulfilment.py`` sets them up.
"""

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import fulfilment as h  # bench/ is on sys.path when run as a script; it adds the project


def measure(devices, scale, tmp, officer):
    from django.conf import settings

    from requests_app.azure import configured_targets
    from requests_app.discovery import search
    from requests_app.jobs.queues import get_queue
    from tests.lifecycle_helpers import make_request

    sim, server = h.start_simulator(devices, scale, tmp / f"sim-{devices}", process=True)
    try:
        path = Path(settings.DSR_AZURE_TARGETS)
        path.write_text(
            path.read_text().replace(
                '"properties.reported.ownerRef"]', '"properties.desired.heatingMode"]'
            )
        )
        configured_targets.cache_clear()
        draft = make_request(officer, [])
        discovery = search.start(draft, keys=["eco"], actor=officer)
        get_queue("default").empty()  # run here, not by a worker
        tracemalloc.start()
        started = time.monotonic()
        search.discovery_job(discovery.pk)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        discovery.refresh_from_db()
        queries = sum(1 for c in sim.calls if c["path"].startswith("/devices/query"))
    finally:
        server.shutdown()
    found = discovery.matches.count()
    print(
        f"{devices} seeded devices: {found:,} matches in {elapsed:.1f}s, {queries} query "
        f"calls, peak traced memory {peak / 2**20:.2f} MiB"
    )
    return found, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1250,6250", help="A,B seeded devices")
    parser.add_argument("--scale", type=float, default=60.0, help="throttle scale")
    args = parser.parse_args()
    small, large = (int(n) for n in args.devices.split(","))
    with tempfile.TemporaryDirectory(prefix="dsr-bench-") as tmp:
        tmp = Path(tmp)
        redis = h.setup_environment(tmp)
        try:
            officer, _ = h.users()
            (found_a, peak_a), (found_b, peak_b) = (
                measure(small, args.scale, tmp, officer),
                measure(large, args.scale, tmp, officer),
            )
        finally:
            if redis is not None:
                redis.shutdown()
    print(
        f"peak memory ratio {found_b:,} vs {found_a:,} matches: {peak_b / peak_a:.2f} (goal: flat)"
    )


if __name__ == "__main__":
    main()
