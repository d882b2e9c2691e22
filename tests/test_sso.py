"""Microsoft Entra ID single sign-on against the simulator's Entra stand-in, over real HTTP:
the code flow through Authlib, role mapping, the second factor from the token, and every
refusal (wrong state, nonce, issuer, audience, signature, expiry, tenant; no role; no MFA)."""

import time
import urllib.parse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from requests_app.access import roles
from requests_app.models import AuditEvent, ExternalIdentity
from simulator.app import Simulator
from simulator.server import serve
from tests.conftest import make_user
from tests.simulator_helpers import LoginBrowser

pytestmark = pytest.mark.django_db
CALLBACK = "http://testserver/accounts/sso/callback/"


@pytest.fixture
def entra(settings, tmp_path, redis_db):  # redis_db: the anonymous-noise counters start at zero
    sim = Simulator(seed=1, devices=1, entra_redirect_uris=[CALLBACK])
    server = serve(sim)
    settings.DSR_OIDC_AUTHORITY = server.url
    settings.DSR_OIDC_TENANT = sim.entra.tenant_id
    settings.DSR_OIDC_CLIENT_ID = sim.entra.client_id
    settings.DSR_OIDC_CLIENT_SECRET = sim.entra.client_secret
    settings.DSR_OIDC_CLIENT_CERTIFICATE = None
    settings.DSR_OIDC_MFA_ACRS = None
    browser = LoginBrowser()
    yield sim
    browser.close()
    server.shutdown()


def sso(client, upn, *, next_url="/requests/", reauth=False, picker=None):
    """Press "Sign in with Microsoft", pick ``upn`` on the stand-in's page, follow the
    redirect back: the portal's answer to the callback."""
    data = {"next": next_url, **({"reauth": "1"} if reauth else {})}
    start = client.post("/accounts/sso/login/", data)
    assert start.status_code == 302, start.content
    picker = picker or LoginBrowser()
    back = picker.choose(picker.open(start["Location"]), upn)
    assert back.status_code == 302, back.text[:500]
    location = urllib.parse.urlsplit(back.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return client.get(f"{location.path}?{location.query}")


def signed_in_user(client):
    pk = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=pk) if pk else None


def refused(response, reason, status=403):
    assert response.status_code == status, response.content[:500]
    assert f"Reason code: {reason}".encode() in response.content
    return response


def test_the_sign_in_page_offers_microsoft_when_configured(client, entra, settings):
    assert b"Sign in with Microsoft" in client.get("/accounts/login/").content
    settings.DSR_OIDC_TENANT = None
    assert b"Sign in with Microsoft" not in client.get("/accounts/login/").content


def test_first_sign_in_creates_the_user_with_roles_from_entra(client, entra):
    response = sso(client, "approver1@contoso.example")
    assert response.status_code == 302 and response["Location"] == "/requests/"
    user = signed_in_user(client)
    assert user.username == "approver1@contoso.example"
    assert roles.roles_of(user) == [roles.APPROVER]
    assert not user.has_usable_password()
    link = ExternalIdentity.objects.get(user=user)
    assert (link.tenant, link.subject) == (entra.entra.tenant_id, entra.entra.user("approver1").oid)
    assert client.session["dsr_second_factor"] == "entra mfa"  # amr: pwd, mfa
    assert client.get("/requests/").status_code == 200
    login = AuditEvent.objects.get(action="login", actor_name="approver1@contoso.example")
    assert login.details["method"] == "entra" and login.details["second_factor"] == "entra mfa"
    assert AuditEvent.objects.filter(action="user_created").count() == 1
    # The next sign-in finds the same user by object ID and follows role changes at Entra.
    client.post("/accounts/logout/")
    entra.entra.set_faults(claims={"roles": ["DSR.Approver", "DSR.Auditor"]})
    sso(client, "approver1@contoso.example")
    assert signed_in_user(client) == user
    assert roles.roles_of(signed_in_user(client)) == [roles.APPROVER, roles.AUDITOR]
    changed = AuditEvent.objects.filter(action="roles_changed").last()
    assert changed.details["added"] == [roles.AUDITOR]


def test_admin_role_makes_staff(client, entra):
    sso(client, "admin@contoso.example", next_url="/admin/")
    user = signed_in_user(client)
    assert user.is_staff and user.is_superuser
    assert client.get("/admin/").status_code == 200


def test_a_user_without_a_portal_role_is_refused(client, entra):
    response = refused(sso(client, "norole@contoso.example"), "no_role")
    assert b"has no role in the DSR Portal" in response.content
    assert b"DSR.Approver" in response.content
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(username__startswith="norole").exists()
    assert AuditEvent.objects.filter(action="sso_refused", details__reason="no_role").count() == 1


def test_an_approver_without_mfa_is_refused(client, entra):
    refused(sso(client, "approver-nomfa@contoso.example"), "mfa_missing")
    assert signed_in_user(client) is None


