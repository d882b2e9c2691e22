"""The IoT Hub service API (api-version 2021-04-12): devices, modules, twins, queries, C2D purge.

Device and module GETs return their symmetric keys, as the real hub does. Deleting a device
deletes its twin, modules and module twins with it.
"""

import copy
import datetime

from . import query as query_language
from .auth import READ, WRITE
from .errors import ApiError
from .request import Response, check_hub_id, etag_matches, paginate, query_key
from .shapes import derive_b64, hub_device, hub_module, hub_time, twin_for

API_VERSIONS = {"2020-03-13", "2021-04-12", "2024-03-31"}
SEP = "\x1f"  # joins device and module IDs in sort keys; cannot occur in either


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


def _twin_view(state, twin):
    """The twin as GET and the query store show it (status, device etag and C2D count from
    the device), sharing its values with the state: copy before handing it out."""
    device = state["devices"].get(twin["deviceId"])
    if device is None or "moduleId" in twin:
        return twin
    return dict(
        twin,
        deviceEtag=device["etag"],
        status=device["status"],
        cloudToDeviceMessageCount=device.get("cloudToDeviceMessageCount", 0),
    )


def _render_twin(state, twin):
    return copy.deepcopy(_twin_view(state, twin))


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


def _documents(req, state, collection):
    """(documents, sort key) of a collection as the query store has them: the jobs, or the
    twins without devices created too recently and with those deleted too recently."""
    if collection == "devices.jobs":
        jobs = [job for of_device in state["jobs"].values() for job in of_device]
        return jobs, lambda j: j["deviceId"] + SEP + j["jobId"]
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
    return [_twin_view(state, t) for t in twins], key


def query(req, state):
    """One page of a query's answer (``simulator.query`` has the language). Documents are
    matched as they are and only the page's answers are copied, so paging through a large
    match stays cheap."""
    body = req.json()
    text = body.get("query")
    if not isinstance(text, str):
        raise ApiError("bad_request", "The query specification needs a 'query' string.")
    parsed = query_language.parse(text)
    documents, key = _documents(req, state, parsed.collection)
    found = [document for document in documents if parsed.matches(document)]
    if parsed.count is not None:
        found, key = [{parsed.count: len(found)}], lambda _: ""
    response = paginate(req, found, key, query_key(text), parsed.item_type, req.sim.seed)
    response.body = [parsed.shape(document) for document in response.body]
    return response
