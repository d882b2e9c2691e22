"""The simulator's fault settings: what each means, how a setting is checked, and the faults
drawn for one call (from the simulator's seeded random stream, so a run repeats exactly)."""

FAULT_DEFAULTS = {
    "latency_ms": 0.0,
    "jitter_ms": 0.0,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "drop_after_rate": 0.0,
    "throttle_scale": None,
    # Traffic shaping: the longest a request above the throttle is queued before 429.
    "shaping_seconds": 1.0,
    # The query store lags the registry: a device created or deleted this recently is not yet
    # (or still) what POST /devices/query answers.
    "query_lag_seconds": 0.0,
    "retry_after": False,
    # Other applications spend the same throttles (a hub's quota is shared by every client of
    # it): this share of calls is refused with 429 whatever this client's own rate.
    "busy_rate": 0.0,
}


def checked(settings):
    """``settings`` as the simulator keeps them; ValueError for an unknown name or a value out
    of range."""
    unknown = set(settings) - set(FAULT_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown fault settings: {', '.join(sorted(unknown))}")
    result = {}
    for name, value in settings.items():
        if name == "retry_after":
            result[name] = bool(value)
        elif name == "throttle_scale":
            result[name] = float(value) if value else None
        else:
            value = float(value)
            if value < 0 or (name.endswith("_rate") and value > 1):
                raise ValueError(f"{name} out of range: {value}")
            result[name] = value
    return result


def draw(faults, rng):
    """The faults one call meets. Always the same count of draws (five) so the sequence depends
    only on seed and order; ``busy`` is drawn only when set, so the other sequences stay as
    they were before it existed."""
    jitter, drop, error, kind, after = (rng.random() for _ in range(5))
    busy = rng.random() < faults["busy_rate"] if faults["busy_rate"] else False
    return {
        "busy": busy,
        "latency": (faults["latency_ms"] + faults["jitter_ms"] * jitter) / 1000.0,
        "drop": drop < faults["drop_rate"],
        "error": ("server_error" if kind < 0.5 else "unavailable")
        if error < faults["error_rate"]
        else None,
        "drop_after": after < faults["drop_after_rate"],
    }
