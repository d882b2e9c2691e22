"""The simulator as one WSGI application: DPS and IoT Hub service APIs routed by Host header.

Per API request, in order: unknown host → 404; injected latency; an injected drop (before any
effect); an injected 500/503 (before any effect); api-version; authorization; throttling; the
operation; an optional drop *after* the effect (the client never learns the outcome).

A drop raises ``SimulatedDrop``. In-process (``httpx.WSGITransport``) it propagates out of the
transport, and as it subclasses ``httpx.RemoteProtocolError`` the client sees the same
``httpx.TransportError`` family it sees when the served simulator closes the socket without an
answer (``simulator.server`` turns the exception into exactly that).

``/_sim/...`` on any host is the introspection API: never faulted, throttled or authenticated.
"""

import copy
import json
import random
import threading
import time
import urllib.parse
import uuid

from . import auth, dps, hub, seed
from .errors import DPS, HUB, ApiError, SimulatedDrop
from .hosts import ALL_HOSTS, DPS_HOSTS, HUB_HOSTS
from .request import Request, Response
from .throttle import TokenBucket, per_minute, retry_after_header

FAULT_DEFAULTS = {
    "latency_ms": 0.0,
    "jitter_ms": 0.0,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "drop_after_rate": 0.0,
    "throttle_scale": None,
    "retry_after": False,
}
STATUS_TEXT = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Simulator:
    """A WSGI callable emulating the demo DPS instance and hubs, seeded deterministically."""

    def __init__(
        self,
        seed=1,
        devices=50,
        throttle_scale=None,
        entra_token=None,
        hub_tiers=None,
        sleep=time.sleep,
        clock=time.monotonic,
        log=None,
        **faults,
    ):
        self.seed = seed
        self.devices = devices
        self.entra_token = entra_token
        self.hub_tiers = {host: ("S1", 1) for host in HUB_HOSTS}
        self.hub_tiers.update(hub_tiers or {})
        self._sleep = sleep
        self._clock = clock
        self._log = log
        self._lock = threading.RLock()
        self._initial_faults = dict(FAULT_DEFAULTS, throttle_scale=throttle_scale)
        self._initial_faults.update(self._checked_faults(faults))
        self.reset()

    # -- public Python interface -------------------------------------------------------------

    def reset(self):
        """Back to the seeded state: data, calls, fault settings, random stream and buckets."""
        with self._lock:
            self.etags = seed.Etags()
            self._state, self._samples = seed.build(self.seed, self.devices, self.etags)
            self._calls = []
            self._faults = dict(self._initial_faults)
            self._rng = random.Random(self.seed)
            self._buckets = {}

    def connection_string(self, host, policy=None):
        """A SAS connection string for ``host`` (owner policy unless ``policy`` is given)."""
        return auth.connection_string(self.seed, host, policy)

    def policy_key(self, host, policy):
        return auth.derive_key(self.seed, host, policy)

    def samples(self):
        return copy.deepcopy(self._samples)

    @property
    def calls(self):
        with self._lock:
            return [dict(c) for c in self._calls]

    @property
    def faults(self):
        with self._lock:
            return dict(self._faults)

    def set_faults(self, **settings):
        """Change latency, error/drop rates, throttle scale or Retry-After at run time."""
        settings = self._checked_faults(settings)
        with self._lock:
            if "throttle_scale" in settings:
                self._buckets = {}
            self._faults.update(settings)
            return dict(self._faults)

    def state(self):
        with self._lock:
            result = {"dps": {}, "hubs": {}}
            for host, data in self._state["dps"].items():
                result["dps"][host] = {
                    "enrollments": [data["enrollments"][k] for k in sorted(data["enrollments"])],
                    "enrollmentGroups": [data["groups"][k] for k in sorted(data["groups"])],
                    "registrations": [
                        dict(r["state"], enrollmentGroupId=r["group"])
                        for _, r in sorted(data["registrations"].items())
                    ],
                }
            for host, data in self._state["hubs"].items():
                result["hubs"][host] = {
                    "devices": [data["devices"][k] for k in sorted(data["devices"])],
                    "twins": [data["twins"][k] for k in sorted(data["twins"])],
                    "modules": [
                        m
                        for d in sorted(data["modules"])
                        for _, m in sorted(data["modules"][d].items())
                    ],
                    "moduleTwins": [data["module_twins"][k] for k in sorted(data["module_twins"])],
                    "jobs": [j for d in sorted(data["jobs"]) for j in data["jobs"][d]],
                }
            return copy.deepcopy(result)

    def hub_tier(self, host):
        return self.hub_tiers.get(host, ("S1", 1))

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        response = self.handle(environ)
        status = f"{response.status} {STATUS_TEXT.get(response.status, 'Status')}"
        if response.status == 204 or response.body is None:
            payload = b""
        else:
            payload = json.dumps(response.body).encode()
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        response.headers["Content-Length"] = str(len(payload))
        start_response(status, list(response.headers.items()))
        return [payload]

    def handle(self, environ):
        host = environ.get("HTTP_HOST", "").split(":")[0].strip().lower().rstrip(".")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        request_id = str(uuid.uuid4())
        if path.startswith("/_sim/"):
            response = self._introspect(method, path, query, self._body(environ))
            response.headers["x-ms-request-id"] = request_id
            return response
        if host not in ALL_HOSTS:
            response = Response(404, {"Message": f"Unknown host '{host}'."})
            response.headers["x-ms-request-id"] = request_id
            return response
        service = DPS if host in DPS_HOSTS else HUB
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        req = Request(self, host, method, path, query, headers, self._body(environ))
        plan = self._draw_faults()
        if plan["latency"] > 0:
            self._sleep(plan["latency"])
        if plan["drop"]:
            self._record(method, host, path, 0, request_id, fault="drop")
            raise SimulatedDrop("simulated connection drop (no effect)")
        try:
            if plan["error"]:
                raise ApiError(plan["error"], "Injected fault: the service could not answer.")
            response = self._serve(req, service, query)
        except ApiError as error:
            status, extra, body = error.render(service)
            response = Response(status, body, extra)
        response.headers["x-ms-request-id"] = request_id
        if plan["drop_after"]:
            self._record(method, host, path, 0, request_id, fault="drop_after")
            raise SimulatedDrop("simulated connection drop (after the effect)")
        self._record(method, host, path, response.status, request_id)
        return response

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _body(environ):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        return environ["wsgi.input"].read(length) if length > 0 else b""

    @staticmethod
    def _checked_faults(settings):
        unknown = set(settings) - set(FAULT_DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown fault settings: {', '.join(sorted(unknown))}")
        checked = {}
        for name, value in settings.items():
            if name == "retry_after":
                checked[name] = bool(value)
            elif name == "throttle_scale":
                checked[name] = float(value) if value else None
            else:
                value = float(value)
                if value < 0 or (name.endswith("_rate") and value > 1):
                    raise ValueError(f"{name} out of range: {value}")
                checked[name] = value
        return checked

    def _draw_faults(self):
        with self._lock:
            f = self._faults
            # Always draw the same count so the fault sequence depends only on seed and order.
            jitter, drop, error, kind, after = (self._rng.random() for _ in range(5))
            return {
                "latency": (f["latency_ms"] + f["jitter_ms"] * jitter) / 1000.0,
                "drop": drop < f["drop_rate"],
                "error": ("server_error" if kind < 0.5 else "unavailable")
                if error < f["error_rate"]
                else None,
                "drop_after": after < f["drop_after_rate"],
            }

    def _serve(self, req, service, query):
        module = dps if service == DPS else hub
        version = query.get("api-version")
        if version not in module.API_VERSIONS:
            raise ApiError("bad_api_version", f"The api-version '{version}' is not supported.")
        rights = auth.authorize(req.header("authorization"), req.host, self.seed, self.entra_token)
        handler, needed, *args = module.route(req)
        if needed not in rights:
            raise ApiError("unauthorized", "Unauthorized. The policy does not grant this right.")
        kind = "dps" if service == DPS else ("query" if handler is hub.query else "registry")
        with self._lock:
            self._throttle(req.host, kind)
            state = self._state["dps" if service == DPS else "hubs"][req.host]
            return handler(req, state, *args)

    def _throttle(self, host, kind):
        scale = self._faults["throttle_scale"]
        if not scale:
            return
        bucket = self._buckets.get((host, kind))
        if bucket is None:
            tier, units = self.hub_tier(host)
            bucket = TokenBucket(per_minute(kind, tier, units), scale, self._clock)
            self._buckets[(host, kind)] = bucket
        wait = bucket.take()
        if wait:
            headers = {}
            if self._faults["retry_after"]:
                headers["Retry-After"] = retry_after_header(wait)
            raise ApiError(
                "throttled", "Throttling: the operation rate is too high.", None, headers
            )

    def _record(self, method, host, path, status, request_id, fault=None):
        with self._lock:
            call = {
                "seq": len(self._calls),
                "time": time.time(),
                "method": method,
                "host": host,
                "path": path,
                "status": status,
                "request_id": request_id,
            }
            if fault:
                call["fault"] = fault
            self._calls.append(call)
        if self._log:
            self._log(f"{method} {host}{path} -> {status or fault}")

    def _introspect(self, method, path, query, body):
        try:
            if path == "/_sim/state" and method == "GET":
                return Response(200, self.state())
            if path == "/_sim/calls" and method == "GET":
                since = int(query.get("since", "0"))
                calls = self.calls
                return Response(200, {"calls": calls[since:], "next": len(calls)})
            if path == "/_sim/samples" and method == "GET":
                return Response(200, self.samples())
            if path == "/_sim/reset" and method == "POST":
                self.reset()
                return Response(200, {"reset": True})
            if path == "/_sim/faults" and method == "GET":
                return Response(200, self.faults)
            if path == "/_sim/faults" and method == "POST":
                settings = json.loads(body or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("expected a JSON object")
                return Response(200, self.set_faults(**settings))
        except (ValueError, TypeError) as error:
            return Response(400, {"error": str(error)})
        return Response(404, {"error": f"No simulator endpoint {method} {path}."})
