"""Finding a data subject's devices by owner, in Debian's Chromium with a real worker: the
officer enters only the customer number on the intake form, reviews the devices the search
found on both hubs and DPS (each with where and why it matched), adds them all and submits;
the plan the approver sees says how the devices were found.

Screenshots: tests/artifacts/screenshots/45-… to 47-….
"""

import pytest

from requests_app.models import DataRequest
from tests.browser_helpers import shot
from tests.test_browser_pages import (  # noqa: F401 (fixtures)
    browser,
    login,
    people,
    sqlite_template,
    stack,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The seed gives customer 4700 + i // 5 to device i: 4701 owns devices 5 to 9.
CUSTOMER = "4701"


def test_the_officer_finds_a_customers_devices_by_owner_and_submits_them(
    browser,  # noqa: F811 (the fixtures imported above)
    stack,  # noqa: F811
    people,  # noqa: F811
):
    from playwright.sync_api import expect

    page = login(browser, stack.url, "olivia")
    page.goto("/requests/new/")
    page.get_by_label("Export (access / portability / right to know)").check()
    page.get_by_label("GDPR", exact=False).first.check()
    page.get_by_label("Subject reference").fill("TICKET-4701")
    page.get_by_label("Find devices by owner").fill(CUSTOMER)
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#finding")).to_be_visible()
    page.get_by_role("link", name="Open the search").click()
    expect(page.locator("#result-heading")).to_contain_text("to review", timeout=30_000)
    rows = page.locator("#candidates tbody tr")
    expect(rows.first).to_be_visible()
    found = rows.count()
    assert found >= 3
    expect(page.locator("#candidates")).to_contain_text("properties.reported.ownerRef")
    expect(page.locator("#search-targets")).to_contain_text("‹key 1›")
    shot(page, "45-discovery-candidates")

    page.get_by_role("button", name=f"Add all {found} devices found").click()
    expect(page.locator("#finding-state")).to_contain_text("added from the search")
    shot(page, "46-discovery-confirmed")
    draft = DataRequest.objects.get(subject_reference="TICKET-4701")
    assert draft.identifiers.count() >= 3

    page.get_by_role("button", name="Submit for planning and approval").click()
    expect(page.locator("#status-badge")).to_have_text("Awaiting approval", timeout=60_000)
    plan = page.locator("#found-by-owner")
    expect(plan).to_contain_text("How the devices were found")
    expect(plan).not_to_contain_text(CUSTOMER)
    shot(page, "47-plan-how-devices-were-found")
