"""The one HTTP client every Azure call goes through: pacing, auth, timeouts, retries, reporting.

Retries (the policy and what is retried: ``retry.py``): 429, 500, 502, 503, 504, timeouts and
dropped connections are retried with exponential backoff and full jitter (a ``Retry-After`` in
seconds replaces the computed delay), until ``max_attempts`` or the ``budget_seconds`` time
budget runs out, whichever comes first. No other 4xx is retried. A read or write timeout (or a
connection dropped mid-request) may have reached Azure, so the final response or error says
``ambiguous=True``; retried DELETEs are still safe because the caller treats 404 as "already
absent".

Every attempt is reported to ``on_call(CallRecord)``: method, host, path (never the query
string), status, timing and Azure's identifiers — never bodies, headers or keys.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from .errors import Permanent, Throttled, Transient, error_for_response, parse_error_body
from .pacing import PacingTimeout
from .retry import (
    AMBIGUOUS_ERRORS,
    RETRY_ERRORS,
    RETRY_STATUSES,
    RetryPolicy,
    Timeouts,
    Uniform,
)

if TYPE_CHECKING:
    from .auth import EntraAuth, SasAuth
    from .errors import AzureError
    from .pacing import Bucket, Pacer
    from .targets import Target

__all__ = ["AzureResponse", "CallRecord", "RetryPolicy", "Timeouts", "AzureHttp"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt, as reported to ``on_call`` (safe to store: no bodies, no secrets)."""

    method: str
    host: str
    path: str
    status: int | None
    duration_ms: int
    request_id: str | None
    tracking_id: str | None
    error_code: str | None
    attempt: int
    outcome: str  # "ok", "not_found", "retry" (another attempt follows) or "error"


@dataclasses.dataclass(frozen=True)
class AzureResponse:
    status: int
    data: Any  # parsed JSON (dict or list), None for an empty body or a 404
    request_id: str | None = None
    tracking_id: str | None = None
    error_code: str | None = None
    duration_ms: int = 0  # the whole call: every attempt, backoff and pacing wait
    attempts: int = 1
    ambiguous: bool = False  # an earlier attempt timed out after the request may have arrived
    continuation: str | None = None  # x-ms-continuation of a query page

    @property
    def found(self) -> bool:
        return self.status != 404


