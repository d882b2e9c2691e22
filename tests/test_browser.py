"""The portal as people use it, in Debian's Chromium: a live server, a real ``manage.py worker``
subprocess, the Azure simulator over HTTP, and approvers who open their links from the dev
outbox (/dev/outbox/, where every process's email lands: EMAIL_BACKEND is the outbox backend).

Screenshots of every main page go to tests/artifacts/screenshots/ (gitignored).
"""

import csv
import io
import json
import time

import pytest
from django.utils import timezone

from requests_app.access import roles
from tests.browser_helpers import (
    browser_sqlite_template,
    launched_browser,
    running_stack,
    shot,
)
from tests.conftest import PASSWORD, make_user, totp_code, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 30_000  # ms: generous, for a loaded CI machine
SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def reload(page):
    """Reload, unless progress.js is reloading the page at the same moment (the status moved
    on): then the browser aborts ours, and the page's own reload is the one to wait for."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.reload()
    except PlaywrightError as exc:
        if "ERR_ABORTED" not in str(exc):
            raise
        page.wait_for_load_state()


@pytest.fixture(scope="module")
def browser():
    with launched_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory, django_db_setup):
    return browser_sqlite_template(tmp_path_factory, "browser-db")


@pytest.fixture
def stack(transactional_db, sqlite_template, redis_db, settings, tmp_path):
    with running_stack(tmp_path, sqlite_template, settings, dev_outbox=True) as stack:
        yield stack


@pytest.fixture
def people(stack):
    people = {
        "officer": make_user("olivia", roles.OFFICER),
        "ada": make_user("ada", roles.APPROVER),
        "alan": make_user("alan", roles.APPROVER),
        "auditor": make_user("audrey", roles.AUDITOR),
    }
    for approver in ("ada", "alan"):
        totp_device(people[approver])  # approvers have an authenticator app
    return people


def login(browser, url, username, viewport=None, screenshot=None):
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=url, accept_downloads=True, viewport=viewport or {"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto("/accounts/login/")
    sign_in_form(page, username, screenshot=screenshot)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def sign_in_form(page, username, screenshot=None, code_screenshot=None):
    """The two-step sign-in as a person does it: password, then (when the user has an
    authenticator) the current code."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.get_by_role("button", name="Continue").click()
    device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
    if device is not None:
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        page.get_by_label("Code").fill(totp_code(device))
        if code_screenshot:
            shot(page, code_screenshot)
        page.get_by_role("button", name="Sign in").click()


