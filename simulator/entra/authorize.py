"""``/{tenant}/oauth2/v2.0/authorize``: checks the request, shows the account picker, and on
the picker's POST issues a single-use code (or an error) back to the redirect URI.

Errors about the client or the redirect URI are shown on the login server (Entra never sends
anyone to an unverified address); the others go back to the app with ``state``.
"""

import json
import secrets
import uuid

from ..request import Response
from . import pages, tokens
from .directory import APP_NAME, AUTH_CONTEXTS
from .errors import EntraError
from .web import SSO_COOKIE, page, redirect, redirect_matches

RESPONSE_MODES = ("query", "fragment", "form_post")
PROMPTS = (None, "login", "none", "consent", "select_account")


def _trusted_redirect(entra, params):
    """The redirect URI, once client and URI check out; errors here are shown, not sent."""
    client_id = params.get("client_id")
    if not client_id:
        raise EntraError(900144, name="client_id")
    if client_id != entra.client_id:
        raise EntraError(700016, client_id=client_id, directory=entra.directory.domain)
    uri = params.get("redirect_uri")
    if not uri:
        if not entra.redirect_uris:
            raise EntraError(900971)
        return entra.redirect_uris[0]
    if not any(redirect_matches(r, uri) for r in entra.redirect_uris):
        raise EntraError(50011, redirect_uri=uri, client_id=client_id)
    return uri


def _checked(params):
    """The rest of the authorize request; errors here go back to the app."""
    response_type = params.get("response_type")
    if not response_type:
        raise EntraError(900144, name="response_type")
    types = set(response_type.split())
    if types != {"code"}:
        raise EntraError(700054 if "id_token" in types else 70005, response_type=response_type)
    mode = params.get("response_mode") or "query"
    if mode not in RESPONSE_MODES:
        raise EntraError(70007)
    scope = params.get("scope")
    if not scope:
        raise EntraError(900144, name="scope")
    if "openid" not in scope.split():
        raise EntraError(
            70011,
            detail="The 'openid' scope is required: this stand-in only signs users in (a real "
            "tenant would issue a code for an access token and no ID token).",
        )
    prompt = params.get("prompt") or None
    if prompt not in PROMPTS:
        raise EntraError(90023, detail=f"Invalid value '{prompt}' for the 'prompt' parameter.")
    max_age = params.get("max_age")
    if max_age not in (None, ""):
        if not max_age.isdigit():
            raise EntraError(90023, detail="max_age must be a number of seconds.")
        max_age = int(max_age)
    else:
        max_age = None
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method") or ("plain" if challenge else None)
    if challenge is not None and not 43 <= len(challenge) <= 128:
        raise EntraError(501491)
    if method not in (None, "plain", "S256"):
        raise EntraError(90023, detail=f"Unsupported code_challenge_method '{method}'.")
    return {
        "acrs": _requested_contexts(params.get("claims")),
        "mode": mode,
        "scope": scope,
        "prompt": prompt,
        "max_age": max_age,
        "nonce": params.get("nonce"),
        "login_hint": params.get("login_hint"),
        "code_challenge": challenge,
        "code_challenge_method": method if challenge else None,
    }


def _requested_contexts(claims):
    """The authentication contexts the ``claims`` parameter asks for in the ID token, e.g.
    ``{"id_token": {"acrs": {"essential": true, "value": "c1"}}}``."""
    if not claims:
        return []
    try:
        wanted = json.loads(claims)["id_token"]["acrs"]
    except (ValueError, KeyError, TypeError):
        raise EntraError(90023, detail="The 'claims' parameter is not valid JSON.") from None
    values = wanted.get("values") or ([wanted["value"]] if "value" in wanted else [])
    unknown = [v for v in values if v not in AUTH_CONTEXTS]
    if unknown:
        raise EntraError(90023, detail=f"Unknown authentication context '{unknown[0]}'.")
    return values


