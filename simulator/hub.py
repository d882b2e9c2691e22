"""The IoT Hub service API (api-version 2021-04-12): devices, modules, twins, queries, C2D purge.

Device and module GETs return their symmetric keys, as the real hub does. Deleting a device
deletes its twin, modules and module twins with it.
"""

import copy
import datetime
import re

from .auth import READ, WRITE
from .errors import ApiError
from .request import Response, check_hub_id, etag_matches, paginate, query_key
from .shapes import derive_b64, hub_device, hub_module, hub_time, twin_for

API_VERSIONS = {"2020-03-13", "2021-04-12", "2024-03-31"}
SEP = "\x1f"  # joins device and module IDs in sort keys; cannot occur in either
# Azure refuses a query text past about 8 KB (azure-iot-sdk-csharp#1680; not documented).
MAX_QUERY_LENGTH = 8192
QUERY_FROM = re.compile(
    r"^select \* from (devices\.modules|devices\.jobs|devices)(?: where (.+))?$", re.IGNORECASE
)
_DEVICE_ID = r"(?:devices(?:\.modules|\.jobs)?\.)?deviceid"
WHERE_EQUALS = re.compile(rf"^{_DEVICE_ID} = '([^']*)'$", re.IGNORECASE)
WHERE_IN = re.compile(rf"^{_DEVICE_ID} in \[\s*('[^']*'(?:\s*,\s*'[^']*')*)\s*\]$", re.IGNORECASE)


def bucket_of(handler):
    """Which of the hub's throttles a request to ``handler`` counts against (``throttle.KINDS``):
    twin reads and twin updates have their own, queries theirs, everything else on devices and
    modules is the identity registry."""
    if handler is query:
        return "query"
    if handler is get_twin:
        return "twin_read"
    if handler in (patch_twin, put_twin):
        return "twin_update"
    return "registry"


def _not_allowed(method):
    return ApiError("method_not_allowed", f"{method} is not allowed here.")


def route(req):
    """Return (handler, needed right, *args) for the request, or raise 404/405."""
    parts, method = req.parts, req.method
    n = len(parts)
    if n >= 1 and parts[0] == "devices":
        if n == 1:
            if method == "GET":
                return list_devices, READ
            raise _not_allowed(method)
        if n == 2 and parts[1] == "query" and method == "POST":
            return query, READ
        if n == 2:
            handlers = {"GET": (get_device, READ), "PUT": (put_device, WRITE)}
            handlers["DELETE"] = (delete_device, WRITE)
            if method in handlers:
                return (*handlers[method], parts[1])
            raise _not_allowed(method)
        if n == 3 and parts[2] == "modules":
            if method == "GET":
                return list_modules, READ, parts[1]
            raise _not_allowed(method)
        if n == 3 and parts[2] == "commands":
            if method == "DELETE":
                return purge_commands, WRITE, parts[1]
            raise _not_allowed(method)
        if n == 4 and parts[2] == "modules":
            handlers = {"GET": (get_module, READ), "PUT": (put_module, WRITE)}
            handlers["DELETE"] = (delete_module, WRITE)
            if method in handlers:
                return (*handlers[method], parts[1], parts[3])
            raise _not_allowed(method)
    if n >= 2 and parts[0] == "twins" and (n == 2 or (n == 4 and parts[2] == "modules")):
        module_id = parts[3] if n == 4 else None
        handlers = {"GET": (get_twin, READ), "PATCH": (patch_twin, WRITE), "PUT": (put_twin, WRITE)}
        if method in handlers:
            return (*handlers[method], parts[1], module_id)
        raise _not_allowed(method)
    raise ApiError("route_not_found", f"The path '{req.path}' does not exist.")


def _device_or_404(state, device_id):
    check_hub_id(device_id)
    device = state["devices"].get(device_id)
    if device is None:
        raise ApiError("device_not_found", f"Device {device_id} not registered")
    return device


def _module_or_404(state, device_id, module_id):
    _device_or_404(state, device_id)
    check_hub_id(module_id, "module ID")
    module = state["modules"].get(device_id, {}).get(module_id)
    if module is None:
        raise ApiError("module_not_found", f"Module {module_id} on device {device_id} not found")
    return module


def _precondition(condition, etag):
    if not etag_matches(condition, etag):
        raise ApiError("precondition", "Precondition failed: the ETag does not match.")


def _create_or_replace(req, existing, not_found, conflict):
    """PUT creates without If-Match and replaces with one: Azure refuses a create that names
    an etag (``not_found``), a replace without one (``conflict``) and a stale etag (412)."""
    condition = req.if_match()
    if existing is None and condition is not None:
        raise ApiError(*not_found)
    if existing is not None:
        if condition is None:
            raise ApiError(*conflict)
        _precondition(condition, existing["etag"])


def _moment():
    return datetime.datetime.now(datetime.UTC)


def _now():
    return hub_time(_moment())