class AzureHttp:
    """Calls one target. ``bucket_for(kind)`` gives the pacing bucket for a kind of call."""

    def __init__(
        self,
        target: Target,
        *,
        client: httpx.Client,
        auth: SasAuth | EntraAuth,
        api_version: str,
        pacer: Pacer,
        buckets: dict[str, Bucket],
        retry: RetryPolicy | None = None,
        on_call: Callable[[CallRecord], object] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Uniform | None = None,
    ) -> None:
        self.target = target
        self._client = client
        self._auth = auth
        self.api_version = api_version
        self._pacer = pacer
        self._buckets = buckets
        self.retry = retry or RetryPolicy()
        self._on_call = on_call
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def request(
        self,
        method: str,
        path: str,
        *,
        bucket: str,
        json_body: object = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> AzureResponse:
        """Send with retries; return an AzureResponse or raise an AzureError subclass.

        ``missing_ok``: a 404 carrying an Azure error code is returned (``found`` False) instead
        of raised; a bare 404 without one still raises NotFound.
        """
        started = self._clock()
        attempt = 0
        ambiguous = False
        context: dict[str, Any] = {"method": method, "host": self.target.hostname, "path": path}
        while True:
            attempt += 1
            self._pace(bucket, started, attempt, ambiguous, context)
            sent = self._clock()
            response, error, this_ambiguous, retry_after = self._attempt(
                method, path, json_body, headers, missing_ok, attempt, context
            )
            if error is None:
                assert response is not None  # _attempt answers a response when nothing failed
                try:
                    return self._success(
                        response, method, path, attempt, sent, started, ambiguous, missing_ok
                    )
                finally:
                    _release(response)
            duration = self._clock() - sent
            delay = self._retry_delay(error, attempt, retry_after, started)
            self._report(method, path, error.status, duration, attempt, error, delay)
            ambiguous = ambiguous or this_ambiguous
            if delay is None:
                error.ambiguous = ambiguous
                raise error
            log.info(
                "azure %s %s%s: attempt %d failed (%s), retrying in %.1fs",
                method,
                self.target.hostname,
                path,
                attempt,
                error.status or error.message,
                delay,
            )
            self._sleep(delay)

    def _pace(
        self, bucket: str, started: float, attempt: int, ambiguous: bool, context: dict[str, Any]
    ) -> None:
        """Wait for a token of ``bucket`` within what is left of the retry budget."""
        policy = self.retry
        remaining = policy.budget_seconds - (self._clock() - started)
        try:
            self._pacer.acquire(
                self._buckets[bucket], max_wait=min(policy.pacing_max_wait, remaining)
            )
        except PacingTimeout as exc:
            raise Throttled(
                f"local pacing: no {bucket} token for {exc.wait:.1f}s",
                retry_after=exc.wait,
                attempts=attempt - 1,
                ambiguous=ambiguous,
                **context,
            ) from None

    def _attempt(
        self,
        method: str,
        path: str,
        json_body: object,
        headers: dict[str, str] | None,
        missing_ok: bool,
        attempt: int,
        context: dict[str, Any],
    ) -> tuple[httpx.Response | None, AzureError | None, bool, float | None]:
        """One send: (response, None, …) when it succeeded, else (response or None, the error,
        whether the outcome is unknown, the Retry-After Azure asked for)."""
        try:
            response = self._send(method, path, json_body, headers)
        except RETRY_ERRORS as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            error: AzureError = Transient(message, attempts=attempt, **context)
            return None, error, isinstance(exc, AMBIGUOUS_ERRORS), None
        status = response.status_code
        if status < 300 or (status == 404 and missing_ok and _azure_said(response)):
            return response, None, False, None
        error = error_for_response(
            status, response.headers, response.content, attempts=attempt, **context
        )
        if status in (401, 403):
            self._auth.invalidate()
        return response, error, status == 504, getattr(error, "retry_after", None)

    def _retry_delay(
        self, error: AzureError, attempt: int, retry_after: float | None, started: float
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None when this error is final."""
        policy = self.retry
        if error.status is not None and error.status not in RETRY_STATUSES:
            return None
        if error.permanent or attempt >= policy.max_attempts:
            return None
        delay = retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
        if self._clock() - started + delay >= policy.budget_seconds:
            return None
        return delay

    def _send(
        self, method: str, path: str, json_body: object, headers: dict[str, str] | None
    ) -> httpx.Response:
        request_headers = {
            "Authorization": self._auth.header(),
            "Accept": "application/json",
            "User-Agent": "dsr-portal",
        }
        if self.target.endpoint:
            request_headers["Host"] = self.target.hostname
        if headers:
            request_headers.update(headers)
        content = None
        if json_body is not None:
            content = json.dumps(json_body).encode()
            request_headers["Content-Type"] = "application/json; charset=utf-8"
        return self._client.request(
            method,
            self.target.base_url + path,
            params={"api-version": self.api_version},
            headers=request_headers,
            content=content,
            timeout=self.retry.timeouts.httpx(),
        )

    def _success(
        self,
        response: httpx.Response,
        method: str,
        path: str,
        attempt: int,
        sent: float,
        started: float,
        ambiguous: bool,
        missing_ok: bool,
    ) -> AzureResponse:
        now = self._clock()
        status = response.status_code
        request_id = response.headers.get("x-ms-request-id")
        if status == 404:
            error = error_for_response(status, response.headers, response.content)
            self._report(method, path, status, now - sent, attempt, error, None, "not_found")
            return AzureResponse(
                status=status,
                data=None,
                request_id=request_id,
                tracking_id=error.tracking_id,
                error_code=error.error_code,
                duration_ms=_ms(now - started),
                attempts=attempt,
                ambiguous=ambiguous,
            )
        data = None
        if response.content.strip():
            try:
                data = response.json()
            except ValueError:
                self._report(method, path, status, now - sent, attempt, None, None, "error")
                raise Permanent(
                    "the answer is not JSON",
                    status=status,
                    request_id=request_id,
                    method=method,
                    host=self.target.hostname,
                    path=path,
                    attempts=attempt,
                    ambiguous=ambiguous,
                ) from None
        self._report(method, path, status, now - sent, attempt, None, None, "ok", request_id)
        return AzureResponse(
            status=status,
            data=data,
            request_id=request_id,
            duration_ms=_ms(now - started),
            attempts=attempt,
            ambiguous=ambiguous,
            continuation=response.headers.get("x-ms-continuation") or None,
        )

    def _report(
        self,
        method: str,
        path: str,
        status: int | None,
        seconds: float,
        attempt: int,
        error: AzureError | None,
        delay: float | None,
        outcome: str | None = None,
        rid: str | None = None,
    ) -> None:
        if self._on_call is None:
            return
        if outcome is None:
            outcome = "retry" if delay is not None else "error"
        record = CallRecord(
            method=method,
            host=self.target.hostname,
            path=path,
            status=status,
            duration_ms=_ms(seconds),
            request_id=error.request_id if error is not None else rid,
            tracking_id=error.tracking_id if error is not None else None,
            error_code=error.error_code if error is not None else None,
            attempt=attempt,
            outcome=outcome,
        )
        try:
            self._on_call(record)
        except Exception:  # a broken observer must not fail (or repeat) an Azure operation
            log.exception("on_call hook failed for %s %s%s", method, self.target.hostname, path)

    def pages(self, path: str, *, bucket: str, body: object, page_size: int) -> Iterator[Any]:
        """Yield every item of a paged query, following x-ms-continuation until it is absent."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        continuation: str | None = None
        while True:
            headers = {"x-ms-max-item-count": str(page_size)}
            if continuation:
                headers["x-ms-continuation"] = continuation
            response = self.request("POST", path, bucket=bucket, json_body=body, headers=headers)
            items = response.data if response.data is not None else []
            if not isinstance(items, list):
                raise Permanent(
                    "a query page is not a JSON array",
                    status=response.status,
                    request_id=response.request_id,
                    method="POST",
                    host=self.target.hostname,
                    path=path,
                )
            yield from items
            if not response.continuation:
                return
            if response.continuation == continuation:
                raise Permanent(
                    "the service repeated the same continuation token",
                    status=response.status,
                    method="POST",
                    host=self.target.hostname,
                    path=path,
                )
            continuation = response.continuation


def _release(response: httpx.Response) -> None:
    """Let the body go as soon as it is parsed. httpx binds a response and its stream to each
    other (a reference cycle), so a page of a query would otherwise stay in memory until
    Python's cyclic collector runs: a long paged scan grew with every page."""
    response.stream = httpx.ByteStream(b"")


def _azure_said(response: httpx.Response) -> bool:
    """True when a 404 carries Azure's error code, so it means "no such resource".

    A bare 404 (a proxy, a wrong endpoint) must not be taken for "already deleted".
    """
    code, _, _ = parse_error_body(response.content, response.headers)
    return code is not None


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