def _contexts_for(user, request):
    """The requested contexts this user's sign-in satisfies; a context that needs MFA from a
    user without MFA is the error Conditional Access gives."""
    for context in request["acrs"]:
        if AUTH_CONTEXTS[context] == "mfa" and not user.mfa:
            raise EntraError(50076, resource=APP_NAME)
    return list(request["acrs"])


def authorize(entra, req):
    if req.method not in ("GET", "POST"):
        return Response(405, None, {"Allow": "GET, POST"})
    params = dict(req.query, **req.form)
    try:
        redirect_uri = _trusted_redirect(entra, params)
    except EntraError as err:
        return page(pages.error(err), 400)
    state = params.get("state")
    request = None
    try:
        request = _checked(params)
        session_token = req.cookies.get(SSO_COOKIE)
        session = entra.session(session_token) if session_token else None
        if req.method == "POST" and params.get("sim_cancel"):
            raise EntraError(65004)
        if req.method == "POST" and params.get("sim_user"):
            try:
                user = entra.user(params["sim_user"])
            except KeyError:
                raise EntraError(90023, detail="That account does not exist.") from None
            return _signed_in(entra, req, redirect_uri, request, state, user, session)
        if request["prompt"] == "none":
            return _silent(entra, redirect_uri, request, state, session)
        keep = {k: v for k, v in params.items() if not k.startswith("sim_")}
        fresh = request["prompt"] == "login"
        html = pages.sign_in(
            f"{req.base_url}{req.path}",
            keep,
            entra.users,
            session,
            request["login_hint"],
            fresh,
            APP_NAME,
        )
        return page(html)
    except EntraError as err:
        mode = request["mode"] if request else "query"
        return redirect(redirect_uri, dict(err.redirect_params(), state=state), mode)


def _too_old(session, max_age, now):
    """``max_age`` (OIDC): the last authentication is older than allowed; 0 means always."""
    return max_age is not None and (max_age == 0 or now - session["auth_time"] > max_age)


def _silent(entra, redirect_uri, request, state, session):
    """``prompt=none``: a code for the session's user, or ``login_required``."""
    now = int(entra.clock())
    hint = request["login_hint"]
    if session is None or (hint and entra.user(session["oid"]).upn != hint.lower()):
        raise EntraError(50058)
    if _too_old(session, request["max_age"], now):
        raise EntraError(50058)
    user = entra.user(session["oid"])
    return _issue_code(entra, redirect_uri, request, state, user, session["auth_time"])


def _signed_in(entra, req, redirect_uri, request, state, user, session):
    """The user picked an account: single sign-on keeps the session's ``auth_time`` unless
    ``prompt=login``, another account or an exceeded ``max_age`` calls for a new sign-in."""
    now = int(entra.clock())
    fresh = (
        request["prompt"] == "login"
        or session is None
        or session["oid"] != user.oid
        or _too_old(session, request["max_age"], now)
    )
    headers = {}
    auth_time = session["auth_time"] if session and not fresh else now
    if fresh:
        old = req.cookies.get(SSO_COOKIE)
        if old:
            entra.end_session(old)
        token = secrets.token_urlsafe(32)
        entra.start_session(token, user.oid, now)
        secure = "; Secure" if req.base_url.startswith("https:") else ""
        headers["Set-Cookie"] = f"{SSO_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"
    return _issue_code(entra, redirect_uri, request, state, user, auth_time, headers)


def _issue_code(entra, redirect_uri, request, state, user, auth_time, headers=None):
    code = tokens.new_code()
    grant = dict(
        request,
        client_id=entra.client_id,
        redirect_uri=redirect_uri,
        oid=user.oid,
        auth_time=auth_time,
        amr=user.amr,
        acrs=_contexts_for(user, request),
    )
    entra.store_code(code, grant)
    state = entra.take_faults({"state"}).get("state", state)
    params = {"code": code, "state": state, "session_state": str(uuid.uuid4())}
    return redirect(redirect_uri, params, request["mode"], headers)