def list_devices(req, state):
    try:
        top = int(req.query.get("top", "1000"))
    except ValueError:
        raise ApiError("bad_request", "top must be an integer.") from None
    if not 1 <= top <= 1000:
        raise ApiError("bad_request", "top must be between 1 and 1000.")
    devices = sorted(state["devices"].values(), key=lambda d: d["deviceId"])[:top]
    return Response(200, copy.deepcopy(devices))


def get_device(req, state, device_id):
    return Response(200, copy.deepcopy(_device_or_404(state, device_id)))


def _authentication(req, body, *key_parts):
    auth = copy.deepcopy(body.get("authentication") or {"type": "sas"})
    kind = auth.get("type", "sas")
    if kind not in ("sas", "selfSigned", "certificateAuthority", "none"):
        raise ApiError("bad_request", f"Authentication type '{kind}' is invalid.")
    auth["type"] = kind
    keys = auth.get("symmetricKey") or {}
    if kind == "sas":
        keys = {
            "primaryKey": keys.get("primaryKey") or derive_b64(*key_parts, _now(), "p"),
            "secondaryKey": keys.get("secondaryKey") or derive_b64(*key_parts, _now(), "s"),
        }
    else:
        keys = {"primaryKey": None, "secondaryKey": None}
    auth["symmetricKey"] = keys
    auth.setdefault("x509Thumbprint", {"primaryThumbprint": None, "secondaryThumbprint": None})
    return auth


def put_device(req, state, device_id):
    check_hub_id(device_id)
    body = req.json()
    if body.get("deviceId", device_id) != device_id:
        raise ApiError("bad_request", "The deviceId in the body does not match the URL.")
    status = body.get("status") or "enabled"
    if status not in ("enabled", "disabled"):
        raise ApiError("bad_request", "status must be 'enabled' or 'disabled'.")
    existing = state["devices"].get(device_id)
    _create_or_replace(
        req,
        existing,
        ("device_not_found", f"Device {device_id} not registered"),
        ("conflict", f"A device with ID '{device_id}' is already registered."),
    )
    etags = req.sim.etags
    auth = _authentication(req, body, req.sim.seed, req.host, device_id)
    device = (
        copy.deepcopy(existing) if existing else hub_device(device_id, "", None, None, _moment())
    )
    device.update(
        etag=etags.device(),
        status=status,
        statusReason=body.get("statusReason"),
        authentication=auth,
        capabilities=copy.deepcopy(body.get("capabilities") or {"iotEdge": False}),
    )
    state["devices"][device_id] = device
    if existing is None:
        state["twins"][device_id] = twin_for(device, etags.twin())
        req.sim.note_index_change(req.host, device_id)
    return Response(200, copy.deepcopy(device))


def delete_device(req, state, device_id):
    device = _device_or_404(state, device_id)
    _precondition(req.if_match(), device["etag"])
    twin = state["twins"].get(device_id)
    gone = [_render_twin(state, twin)] if twin is not None else []  # as the query store has it
    del state["devices"][device_id]
    state["twins"].pop(device_id, None)
    for module_id in state["modules"].pop(device_id, {}):
        twin = state["module_twins"].pop((device_id, module_id), None)
        if twin is not None:
            gone.append(copy.deepcopy(twin))
    req.sim.note_index_change(req.host, device_id, gone)
    return Response(204)


def purge_commands(req, state, device_id):
    device = _device_or_404(state, device_id)
    purged = device.get("cloudToDeviceMessageCount", 0)
    device["cloudToDeviceMessageCount"] = 0
    return Response(200, {"deviceId": device_id, "moduleId": None, "totalMessagesPurged": purged})


def list_modules(req, state, device_id):
    _device_or_404(state, device_id)
    modules = state["modules"].get(device_id, {})
    return Response(200, [copy.deepcopy(modules[m]) for m in sorted(modules)])


def get_module(req, state, device_id, module_id):
    return Response(200, copy.deepcopy(_module_or_404(state, device_id, module_id)))


def put_module(req, state, device_id, module_id):
    device = _device_or_404(state, device_id)
    check_hub_id(module_id, "module ID")
    body = req.json()
    if body.get("moduleId", module_id) != module_id:
        raise ApiError("bad_request", "The moduleId in the body does not match the URL.")
    if body.get("deviceId", device_id) != device_id:
        raise ApiError("bad_request", "The deviceId in the body does not match the URL.")
    modules = state["modules"].setdefault(device_id, {})
    existing = modules.get(module_id)
    _create_or_replace(
        req,
        existing,
        ("module_not_found", f"Module {module_id} on device {device_id} not found"),
        ("module_conflict", f"A module with ID '{module_id}' already exists."),
    )
    etags = req.sim.etags
    auth = _authentication(req, body, req.sim.seed, req.host, device_id, module_id)
    module = (
        copy.deepcopy(existing)
        if existing
        else hub_module(device_id, module_id, "", None, None, _moment())
    )
    module.update(etag=etags.device(), authentication=auth, managedBy=body.get("managedBy"))
    modules[module_id] = module
    if existing is None:
        state["module_twins"][(device_id, module_id)] = twin_for(
            device, etags.twin(), module_id=module_id
        )
    return Response(200, copy.deepcopy(module))


