"""What a handler sees of a request, what it returns, and the helpers both services share:
JSON bodies, If-Match, ID validation and continuation paging."""

import base64
import hashlib
import json
import re
import urllib.parse

from .errors import ApiError

DPS_ID = re.compile(r"^[a-z0-9\-._:]{1,128}$", re.IGNORECASE)
HUB_ID = re.compile(r"^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$")
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class Response:
    """What a handler returns. ``body`` is JSON-encoded by the WSGI layer, as both Azure
    services answer; ``raw`` (bytes, with ``content_type``) is sent as it is, for the Entra
    stand-in's HTML pages and redirects."""

    def __init__(self, status=200, body=None, headers=None, raw=None, content_type=None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.raw = raw
        self.content_type = content_type

    @classmethod
    def html(cls, text, status=200, headers=None):
        return cls(status, None, headers, text.encode(), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location, status=302, headers=None):
        return cls(status, None, dict(headers or {}, Location=location), b"", None)

    def payload(self):
        """The bytes to send, setting Content-Type to match."""
        if self.raw is not None:
            if self.content_type:
                self.headers["Content-Type"] = self.content_type
            return self.raw
        if self.status == 204 or self.body is None:
            return b""
        self.headers["Content-Type"] = "application/json; charset=utf-8"
        return json.dumps(self.body).encode()


class Request:
    def __init__(self, sim, host, method, path, query, headers, raw_body):
        self.sim = sim
        self.host = host
        self.method = method
        self.path = path
        self.parts = [p for p in path.split("/") if p]
        self.query = query
        self.headers = headers  # lower-case names
        self.raw_body = raw_body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self, required=True):
        """The body as a JSON object; 400 for a wrong content type or malformed JSON."""
        if not self.raw_body.strip():
            if required:
                raise ApiError("bad_request", "The request body is missing.")
            return None
        content_type = self.header("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError("bad_format", f"Content type '{content_type}' is not supported.")
        try:
            value = json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError("bad_format", "The request body is not valid JSON.") from None
        if not isinstance(value, dict):
            raise ApiError("bad_format", "The request body must be a JSON object.")
        return value

    def if_match(self):
        value = self.header("if-match")
        if value is None:
            return None
        value = value.strip()
        if value.startswith("W/"):
            value = value[2:]
        return value.strip('"')


def parse_form(content_type, raw_body):
    """An application/x-www-form-urlencoded body as a dict (the last value of a repeated name
    wins); {} for any other content type."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    text = raw_body.decode("utf-8", errors="replace")
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


def etag_matches(condition, etag):
    """True if an If-Match condition (already unquoted) allows acting on ``etag``."""
    return condition is None or condition == "*" or condition == (etag or "").strip('"')


def check_dps_id(value, what="registration ID"):
    if not DPS_ID.match(value):
        raise ApiError("bad_request", f"The {what} '{value[:140]}' is invalid.")


def check_hub_id(value, what="device ID"):
    if not HUB_ID.match(value):
        raise ApiError("bad_request", f"The {what} '{value[:140]}' is invalid.")


def _token(after, query_key):
    raw = json.dumps({"a": after, "q": query_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def paginate(request, items, key, query_key, item_type, seed):
    """One page of ``items`` (sorted by ``key``) after the request's continuation token.

    The token names the last key returned, so deletions between pages do not skip items.
    Some pages come back deliberately short (decided by the seed and the position) because
    Azure's do: only a missing ``x-ms-continuation`` means the end.
    """
    raw_size = request.header("x-ms-max-item-count")
    try:
        size = int(raw_size) if raw_size not in (None, "") else DEFAULT_PAGE
    except ValueError:
        raise ApiError("bad_request", "x-ms-max-item-count must be an integer.") from None
    if size < 1:
        raise ApiError("bad_request", "x-ms-max-item-count must be positive.")
    size = min(size, MAX_PAGE)
    items = sorted(items, key=key)
    start = 0
    token = request.header("x-ms-continuation")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            after, token_query = decoded["a"], decoded["q"]
        except (ValueError, KeyError, TypeError):
            raise ApiError("bad_request", "The continuation token is invalid.") from None
        if token_query != query_key:
            raise ApiError("bad_request", "The continuation token belongs to another query.")
        while start < len(items) and key(items[start]) <= after:
            start += 1
        position = hashlib.sha256(f"{seed}/{after}".encode()).digest()[0]
        if size > 1 and position % 3 == 0:
            size = max(1, size // 2)
    page = items[start : start + size]
    headers = {"x-ms-item-type": item_type, "x-ms-max-item-count": str(size)}
    if start + size < len(items):
        headers["x-ms-continuation"] = _token(key(page[-1]), query_key)
    return Response(200, page, headers)


def query_key(text):
    return hashlib.sha256(text.encode()).hexdigest()[:12]
