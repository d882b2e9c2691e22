"""The simulator as one WSGI application: DPS and IoT Hub service APIs routed by Host header,
and the Entra ID sign-in stand-in (``simulator.entra``) on every other host.

Per API request, in order: unknown host → 404; injected latency; an injected drop (before any
effect); an injected 500/503 (before any effect); api-version; authorization; throttling; the
operation; an optional drop *after* the effect (the client never learns the outcome).

A drop raises ``SimulatedDrop``. In-process (``httpx.WSGITransport``) it propagates out of the
transport, and as it subclasses ``httpx.RemoteProtocolError`` the client sees the same
``httpx.TransportError`` family it sees when the served simulator closes the socket without an
answer (``simulator.server`` turns the exception into exactly that).

``/_sim/...`` on any host is the introspection API: never faulted, throttled or authenticated.
Entra's endpoints are not faulted or throttled either (the fault settings are Azure's), nor
recorded in ``calls`` (``sim.entra.calls`` has them).

With ``state_file`` the mutable state survives restarts (``simulator.persist``).
"""

import copy
import json
import random
import threading
import time
import urllib.parse
import uuid

from . import auth, dps, hub, introspect, seed, shapes
from .entra import Entra
from .entra import endpoints as entra_endpoints
from .errors import DPS, HUB, ApiError, SimulatedDrop
from .faults import FAULT_DEFAULTS, checked, draw
from .hosts import ALL_HOSTS, DPS_HOSTS, ENTRA_HOST, HUB_HOSTS
from .persist import StateFile, encode
from .request import Request, Response
from .throttle import TokenBucket, per_minute, retry_after_header