def test_an_officer_without_mfa_signs_in_without_a_second_factor(client, entra):
    sso(client, "officer@contoso.example")
    assert signed_in_user(client).username == "officer@contoso.example"
    assert client.session["dsr_second_factor"] == ""


def test_mfa_proved_by_an_authentication_context_when_amr_is_absent(client, entra, settings):
    """Real Entra v2.0 ID tokens have no amr: the portal asks for the auth context c1."""
    entra.entra.set_options(amr=False)
    refused(sso(client, "approver1@contoso.example"), "mfa_missing")  # nothing proves MFA
    settings.DSR_OIDC_MFA_ACRS = "c1"
    sso(client, "approver1@contoso.example")
    assert client.session["dsr_second_factor"] == "entra mfa"
    client.post("/accounts/logout/")
    # A user who cannot do MFA is stopped by Conditional Access at Entra.
    response = sso(client, "approver-nomfa@contoso.example")
    assert response.status_code == 400 and b"interaction_required" in response.content
    assert signed_in_user(client) is None


@pytest.mark.parametrize(
    ("fault", "value"),
    [
        ("issuer", "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"),
        ("audience", "someone-elses-app"),
        ("nonce", "replayed-nonce"),
        ("sign_with_unknown_key", True),
        ("sign_with_unknown_key", "same_kid"),
        ("expired", True),
        ("state", "tampered-state"),
    ],
)
def test_a_token_or_redirect_that_does_not_verify_signs_nobody_in(client, entra, fault, value):
    entra.entra.set_faults(**{fault: value})
    response = sso(client, "approver1@contoso.example")
    assert response.status_code == 400, (fault, response.content[:300])
    assert b"could not be verified" in response.content
    assert signed_in_user(client) is None
    assert get_user_model().objects.count() == 0
    assert AuditEvent.objects.filter(action="sso_refused").count() == 1
    # The next, clean sign-in works.
    assert sso(Client(), "approver1@contoso.example").status_code == 302


def test_a_token_for_another_tenant_is_refused(client, entra):
    entra.entra.set_faults(claims={"tid": "00000000-0000-0000-0000-000000000000"})
    refused(sso(client, "approver1@contoso.example"), "wrong_tenant")
    assert signed_in_user(client) is None


def test_a_local_account_is_never_taken_over_by_name(client, entra):
    make_user("approver1@contoso.example", roles.OFFICER)
    refused(sso(client, "approver1@contoso.example"), "name_taken")
    assert signed_in_user(client) is None


def test_a_deactivated_user_is_refused(client, entra):
    sso(client, "approver1@contoso.example")
    user = signed_in_user(client)
    client.post("/accounts/logout/")
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    refused(sso(client, "approver1@contoso.example"), "inactive")


def test_keys_rotated_at_entra_are_fetched_again(client, entra):
    sso(client, "approver1@contoso.example")
    client.post("/accounts/logout/")
    entra.entra.rotate_keys()
    entra.entra.retire_old_keys()
    assert sso(client, "approver1@contoso.example").status_code == 302


def test_a_certificate_credential_signs_the_client_assertion(client, entra, settings, tmp_path):
    cert, key = tmp_path / "app.crt", tmp_path / "app.key"
    for path, pem in (
        (cert, entra.entra.client_certificate_pem()),
        (key, entra.entra.client_key_pem()),
    ):
        path.write_bytes(pem if isinstance(pem, bytes) else pem.encode())
    settings.DSR_OIDC_CLIENT_SECRET = None
    settings.DSR_OIDC_CLIENT_CERTIFICATE = str(cert)
    settings.DSR_OIDC_CLIENT_KEY = str(key)
    assert sso(client, "approver1@contoso.example").status_code == 302
    assert signed_in_user(client).username == "approver1@contoso.example"


def test_reauthentication_asks_entra_for_a_fresh_sign_in(client, entra):
    picker = LoginBrowser()
    sso(client, "approver1@contoso.example", picker=picker)
    session = client.session
    session["dsr_signed_in_at"] = time.time() - 3600
    session.save()
    page = client.get("/accounts/reauth/?next=/requests/")
    assert b"Sign in with Microsoft again" in page.content
    response = sso(client, "approver1@contoso.example", reauth=True, picker=picker)
    assert response.status_code == 302 and response["Location"] == "/requests/"
    assert time.time() - client.session["dsr_signed_in_at"] < 60
    assert AuditEvent.objects.filter(action="reauthenticated").count() == 1


def test_the_pages_let_the_sign_in_form_go_to_microsoft(client, entra, settings):
    """Browsers apply CSP form-action to the redirect a form's answer makes: without the
    authority in it, "Sign in with Microsoft" would do nothing at all."""
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert f"form-action 'self' {settings.DSR_OIDC_AUTHORITY}" in policy
    settings.DSR_OIDC_TENANT = None
    assert "form-action 'self';" in client.get("/accounts/login/")["Content-Security-Policy"]
