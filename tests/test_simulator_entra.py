"""The simulator's Microsoft Entra ID stand-in, over real HTTP: discovery, the authorization
code flow with a plain client and with Authlib (the portal's library), client secrets and
certificate assertions, single-use codes, redirect URI checks, key rotation, the fault hooks."""

import argparse
import base64
import hashlib
import stat
import threading
import time
import urllib.parse
from io import StringIO

import httpx
import jwt
import pytest

from simulator import cli
from simulator.app import Simulator
from simulator.entra.keys import KeyPair
from simulator.entra.web import redirect_matches
from simulator.server import serve
from tests.simulator_helpers import LoginBrowser, html_forms, redirect_params

CALLBACK = "http://127.0.0.1/auth/oidc/callback/"  # registered: the port is ignored (loopback)
APP_CALLBACK = "http://127.0.0.1:8000/auth/oidc/callback/"
SCOPE = "openid profile email"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def served():
    sim = Simulator(seed=3, devices=2, entra_redirect_uris=[CALLBACK])
    server = serve(sim)
    try:
        yield sim, server
    finally:
        server.shutdown()


@pytest.fixture
def browser():
    browser = LoginBrowser()
    yield browser
    browser.close()


def metadata(server, sim, host=None):
    headers = {"Host": host} if host else {}
    url = sim.entra.metadata_url(server.url)
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def authorize_params(sim, **extra):
    params = {
        "client_id": sim.entra.client_id,
        "response_type": "code",
        "redirect_uri": APP_CALLBACK,
        "scope": SCOPE,
        "state": "st-123",
        "nonce": "n-456",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def redeem(meta, sim, code, **extra):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_CALLBACK,
        "client_id": sim.entra.client_id,
        "client_secret": sim.entra.client_secret,
    }
    form.update(extra)
    form = {k: v for k, v in form.items() if v is not None}
    return httpx.post(meta["token_endpoint"], data=form, timeout=10)


def sign_in_and_redeem(sim, server, browser, upn="approver1@contoso.example", **params):
    meta = metadata(server, sim)
    sent = browser.sign_in(meta["authorization_endpoint"], upn, **authorize_params(sim, **params))
    response = redeem(meta, sim, sent["code"])
    assert response.status_code == 200, response.text
    return meta, sent, response.json()


def verify(meta, id_token, sim, nonce="n-456"):
    """Validate as a relying party must: signature from the JWKS, iss, aud, exp, nonce."""
    jwks = httpx.get(meta["jwks_uri"], timeout=10).json()
    keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks).keys}
    header = jwt.get_unverified_header(id_token)
    claims = jwt.decode(
        id_token,
        keys[header["kid"]].key,
        algorithms=meta["id_token_signing_alg_values_supported"],
        audience=sim.entra.client_id,
        issuer=meta["issuer"],
    )
    assert claims["nonce"] == nonce
    return header, claims


def assert_aadsts(response, status, error, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "error_description", "error_codes", "timestamp", "trace_id"}
    assert "correlation_id" in body
    assert body["error"] == error and body["error_codes"] == [code]
    description = body["error_description"]
    assert description.startswith(f"AADSTS{code}: ")
    assert f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: " in description
    assert description.endswith(f"\r\nTimestamp: {body['timestamp']}")
    assert response.headers["cache-control"].startswith("no-store")


# -- discovery and keys -------------------------------------------------------------------