# Methods whose success changes the state (every POST of both APIs is a read: query,
# attestationmechanism).
MUTATING = {"PUT", "PATCH", "DELETE"}
STATUS_TEXT = {
    200: "OK",
    204: "No Content",
    302: "Found",
    303: "See Other",
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
        entra_redirect_uris=(),
        state_file=None,
        reset_state=False,
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
        self._initial_faults.update(checked(faults))
        self.entra = Entra(seed, entra_redirect_uris)
        self.state_notice = None
        self._persist = None
        if state_file is None:
            self.reset()
            return
        self._persist = StateFile(state_file)
        if reset_state:
            loaded = None
            self.state_notice = f"--reset-state: seeded fresh, replacing {state_file}."
        else:
            loaded, self.state_notice = self._persist.load(seed, devices)
        if loaded is None:
            self.reset()
        else:
            self._restore(*loaded)
        self._persist.start(self._snapshot)

    # -- public Python interface -------------------------------------------------------------

    def reset(self):
        """Back to the seeded state: data, calls, fault settings, random stream and buckets,
        and Entra's codes, sessions and hooks. Written to the state file when there is one."""
        with self._lock:
            self.etags = shapes.Etags()
            self._state, self._samples = seed.build(self.seed, self.devices, self.etags)
            self._reset_runtime()
            if self._persist is not None:
                self._persist.write(self._snapshot())

    def _reset_runtime(self):
        self._index_changes = {}  # host -> device ID -> (when, twins the query store still has)
        self._calls = []
        self._faults = dict(self._initial_faults)
        self._rng = random.Random(self.seed)
        self._buckets = {}
        self.entra.reset()

    def _restore(self, state, etag_counter, samples, entra_keys):
        with self._lock:
            self.etags = shapes.Etags()
            self.etags.counter = etag_counter
            self._state, self._samples = state, samples
            self._reset_runtime()
            if entra_keys:
                self.entra.import_keys(entra_keys)

    def _snapshot(self):
        """The state file's text, taken under the lock so it is consistent."""
        with self._lock:
            data = encode(
                self.seed,
                self.devices,
                self._state,
                self.etags.counter,
                self._samples,
                self.entra.export_keys(),
            )
            return json.dumps(data, separators=(",", ":"))

    def close(self):
        """Write any pending state and stop the background saver (no-op without a file)."""
        if self._persist is not None:
            self._persist.close()

    def connection_string(self, host, policy=None):
        """A SAS connection string for ``host`` (owner policy unless ``policy`` is given)."""
        return auth.connection_string(self.seed, host, policy)

    def policy_key(self, host, policy):
        return auth.derive_key(self.seed, host, policy)

    def samples(self, present=False):
        """The seeded sample IDs by category (see ``simulator.introspect``); ``present=True``
        keeps only those that still exist (an enrollment, a registration or a hub device)."""
        with self._lock:
            if present:
                return introspect.present_samples(self._samples, self._state)
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
        settings = checked(settings)
        with self._lock:
            if "throttle_scale" in settings:
                self._buckets = {}
            self._faults.update(settings)
            return dict(self._faults)

    def state(self):
        """Every resource of every host, as ``GET /_sim/state`` shows it."""
        with self._lock:
            return copy.deepcopy(introspect.state_view(self._state))

    def hub_tier(self, host):
        return self.hub_tiers.get(host, ("S1", 1))

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        response = self.handle(environ)
        status = f"{response.status} {STATUS_TEXT.get(response.status, 'Status')}"
        payload = response.payload()
        response.headers["Content-Length"] = str(len(payload))
        start_response(status, list(response.headers.items()))
        return [payload]

    def handle(self, environ):
        host = environ.get("HTTP_HOST", "").split(":")[0].strip().lower().rstrip(".")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        request_id = str(uuid.uuid4())
        body = self._body(environ)
        base_url = self._base_url(environ)
        if path.startswith("/_sim/"):
            response = introspect.introspect(self, method, path, query, body, base_url)
            response.headers["x-ms-request-id"] = request_id
            return response
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        if host == ENTRA_HOST or host not in ALL_HOSTS:
            response = entra_endpoints.handle(
                self.entra, method, base_url, path, environ.get("QUERY_STRING", ""), headers, body
            )
            if response is None:
                response = Response(404, {"Message": f"Unknown host '{host}'."})
            response.headers["x-ms-request-id"] = request_id
            return response
        service = DPS if host in DPS_HOSTS else HUB
        req = Request(self, host, method, path, query, headers, body)
        plan = self._draw_faults()
        if plan["latency"] > 0:
            self._sleep(plan["latency"])
        if plan["drop"]:
            self._record(method, host, path, 0, request_id, fault="drop")
            raise SimulatedDrop("simulated connection drop (no effect)")
        try:
            if plan["error"]:
                raise ApiError(plan["error"], "Injected fault: the service could not answer.")
            if plan["busy"]:
                raise ApiError(
                    "throttled",
                    "Throttling: the operation rate is too high.",
                    None,
                    {"Retry-After": retry_after_header(1.0)} if self._faults["retry_after"] else {},
                )
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

    def note_index_change(self, host, device_id, twins=None):
        """A device was created (``twins`` None) or deleted (the twins it took with it): the
        query store catches up ``query_lag_seconds`` later."""
        self._index_changes.setdefault(host, {})[device_id] = (self._clock(), twins)

    def lagging(self, host):
        """``{device ID: twins}`` the query store is behind on: None for a device created too
        recently to be listed, the device's and its modules' twins for one deleted too recently
        to have gone."""
        lag = self._faults["query_lag_seconds"]
        changes = self._index_changes.get(host, {})
        now = self._clock()
        for device_id in [d for d, (when, _) in changes.items() if now - when >= lag]:
            del changes[device_id]
        return {device_id: twins for device_id, (_, twins) in changes.items()}

    def state_changed(self):
        """Have the state file written soon (after a mutation, or Entra's keys changed)."""
        if self._persist is not None:
            self._persist.mark_dirty()

    @staticmethod
    def _base_url(environ):
        """Scheme and host as the client addressed us (for Entra's endpoint URLs)."""
        host = environ.get("HTTP_HOST")
        if not host:
            host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    @staticmethod
    def _body(environ):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def _draw_faults(self):
        with self._lock:
            return draw(self._faults, self._rng)

    def _serve(self, req, service, query):
        module = dps if service == DPS else hub
        version = query.get("api-version")
        if version not in module.API_VERSIONS:
            raise ApiError("bad_api_version", f"The api-version '{version}' is not supported.")
        rights = auth.authorize(req.header("authorization"), req.host, self.seed, self.entra_token)
        handler, needed, *args = module.route(req)
        if needed not in rights:
            raise ApiError("unauthorized", "Unauthorized. The policy does not grant this right.")
        kind = "dps" if service == DPS else hub.bucket_of(handler)
        with self._lock:
            delay = self._throttle(req.host, kind)
        if delay:
            self._sleep(delay)  # queued (traffic shaping): answered late, not refused
        with self._lock:
            state = self._state["dps" if service == DPS else "hubs"][req.host]
            response = handler(req, state, *args)
            if req.method in MUTATING:
                self.state_changed()
            return response

    def _throttle(self, host, kind):
        """The seconds this request is queued for; raises 429 when the queue is full."""
        scale = self._faults["throttle_scale"]
        if not scale:
            return 0.0
        bucket = self._buckets.get((host, kind))
        if bucket is None:
            tier, units = self.hub_tier(host)
            bucket = TokenBucket(per_minute(kind, tier, units), scale, self._clock)
            self._buckets[(host, kind)] = bucket
        delay, refused_for = bucket.take(self._faults["shaping_seconds"])
        if refused_for:
            headers = {}
            if self._faults["retry_after"]:
                headers["Retry-After"] = retry_after_header(refused_for)
            raise ApiError(
                "throttled", "Throttling: the operation rate is too high.", None, headers
            )
        return delay

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
