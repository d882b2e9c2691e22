"""Signing in: two steps (password, then the authenticator code), enrolment with recovery
codes, one lockout for every door, and the session rules. Attacks are the requests an
attacker sends; each must fail safely and be on the record once."""

import time

import pytest
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_static.models import StaticToken

from requests_app.access import roles
from requests_app.models import AuditEvent
from tests.conftest import PASSWORD, make_user, sign_in, totp_code, totp_device

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limits(settings, redis_db):  # redis_db: the anonymous-noise counters start at zero
    settings.DSR_LOGIN_MAX_FAILURES = 5
    settings.DSR_LOGIN_MAX_FAILURES_PER_IP = 20
    settings.AXES_FAILURE_LIMIT = 5


def post_password(client, username, password=PASSWORD, next_url="", **extra):
    return client.post(
        "/accounts/login/", {"username": username, "password": password, "next": next_url}, **extra
    )


def signed_in_as(client):
    return client.session.get("_auth_user_id")


def events(action, **details):
    found = AuditEvent.objects.filter(action=action)
    return [e for e in found if all(e.details.get(k) == v for k, v in details.items())]


# -- two steps ---------------------------------------------------------------------------------


def test_officer_without_a_second_factor_signs_in_with_the_password(client, officer):
    response = post_password(client, "olivia")
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in_as(client) == str(officer.pk)
    login = AuditEvent.objects.get(action="login", actor_name="olivia")
    assert login.details["method"] == "password" and login.details["second_factor"] == "none"


def test_the_password_alone_signs_nobody_in_when_a_code_is_due(client, approver):
    device = totp_device(approver)
    response = post_password(client, "ada", next_url="/requests/")
    assert response["Location"] == "/accounts/login/code/"
    assert signed_in_as(client) is None  # nothing but the pending sign-in
    assert client.get("/requests/").status_code == 302  # no page behind it
    page = client.get("/accounts/login/code/")
    assert b'name="otp_token"' in page.content
    response = client.post("/accounts/login/code/", {"otp_token": totp_code(device)})
    assert response.status_code == 302 and response["Location"] == "/requests/"
    assert signed_in_as(client) == str(approver.pk)
    assert client.session["dsr_second_factor"] == "totp"
    login = AuditEvent.objects.get(action="login", actor_name="ada")
    assert login.details["second_factor"] == "totp"


