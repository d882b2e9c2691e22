"""Delivering the export to the data subject, in Debian's Chromium: the officer makes a link on
a request a real worker completed; the subject, in a browser with no account, gives a wrong
passphrase, then the right one, sees the archive's contents and SHA-256 and downloads it; the
second download is past the limit; a revoked link serves nothing.

Screenshots: tests/artifacts/screenshots/40-… to 44-….
"""

import hashlib
import re

import pytest

from requests_app.models import Artifact
from tests.browser_helpers import shot
from tests.lifecycle_helpers import make_request
from tests.test_browser_pages import (  # noqa: F401 (fixtures)
    TIMEOUT,
    browser,
    fulfil,
    login,
    people,
    sqlite_template,
    stack,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def make_link(page, reference, downloads):
    from playwright.sync_api import expect

    page.goto(f"/requests/{reference}/")
    card = page.locator("#delivery")
    summary = card.get_by_text("Make a delivery link")
    if not card.get_by_label("Downloads allowed").is_visible():
        summary.click()
    card.get_by_label("Downloads allowed").fill(str(downloads))
    card.get_by_role("button", name="Make the link").click()
    expect(page.get_by_role("heading", name="Delivery link made")).to_be_visible()
    url = page.get_by_label("Link for the data subject").input_value()
    passphrase = page.locator("#delivery-passphrase").input_value()
    return url, passphrase


def subject_page(chromium, base_url):
    context = chromium.new_context(
        base_url=base_url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT)
    return context.new_page()


def test_the_subject_receives_the_copy_through_a_passphrase_link(
    browser,  # noqa: F811 (the fixtures imported above)
    stack,  # noqa: F811
    people,  # noqa: F811
    tmp_path,
):
    from playwright.sync_api import expect

    sample = stack.sim.samples()["individual_symmetric"][2]
    export = fulfil(
        stack, people, make_request(people["officer"], [sample], kind="export"), ["ada"]
    )
    archive = export.artifacts.get(kind=Artifact.Kind.EXPORT_ARCHIVE)

    officer = login(browser, stack.url, "olivia")
    url, passphrase = make_link(officer, export.reference, downloads=1)
    assert re.fullmatch(r"([A-Z2-9]{4}-){4}[A-Z2-9]{4}", passphrase)
    shot(officer, "40-delivery-link-made")

    subject = subject_page(browser, stack.url)
    path = url.split("://", 1)[1].split("/", 1)[1]
    subject.goto("/" + path)
    expect(subject.get_by_role("heading", name="Your copy of your data")).to_be_visible()
    expect(subject.get_by_role("button", name="Sign out")).to_have_count(0)  # no account
    subject.get_by_label("Passphrase").fill("AAAA-BBBB-CCCC-DDDD-EEEE")
    subject.get_by_role("button", name="Continue").click()
    expect(subject.locator("#passphrase-error")).to_contain_text("4 attempts left")
    shot(subject, "41-delivery-wrong-passphrase")
    subject.get_by_label("Passphrase").fill(passphrase.lower())
    subject.get_by_role("button", name="Continue").click()
    expect(subject.locator("#archive-sha256")).to_have_text(archive.sha256)
    expect(subject.locator("table")).to_contain_text("manifest.json")
    shot(subject, "42-delivery-subject-files")
    assert subject.url.split(stack.url, 1)[1] == "/d/"  # the token left the address bar
    with subject.expect_download() as download_info:
        subject.get_by_role("button", name="Download the archive").click()
    saved = tmp_path / "copy.zip"
    download_info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == archive.sha256

    # The limit was one download: the page now refuses, on the server.
    subject.goto("/" + path)
    expect(subject.locator("#refusal-message")).to_contain_text("used for all the downloads")
    shot(subject, "43-delivery-limit-reached")

    # The officer sees it used up, makes a second link and revokes it.
    officer.goto(f"/requests/{export.reference}/")
    expect(officer.locator("#delivery .delivery-state").first).to_have_text(
        "Download limit reached"
    )
    second, _ = make_link(officer, export.reference, downloads=3)
    officer.goto(f"/requests/{export.reference}/")
    officer.locator("#delivery").get_by_role("button", name="Revoke").click()
    expect(officer.locator(".messages")).to_contain_text("Link revoked")
    expect(officer.locator("#delivery .delivery-state").first).to_have_text("Revoked")
    shot(officer, "44-delivery-links-on-the-request")
    subject.goto("/" + second.split("://", 1)[1].split("/", 1)[1])
    expect(subject.locator("#refusal-message")).to_contain_text("withdrawn")