def delete_module(req, state, device_id, module_id):
    module = _module_or_404(state, device_id, module_id)
    _precondition(req.if_match(), module["etag"])
    del state["modules"][device_id][module_id]
    state["module_twins"].pop((device_id, module_id), None)
    return Response(204)


def _render_twin(state, twin):
    shown = copy.deepcopy(twin)
    device = state["devices"].get(twin["deviceId"])
    if device is not None and "moduleId" not in twin:
        shown["deviceEtag"] = device["etag"]
        shown["status"] = device["status"]
        shown["cloudToDeviceMessageCount"] = device.get("cloudToDeviceMessageCount", 0)
    return shown


def _twin_or_404(state, device_id, module_id):
    if module_id is None:
        _device_or_404(state, device_id)
        return state["twins"][device_id]
    _module_or_404(state, device_id, module_id)
    return state["module_twins"][(device_id, module_id)]


def get_twin(req, state, device_id, module_id):
    return Response(200, _render_twin(state, _twin_or_404(state, device_id, module_id)))


def _merge(target, patch):
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _update_twin(req, state, device_id, module_id, replace):
    twin = _twin_or_404(state, device_id, module_id)
    body = req.json()
    _precondition(req.if_match(), twin["etag"])
    tags = body.get("tags")
    desired = (body.get("properties") or {}).get("desired")
    for name, value in (("tags", tags), ("properties.desired", desired)):
        if value is not None and not isinstance(value, dict):
            raise ApiError("bad_request", f"{name} must be a JSON object.")
    current = twin["properties"]["desired"]
    if replace:
        twin["tags"] = copy.deepcopy(tags or {})
        new_desired = {k: v for k, v in (desired or {}).items() if not k.startswith("$")}
        meta = current["$metadata"]
        current.clear()
        current.update(new_desired, **{"$metadata": meta})
    else:
        _merge(twin["tags"], tags or {})
        _merge(current, {k: v for k, v in (desired or {}).items() if not k.startswith("$")})
    current["$version"] = current.get("$version", 0) + 1
    current["$metadata"] = {"$lastUpdated": _now()}
    twin["version"] = twin.get("version", 1) + 1
    twin["etag"] = req.sim.etags.twin()
    return Response(200, _render_twin(state, twin))


def patch_twin(req, state, device_id, module_id):
    return _update_twin(req, state, device_id, module_id, replace=False)


def put_twin(req, state, device_id, module_id):
    return _update_twin(req, state, device_id, module_id, replace=True)


def _parse_query(text):
    """(collection, device IDs or None for all) of the query subset the simulator answers:
    ``SELECT * FROM devices|devices.modules|devices.jobs`` with an optional
    ``WHERE deviceId = '…'`` or ``WHERE deviceId IN ['…', …]`` (IDs are case-sensitive)."""
    if len(text) > MAX_QUERY_LENGTH:
        raise ApiError(
            "bad_request", f"The query is {len(text)} characters long, over {MAX_QUERY_LENGTH}."
        )
    original = " ".join(text.split())
    match = QUERY_FROM.match(original)
    if not match:
        raise ApiError("bad_request", f"Query '{text[:200]}' is not supported.")
    collection, where = match.group(1).lower(), match.group(2)
    if where is None:
        return collection, None
    equals = WHERE_EQUALS.match(where)
    if equals:
        return collection, {equals.group(1)}
    within = WHERE_IN.match(where) if collection != "devices.jobs" else None
    if within:
        return collection, set(re.findall(r"'([^']*)'", within.group(1)))
    raise ApiError("bad_request", f"Query '{text[:200]}' is not supported.")


def query(req, state):
    body = req.json()
    text = body.get("query")
    if not isinstance(text, str):
        raise ApiError("bad_request", "The query specification needs a 'query' string.")
    collection, wanted = _parse_query(text)
    qk = query_key(" ".join(text.split()))
    if collection == "devices.jobs":
        items = [
            copy.deepcopy(job)
            for d, jobs in state["jobs"].items()
            if wanted is None or d in wanted
            for job in jobs
        ]
        key_jobs = lambda j: j["deviceId"] + SEP + j["jobId"]  # noqa: E731
        return paginate(req, items, key_jobs, qk, "DeviceJob", req.sim.seed)
    lagging = req.sim.lagging(req.host)  # what the query store has not caught up with
    if collection == "devices":
        twins = [t for d, t in state["twins"].items() if d not in lagging]
        key = lambda t: t["deviceId"]  # noqa: E731
    else:
        twins = [t for (d, _m), t in state["module_twins"].items() if d not in lagging]
        key = lambda t: t["deviceId"] + SEP + t["moduleId"]  # noqa: E731
    for gone in lagging.values():
        for twin in gone or ():
            if ("moduleId" in twin) == (collection == "devices.modules"):
                twins.append(twin)
    items = [_render_twin(state, t) for t in twins if wanted is None or t["deviceId"] in wanted]
    return paginate(req, items, key, qk, "Twin", req.sim.seed)