def test_wrong_and_replayed_codes_are_refused_and_counted(client, approver, monkeypatch, redis_db):
    from requests_app.accounts import noise

    # Both failures inside one noise window, whatever the clock: the window's start is fixed.
    middle = (time.time() // 3600) * 3600 + 30

    class Clock:
        time = staticmethod(lambda: middle)

    monkeypatch.setattr(noise, "time", Clock)
    device = totp_device(approver)
    code = totp_code(device)
    first = Client()
    post_password(first, "ada")
    assert first.post("/accounts/login/code/", {"otp_token": code}).status_code == 302
    # The same code again (a replay, e.g. read over a shoulder) from another browser.
    post_password(client, "ada")
    replay = client.post("/accounts/login/code/", {"otp_token": code})
    assert replay.status_code == 200 and b"used already" in replay.content
    assert signed_in_as(client) is None
    time.sleep(1.1)  # django-otp throttles the next try after a wrong code
    wrong = client.post("/accounts/login/code/", {"otp_token": "000000"})
    assert wrong.status_code == 200 and signed_in_as(client) is None
    failed = events("login_failed", door="second_factor")
    assert [e.actor_name for e in failed] == ["ada"]  # the second, from the same source ...
    noise.flush(now=middle + 61)  # ... is counted in the window's summary
    assert events("anonymous_attempts", of="login_failed")[0].details["repeats"] == 1


def test_a_recovery_code_works_once(client, approver):
    totp_device(approver)
    from requests_app.accounts import twofactor

    codes = twofactor.new_recovery_codes(approver)
    post_password(client, "ada")
    assert client.post("/accounts/login/code/", {"otp_token": codes[0]}).status_code == 302
    assert client.session["dsr_second_factor"] == "recovery code"
    assert StaticToken.objects.filter(device__user=approver).count() == 9
    again = Client()
    post_password(again, "ada")
    assert again.post("/accounts/login/code/", {"otp_token": codes[0]}).status_code == 200
    assert signed_in_as(again) is None


def test_first_sign_in_of_an_approver_enrols_an_authenticator(client, approver):
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    response = post_password(client, "ada", next_url="/requests/")
    assert response["Location"] == "/accounts/2fa/setup/"
    page = client.get("/accounts/2fa/setup/")
    html = page.content.decode()
    assert 'src="data:image/svg+xml' in html and 'id="totp-secret"' in html
    assert signed_in_as(client) is None
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    bad = client.post("/accounts/2fa/setup/", {"otp_token": "123456"})
    assert bad.status_code == 200 and b"not right" in bad.content
    time.sleep(1.1)
    response = client.post("/accounts/2fa/setup/", {"otp_token": TOTP(device.bin_key).token()})
    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    assert signed_in_as(client) == str(approver.pk)
    shown = client.get("/accounts/2fa/recovery-codes/")
    codes = shown.content.decode().count("<li><code>")
    assert codes == 10 and b"only time they are shown" in shown.content
    assert "no-store" in shown["Cache-Control"]
    assert client.get("/accounts/2fa/recovery-codes/").status_code == 302  # once
    assert events("second_factor_enrolled")[0].actor_name == "ada"


def test_a_session_without_the_required_second_factor_is_signed_out(client, approver):
    client.force_login(approver)  # a session that skipped the code step
    response = client.get("/requests/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert signed_in_as(client) is None


# -- one lockout for every door ---------------------------------------------------------------


def test_lockout_after_failures_refuses_even_the_right_password(client, officer):
    for _ in range(5):
        assert post_password(client, "olivia", "wrong").status_code in (200, 429)
    response = post_password(client, "olivia")
    assert response.status_code == 429 and b"Too many failed attempts" in response.content
    assert signed_in_as(client) is None
    assert len(events("login_failed")) <= 5
    for _ in range(3):
        post_password(client, "olivia")
    locked = AuditEvent.objects.filter(action="login_locked_out", actor_name="olivia")
    assert locked.count() == 1  # once per lockout, not once per refused attempt


@pytest.mark.parametrize("variant", ["olivia ", " olivia", "ｏｌｉｖｉａ", "olivia\u00a0"])
def test_spaces_and_unicode_variants_count_as_the_same_account(client, officer, variant):
    for _ in range(5):
        post_password(Client(REMOTE_ADDR=f"10.0.0.{_}"), variant, "wrong")
    # From yet another address, with the canonical name and the right password: locked.
    fresh = Client(REMOTE_ADDR="10.9.9.9")
    assert post_password(fresh, "olivia").status_code == 429
    assert post_password(Client(REMOTE_ADDR="10.9.9.8"), variant).status_code == 429
    assert signed_in_as(fresh) is None


def test_the_second_factor_step_counts_toward_the_same_lockout(client, approver, settings):
    # django-otp's own back-off (1, 2, 4, 8 s between wrong codes) is tested by django-otp;
    # here it would only make the test wait. The portal's lockout must count the codes anyway.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = totp_device(approver)
    for _ in range(5):
        post_password(client, "ada")
        client.post("/accounts/login/code/", {"otp_token": "000000"})
    locked = Client()
    response = post_password(locked, "ada")
    assert response.status_code == 429
    assert locked.post("/accounts/login/code/", {"otp_token": totp_code(device)}).status_code in (
        302,
        429,
    )
    assert signed_in_as(locked) is None


def test_x_forwarded_for_is_ignored_unless_it_comes_from_a_trusted_proxy(settings, officer):
    make_user("victim", roles.OFFICER)
    settings.DSR_TRUSTED_PROXIES = []
    # An attacker rotates X-Forwarded-For to dodge the per-address limit: it is not believed.
    for n in range(20):
        post_password(
            Client(REMOTE_ADDR="203.0.113.9"), f"guess{n}", "x", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}"
        )
    assert post_password(Client(REMOTE_ADDR="203.0.113.9"), "victim").status_code == 429
    # Another client is not affected by that address's lockout.
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert post_password(other, "victim").status_code == 302


def test_behind_a_trusted_proxy_each_client_is_counted_apart(settings, officer):
    make_user("victim", roles.OFFICER)
    settings.DSR_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(20):
        post_password(Client(**proxy), f"guess{n}", "x", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert (
        post_password(Client(**proxy), "victim", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code
        == 429
    )
    # Everyone else behind the same proxy still signs in (the proxy is not one client) ...
    assert (
        post_password(Client(**proxy), "victim", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code
        == 302
    )
    # ... and a client cannot spoof its way out: the proxy appends the real address last.
    spoofed = post_password(
        Client(**proxy), "victim", HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9"
    )
    assert spoofed.status_code == 429
    lockouts = AuditEvent.objects.filter(action="login_locked_out")
    assert {e.details["ip"] for e in lockouts} == {"203.0.113.9"}


def test_the_admin_site_has_no_door_of_its_own(client, admin_user):
    for _ in range(25):
        response = client.post("/admin/login/", {"username": "root", "password": "wrong"})
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302 and signed_in_as(client) is None
    assert client.get("/admin/").status_code == 302
    # Brute force at the one real door locks the admin out like anyone.
    for _ in range(5):
        post_password(client, "root", "wrong", next_url="/admin/")
    assert post_password(client, "root", next_url="/admin/").status_code == 429


def test_an_admin_needs_the_second_factor_for_the_admin_site(client, admin_user):
    device = totp_device(admin_user)
    response = post_password(client, "root", next_url="/admin/")
    assert response["Location"] == "/accounts/login/code/"
    response = client.post("/accounts/login/code/", {"otp_token": totp_code(device)})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_password_reset_is_throttled_audited_and_built_from_site_url(client, officer, settings):
    settings.SITE_URL = "https://dsr.example.org"
    for n in range(5):
        response = client.post(
            "/accounts/password_reset/", {"email": "olivia@example.com"}, HTTP_HOST="localhost"
        )
        assert response.status_code in (302, 429), n
    assert len(mail.outbox) == 4  # the fifth request reached the limit: no mail
    assert "https://dsr.example.org/accounts/reset/" in mail.outbox[0].body
    assert "localhost" not in mail.outbox[0].body  # never the Host header
    assert len(events("password_reset_requested", door="password_reset")) == 1
    from requests_app.accounts import noise

    noise.flush(now=time.time() + 61)  # the repeats from the same source, counted
    summary = events("anonymous_attempts", of="password_reset_requested")[0]
    assert summary.details["repeats"] == 3
    response = client.post("/accounts/password_reset/", {"email": "olivia@example.com"})
    assert response.status_code == 429 and len(mail.outbox) == 4
    # Counted apart from the account's sign-in: anyone may ask, the owner still signs in.
    assert post_password(Client(REMOTE_ADDR="10.1.1.1"), "olivia").status_code == 302


def test_password_reset_can_be_turned_off(client, officer, settings):
    settings.DSR_PASSWORD_RESET = False
    assert client.get("/accounts/password_reset/").status_code == 404
    assert client.post("/accounts/password_reset/", {"email": "a@b.c"}).status_code == 404


def test_bad_api_tokens_count_and_lock_the_address(client, officer):
    from requests_app.api import issue_token

    _, raw = issue_token(officer, "ticketing")
    statuses = [
        client.get("/api/v1/requests", HTTP_AUTHORIZATION=f"Bearer guess-{n}").status_code
        for n in range(8)
    ]
    assert statuses == [401] * 4 + [429] * 4  # the fifth failure locks
    response = client.get("/api/v1/requests", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 429 and response["Retry-After"] == "900"
    assert "too many failed authentications" in response.json()["error"]
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert other.get("/api/v1/requests", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


# -- sessions ----------------------------------------------------------------------------------


def test_signed_in_pages_are_never_cached(client, officer):
    sign_in(client, officer)
    for path in ("/", "/requests/", "/requests/new/", "/accounts/security/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path


def test_an_idle_session_is_signed_out(client, officer, settings):
    settings.DSR_SESSION_IDLE_SECONDS = 60
    sign_in(client, officer)
    assert client.get("/requests/").status_code == 200
    session = client.session
    session["dsr_last_seen"] = time.time() - 61
    session.save()
    response = client.get("/requests/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert signed_in_as(client) is None
    assert AuditEvent.objects.filter(action="session_expired", actor_name="olivia").count() == 1


def test_logout_is_a_post(client, officer):
    sign_in(client, officer)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302


def test_password_change(client, officer):
    sign_in(client, officer)
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "An0ther-long-pass",
            "new_password2": "An0ther-long-pass",
        },
    )
    assert response.status_code == 302
    officer.refresh_from_db()
    assert officer.check_password("An0ther-long-pass")


# -- attacks found in review (each was a bypass before its fix) -----------------------------


def test_the_password_alone_cannot_replace_an_existing_authenticator(approver):
    """An attacker with Ada's password skips the code step and tries to enrol their own app."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from requests_app.accounts import twofactor

    victim_device = totp_device(approver)
    twofactor.new_recovery_codes(approver)
    attacker = Client()
    assert post_password(attacker, "ada")["Location"] == "/accounts/login/code/"
    response = attacker.get("/accounts/2fa/setup/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/code/"
    assert attacker.post("/accounts/2fa/setup/", {"otp_token": "123456"}).status_code == 302
    assert signed_in_as(attacker) is None
    assert TOTPDevice.objects.filter(user=approver).get() == victim_device
    assert StaticToken.objects.filter(device__user=approver).count() == 10


def test_the_pending_sign_in_gets_a_new_session_key(approver):
    totp_device(approver)
    client = Client()
    client.get("/accounts/login/")
    planted = client.cookies["dsr_session"].value if "dsr_session" in client.cookies else None
    post_password(client, "ada")
    assert client.cookies["dsr_session"].value != planted


def test_signing_in_to_ones_own_account_does_not_reset_guesses_at_others(officer):
    make_user("victim", roles.OFFICER)
    address = {"REMOTE_ADDR": "203.0.113.50"}
    for _ in range(3):
        for _ in range(2):
            post_password(Client(**address), "victim", "guess")
        assert post_password(Client(**address), "olivia").status_code == 302  # own account
    assert post_password(Client(**address), "victim").status_code == 429  # 6 guesses counted


def test_an_authenticator_set_up_in_a_signed_in_session_is_not_its_second_factor(
    client, approver, settings
):
    """With DSR_REQUIRE_2FA=none a password-only session may set up an app, but deciding
    still needs a sign-in with it (and it never refreshes the sign-in time)."""
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    settings.DSR_REQUIRE_2FA = ["none"]
    post_password(client, "ada")
    before = client.session["dsr_signed_in_at"]
    client.get("/accounts/2fa/setup/")
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    response = client.post("/accounts/2fa/setup/", {"otp_token": TOTP(device.bin_key).token()})
    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    assert client.session["dsr_second_factor"] == ""
    assert client.session["dsr_signed_in_at"] == before


def test_an_entra_user_cannot_set_up_a_local_authenticator(client, approver):
    approver.set_unusable_password()
    approver.save()
    sign_in(client, approver, signed_in_seconds_ago=8 * 3600)
    session = client.session
    session["dsr_second_factor"] = "entra mfa"
    session.save()
    response = client.get("/accounts/2fa/setup/")
    assert response.status_code == 302 and response["Location"] == "/accounts/security/"


def test_password_reset_requests_do_not_lock_the_owners_sign_in(approver):
    for n in range(6):
        Client(REMOTE_ADDR=f"198.51.100.{n}").post(
            "/accounts/password_reset/", {"email": "ada@example.com"}
        )
    device = totp_device(approver)
    client = Client(REMOTE_ADDR="10.0.0.9")
    assert post_password(client, "ada")["Location"] == "/accounts/login/code/"
    assert client.post("/accounts/login/code/", {"otp_token": totp_code(device)}).status_code == 302


def test_a_wrong_old_password_on_password_change_counts_toward_the_lockout(client, officer):
    sign_in(client, officer)
    for _ in range(5):
        client.post(
            "/accounts/password_change/",
            {
                "old_password": "guess",
                "new_password1": "Xy-123456789",
                "new_password2": "Xy-123456789",
            },
        )
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "Xy-123456789",
            "new_password2": "Xy-123456789",
        },
    )
    assert response.status_code == 429
    officer.refresh_from_db()
    assert officer.check_password(PASSWORD)


def test_polling_does_not_keep_an_idle_session_alive(client, officer, settings):
    from tests.lifecycle_helpers import make_request

    settings.DSR_SESSION_IDLE_SECONDS = 60
    request = make_request(officer, ["reg-1"])
    sign_in(client, officer)
    client.get("/requests/")
    session = client.session
    session["dsr_last_seen"] = time.time() - 50
    session.save()
    assert client.get(f"/requests/{request.reference}/progress").status_code == 200
    session = client.session
    session["dsr_last_seen"] -= 20  # 70 s since the person last did something
    session.save()
    assert client.get(f"/requests/{request.reference}/progress").status_code == 302


def test_renewing_recovery_codes_after_signing_in_with_one_shows_them(client, approver):
    from requests_app.accounts import twofactor

    totp_device(approver)
    codes = twofactor.new_recovery_codes(approver)
    post_password(client, "ada")
    client.post("/accounts/login/code/", {"otp_token": codes[0]})
    assert client.post("/accounts/2fa/recovery-codes/new").status_code == 302
    shown = client.get("/accounts/2fa/recovery-codes/")
    assert shown.status_code == 200 and shown.content.decode().count("<li><code>") == 10


@pytest.mark.parametrize(
    ("forwarded", "client_address"),
    [
        ("203.0.113.9:40000", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
        ("198.51.100.7, 203.0.113.9:51234", "203.0.113.9"),
    ],
)
def test_forwarded_addresses_with_ports_are_understood(rf, settings, forwarded, client_address):
    from requests_app.accounts.identity import client_ip

    settings.DSR_TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == client_address
