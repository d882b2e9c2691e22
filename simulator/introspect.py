"""``/_sim/...``: the introspection API, on any host, never faulted, throttled, authenticated
or recorded as a call. Not part of Azure; for tests and the dev stack.

    GET  /_sim/state                 every resource of every host (``state_view``)
    GET  /_sim/calls?since=N         the Azure API calls recorded: {"calls": [...], "next": M}
    GET  /_sim/samples[?present=1]   seeded sample IDs by category (below)
    POST /_sim/reset                 reseed (and write the state file), forget calls and faults
    GET  /_sim/faults                Azure fault settings    POST (JSON object) changes them
         /_sim/entra...              the Entra stand-in's hooks (``simulator.entra.introspect``)

``/_sim/samples`` is a JSON object of lists of IDs (registration ID = device ID wherever a
device came through DPS), the same keys for every seed and size:

    individual_symmetric, individual_x509, individual_tpm
                         individually enrolled, provisioned, on a linked hub
    group_provisioned    provisioned through an enrollment group (no individual enrollment)
    never_provisioned    enrolled (some disabled) but no registration and no hub device
    hub_only             a hub device that never went through DPS
    other_hub            provisioned to ``other-hub``, a hub the written targets leave out
    with_modules         devices (of the categories above) that have modules
    with_jobs            devices that have a (completed) job in their hub
    enrollment_groups    enrollment group IDs (``grp-sym-NN``, ``grp-x509-NN``)
    empty_groups         enrollment groups no device came through

The lists are the seed's: an ID stays listed after its device is erased, unless
``?present=1`` is given, which keeps only IDs that still exist somewhere (an enrollment,
enrollment group or registration in DPS, or a device in a hub).
"""

import json

from .entra.introspect import introspect as entra_introspect
from .request import Response


def state_view(state):
    """The internal state as lists sorted by ID (what ``/_sim/state`` returns)."""
    result = {"dps": {}, "hubs": {}}
    for host, data in state["dps"].items():
        result["dps"][host] = {
            "enrollments": [data["enrollments"][k] for k in sorted(data["enrollments"])],
            "enrollmentGroups": [data["groups"][k] for k in sorted(data["groups"])],
            "registrations": [
                dict(r["state"], enrollmentGroupId=r["group"])
                for _, r in sorted(data["registrations"].items())
            ],
        }
    for host, data in state["hubs"].items():
        result["hubs"][host] = {
            "devices": [data["devices"][k] for k in sorted(data["devices"])],
            "twins": [data["twins"][k] for k in sorted(data["twins"])],
            "modules": [
                m for d in sorted(data["modules"]) for _, m in sorted(data["modules"][d].items())
            ],
            "moduleTwins": [data["module_twins"][k] for k in sorted(data["module_twins"])],
            "jobs": [j for d in sorted(data["jobs"]) for j in data["jobs"][d]],
        }
    return result


def present_samples(samples, state):
    alive = set()
    for data in state["dps"].values():
        alive |= {e["registrationId"] for e in data["enrollments"].values()}
        alive |= {g["enrollmentGroupId"] for g in data["groups"].values()}
        alive |= {r["state"]["registrationId"] for r in data["registrations"].values()}
    for data in state["hubs"].values():
        alive |= set(data["devices"])
    return {name: [i for i in ids if i in alive] for name, ids in samples.items()}


def introspect(sim, method, path, query, body, base_url):
    try:
        if path.startswith("/_sim/entra"):
            response, keys_changed = entra_introspect(sim.entra, method, path, body, base_url)
            if keys_changed:
                sim.state_changed()
            if response is not None:
                return response
        if path == "/_sim/state" and method == "GET":
            return Response(200, sim.state())
        if path == "/_sim/calls" and method == "GET":
            since = int(query.get("since", "0"))
            calls = sim.calls
            return Response(200, {"calls": calls[since:], "next": len(calls)})
        if path == "/_sim/samples" and method == "GET":
            present = query.get("present", "").lower() in ("1", "true", "yes")
            return Response(200, sim.samples(present=present))
        if path == "/_sim/reset" and method == "POST":
            sim.reset()
            return Response(200, {"reset": True})
        if path == "/_sim/faults" and method == "GET":
            return Response(200, sim.faults)
        if path == "/_sim/faults" and method == "POST":
            settings = json.loads(body or b"{}")
            if not isinstance(settings, dict):
                raise ValueError("expected a JSON object")
            return Response(200, sim.set_faults(**settings))
    except (ValueError, TypeError) as error:
        return Response(400, {"error": str(error)})
    return Response(404, {"error": f"No simulator endpoint {method} {path}."})
