"""What the login server's endpoints share: the request they see, redirect URI matching,
redirects back to the app (query, fragment or form_post) and page headers."""

import urllib.parse

from ..request import Response, parse_form
from . import pages

SSO_COOKIE = "azuresim_entra_sso"
LOOPBACK = ("localhost", "127.0.0.1")
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


class EntraRequest:
    def __init__(self, method, base_url, path, query_string, headers, body):
        self.method = method
        self.base_url = base_url
        self.path = path
        self.query = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True))
        self.headers = headers
        self.form = parse_form(headers.get("content-type", ""), body) if method == "POST" else {}
        self.cookies = {}
        for part in headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                self.cookies[name] = value


def redirect_matches(registered, uri):
    """Exact, case-sensitive match; for loopback hosts the port is ignored (Entra's
    "localhost exceptions", RFC 8252 7.3)."""
    if registered == uri:
        return True
    a, b = urllib.parse.urlsplit(registered), urllib.parse.urlsplit(uri)
    try:
        a.port, b.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    if a.hostname not in LOOPBACK:
        return False
    here, there = (
        (a.scheme, a.hostname, a.path or "/", a.query),
        (b.scheme, b.hostname, b.path or "/", b.query),
    )
    return here == there


def redirect(uri, params, mode, headers=None):
    params = {k: v for k, v in params.items() if v is not None}
    headers = dict(NO_STORE, **(headers or {}))
    if mode == "form_post":
        headers["Content-Security-Policy"] = pages.CSP
        return Response.html(pages.form_post(uri, params), 200, headers)
    parts = urllib.parse.urlsplit(uri)
    path = parts.path or "/"  # "Redirect URIs not configured with a path ... trailing slash"
    encoded = urllib.parse.urlencode(params)
    if mode == "fragment":
        target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, encoded))
    else:
        query = f"{parts.query}&{encoded}" if parts.query else encoded
        target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    return Response.redirect(target, 302, headers)


def page(html, status=200, headers=None):
    """A login-server page, with its strict CSP; never cached."""
    headers = dict(NO_STORE, **(headers or {}))
    headers.update({"Content-Security-Policy": pages.CSP, "X-Frame-Options": "DENY"})
    return Response.html(html, status, headers)