def test_discovery_has_entras_shape_and_a_fixed_issuer(served):
    sim, server = served
    meta = metadata(server, sim)
    tenant = sim.entra.tenant_id
    assert meta["issuer"] == f"https://login.microsoftonline.com/{tenant}/v2.0"
    here = f"{server.url}/{tenant}"
    assert meta["authorization_endpoint"] == f"{here}/oauth2/v2.0/authorize"
    assert meta["token_endpoint"] == f"{here}/oauth2/v2.0/token"
    assert meta["jwks_uri"] == f"{here}/discovery/v2.0/keys"
    assert meta["end_session_endpoint"] == f"{here}/oauth2/v2.0/logout"
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["subject_types_supported"] == ["pairwise"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "private_key_jwt",
        "client_secret_basic",
    }
    assert {"openid", "profile", "email"} <= set(meta["scopes_supported"])
    assert {"sub", "iss", "aud", "nonce", "auth_time", "tid"} <= set(meta["claims_supported"])
    # Reached as login.microsoftonline.com, the same issuer and endpoints on that host.
    real = metadata(server, sim, host="login.microsoftonline.com")
    assert real["issuer"] == meta["issuer"]
    assert real["token_endpoint"].startswith(f"http://login.microsoftonline.com/{tenant}/")
    # The tenant's domain name works too and resolves to the GUID.
    by_domain = httpx.get(f"{server.url}/contoso.example/v2.0/.well-known/openid-configuration")
    assert by_domain.json()["issuer"] == meta["issuer"]
    unknown = httpx.get(f"{server.url}/nobody.example/v2.0/.well-known/openid-configuration")
    assert_aadsts(unknown, 400, "invalid_tenant", 90002)
    # Azure hosts are not Entra's.
    azure = httpx.get(
        f"{server.url}/{tenant}/v2.0/.well-known/openid-configuration",
        headers={"Host": "demo-hub-1.azure-devices.net"},
    )
    assert "issuer" not in azure.text and azure.headers["iothub-errorcode"]


