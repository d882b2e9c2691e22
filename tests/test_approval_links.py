"""The approver's email link: it says which request; only the named approver's own signed-in,
second-factor session can decide. Each attack is the request an attacker sends."""

import time

import pytest
from django.core import mail
from django.test import Client

from requests_app.models import AuditEvent, Status
from requests_app.workflow import lifecycle
from tests.conftest import PASSWORD, sign_in, totp_code, totp_device
from tests.lifecycle_helpers import approval_links, make_request

pytestmark = pytest.mark.django_db(transaction=True)


def planned(azure, officer, run_jobs, kind="export", sample="individual_symmetric", index=0):
    request = make_request(officer, [azure.samples()[sample][index]], kind=kind)
    lifecycle.submit(request, actor=officer)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.AWAITING_APPROVAL, request.scoping_error
    return request


def exchange(client, link):
    """GET the emailed link: a redirect to the session's own page, without the token."""
    response = client.get(link)
    assert response.status_code == 302, response.content
    assert response["Referrer-Policy"] == "no-referrer"
    page = response["Location"]
    assert page.startswith("/approve/t/") and link.split("/")[2] not in page
    return page


def sign_in_two_steps(client, user, next_url):
    """The real sign-in: password, then the authenticator code (field otp_token)."""
    device = totp_device(user)
    response = csrf_post(
        client,
        "/accounts/login/",
        {"username": user.username, "password": PASSWORD, "next": next_url},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/login/code/"
    response = csrf_post(client, "/accounts/login/code/", {"otp_token": totp_code(device)})
    assert response.status_code == 302, response.content
    return response["Location"]


def csrf_post(client, path, data, **headers):
    """A POST as a browser on the page sends it: the CSRF token from the page's form."""
    page = client.get(path)
    token = page.context["csrf_token"]
    return client.post(path, {**data, "csrfmiddlewaretoken": str(token)}, **headers)


def nothing_decided(request):
    request.refresh_from_db()
    return request.status == Status.AWAITING_APPROVAL and not request.approvals.exists()


def test_export_approved_by_the_named_approver_signed_in_with_totp(
    azure, officer, approver, approver2, run_jobs
):
    request = planned(azure, officer, run_jobs)
    link = approval_links(mail.outbox, "ada")[0]
    browser = Client(enforce_csrf_checks=True)
    page = exchange(browser, link)
    # Not signed in: the sign-in page, then back to the same approval page.
    response = browser.get(page)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert sign_in_two_steps(browser, approver, page) == page
    shown = browser.get(page)
    assert shown.status_code == 200
    html = shown.content.decode()
    assert "Approve the export" in html and "only <strong>reads</strong>" in html
    assert "cannot be undone" not in html  # an export looks different from an erasure
    assert shown["Referrer-Policy"] == "same-origin"
    assert "no-store" in shown["Cache-Control"]
    assert nothing_decided(request)  # opening and signing in decide nothing

    response = csrf_post(browser, page, {"decision": "approved"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200 and b"was recorded" in response.content
    request.refresh_from_db()
    assert request.status in (Status.APPROVED, Status.RUNNING, Status.COMPLETED)
    approval = request.approvals.get()
    assert (approval.approver, approval.via, approval.ip) == (approver, "link", "10.1.2.3")
    assert approval.second_factor == "totp"
    event = AuditEvent.objects.get(action="request_approved", request_ref=request.reference)
    assert event.actor_name == "ada" and event.details["second_factor"] == "totp"
    # The link, opened again, says calmly that there is nothing left to decide.
    again = browser.get(exchange(browser, link))
    assert again.status_code == 410 and b"Nothing to decide here" in again.content
    assert not AuditEvent.objects.filter(action="approval_link_refused").exists()


def test_anonymous_post_with_the_token_records_nothing(azure, officer, approver, run_jobs):
    request = planned(azure, officer, run_jobs)
    link = approval_links(mail.outbox, "ada")[0]
    attacker = Client()  # no CSRF enforcement: the view itself must refuse
    foreign = {"HTTP_ORIGIN": "https://evil.example", "HTTP_REFERER": "https://evil.example/x"}
    assert attacker.post(link, {"decision": "approved"}, **foreign).status_code == 405
    page = exchange(attacker, link)
    response = attacker.post(page, {"decision": "approved"}, **foreign)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert nothing_decided(request)
    assert not AuditEvent.objects.filter(action="decision_refused").exists()


def test_foreign_origin_and_missing_csrf_are_refused_even_for_the_approver(
    azure, officer, approver, run_jobs
):
    request = planned(azure, officer, run_jobs)
    browser = sign_in(Client(enforce_csrf_checks=True), approver)
    page = exchange(browser, approval_links(mail.outbox, "ada")[0])
    assert browser.post(page, {"decision": "approved"}).status_code == 403  # no CSRF token
    forged = csrf_post(browser, page, {"decision": "approved"}, HTTP_ORIGIN="https://evil.example")
    assert forged.status_code == 403  # a cross-site form, even with a token
    nulled = csrf_post(browser, page, {"decision": "approved"}, HTTP_ORIGIN="null")
    assert nulled.status_code == 403
    assert nothing_decided(request)


def test_someone_elses_session_is_told_who_the_link_is_for(
    azure, officer, approver, approver2, run_jobs
):
    request = planned(azure, officer, run_jobs)
    forwarded = approval_links(mail.outbox, "ada")[0]  # Ada forwards her email to Alan
    alan = sign_in(Client(enforce_csrf_checks=True), approver2)
    page = exchange(alan, forwarded)
    response = alan.get(page)
    assert response.status_code == 403
    assert b"This approval link is for ada. You are signed in as alan" in response.content
    posted = alan.post(page, {"decision": "approved"})
    assert posted.status_code == 403
    assert nothing_decided(request)
    refused = AuditEvent.objects.filter(action="approval_link_refused")
    assert [e.details["reason"] for e in refused] == ["other_approver"]  # once, for the GET
    # ... and the officer who created it cannot use it either.
    olivia = sign_in(Client(), officer)
    assert olivia.get(exchange(olivia, forwarded)).status_code == 403
    assert nothing_decided(request)


def test_replaying_the_link_after_logout_needs_the_approver_again(
    azure, officer, approver, run_jobs
):
    request = planned(azure, officer, run_jobs)
    link = approval_links(mail.outbox, "ada")[0]
    browser = sign_in(Client(), approver)
    page = exchange(browser, link)
    assert browser.get(page).status_code == 200
    browser.post("/accounts/logout/")
    # The session (and its reference) is gone: the old page and a replayed POST are dead.
    assert browser.get(page).status_code == 404
    assert browser.post(page, {"decision": "approved"}).status_code == 404
    # Replaying the emailed link only leads to the sign-in page.
    response = browser.get(exchange(browser, link))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert nothing_decided(request)


def test_erasure_asks_for_a_recent_sign_in_and_an_explicit_confirmation(
    azure, officer, approver, approver2, run_jobs, settings
):
    request = planned(azure, officer, run_jobs, kind="erasure", sample="group_provisioned")
    browser = sign_in(Client(enforce_csrf_checks=True), approver, signed_in_seconds_ago=1000)
    page = exchange(browser, approval_links(mail.outbox, "ada")[0])
    shown = browser.get(page)
    html = shown.content.decode()
    assert "This cannot be undone" in html
    assert "hub device, with its twin" in html and "DPS registration record" in html
    assert "disabled individual enrollment" in html  # created, for a group device
    assert "enrollment groups (they serve other devices)" in html  # kept
    assert 'id="other-approvers">alan<' in html
    assert "Confirm it is you" in html and 'id="decision-form"' not in html
    # Posting anyway changes nothing: the decision itself refuses a stale sign-in.
    stale = csrf_post(browser, page, {"decision": "approved", "confirm": "irreversible"})
    assert stale.status_code == 400 and b"confirm it is you" in stale.content
    assert nothing_decided(request)

    # Re-authenticate: password and a fresh code (the one used at sign-in would be a replay).
    device = totp_device(approver)
    wrong = csrf_post(
        browser, f"/accounts/reauth/?next={page}", {"password": "nope", "otp_token": "000000"}
    )
    assert wrong.status_code == 200 and b"password or code is wrong" in wrong.content
    time.sleep(1.1)  # django-otp's throttle after one wrong code
    response = csrf_post(
        browser,
        f"/accounts/reauth/?next={page}",
        {"password": PASSWORD, "otp_token": totp_code(device), "next": page},
    )
    assert response.status_code == 302 and response["Location"] == page
    unconfirmed = csrf_post(browser, page, {"decision": "approved"})
    assert unconfirmed.status_code == 400 and b"cannot be undone" in unconfirmed.content
    assert nothing_decided(request)
    done = csrf_post(browser, page, {"decision": "approved", "confirm": "irreversible"})
    assert done.status_code == 200
    assert request.approvals.get().approver == approver
    assert AuditEvent.objects.filter(action="reauthenticated", actor_name="ada").count() == 1


def test_a_decision_needs_a_second_factor_even_where_sign_in_does_not(
    azure, officer, approver, run_jobs, settings
):
    settings.DSR_REQUIRE_2FA = ["none"]
    request = planned(azure, officer, run_jobs)
    browser = Client(enforce_csrf_checks=True)
    page = exchange(browser, approval_links(mail.outbox, "ada")[0])
    response = csrf_post(
        browser, "/accounts/login/", {"username": "ada", "password": PASSWORD, "next": page}
    )
    assert response.status_code == 302 and response["Location"] == page  # no code asked
    shown = browser.get(page)
    assert b"Deciding needs a second factor" in shown.content
    assert b'id="decision-form"' not in shown.content
    posted = csrf_post(browser, page, {"decision": "approved"})
    assert posted.status_code == 400 and b"Deciding needs a second factor" in posted.content
    assert nothing_decided(request)


def test_tampered_expired_and_stale_links(
    client, azure, officer, approver, run_jobs, settings, monkeypatch
):
    request = planned(azure, officer, run_jobs, kind="erasure", index=1)
    link = approval_links(mail.outbox, "ada")[0]
    token = link.split("/")[2]
    tampered = f"/approve/{token[:-3]}{'x' if token[-3] != 'x' else 'y'}{token[-2:]}/"
    response = client.get(tampered)
    assert response.status_code == 403 and b"altered" in response.content

    import django.core.signing as signing

    from requests_app.workflow.tokens import make_token

    real_time = signing.time.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() - 120)
    old = make_token(request, approver)
    monkeypatch.setattr(signing.time, "time", real_time)
    settings.DSR_APPROVAL_LINK_MAX_AGE = 60
    response = client.get(f"/approve/{old}/")
    assert response.status_code == 410 and b"expired" in response.content
    settings.DSR_APPROVAL_LINK_MAX_AGE = 3600

    # The plan changed after the link was sent (planned again): the old link is stale.
    browser = sign_in(Client(), approver)
    page = exchange(browser, link)
    type(request).objects.filter(pk=request.pk).update(plan_version="0" * 64)
    response = browser.get(page)
    assert response.status_code == 410 and b"plan changed" in response.content

    refused = AuditEvent.objects.filter(action="approval_link_refused")
    # The anonymous refusals come from one source in one window: the first is recorded, the
    # second counted (accounts/noise.py); the signed-in approver's refusal is recorded as is.
    assert sorted(e.details["reason"] for e in refused) == ["stale_plan", "tampered"]
    from requests_app.accounts import noise

    assert noise.flush(now=time.time() + 61) == 1
    summary = AuditEvent.objects.get(action="anonymous_attempts")
    assert (summary.details["of"], summary.details["repeats"]) == ("approval_link_refused", 1)
    assert not request.approvals.exists()

    # Cancelled meanwhile: nothing to decide.
    request.refresh_from_db()
    type(request).objects.filter(pk=request.pk).update(plan_version=request.plan_version)
    lifecycle.cancel(request, actor=officer, reason="subject withdrew")
    response = browser.get(exchange(browser, link))
    assert response.status_code == 410 and b"no longer awaiting approval" in response.content


def test_mail_scanner_prefetch_decides_nothing_and_the_link_still_works(
    azure, officer, approver, run_jobs
):
    request = planned(azure, officer, run_jobs)
    link = approval_links(mail.outbox, "ada")[0]
    scanner = Client()
    for _ in range(3):
        page = exchange(scanner, link)
        assert scanner.get(page).status_code == 302  # to the sign-in page
    assert nothing_decided(request)
    browser = sign_in(Client(), approver)
    assert browser.get(exchange(browser, link)).status_code == 200
