"""``/{tenant}/oauth2/v2.0/token``: the authorization_code grant, with the client
authenticated by its secret (form or HTTP Basic) or a certificate-signed client assertion."""

import base64
import secrets
import urllib.parse

from ..request import Response
from . import tokens
from .directory import GRAPH_USER_READ
from .errors import EntraError
from .service import ID_TOKEN_FAULTS
from .web import NO_STORE

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")


def _client_credentials(req):
    """(client_id, secret) from HTTP Basic, else from the form (RFC 6749 2.3.1)."""
    header = req.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except ValueError:
            raise EntraError(90023, detail="Malformed Basic credentials.") from None
        name, _, secret = decoded.partition(":")
        return urllib.parse.unquote_plus(name), urllib.parse.unquote_plus(secret), True
    return req.form.get("client_id"), req.form.get("client_secret"), False


def _authenticate_client(entra, req):
    client_id, secret, basic = _client_credentials(req)
    form = req.form
    if basic and form.get("client_id") not in (None, client_id):
        raise EntraError(90023, detail="client_id differs from the Basic credentials.")
    if not client_id:
        raise EntraError(900144, name="client_id")
    if client_id != entra.client_id:
        raise EntraError(700016, client_id=client_id, directory=entra.directory.domain)
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if assertion or assertion_type:
        if assertion_type != tokens.ASSERTION_TYPE:
            raise EntraError(90100, name="client_assertion_type")
        if not assertion:
            raise EntraError(900144, name="client_assertion")
        # aud: the token endpoint the assertion is sent to, as called here or as Entra's own.
        tenant = req.path.strip("/").split("/")[0]
        audiences = {
            f"{req.base_url}{req.path}",
            f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        }
        tokens.check_client_assertion(entra, assertion, client_id, audiences, entra.clock())
        return "private_key_jwt"
    if secret is None:
        raise EntraError(7000218)
    if not secrets.compare_digest(secret.encode(), entra.client_secret.encode()):
        raise EntraError(7000215, client_id=client_id)
    return "client_secret_basic" if basic else "client_secret_post"


def _redeem(entra, req):
    form = req.form
    code = form.get("code")
    if not code:
        raise EntraError(900144, name="code")
    redirect_uri = form.get("redirect_uri")
    if not redirect_uri:
        raise EntraError(900144, name="redirect_uri")
    grant = entra.take_code(code)
    if grant is None:
        raise EntraError(70000)
    if grant["redeemed"]:
        raise EntraError(54005)
    if grant["expires"] <= entra.clock():
        raise EntraError(70008)
    if redirect_uri != grant["redirect_uri"]:
        raise EntraError(500112, redirect_uri=redirect_uri, expected=grant["redirect_uri"])
    if grant["code_challenge"]:
        verifier = form.get("code_verifier")
        if not verifier:
            raise EntraError(900144, name="code_verifier")
        if not tokens.pkce_matches(
            grant["code_challenge"], grant["code_challenge_method"], verifier
        ):
            raise EntraError(501481)
    return grant


def token(entra, req):
    try:
        if req.method != "POST":
            raise EntraError(900561, valid="POST, OPTIONS", method=req.method)
        pending = entra.take_faults({"token_error"})
        if pending:
            raise EntraError(pending["token_error"])
        grant_type = req.form.get("grant_type")
        if not grant_type:
            raise EntraError(900144, name="grant_type")
        if grant_type != "authorization_code":
            raise EntraError(70003, grant_type=grant_type)
        client_auth = _authenticate_client(entra, req)
        grant = dict(_redeem(entra, req), client_auth=client_auth)
    except EntraError as err:
        return err.token_response()
    now = int(entra.clock())
    faults = entra.take_faults(set(ID_TOKEN_FAULTS))
    claims = tokens.apply_faults(
        tokens.id_token_claims(entra, grant, now, entra.options), faults, now
    )
    if faults.get("unsigned"):
        id_token = tokens.sign(claims, None, None, alg="none")
    elif faults.get("sign_with_unknown_key"):
        stranger = entra.stranger_key()
        kid = entra.current_kid if faults["sign_with_unknown_key"] == "same_kid" else stranger.kid
        id_token = tokens.sign(claims, stranger.private_key, kid)
    else:
        key = entra.current_key()
        id_token = tokens.sign(claims, key.private_key, key.kid)
    scopes = sorted(
        s for s in set(grant["scope"].split()) & set(OIDC_SCOPES) if s != "offline_access"
    )
    body = {
        "token_type": "Bearer",
        "scope": " ".join([*scopes, GRAPH_USER_READ]),
        "expires_in": tokens.ACCESS_TOKEN_LIFETIME,
        "ext_expires_in": tokens.ACCESS_TOKEN_LIFETIME,
        "access_token": tokens.access_token(entra, grant, now),
        "id_token": id_token,
    }
    return Response(200, body, NO_STORE)
