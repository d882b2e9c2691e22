"""The login server's HTTP endpoints, under ``/{tenant}/`` (the tenant GUID or its domain):

    GET  v2.0/.well-known/openid-configuration   discovery
    GET  discovery/v2.0/keys                     JWKS
    GET  oauth2/v2.0/authorize                   checks, then the account picker
    POST oauth2/v2.0/authorize                   the picker's answer: code (or error) redirect
    POST oauth2/v2.0/token                       authorization_code grant
    GET  oauth2/v2.0/logout                      ends the session, back to the app

Endpoint URLs in the discovery document use the scheme and host the request came in on (so a
browser and the portal reach them here); the issuer never does.
"""

from ..request import Response
from . import authorize as authorize_endpoint
from . import pages
from . import token as token_endpoint
from .errors import EntraError
from .web import NO_STORE, SSO_COOKIE, EntraRequest, page, redirect, redirect_matches

PUBLIC = {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"}
RESPONSE_MODES = authorize_endpoint.RESPONSE_MODES


def handle(entra, method, base_url, path, query_string, headers, body):
    """The answer to an Entra request, or None when the path is not one of Entra's."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    handler = ROUTES.get(tuple(parts[1:]))
    if handler is None:
        return None
    req = EntraRequest(method, base_url, path, query_string, headers, body)
    if not entra.directory.tenant_matches(parts[0]):
        err = EntraError(90002, tenant=parts[0])
        if handler in (authorize_endpoint.authorize, logout):
            response = page(pages.error(err), 400)
        else:
            response = Response(400, err.as_json(), NO_STORE)
    else:
        response = handler(entra, req)
    entra.record(method, path, response.status)
    return response


# -- discovery and keys -------------------------------------------------------------------


def discovery(entra, req):
    if req.method != "GET":
        return Response(405, None, {"Allow": "GET"})
    here = f"{req.base_url}/{entra.tenant_id}"
    doc = {
        "token_endpoint": f"{here}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{here}/discovery/v2.0/keys",
        "response_modes_supported": list(RESPONSE_MODES),
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": entra.issuer,
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{here}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{here}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{here}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],  # fmt: skip
        "kerberos_endpoint": f"{here}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return Response(200, doc, PUBLIC)


def keys(entra, req):
    if req.method != "GET":
        return Response(405, None, {"Allow": "GET"})
    return Response(200, entra.jwks(), PUBLIC)


# -- logout -----------------------------------------------------------------------------------


def logout(entra, req):
    params = dict(req.query, **req.form)
    token_value = req.cookies.get(SSO_COOKIE)
    if token_value:
        entra.end_session(token_value)
    headers = {"Set-Cookie": f"{SSO_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"}
    uri = params.get("post_logout_redirect_uri")
    if uri and any(redirect_matches(r, uri) for r in entra.redirect_uris):
        return redirect(uri, {"state": params.get("state")}, "query", headers)
    note = ""
    if uri:
        note = f"'{uri}' is not a redirect URI of the app, so you were not sent back there."
    return page(pages.signed_out(note), 200, headers)


ROUTES = {
    ("v2.0", ".well-known", "openid-configuration"): discovery,
    ("discovery", "v2.0", "keys"): keys,
    ("oauth2", "v2.0", "authorize"): authorize_endpoint.authorize,
    ("oauth2", "v2.0", "token"): token_endpoint.token,
    ("oauth2", "v2.0", "logout"): logout,
}
