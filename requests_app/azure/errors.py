"""The typed errors the Azure clients raise, and how Azure's two error formats map onto them.

DPS answers ``{"errorCode": 404201, "trackingId": …, "message": …}`` with header
``x-ms-error-code``; IoT Hub answers ``{"Message": "ErrorCode:DeviceNotFound;…",
"ExceptionMessage": "Tracking ID:…-G:…-TimeStamp:…"}`` with header ``iothub-errorcode``. Both are
read here, and bodies that are not JSON at all (a proxy's HTML page) are tolerated.

``permanent`` says whether retrying the same request could help: callers mark an operation failed
when it is True and try again later when it is False.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AzureError",
    "NotFound",
    "PreconditionFailed",
    "Throttled",
    "Unauthorized",
    "Transient",
    "Permanent",
    "UnconfiguredTarget",
    "error_for_response",
    "parse_error_body",
]


class AzureError(Exception):
    """An Azure call that did not succeed (after any retries)."""

    permanent = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        tracking_id: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        host: str | None = None,
        path: str | None = None,
        attempts: int = 1,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.tracking_id = tracking_id
        self.request_id = request_id
        self.method = method
        self.host = host
        self.path = path
        self.attempts = attempts
        # An earlier attempt timed out after the request may have reached Azure.
        self.ambiguous = ambiguous

    def __str__(self) -> str:
        where = f"{self.method} {self.host}{self.path}: " if self.method else ""
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        code = f" [{self.error_code}]" if self.error_code else ""
        tracking = f" (tracking ID {self.tracking_id})" if self.tracking_id else ""
        return f"{where}{status}{code} {self.message}{tracking}"


class NotFound(AzureError):
    """404 on a call that was not a GET or DELETE (those return a response with found=False)."""


class PreconditionFailed(AzureError):
    """412: the If-Match etag no longer matches."""


class Unauthorized(AzureError):
    """401 or 403: bad or expired credentials, or a policy without the right permission."""


class Permanent(AzureError):
    """Any other 4xx, or an answer the client cannot read: retrying cannot help."""


class Transient(AzureError):
    """5xx, a timeout or a dropped connection (``status`` is None): a later retry may succeed."""

    permanent = False


class Throttled(AzureError):
    """429, or the local pacer could not get a token in time; ``retry_after`` is in seconds."""

    permanent = False

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class UnconfiguredTarget(AzureError):
    """A hostname that is not in the targets file. Nothing was called; never retry."""

    def __init__(self, hostname: str, message: str | None = None) -> None:
        super().__init__(message or f"{hostname} is not a configured Azure target", host=hostname)
        self.hostname = hostname

    def __str__(self) -> str:
        return self.message


_HUB_CODE = re.compile(r"ErrorCode:\s*([A-Za-z0-9_]+)\s*;?\s*(.*)", re.DOTALL)
_HUB_TRACKING = re.compile(r"Tracking ID:\s*([^\s,;]+?)(?:-G:|-TimeStamp:|[\s,;]|$)")


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_error_body(
    content: bytes | str | None, headers: Mapping[str, str]
) -> tuple[str | None, str | None, str | None]:
    """Return (error_code, tracking_id, message) from an Azure error answer, whatever its shape."""
    code = _text(headers.get("x-ms-error-code")) or _text(headers.get("iothub-errorcode"))
    tracking = None
    message = None
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        fields = {key.lower(): value for key, value in body.items()}
        # The hub sometimes nests its JSON error inside "Message" as a string.
        nested = fields.get("message")
        if isinstance(nested, str) and nested.lstrip().startswith("{"):
            try:
                inner = json.loads(nested)
            except ValueError:
                inner = None
            if isinstance(inner, dict):
                fields.update({key.lower(): value for key, value in inner.items()})
        raw_code = fields.get("errorcode")
        if code is None and raw_code is not None and not isinstance(raw_code, bool):
            code = _text(str(raw_code))
        tracking = _text(fields.get("trackingid"))
        message = _text(fields.get("message"))
        if message:
            match = _HUB_CODE.match(message)
            if match:
                code = code or match.group(1)
                message = _text(match.group(2)) or message
        exception_message = fields.get("exceptionmessage")
        if tracking is None and isinstance(exception_message, str):
            match = _HUB_TRACKING.search(exception_message)
            if match:
                tracking = match.group(1)
    elif content:
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        message = _text(" ".join(text.split())[:200])
    return code, tracking, message


def error_for_response(
    status: int, headers: Mapping[str, str], content: bytes | str | None, **context: Any
) -> AzureError:
    """Build the AzureError subclass matching an HTTP error answer."""
    code, tracking, message = parse_error_body(content, headers)
    kwargs: dict[str, Any] = dict(
        status=status,
        error_code=code,
        tracking_id=tracking,
        request_id=_text(headers.get("x-ms-request-id")),
        **context,
    )
    message = message or f"HTTP {status}"
    if status == 429:
        return Throttled(message, retry_after=parse_retry_after(headers), **kwargs)
    if status >= 500:
        return Transient(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 412:
        return PreconditionFailed(message, **kwargs)
    if status in (401, 403):
        return Unauthorized(message, **kwargs)
    return Permanent(message, **kwargs)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header in its seconds form; None when absent or a date."""
    value = _text(headers.get("retry-after"))
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