def new_request(page, kind, identifiers, subject, *, error_screenshot=None):
    """Fill the intake form (first with no identifiers, to see the error) and save the draft;
    returns the reference from the request page the form redirects to."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="New request").click()
    expect(page.get_by_role("heading", name="New request")).to_be_visible()
    page.get_by_label(kind).check()
    page.get_by_label("GDPR", exact=True).check()
    page.get_by_label("Subject reference").fill(subject)
    if error_screenshot:
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved")
        expect(page.locator(".field.has-error")).to_contain_text("Paste at least one identifier")
        shot(page, error_screenshot)
        # The form keeps what was typed.
        expect(page.get_by_label("Subject reference")).to_have_value(subject)
        page.get_by_label(kind).check()
        page.get_by_label("GDPR", exact=True).check()
    page.get_by_label("Identifiers").fill("\n".join(identifiers) + "\n")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("is saved as a draft with")).to_be_visible()
    badge = page.locator("#status-badge")
    expect(badge).to_have_text("Draft")
    return page.locator("h1").inner_text().split()[0]


def submit_and_wait_for_plan(page, stack):
    from playwright.sync_api import expect

    page.get_by_role("button", name="Submit for planning and approval").click()
    # progress.js polls while planning and reloads the page when the worker has planned it.
    stack.worker.check_alive()
    try:
        expect(page.locator("#status-badge")).to_have_text("Awaiting approval", timeout=TIMEOUT)
    except AssertionError:
        raise AssertionError(f"not planned; worker output:\n{stack.worker.output()}") from None


def open_approval_link(browser, url, username, reference, kind="erasure", screenshots=()):
    """As an approver, not signed in: the outbox, my email, the link in it; the link leads to
    the sign-in (password, then the authenticator code) and back to the approval page."""
    from playwright.sync_api import expect

    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto("/dev/outbox/")
    row = (
        page.locator("tbody tr")
        .filter(has_text=f"{username}@example.com")
        .filter(has_text=f"[{reference}] Approval needed")
    )
    expect(row).to_have_count(1)
    if "outbox" in screenshots:
        shot(page, "11-outbox")
    row.get_by_role("link").click()
    expect(page.locator("pre.mail")).to_contain_text("/approve/")
    page.locator("pre.mail a[href*='/approve/']").click()
    # The token is gone from the address bar: the page is this session's own.
    assert "/approve/" not in page.url or "/approve/t/" in page.url
    sign_in_form(
        page,
        username,
        screenshot="14-approver-sign-in" if "sign-in" in screenshots else None,
        code_screenshot="15-approver-code" if "sign-in" in screenshots else None,
    )
    expect(page.get_by_role("heading", name=f"Approve the {kind} of {reference}?")).to_be_visible()
    expect(page.get_by_text(f"Hello {username}.")).to_be_visible()
    assert "/approve/t/" in page.url
    return page


def press(page, button):
    """Click a decision button on the approval page. The POST must carry Django's CSRF token
    and a real Origin (the page's Referrer-Policy is same-origin: with no-referrer browsers
    send Origin: null, which CSRF protection refuses)."""
    from playwright.sync_api import expect

    with page.expect_request(lambda r: r.method == "POST" and "/approve/t/" in r.url) as sent:
        page.get_by_role("button", name=button, exact=True).click()
    post = sent.value
    assert post.headers.get("origin") == page.url.split("/approve/")[0], post.headers
    assert "csrfmiddlewaretoken=" in (post.post_data or "")
    expect(page.locator("h1")).to_be_visible()
    if "CSRF verification failed" in page.content():
        raise AssertionError("the approval form's POST was refused by CSRF")


def download(page, link_name):
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name).click()
    dl = info.value
    with open(dl.path(), "rb") as fh:
        return dl.suggested_filename, fh.read()


def test_erasure_from_intake_to_certificate_and_the_auditors_reports(
    browser, stack, people, settings
):
    from playwright.sync_api import expect

    samples = stack.sim.samples()
    individual = next(
        d
        for d in samples["with_modules"]
        if d in samples["individual_symmetric"] + samples["individual_x509"]
    )
    group_device = samples["group_provisioned"][0]
    ids = [individual, group_device, samples["individual_tpm"][0]]

    # The officer signs in through the real form and takes in an erasure request.
    page = login(browser, stack.url, "olivia", screenshot="01-login")
    expect(page.get_by_role("heading").first).to_be_visible()
    shot(page, "02-dashboard")
    erasure = "Erasure (right to be forgotten / delete)"
    reference = new_request(page, erasure, ids, "TICKET-4711", error_screenshot="03-request-form")
    expect(page.get_by_text("Block re-provisioning")).to_be_visible()
    submit_and_wait_for_plan(page, stack)
    for registration_id in ids:
        expect(page.locator("body")).to_contain_text(registration_id)
    shot(page, "04-request-awaiting-approval")

    # Both approvers open their own links from the outbox, sign in (password, code), read
    # what the erasure deletes, creates and keeps, and approve it explicitly.
    settings.DSR_APPROVAL_REAUTH_SECONDS = 4
    for n, approver in enumerate(["ada", "alan"]):
        approval = open_approval_link(
            browser,
            stack.url,
            approver,
            reference,
            screenshots=("outbox", "sign-in") if n == 0 else (),
        )
        expect(approval.locator("dl.facts")).to_contain_text(f"{n} of 2 so far")
        expect(approval.locator("#will-delete")).to_contain_text("hub device")
        expect(approval.locator("#will-create")).to_contain_text("disabled individual enrollment")
        # What the plan costs of Azure's throttles, and how long, before anyone approves.
        expect(approval.locator("#plan-cost-projection")).to_contain_text("Projected:")
        expect(approval.locator("#plan-cost-table")).to_contain_text("identity-registry calls")
        expect(approval.locator("#other-approvers")).to_have_text(
            "alan" if n == 0 else "nobody else"
        )
        for registration_id in ids:
            expect(approval.locator("body")).to_contain_text(registration_id)
        if n == 0:
            shot(approval, "05-approval")
            # A few seconds later the sign-in is too old for an erasure: confirm it is you.
            time.sleep(4.5)
            approval.reload()
            expect(approval.locator("#decision-blocked")).to_contain_text("confirm it is you")
            shot(approval, "16-approval-reauth-needed")
            approval.get_by_role("link", name="Confirm it is you").click()
            expect(approval.get_by_role("heading", name="Confirm it is you")).to_be_visible()
            approval.get_by_label("Password").fill(PASSWORD)
            device = people[approver].totpdevice_set.get()
            approval.get_by_label("Code").fill(totp_code(device, offset=1))  # a fresh code
            shot(approval, "17-reauth")
            approval.get_by_role("button", name="Confirm").click()
            expect(
                approval.get_by_role("heading", name=f"Approve the erasure of {reference}?")
            ).to_be_visible()
        # Without ticking the confirmation, nothing is recorded.
        press(approval, "Approve the erasure")
        expect(approval.locator("#decision-error")).to_contain_text("cannot be undone")
        approval.get_by_label("I understand that approving deletes").check()
        press(approval, "Approve the erasure")
        expect(approval.get_by_role("heading", name="Thank you")).to_be_visible()
        expect(approval.locator("main")).to_contain_text("approved")
        approval.context.close()
    settings.DSR_APPROVAL_REAUTH_SECONDS = 900

    # The officer's page follows fulfilment (progress.js polls, then reloads) to the end.
    reload(page)
    try:
        expect(page.locator("#status-badge")).to_have_text("Completed", timeout=60_000)
    except AssertionError:
        raise AssertionError(f"not completed; worker:\n{stack.worker.output()}") from None
    expect(page.locator("#progress-text")).to_contain_text("operations finished")
    expect(page.locator("body")).not_to_contain_text("failed,")
    shot(page, "06-request-completed")

    name, pdf = download(page, "Deletion certificate (PDF)")
    assert pdf.startswith(b"%PDF"), pdf[:20]
    assert name.endswith(".pdf") and reference in name
    name, raw = download(page, "Deletion certificate (JSON)")
    certificate = json.loads(raw)
    assert reference in raw.decode() and name.endswith(".json"), certificate

    page.get_by_role("link", name="Requests", exact=True).click()
    expect(page.locator("main")).to_contain_text(reference)
    shot(page, "07-request-list")

    # The same pages at a phone's size.
    phone = browser.new_context(
        base_url=stack.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=page.context.storage_state(),
    )
    phone_page = phone.new_page()
    phone_page.goto("/")
    shot(phone_page, "12-phone-dashboard")
    overflow = {"dashboard": phone_page.evaluate(SIDEWAYS)}
    phone_page.goto(f"/requests/{reference}/")
    expect(phone_page.locator("#status-badge")).to_have_text("Completed")
    shot(phone_page, "13-phone-request")
    overflow["request page"] = phone_page.evaluate(SIDEWAYS)
    phone.close()
    page.context.close()

    # The auditor: register CSV for a period including today, the evidence report, the chain.
    audit = login(browser, stack.url, "audrey")
    audit.get_by_role("link", name="Reports").click()
    expect(audit.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    shot(audit, "08-reports")
    today = timezone.localdate()
    audit.locator("#register-from").fill(today.replace(day=1).isoformat())
    audit.locator("#register-to").fill(today.isoformat())
    with audit.expect_download() as info:
        audit.get_by_role("button", name="Download the register (CSV)").click()
    register = info.value
    with open(register.path(), encoding="utf-8-sig") as fh:
        rows = list(csv.reader(io.StringIO(fh.read())))
    assert register.suggested_filename.endswith(".csv")
    assert any(reference in row for row in rows), rows[:3]

    audit.goto(f"/requests/{reference}/")
    expect(audit.locator("#status-badge")).to_have_text("Completed")
    name, evidence = download(audit, "Evidence report (PDF)")
    assert evidence.startswith(b"%PDF") and name.endswith(".pdf")

    audit.get_by_role("link", name="Audit trail").click()
    expect(audit.locator(".badge.completed")).to_have_text("Verified")
    shot(audit, "09-audit-chain")
    audit.context.close()

    assert max(overflow.values()) <= 1, f"pages scroll sideways on a phone (px): {overflow}"


def test_export_rejected_with_a_reason(browser, stack, people):
    from playwright.sync_api import expect

    page = login(browser, stack.url, "olivia")
    export = "Export (access / portability / right to know)"
    reg = stack.sim.samples()["individual_symmetric"][1]
    reference = new_request(page, export, [reg], "TICKET-4712")
    submit_and_wait_for_plan(page, stack)

    approval = open_approval_link(browser, stack.url, "ada", reference, kind="export")
    expect(approval.locator("dl.facts")).to_contain_text("0 of 1 so far")
    expect(approval.locator("body")).not_to_contain_text("This cannot be undone")
    shot(approval, "18-approval-export")
    press(approval, "Reject")
    expect(approval.get_by_role("alert")).to_contain_text("A reason is required")
    shot(approval, "10-approval-reject-without-reason")
    approval.get_by_label("Reason (required to reject)").fill("Identity not verified")
    press(approval, "Reject")
    expect(approval.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(approval.locator("main")).to_contain_text("rejected")
    approval.context.close()

    page.reload()
    expect(page.locator("#status-badge")).to_have_text("Rejected")
    expect(page.locator("dl.facts")).to_contain_text("Rejection reason")
    expect(page.locator("dl.facts")).to_contain_text("Identity not verified")
    page.context.close()


def test_an_entra_approver_signs_in_with_microsoft_and_approves(browser, stack, people, settings):
    """Single sign-on against the simulator's Entra stand-in: the account picker, back to the
    portal with the approver role from Entra and MFA from the token, then the approval."""
    from playwright.sync_api import expect

    entra = stack.sim.entra
    entra.set_redirect_uris([f"{stack.url}/accounts/sso/callback/"])
    settings.DSR_OIDC_AUTHORITY = stack.sim_url
    settings.DSR_OIDC_TENANT = entra.tenant_id
    settings.DSR_OIDC_CLIENT_ID = entra.client_id
    settings.DSR_OIDC_CLIENT_SECRET = entra.client_secret

    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    approver = context.new_page()
    approver.goto("/accounts/login/")
    shot(approver, "30-sign-in-with-microsoft")
    approver.get_by_role("button", name="Sign in with Microsoft").click()
    expect(approver.locator("body")).to_contain_text("approver1@contoso.example")
    shot(approver, "31-entra-account-picker")
    approver.locator("button[data-upn='approver1@contoso.example']").click()
    expect(approver.get_by_role("button", name="Sign out")).to_be_visible()
    expect(approver.locator(".who")).to_contain_text("approver1@contoso.example")

    page = login(browser, stack.url, "olivia")
    export = "Export (access / portability / right to know)"
    reference = new_request(page, export, [stack.sim.samples()["individual_x509"][2]], "T-9")
    submit_and_wait_for_plan(page, stack)
    page.context.close()

    approver.goto("/dev/outbox/")
    approver.locator("tbody tr").filter(has_text="approver1@contoso.example").filter(
        has_text=f"[{reference}]"
    ).get_by_role("link").click()
    approver.locator("pre.mail a[href*='/approve/']").click()
    expect(
        approver.get_by_role("heading", name=f"Approve the export of {reference}?")
    ).to_be_visible()
    press(approver, "Approve the export")
    expect(approver.get_by_role("heading", name="Thank you")).to_be_visible()
    context.close()
    from requests_app.models import Approval

    approval = Approval.objects.get(request__reference=reference)
    assert approval.approver_name == "approver1@contoso.example"
    assert approval.second_factor == "entra mfa"
