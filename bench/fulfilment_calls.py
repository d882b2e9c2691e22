"""What a benchmark run spent of Azure's throttles: calls per bucket and per device, the
throttle-implied minimum time, and the projection to 10,000 devices on S1 × 1 hubs.

Read from the simulator's call log, which sees every HTTP call (retries and 429s included).
"""

from collections import Counter

KINDS = ("registry", "query", "twin_read", "twin_update", "dps")


def bucket_of(call):
    """(host, bucket) of one simulator call, as Azure (and the simulator) meters it."""
    from simulator.throttle import bucket_of_call

    return (call["host"], bucket_of_call(call))


def implied_minimum(calls, sim, scale):
    """Per bucket: calls that had to pass it (everything but the 429s) / its allowed rate."""
    from simulator.throttle import per_minute

    needed = Counter(bucket_of(c) for c in calls if c["status"] != 429)
    rows = []
    for (host, kind), n in sorted(needed.items()):
        tier, units = sim.hub_tier(host) if kind != "dps" else ("S1", 1)
        rate = per_minute(kind, tier, units) * scale / 60.0
        rows.append((host, kind, n, rate, n / rate))
    return rows


def per_device(calls, devices):
    """{bucket: calls per device} over every target, 429s left out; registry split into reads
    (GET) and writes (DELETE/PUT)."""
    counts = Counter()
    for call in calls:
        if call["status"] == 429:
            continue
        _, kind = bucket_of(call)
        counts[kind] += 1
        if kind == "registry":
            counts["registry reads" if call["method"] == "GET" else "registry writes"] += 1
    return {kind: counts[kind] / devices for kind in (*KINDS, "registry reads", "registry writes")}


def print_per_device(label, calls, devices):
    figures = per_device(calls, devices)
    print(f"  calls per device, {label}:")
    for kind, value in figures.items():
        print(f"    {kind:18} {value:6.2f}")


def projection(calls, sim, devices, target_devices=10_000):
    """Seconds for ``target_devices`` on Azure's real rates (S1 × 1 hubs, one DPS), spending
    what this run spent per device on each bucket, spread over the hubs as in this run. Queries
    carry up to 100 devices each, so they scale with the number of batches, not of devices (an
    upper bound: as if every hub had all the devices)."""
    import math

    from requests_app.jobs.scoping import QUERY_MAX_IDS
    from simulator.throttle import per_minute

    needed = Counter(bucket_of(c) for c in calls if c["status"] != 429)
    batches = math.ceil(target_devices / QUERY_MAX_IDS) / math.ceil(devices / QUERY_MAX_IDS)
    rows = []
    for (host, kind), n in sorted(needed.items()):
        rate = per_minute(kind, "S1", 1) / 60.0
        scaled = n * batches if kind == "query" else n * target_devices / devices
        rows.append((host, kind, scaled, scaled / rate))
    return rows


def print_projection(calls, sim, devices, target_devices=10_000):
    rows = projection(calls, sim, devices, target_devices)
    slowest = max(rows, key=lambda r: r[3])
    print(f"  projected for {target_devices:,} devices at Azure's rates (S1 x 1 per hub):")
    for host, kind, n, seconds in rows:
        print(f"    {host + ' ' + kind:48} {n:9.0f} calls {seconds / 60:7.1f} min")
    print(
        f"    at least {slowest[3] / 3600:.2f} h, set by {slowest[0]} {slowest[1]} "
        "(every bucket busy at once)"
    )


def print_calls(scoping_calls, calls, sim, devices):
    """Calls per device for scoping, for fulfilment and in all, then the 10,000 projection."""
    print_per_device("scoping", scoping_calls, devices)
    print_per_device("approval to final status", calls, devices)
    print_per_device("in all", scoping_calls + calls, devices)
    print_projection(scoping_calls + calls, sim, devices)
