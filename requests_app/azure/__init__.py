"""httpx clients for the Azure DPS and IoT Hub service APIs — the only portal code that calls out.

```python
clients = AzureClients(configured_targets(), redis=conn, on_call=record_call)
r = clients.dps().get_enrollment("reg-1")        # AzureResponse; r.found is False on 404
hub = clients.for_host(r.data["assignedHub"])    # UnconfiguredTarget if not in the targets file
for device in hub.query("SELECT * FROM devices"):
    ...
```

Only hosts listed in the targets file are ever called. Errors are AzureError subclasses whose
``permanent`` flag says whether a retry could help.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

import httpx

from .auth import DPS_SCOPE, HUB_SCOPE, EntraAuth, SasAuth, make_credential
from .dps import DPS_API_VERSION, DpsClient
from .errors import (
    AzureError,
    NotFound,
    Permanent,
    PreconditionFailed,
    Throttled,
    Transient,
    Unauthorized,
    UnconfiguredTarget,
)
from .http import AzureHttp, AzureResponse, CallRecord, RetryPolicy, Timeouts
from .iothub import HUB_API_VERSION, IotHubClient
from .pacing import HUB_KINDS, LocalBuckets, Pacer, bucket_for
from .targets import Target, Targets, TargetsError, configured_targets, load_targets

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from redis import Redis

__all__ = [
    "load_targets",
    "Targets",
    "Target",
    "TargetsError",
    "configured_targets",
    "AzureClients",
    "DpsClient",
    "IotHubClient",
    "AzureResponse",
    "CallRecord",
    "RetryPolicy",
    "Timeouts",
    "AzureError",
    "NotFound",
    "PreconditionFailed",
    "Throttled",
    "Unauthorized",
    "Transient",
    "Permanent",
    "UnconfiguredTarget",
]


class AzureClients:
    """The clients for every configured target, sharing one connection pool and one pacer.

    ``redis``: a redis-py connection for pacing shared across worker processes (None: pace in
    process). ``transport``: an httpx transport used for every target (tests: the simulator's
    WSGI app). ``credential``: an azure-identity credential for every Entra ID target, instead of
    the one each target names. ``sleep``/``clock``: for tests that must not wait; a clock given
    here also gets its own in-process pacing buckets.
    """

    def __init__(
        self,
        targets: Targets,
        *,
        redis: Redis | None = None,
        on_call: Callable[[CallRecord], object] | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        credential: TokenCredential | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.targets = targets
        self.retry = retry or RetryPolicy()
        self._on_call = on_call
        self._sleep = sleep
        self._credential = credential
        self._credentials: dict[str, TokenCredential] = {}
        self._clock = clock or time.monotonic
        local = LocalBuckets(clock) if clock is not None else None
        self._pacer = Pacer(redis, max_wait=self.retry.pacing_max_wait, sleep=sleep, local=local)
        self._http = httpx.Client(
            transport=transport, timeout=self.retry.timeouts.httpx(), follow_redirects=False
        )
        self._clients: dict[str, DpsClient | IotHubClient] = {}
        self._lock = threading.Lock()

    def worst_case_seconds(self) -> float:
        """Longest one client call can take with retries (compare with the RQ job timeout)."""
        return self.retry.worst_case_seconds()

    def is_configured(self, hostname: str) -> bool:
        return hostname in self.targets

    def dps(self, hostname: str | None = None) -> DpsClient:
        """The DPS client for ``hostname``, or the only configured DPS when None."""
        if hostname is None:
            if len(self.targets.dps) != 1:
                raise UnconfiguredTarget(
                    "dps",
                    f"{len(self.targets.dps)} DPS instances are configured; name the one to use",
                )
            hostname = next(iter(self.targets.dps))
        client = self.for_host(hostname)
        if not isinstance(client, DpsClient):
            raise UnconfiguredTarget(hostname, f"{hostname} is not a configured DPS")
        return client

    def hub(self, hostname: str) -> IotHubClient:
        client = self.for_host(hostname)
        if not isinstance(client, IotHubClient):
            raise UnconfiguredTarget(hostname, f"{hostname} is not a configured IoT hub")
        return client

    def for_host(self, hostname: str | None) -> DpsClient | IotHubClient:
        """The client for a configured hostname; UnconfiguredTarget (nothing called) otherwise."""
        target = self.targets.get(hostname) if isinstance(hostname, str) else None
        if target is None:
            raise UnconfiguredTarget(str(hostname))
        with self._lock:
            client = self._clients.get(target.hostname)
            if client is None:
                client = self._clients[target.hostname] = self._build(target)
            return client

    def _build(self, target: Target) -> DpsClient | IotHubClient:
        is_dps = target.kind == "dps"
        auth: SasAuth | EntraAuth
        if target.auth == "sas":
            if target.connection is None:
                raise UnconfiguredTarget(
                    target.hostname, f"{target.hostname}: targets were loaded without secrets"
                )
            auth = SasAuth(target.hostname, target.connection)
        else:
            auth = EntraAuth(DPS_SCOPE if is_dps else HUB_SCOPE, self._entra(target.credential))
        kinds = ("dps",) if is_dps else HUB_KINDS
        http = AzureHttp(
            target,
            client=self._http,
            auth=auth,
            api_version=DPS_API_VERSION if is_dps else HUB_API_VERSION,
            pacer=self._pacer,
            buckets={kind: bucket_for(target, kind) for kind in kinds},
            retry=self.retry,
            on_call=self._on_call,
            sleep=self._sleep,
            clock=self._clock,
        )
        return DpsClient(http) if is_dps else IotHubClient(http)

    def _entra(self, name: str | None) -> TokenCredential:
        if self._credential is not None:
            return self._credential
        name = name or "default"
        if name not in self._credentials:
            self._credentials[name] = make_credential(name)
        return self._credentials[name]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