def test_jwks_lists_rsa_signing_keys_with_certificates(served):
    sim, server = served
    jwks = httpx.get(metadata(server, sim)["jwks_uri"], timeout=10).json()
    (key,) = jwks["keys"]
    assert {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"} <= set(key)
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["e"] == "AQAB"
    assert key["kid"] == key["x5t"] == sim.entra.current_kid
    assert key["issuer"] == sim.entra.issuer
    assert len(base64.urlsafe_b64decode(key["n"] + "==")) == 256  # RSA 2048


# -- the code flow with a plain client ----------------------------------------------------


def test_account_picker_lists_the_seeded_users(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    page = browser.open(meta["authorization_endpoint"], **authorize_params(sim))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>Sign in — Microsoft (simulated)</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and " style=" not in page.text
    forms = html_forms(page.text)
    upns = [f["upn"] for f in forms if f["upn"]]
    assert upns == [u.upn for u in sim.entra.users]
    assert "approver-nomfa@contoso.example" in upns and "norole@contoso.example" in upns
    for form in forms:
        assert form["fields"]["state"] == "st-123" and form["fields"]["nonce"] == "n-456"
    assert "DSR.Approver · MFA" in page.text and "DSR.Approver · password only" in page.text
    assert "no app role" in page.text


def test_code_flow_gives_an_id_token_that_verifies_against_the_jwks(served, browser):
    sim, server = served
    meta, sent, body = sign_in_and_redeem(sim, server, browser)
    assert sent["state"] == "st-123" and sent["code"]
    assert set(body) == {
        "token_type",
        "scope",
        "expires_in",
        "ext_expires_in",
        "access_token",
        "id_token",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["scope"].split()[:3] == ["email", "openid", "profile"]
    header, claims = verify(meta, body["id_token"], sim)
    assert header["typ"] == "JWT" and header["alg"] == "RS256"
    assert header["kid"] == sim.entra.current_kid
    user = sim.entra.user("approver1")
    assert claims["oid"] == user.oid
    assert claims["tid"] == sim.entra.tenant_id and claims["ver"] == "2.0"
    assert claims["preferred_username"] == claims["email"] == "approver1@contoso.example"
    assert claims["name"] == "Anders Approver"
    assert claims["roles"] == ["DSR.Approver"]
    assert claims["amr"] == ["pwd", "mfa"]
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert abs(claims["auth_time"] - time.time()) < 30
    assert {"aio", "rh", "uti", "sub"} <= set(claims)
    assert claims["sub"] != claims["oid"]  # pairwise per app, not the object ID
    # Same user again: same sub; a user without app roles gets no roles claim at all.
    again = LoginBrowser()
    try:
        _, _, second = sign_in_and_redeem(sim, server, again)
        assert verify(meta, second["id_token"], sim)[1]["sub"] == claims["sub"]
        _, _, plain = sign_in_and_redeem(sim, server, again, upn="norole@contoso.example")
        no_role = verify(meta, plain["id_token"], sim)[1]
        assert "roles" not in no_role and no_role["amr"] == ["pwd"]
    finally:
        again.close()


def test_claims_follow_the_requested_scopes(served, browser):
    sim, server = served
    _, _, body = sign_in_and_redeem(sim, server, browser, scope="openid")
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert not {"name", "preferred_username", "oid", "email"} & set(claims)
    assert {"sub", "tid", "nonce", "roles"} <= set(claims)


def test_client_secret_basic_and_wrong_or_missing_secrets(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    authorize_url = meta["authorization_endpoint"]
    sent = browser.sign_in(authorize_url, "officer@contoso.example", **authorize_params(sim))
    wrong = redeem(meta, sim, sent["code"], client_secret="not-it")
    assert_aadsts(wrong, 401, "invalid_client", 7000215)
    missing = redeem(meta, sim, sent["code"], client_secret=None)
    assert_aadsts(missing, 401, "invalid_client", 7000218)
    # The code survived failed client authentication; HTTP Basic redeems it.
    secret = urllib.parse.quote_plus(sim.entra.client_secret)
    basic = base64.b64encode(f"{sim.entra.client_id}:{secret}".encode()).decode()
    form = {"grant_type": "authorization_code", "code": sent["code"], "redirect_uri": APP_CALLBACK}
    response = httpx.post(
        meta["token_endpoint"], data=form, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.text
    unknown = redeem(meta, sim, "x", client_id="11111111-2222-4333-8444-555555555555")
    assert_aadsts(unknown, 400, "unauthorized_client", 700016)
    grant = redeem(meta, sim, "x", grant_type="password")
    assert_aadsts(grant, 400, "unsupported_grant_type", 70003)
    assert_aadsts(httpx.get(meta["token_endpoint"]), 400, "invalid_request", 900561)


def test_client_assertion_signed_with_the_registered_certificate(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    token_url = meta["token_endpoint"]

    def attempt(assertion, assertion_type=ASSERTION_TYPE):
        sent = browser.sign_in(
            meta["authorization_endpoint"], "admin@contoso.example", **authorize_params(sim)
        )
        extra = {"client_assertion_type": assertion_type, "client_assertion": assertion}
        return redeem(meta, sim, sent["code"], client_secret=None, **extra)

    # What a client builds from the PEMs, with the legacy x5t header.
    cert = KeyPair.from_pem(sim.entra.client_key_pem(), sim.entra.client_certificate_pem())
    now = int(time.time())
    claims = {
        "aud": token_url,
        "iss": sim.entra.client_id,
        "sub": sim.entra.client_id,
        "jti": "a-unique-id",
        "nbf": now,
        "exp": now + 300,
    }
    by_hand = jwt.encode(claims, sim.entra.client_key_pem(), "RS256", headers={"x5t": cert.x5t})
    assert attempt(by_hand).status_code == 200
    assert_aadsts(attempt(by_hand), 401, "invalid_client", 50013)  # the jti was used
    for header in ("x5t#S256", "kid"):
        assert attempt(sim.entra.client_assertion(token_url, header=header)).status_code == 200
    real_aud = f"https://login.microsoftonline.com/{sim.entra.tenant_id}/oauth2/v2.0/token"
    assert attempt(sim.entra.client_assertion(real_aud, alg="PS256")).status_code == 200

    stranger = KeyPair.generate("someone else")
    forged = jwt.encode(
        dict(claims, jti="j2"), stranger.private_key, "RS256", headers={"x5t": cert.x5t}
    )
    assert_aadsts(attempt(forged), 401, "invalid_client", 700027)
    unknown = jwt.encode(
        dict(claims, jti="j3"), stranger.private_key, "RS256", headers={"x5t": stranger.x5t}
    )
    assert_aadsts(attempt(unknown), 401, "invalid_client", 700027)
    expired = sim.entra.client_assertion(token_url, lifetime=-3600)
    assert_aadsts(attempt(expired), 401, "invalid_client", 700024)
    elsewhere = sim.entra.client_assertion("https://example.com/token")
    assert_aadsts(attempt(elsewhere), 401, "invalid_client", 50013)
    listed = sim.entra.client_assertion([token_url, meta["issuer"]])
    assert_aadsts(attempt(listed), 401, "invalid_client", 50027)
    wrong_type = attempt(sim.entra.client_assertion(token_url), assertion_type="jwt")
    assert_aadsts(wrong_type, 400, "invalid_request", 90100)


def test_a_code_is_single_use_short_lived_and_bound_to_its_redirect_uri(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    url = meta["authorization_endpoint"]
    sent = browser.sign_in(url, "auditor@contoso.example", **authorize_params(sim))
    assert redeem(meta, sim, sent["code"]).status_code == 200
    assert_aadsts(redeem(meta, sim, sent["code"]), 400, "invalid_grant", 54005)
    assert_aadsts(redeem(meta, sim, "1.Anonsense"), 400, "invalid_grant", 70000)
    sent = browser.sign_in(url, "auditor@contoso.example", **authorize_params(sim))
    other = redeem(meta, sim, sent["code"], redirect_uri="http://127.0.0.1:8000/elsewhere")
    assert_aadsts(other, 400, "invalid_grant", 500112)
    sent = browser.sign_in(url, "auditor@contoso.example", **authorize_params(sim))
    started = time.time()
    sim.entra.clock = lambda: started + 601  # Entra's codes live about ten minutes
    assert_aadsts(redeem(meta, sim, sent["code"]), 400, "invalid_grant", 70008)


def test_pkce_is_checked_when_the_request_used_it(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = authorize_params(
        sim, code_challenge=challenge.rstrip(b"=").decode(), code_challenge_method="S256"
    )
    url = meta["authorization_endpoint"]
    sent = browser.sign_in(url, "officer@contoso.example", **params)
    assert_aadsts(redeem(meta, sim, sent["code"]), 400, "invalid_request", 900144)
    sent = browser.sign_in(url, "officer@contoso.example", **params)
    bad = redeem(meta, sim, sent["code"], code_verifier="w" * 50)
    assert_aadsts(bad, 400, "invalid_grant", 501481)
    sent = browser.sign_in(url, "officer@contoso.example", **params)
    assert redeem(meta, sim, sent["code"], code_verifier=verifier).status_code == 200


# -- authorize errors, response modes, sessions ------------------------------------------


def test_redirect_uri_mismatch_and_unknown_app_are_pages_not_redirects(served, browser):
    sim, server = served
    url = metadata(server, sim)["authorization_endpoint"]
    evil = browser.open(url, **authorize_params(sim, redirect_uri="https://evil.example/cb"))
    assert evil.status_code == 400 and "location" not in evil.headers
    assert "AADSTS50011" in evil.text and "https://evil.example/cb" in evil.text
    assert "Request Id:" in evil.text and "Correlation Id:" in evil.text
    case = browser.open(url, **authorize_params(sim, redirect_uri=APP_CALLBACK.upper()))
    assert "AADSTS50011" in case.text  # case-sensitive
    stranger = browser.open(url, **authorize_params(sim, client_id="nope"))
    assert stranger.status_code == 400 and "AADSTS700016" in stranger.text
    # Registered at run time (tests pick their ports then); exact for non-loopback hosts.
    response = httpx.post(
        f"{server.url}/_sim/entra/redirect-uris", json=["https://portal.example/cb"]
    )
    assert response.json() == ["https://portal.example/cb"]
    ok = browser.open(url, **authorize_params(sim, redirect_uri="https://portal.example/cb"))
    assert ok.status_code == 200
    port = browser.open(url, **authorize_params(sim, redirect_uri="https://portal.example:8443/cb"))
    assert "AADSTS50011" in port.text


def test_request_errors_and_cancel_go_back_to_the_app_with_state(served, browser):
    sim, server = served
    url = metadata(server, sim)["authorization_endpoint"]
    no_openid = redirect_params(browser.open(url, **authorize_params(sim, scope="profile")))
    assert no_openid["error"] == "invalid_scope" and no_openid["state"] == "st-123"
    assert no_openid["error_description"].startswith("AADSTS70011: ")
    implicit = redirect_params(browser.open(url, **authorize_params(sim, response_type="token")))
    assert implicit["error"] == "unsupported_response_type"
    missing = redirect_params(browser.open(url, **authorize_params(sim, scope=None)))
    assert missing["error"] == "invalid_request"
    assert missing["error_description"].startswith("AADSTS900144: ")
    page = browser.open(url, **authorize_params(sim))
    cancelled = redirect_params(browser.choose(page, cancel=True))
    assert cancelled["error"] == "access_denied" and cancelled["state"] == "st-123"
    assert cancelled["error_description"].startswith("AADSTS65004: User declined")


def test_form_post_and_fragment_response_modes(served, browser):
    sim, server = served
    url = metadata(server, sim)["authorization_endpoint"]
    page = browser.open(url, **authorize_params(sim, response_mode="form_post"))
    answer = browser.choose(page, "officer@contoso.example")
    assert answer.status_code == 200
    (form,) = html_forms(answer.text)
    assert form["action"] == APP_CALLBACK
    assert form["fields"]["state"] == "st-123" and form["fields"]["code"]
    assert '<script src="/_sim/entra/form_post.js"' in answer.text
    assert httpx.get(f"{server.url}/_sim/entra/form_post.js").status_code == 200
    page = browser.open(url, **authorize_params(sim, response_mode="fragment"))
    answer = browser.choose(page, "officer@contoso.example")
    assert urllib.parse.urlsplit(answer.headers["location"]).fragment.startswith("code=")


def test_single_sign_on_keeps_auth_time_until_prompt_login_or_max_age(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    url = meta["authorization_endpoint"]
    start = 1_900_000_000
    sim.entra.clock = lambda: start

    def auth_time(upn, **params):
        sent = browser.sign_in(url, upn, **authorize_params(sim, **params))
        body = redeem(meta, sim, sent["code"]).json()
        return jwt.decode(body["id_token"], options={"verify_signature": False})["auth_time"]

    assert auth_time("approver2@contoso.example") == start
    sim.entra.clock = lambda: start + 100
    assert auth_time("approver2@contoso.example") == start  # SSO: no new authentication
    assert auth_time("approver2@contoso.example", max_age="300") == start
    assert auth_time("approver2@contoso.example", max_age="60") == start + 100
    assert auth_time("approver2@contoso.example", max_age="0") == start + 100
    sim.entra.clock = lambda: start + 200
    assert auth_time("approver2@contoso.example", prompt="login") == start + 200
    assert auth_time("officer@contoso.example") == start + 200  # another account signs in
    # prompt=none: silent with a session, login_required without one.
    silent = redirect_params(browser.open(url, **authorize_params(sim, prompt="none")))
    assert silent["code"]
    fresh = LoginBrowser()
    try:
        refused = redirect_params(fresh.open(url, **authorize_params(sim, prompt="none")))
        assert refused["error"] == "login_required"
        assert refused["error_description"].startswith("AADSTS50058: ")
    finally:
        fresh.close()


def test_logout_ends_the_session_and_returns_to_a_registered_uri(served, browser):
    sim, server = served
    meta = metadata(server, sim)
    browser.sign_in(
        meta["authorization_endpoint"], "admin@contoso.example", **authorize_params(sim)
    )
    out = browser.http.get(
        meta["end_session_endpoint"],
        params={"post_logout_redirect_uri": APP_CALLBACK, "state": "bye"},
    )
    assert out.status_code == 302 and out.headers["location"] == APP_CALLBACK + "?state=bye"
    silent = browser.open(meta["authorization_endpoint"], **authorize_params(sim, prompt="none"))
    assert redirect_params(silent)["error"] == "login_required"
    elsewhere = browser.http.get(
        meta["end_session_endpoint"], params={"post_logout_redirect_uri": "https://evil.example"}
    )
    assert elsewhere.status_code == 200 and "signed out" in elsewhere.text


# -- key rotation, introspection, faults -------------------------------------------------


def test_key_rotation_publishes_old_and_new_and_signs_with_the_new(served, browser):
    sim, server = served
    meta, _, before = sign_in_and_redeem(sim, server, browser)
    old_kid = sim.entra.current_kid
    rotated = httpx.post(f"{server.url}/_sim/entra/rotate-keys").json()
    new_kid = rotated["current_kid"]
    assert new_kid != old_kid and rotated["signing_kids"] == [old_kid, new_kid]
    kids = [k["kid"] for k in httpx.get(meta["jwks_uri"]).json()["keys"]]
    assert kids == [old_kid, new_kid]
    _, _, after = sign_in_and_redeem(sim, server, browser)
    assert verify(meta, after["id_token"], sim)[0]["kid"] == new_kid
    assert verify(meta, before["id_token"], sim)[0]["kid"] == old_kid  # still verifies
    retired = httpx.post(f"{server.url}/_sim/entra/retire-keys").json()
    assert retired == {"retired": [old_kid], "signing_kids": [new_kid]}
    assert [k["kid"] for k in httpx.get(meta["jwks_uri"]).json()["keys"]] == [new_kid]


def test_introspection_and_reset(served, browser):
    sim, server = served
    info = httpx.get(f"{server.url}/_sim/entra").json()
    assert info["tenant_id"] == sim.entra.tenant_id and info["client_id"] == sim.entra.client_id
    assert info["client_secret"] == sim.entra.client_secret
    assert info["redirect_uris"] == [CALLBACK]
    assert info["metadata_url"] == sim.entra.metadata_url(server.url)
    assert {r["value"] for r in info["app_roles"]} == {
        "DSR.Officer",
        "DSR.Approver",
        "DSR.Auditor",
        "DSR.Admin",
    }
    users = {u["username"]: u for u in info["users"]}
    assert users["approver1"]["mfa"] and users["approver2"]["mfa"] and users["admin"]["mfa"]
    assert not users["approver-nomfa"]["mfa"] and users["norole"]["roles"] == []
    # Deterministic from the seed: a restarted simulator accepts the same secret.
    again = Simulator(seed=3, devices=2)
    assert (again.entra.client_id, again.entra.client_secret) == (
        sim.entra.client_id,
        sim.entra.client_secret,
    )
    assert [u.oid for u in again.entra.users] == [u.oid for u in sim.entra.users]
    assert Simulator(seed=4, devices=2).entra.client_id != sim.entra.client_id
    httpx.post(f"{server.url}/_sim/entra/faults", json={"nonce": "x"})
    httpx.post(f"{server.url}/_sim/entra/rotate-keys")
    httpx.post(f"{server.url}/_sim/entra/redirect-uris", json=[])
    assert httpx.post(f"{server.url}/_sim/entra/faults", json={"bogus": 1}).status_code == 400
    assert httpx.post(f"{server.url}/_sim/reset").status_code == 200
    assert sim.entra.faults == {} and sim.entra.redirect_uris == [CALLBACK]
    assert sim.entra.signing_kids == [info["current_kid"]]
    assert sim.calls == []  # Entra requests are not Azure calls
    assert sim.entra.calls == []


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ({"issuer": "https://login.microsoftonline.com/other/v2.0"}, jwt.InvalidIssuerError),
        ({"audience": "someone-else"}, jwt.InvalidAudienceError),
        ({"nonce": "wrong"}, AssertionError),
        ({"expired": True}, jwt.ExpiredSignatureError),
        ({"not_yet_valid": True}, jwt.ImmatureSignatureError),
        ({"sign_with_unknown_key": True}, KeyError),
        ({"sign_with_unknown_key": "same_kid"}, jwt.InvalidSignatureError),
        ({"unsigned": True}, KeyError),
        ({"omit_claims": ["nonce"]}, KeyError),
    ],
)
def test_each_fault_spoils_the_next_id_token_only(served, browser, fault, check):
    sim, server = served
    response = httpx.post(f"{server.url}/_sim/entra/faults", json=fault)
    assert response.status_code == 200 and response.json() == fault
    meta, _, body = sign_in_and_redeem(sim, server, browser)
    with pytest.raises(check):
        verify(meta, body["id_token"], sim)
    assert sim.entra.faults == {}
    _, _, clean = sign_in_and_redeem(sim, server, browser)
    verify(meta, clean["id_token"], sim)


def test_state_and_token_error_faults(served, browser):
    sim, server = served
    sim.entra.set_faults(state="tampered")
    meta = metadata(server, sim)
    url = meta["authorization_endpoint"]
    sent = browser.sign_in(url, "officer@contoso.example", **authorize_params(sim))
    assert sent["state"] == "tampered"
    sim.entra.set_faults(token_error=70008)
    assert_aadsts(redeem(meta, sim, sent["code"]), 400, "invalid_grant", 70008)
    assert redeem(meta, sim, sent["code"]).status_code == 200  # once only
    sim.entra.set_faults(claims={"roles": ["DSR.Admin"]})
    sent = browser.sign_in(url, "officer@contoso.example", **authorize_params(sim))
    id_token = redeem(meta, sim, sent["code"]).json()["id_token"]
    assert verify(meta, id_token, sim)[1]["roles"] == ["DSR.Admin"]  # the officer, promoted
    with pytest.raises(ValueError):
        sim.entra.set_faults(expired="yes")


def test_options_make_tokens_look_like_real_v2_tokens(served, browser):
    sim, server = served
    sim.entra.set_options(amr=False, auth_time=False)
    _, _, body = sign_in_and_redeem(sim, server, browser)
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert "amr" not in claims and "auth_time" not in claims


def test_an_authentication_context_asked_for_in_claims_comes_back_in_acrs(served, browser):
    """Conditional Access authentication context: the app asks for c1 (MFA required) with the
    claims parameter; a user who did MFA gets ``acrs: ["c1"]``, one who cannot is refused with
    Conditional Access's interaction_required (AADSTS50076)."""
    import json

    sim, server = served
    sim.entra.set_options(amr=False)  # as real v2.0 ID tokens: no amr
    wanted = json.dumps({"id_token": {"acrs": {"essential": True, "value": "c1"}}})
    _, _, body = sign_in_and_redeem(sim, server, browser, claims=wanted)
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["acrs"] == ["c1"] and "amr" not in claims
    meta = metadata(server, sim)
    sent = browser.sign_in(
        meta["authorization_endpoint"],
        "approver-nomfa@contoso.example",
        **authorize_params(sim, claims=wanted),
    )
    assert sent["error"] == "interaction_required" and sent["state"] == "st-123"
    assert sent["error_description"].startswith("AADSTS50076: ")
    _, _, plain = sign_in_and_redeem(sim, server, browser)  # not asked: no acrs
    assert "acrs" not in jwt.decode(plain["id_token"], options={"verify_signature": False})
    bad = browser.open(meta["authorization_endpoint"], **authorize_params(sim, claims="{x"))
    assert "error=invalid_request" in bad.headers["location"]


# -- the portal's library: Authlib --------------------------------------------------------


def authlib_client(sim, server, **client_kwargs):
    from authlib.integrations.django_client import OAuth

    oauth = OAuth()
    return oauth.register(
        "entra",
        client_id=sim.entra.client_id,
        client_secret=sim.entra.client_secret,
        server_metadata_url=sim.entra.metadata_url(server.url),
        client_kwargs={"scope": SCOPE, **client_kwargs},
    )


def authlib_sign_in(client, browser, upn="approver1@contoso.example", session=None):
    """Authlib's Django client end to end: authorize_redirect, the login page, then
    authorize_access_token on the callback (which validates the ID token)."""
    from django.test import RequestFactory

    factory = RequestFactory()
    session = {} if session is None else session
    start = factory.get("/login/")
    start.session = session
    redirect = client.authorize_redirect(start, APP_CALLBACK)
    sent = redirect_params(browser.choose(browser.http.get(redirect["Location"]), upn))
    callback = factory.get("/auth/oidc/callback/", data=sent)
    callback.session = session
    return client.authorize_access_token(callback)


def test_authlib_django_client_signs_in_and_validates_the_id_token(served, browser):
    sim, server = served
    token = authlib_sign_in(authlib_client(sim, server), browser)
    userinfo = token["userinfo"]
    assert userinfo["oid"] == sim.entra.user("approver1").oid
    assert userinfo["roles"] == ["DSR.Approver"] and userinfo["amr"] == ["pwd", "mfa"]
    assert userinfo["iss"] == sim.entra.issuer


def test_authlib_with_pkce_follows_a_key_rotation(served, browser):
    sim, server = served
    client = authlib_client(sim, server, code_challenge_method="S256")
    authlib_sign_in(client, browser)
    sim.entra.rotate_keys()
    sim.entra.retire_old_keys()
    # Its cached JWKS lacks the new kid: Authlib fetches the keys again.
    assert authlib_sign_in(client, browser)["userinfo"]["sub"]


@pytest.mark.parametrize(
    "fault",
    [
        {"issuer": "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"},
        {"audience": "someone-else"},
        {"nonce": "wrong"},
        {"sign_with_unknown_key": True},
        {"sign_with_unknown_key": "same_kid"},
        {"expired": True},
        {"unsigned": True},
        {"state": "tampered"},
    ],
)
def test_authlib_rejects_each_faulted_sign_in(served, browser, fault):
    from authlib.integrations.base_client import OAuthError
    from joserfc.errors import JoseError

    sim, server = served
    client = authlib_client(sim, server)
    sim.entra.set_faults(**fault)
    with pytest.raises((JoseError, OAuthError)):
        authlib_sign_in(client, browser)
    assert authlib_sign_in(client, browser)["userinfo"]["oid"]


def test_authlib_private_key_jwt_and_code_exchange(served, browser):
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    sim, server = served
    meta = metadata(server, sim)
    cert = KeyPair.from_pem(sim.entra.client_key_pem(), sim.entra.client_certificate_pem())
    session = OAuth2Session(
        sim.entra.client_id,
        sim.entra.client_key_pem(),
        scope=SCOPE,
        redirect_uri=APP_CALLBACK,
        token_endpoint_auth_method="private_key_jwt",
    )
    session.register_client_auth_method(
        PrivateKeyJWT(meta["token_endpoint"], headers={"x5t#S256": cert.x5t_s256})
    )
    url, state = session.create_authorization_url(meta["authorization_endpoint"], nonce="n-789")
    sent = browser.sign_in(url, "approver2@contoso.example")
    assert sent["state"] == state
    location = APP_CALLBACK + "?" + urllib.parse.urlencode(sent)
    # Entra documents client_id as required in the token request; Authlib's private_key_jwt
    # leaves it to the assertion, so it is passed explicitly (as the portal must).
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=location, client_id=sim.entra.client_id
    )
    keys = KeySet.import_key_set(session.get(meta["jwks_uri"]).json())
    decoded = jose_jwt.decode(token["id_token"], keys)
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"values": [meta["issuer"]]}, "aud": {"values": [sim.entra.client_id]}},
        {"nonce": "n-789", "client_id": sim.entra.client_id},
    )
    claims.validate(leeway=60)
    assert claims["preferred_username"] == "approver2@contoso.example"


# -- the runner: printed settings and entra.env -------------------------------------------


def test_runner_prints_entra_settings_and_writes_entra_env(tmp_path):
    out, stop, ready, found = StringIO(), threading.Event(), threading.Event(), {}

    def on_ready(sim, server):
        found.update(sim=sim, server=server)
        ready.set()

    targets = tmp_path / "demo" / "targets.toml"
    argv = ["--bind", "127.0.0.1:0", "--devices", "3", "--write-targets", str(targets)]
    argv += ["--entra-redirect-uri", CALLBACK, "--entra-redirect-uri", "https://portal.example/cb"]
    runner = threading.Thread(target=cli.main, args=(argv, out, stop, on_ready), daemon=True)
    runner.start()
    try:
        assert ready.wait(15)
        sim, server = found["sim"], found["server"]
        env_file = targets.parent / "entra.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert env_file.read_text().splitlines() == [
            f"DSR_OIDC_AUTHORITY={server.url}",
            f"DSR_OIDC_TENANT={sim.entra.tenant_id}",
            f"DSR_OIDC_CLIENT_ID={sim.entra.client_id}",
            f"DSR_OIDC_CLIENT_SECRET={sim.entra.client_secret}",
        ]
        printed = out.getvalue()
        assert f"authority {server.url} tenant {sim.entra.tenant_id}" in printed
        assert f"client id {sim.entra.client_id}" in printed
        assert sim.entra.client_secret not in printed
        assert f"redirect URIs: {CALLBACK}, https://portal.example/cb" in printed
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        url = f"{env['DSR_OIDC_AUTHORITY']}/{env['DSR_OIDC_TENANT']}/v2.0"
        meta = httpx.get(f"{url}/.well-known/openid-configuration", timeout=10).json()
        assert meta["issuer"] == sim.entra.issuer
    finally:
        stop.set()
        runner.join(15)
    assert "Azure simulator stopped." in out.getvalue()


def test_runner_registers_the_portals_callback_by_default():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    stop = threading.Event()
    stop.set()
    sim = cli.run(parser.parse_args(["--bind", "127.0.0.1:0", "--devices", "1"]), StringIO(), stop)
    assert sim.entra.redirect_uris == list(cli.DEFAULT_REDIRECT_URIS)
    assert any(
        redirect_matches(uri, "http://127.0.0.1:8000/accounts/sso/callback/")
        for uri in sim.entra.redirect_uris
    )
