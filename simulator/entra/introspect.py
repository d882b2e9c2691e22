"""``/_sim/entra...``: the Entra stand-in's test hooks over HTTP (never part of Entra itself).

GET    /_sim/entra                 tenant, client ID and secret, redirect URIs, users, kids
GET    /_sim/entra/faults          pending faults      POST (JSON object) adds, DELETE clears
GET    /_sim/entra/redirect-uris   registered URIs     POST (JSON list) replaces them
GET    /_sim/entra/options         amr / auth_time     POST (JSON object) changes them
POST   /_sim/entra/rotate-keys     a new current signing key; the old ones stay published
POST   /_sim/entra/retire-keys     stop publishing all but the current key
GET    /_sim/entra/style.css, /_sim/entra/form_post.js   the login pages' static files
"""

import json

from ..request import Response
from . import pages


def _json(body, kind):
    value = json.loads(body or (b"[]" if kind is list else b"{}"))
    if not isinstance(value, kind):
        raise ValueError(f"expected a JSON {'list' if kind is list else 'object'}")
    return value


def introspect(entra, method, path, body, base_url):
    """The answer to a ``/_sim/entra`` request, or None for an unknown one. The second value
    says whether the state file should be written (keys changed)."""
    if path == "/_sim/entra" and method == "GET":
        return Response(200, entra.describe(base_url)), False
    if path == "/_sim/entra/faults":
        if method == "GET":
            return Response(200, entra.faults), False
        if method == "POST":
            return Response(200, entra.set_faults(**_json(body, dict))), False
        if method == "DELETE":
            entra.clear_faults()
            return Response(200, {}), False
    if path == "/_sim/entra/redirect-uris":
        if method == "GET":
            return Response(200, list(entra.redirect_uris)), False
        if method == "POST":
            return Response(200, entra.set_redirect_uris(_json(body, list))), False
    if path == "/_sim/entra/options":
        if method == "GET":
            return Response(200, dict(entra.options)), False
        if method == "POST":
            return Response(200, entra.set_options(**_json(body, dict))), False
    if path == "/_sim/entra/rotate-keys" and method == "POST":
        entra.rotate_keys()
        body = {"current_kid": entra.current_kid, "signing_kids": entra.signing_kids}
        return Response(200, body), True
    if path == "/_sim/entra/retire-keys" and method == "POST":
        retired = entra.retire_old_keys()
        return Response(200, {"retired": retired, "signing_kids": entra.signing_kids}), True
    if path == "/_sim/entra/style.css" and method == "GET":
        return Response(200, raw=pages.STYLE.encode(), content_type="text/css"), False
    if path == "/_sim/entra/form_post.js" and method == "GET":
        script = pages.AUTOSUBMIT_JS.encode()
        return Response(200, raw=script, content_type="text/javascript"), False
    return None, False
