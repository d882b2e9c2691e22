"""The officer's and the auditor's pages as people see them, in Debian's Chromium: dashboard,
request list, request pages (running, a finished export, a finished erasure, a 1,000-device
plan), the audit page and the offline-verification guide. Requests are put in their states
through the lifecycle functions and a real ``manage.py worker`` against the simulator (no
approval emails: approvers decide through ``lifecycle.decide(via="portal")``).

Full-page screenshots go to tests/artifacts/screenshots/ (20-… to 29-…).
"""

import re
import time

import pytest
from django.utils import timezone

from requests_app.access import roles
from requests_app.models import DataRequest, Operation, Status
from requests_app.workflow import lifecycle
from tests.browser_helpers import (
    browser_sqlite_template,
    launched_browser,
    running_stack,
    shot,
    wait_until,
)
from tests.conftest import PASSWORD, make_user, proof_for, totp_device
from tests.lifecycle_helpers import make_request
from tests.test_request_page import make_plan

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 30_000  # ms
SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
HEIGHT = "document.documentElement.scrollHeight"
# Navigation timing: from the request leaving the browser to the first byte of the answer.
SERVER_MS = (
    "(() => { const n = performance.getEntriesByType('navigation')[0];"
    " return n.responseStart - n.requestStart; })()"
)
# The widest option of a select, measured in its own font, against the room it has.
SELECT_FITS = """(id) => {
  const s = document.getElementById(id);
  const style = getComputedStyle(s);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = style.font;
  const widest = Math.max(...Array.from(s.options).map(o => ctx.measureText(o.text).width));
  const room = s.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
  return [widest, room];
}"""


@pytest.fixture(scope="module")
def browser():
    with launched_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory, django_db_setup):
    return browser_sqlite_template(tmp_path_factory, "browser-pages-db")


@pytest.fixture
def stack(transactional_db, sqlite_template, redis_db, settings, tmp_path):
    with running_stack(tmp_path, sqlite_template, settings, dev_outbox=False) as stack:
        yield stack


@pytest.fixture
def people(stack):
    return {
        "officer": make_user("olivia", roles.OFFICER),
        "ada": make_user("ada", roles.APPROVER),
        "alan": make_user("alan", roles.APPROVER),
        "auditor": make_user("audrey", roles.AUDITOR),
    }


def login(browser, url, username, viewport=None):
    """Sign in through /accounts/login/ with a username and password (officers, auditors)."""
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=url, accept_downloads=True, viewport=viewport or {"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    # The password step's button ("Continue"; a second step follows only for approvers/admins).
    page.get_by_role("button", name=re.compile(r"^(Continue|Sign in)$")).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def status_of(req):
    return DataRequest.objects.get(pk=req.pk).status


def approve(req, approver):
    """An approval as the portal records it, with the proof an approver's session carries."""
    totp_device(approver)
    lifecycle.decide(
        DataRequest.objects.get(pk=req.pk),
        approver=approver,
        decision="approved",
        via="portal",
        plan_version=req.plan_version,
        proof=proof_for(approver),
    )


def fulfil(stack, people, req, approvers):
    """Submit, let the worker plan, approve through the portal, let the worker finish."""
    lifecycle.submit(req, actor=people["officer"])
    try:
        wait_until(lambda: status_of(req) == Status.AWAITING_APPROVAL, 60, "the plan")
        req.refresh_from_db()
        for name in approvers:
            approve(req, people[name])
        wait_until(lambda: status_of(req) == Status.COMPLETED, 120, "fulfilment")
    except AssertionError:
        raise AssertionError(
            f"{req.reference} is {status_of(req)}; worker:\n{stack.worker.output()}"
        ) from None
    req.refresh_from_db()
    return req


def running_plan(officer):
    """Eight devices, the first three done, the fourth half way: a request mid-run."""
    req = make_plan(officer, devices=8, status=Status.RUNNING)
    DataRequest.objects.filter(pk=req.pk).update(started_at=timezone.now())
    for device in req.devices.filter(position__lte=3):
        device.operations.update(state=Operation.State.DONE, http_status=204)
    fourth = list(req.devices.get(position=4).operations.order_by("seq"))
    Operation.objects.filter(pk__in=[op.pk for op in fourth[:2]]).update(
        state=Operation.State.DONE, http_status=204
    )
    Operation.objects.filter(pk=fourth[2].pk).update(state=Operation.State.RUNNING)
    return req


def test_officer_and_auditor_pages(browser, stack, people):
    from playwright.sync_api import expect

    samples = stack.sim.samples()
    with_modules = next(
        d
        for d in samples["with_modules"]
        if d in samples["individual_symmetric"] + samples["individual_x509"]
    )
    export = fulfil(
        stack,
        people,
        make_request(people["officer"], [samples["individual_symmetric"][1]], kind="export"),
        ["ada"],
    )
    erasure = fulfil(
        stack,
        people,
        make_request(
            people["officer"], [with_modules, samples["group_provisioned"][0]], kind="erasure"
        ),
        ["ada", "alan"],
    )
    running = running_plan(people["officer"])
    waiting = make_plan(people["officer"], devices=2)

    page = login(browser, stack.url, "olivia")

    # Dashboard: running now, finished this week, zero tiles muted.
    page.goto("/")
    running_list = page.locator("section", has=page.locator("#running-heading"))
    expect(running_list).to_contain_text(running.reference)
    finished_list = page.locator("section", has=page.locator("#finished-heading"))
    expect(finished_list).to_contain_text(export.reference)
    expect(finished_list).to_contain_text(erasure.reference)
    expect(page.locator(".stat.zero").first).to_be_visible()
    shot(page, "20-dashboard")

    # Request list: device count and finished date, no second status badge, ISO dates.
    page.get_by_role("link", name="Requests", exact=True).click()
    row = page.locator("tbody tr", has_text=erasure.reference)
    expect(row.locator("td.num")).to_have_text("2")
    expect(row.locator("td.days")).to_have_text("—")
    expect(row.locator(".badge")).to_have_count(1)
    expect(row).to_contain_text(f"{timezone.localtime(erasure.completed_at):%Y-%m-%d}")
    date_input = page.get_by_label("Received from")
    assert date_input.get_attribute("type") == "text"
    assert date_input.get_attribute("placeholder") == "YYYY-MM-DD"
    widest, room = page.evaluate(SELECT_FITS, "id_sort")
    assert widest <= room, f"the sort select cuts its options off ({widest:.0f} > {room:.0f})"
    filter_height = page.locator(".filter-card").bounding_box()["height"]
    assert filter_height < 200, f"the filter bar is {filter_height:.0f} px tall"
    shot(page, "21-request-list")
    date_input.fill(timezone.localdate().isoformat())
    page.get_by_label("Kind").select_option(label="Export")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text(export.reference)

    # A request waiting for approval: the next step first, Cancel and Extend folded away.
    page.goto(f"/requests/{waiting.reference}/")
    expect(page.locator("#next-step")).to_contain_text("Waiting for approval: 0 of 2")
    cancel = page.get_by_role("button", name="Cancel request")
    expect(cancel).to_be_hidden()
    page.get_by_text("Extend the deadline or cancel the request").click()
    expect(cancel).to_be_visible()
    expect(page.get_by_label("New due date")).to_be_visible()
    shot(page, "22-request-awaiting-approval-actions-open")

    # A running request refreshes itself: counts in place, one reload when it finishes.
    page.goto(f"/requests/{running.reference}/")
    expect(page.locator("#status-badge")).to_have_text("Running")
    expect(page.locator("#progress-text")).to_contain_text("23 of 56 operations finished")
    shot(page, "23-request-running")
    page.evaluate("window.stillTheSamePage = true")
    running.devices.get(position=4).operations.update(state=Operation.State.DONE)
    expect(page.locator("#progress-text")).to_contain_text("28 of 56 operations finished")
    assert page.evaluate("window.stillTheSamePage === true"), "reloaded for a mere count"
    running.operations.update(state=Operation.State.DONE)
    DataRequest.objects.filter(pk=running.pk).update(
        status=Status.COMPLETED, completed_at=timezone.now()
    )
    expect(page.locator("#status-badge")).to_have_text("Completed")
    expect(page.locator("#completed-on")).to_be_visible()
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/progress" in r.url else None)
    time.sleep(4.5)
    assert not polls, f"still polling after the request finished: {polls}"

    # The finished export: completion date, days taken, plan and timeline in words.
    page.goto(f"/requests/{export.reference}/")
    expect(page.locator("#completed-on")).to_contain_text("0 days taken")
    expect(page.locator("#next-step")).to_contain_text("Completed on")
    expect(page.locator("#plan")).to_contain_text("1 exported")
    expect(page.locator("#plan")).to_contain_text("Read the hub device")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Azure: GET enrollment")
    expect(timeline).to_contain_text("Email to ada@example.com (approval link)")
    expect(timeline).to_contain_text("Status: running → completed")
    expect(timeline).not_to_contain_text("azure_call")
    expect(page.get_by_role("link", name="Export archive (ZIP)")).to_be_visible()
    # Finished: no cancel or extension any more; delivery and retention are what is left.
    expect(page.get_by_text("Extend the deadline")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel request")).to_have_count(0)
    expect(page.locator("#delivery")).to_contain_text("Make a delivery link")
    expect(page.locator("#retention")).to_contain_text("to be deleted on")
    shot(page, "24-request-export-completed")

    # The finished erasure (2 devices): past tense, numbered per device, a short page.
    page.goto(f"/requests/{erasure.reference}/")
    plan = page.locator("#plan")
    expect(plan).not_to_contain_text("Will be deleted")
    expect(plan).to_contain_text("Deleted —")
    expect(plan.locator("details.device")).to_have_count(2)
    for device in plan.locator("details.device").all():
        numbers = device.locator("tbody td.num").all_inner_texts()
        assert numbers == [str(n) for n in range(1, len(numbers) + 1)], numbers
    expect(page.locator("body")).not_to_contain_text("failed,")
    shot(page, "25-request-erasure-completed")
    height = page.evaluate(HEIGHT)
    print(f"\n2-device erasure page: {height} px tall at 1280 px wide (was 3,659)")
    assert height < 3000, f"the 2-device erasure page is {height} px tall"

    # Phone width: nothing scrolls sideways.
    phone = browser.new_context(
        base_url=stack.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=page.context.storage_state(),
    )
    phone_page = phone.new_page()
    overflow = {}
    for name, url in (
        ("request page", f"/requests/{erasure.reference}/"),
        ("request list", "/requests/"),
        ("dashboard", "/"),
    ):
        phone_page.goto(url)
        overflow[name] = phone_page.evaluate(SIDEWAYS)
    shot(phone_page, "26-phone-request-list")
    phone_page.goto(f"/requests/{erasure.reference}/")
    shot(phone_page, "26-phone-request-erasure")
    phone.close()
    page.context.close()
    assert max(overflow.values()) <= 1, f"pages scroll sideways on a phone (px): {overflow}"

    # The auditor: the chain, the events in words, filters, and the guide as a page.
    audit = login(browser, stack.url, "audrey")
    audit.get_by_role("link", name="Audit trail").click()
    expect(audit.locator(".badge.completed")).to_have_text("Verified")
    expect(audit.locator("table.audit-events tbody tr")).to_have_count(50)
    shot(audit, "27-audit")
    audit.get_by_label("Request", exact=True).fill(erasure.reference)
    audit.get_by_label("Event", exact=True).select_option(label="Azure call")
    audit.get_by_role("button", name="Apply").click()
    rows = audit.locator("table.audit-events tbody tr")
    expect(rows.first).to_contain_text("Azure: ")
    for text in rows.all_inner_texts():
        assert erasure.reference in text and "Azure: " in text, text
    audit.get_by_role("link", name="offline verification guide").first.click()
    expect(audit.get_by_role("heading", name="Verifying the audit log offline")).to_be_visible()
    expect(audit.locator("pre code.language-python")).to_contain_text("def event_hash(event):")
    shot(audit, "28-audit-offline-guide")
    audit.context.close()


def test_thousand_device_plan_page(browser, stack, people):
    """1,000 devices, 13,000 operations: the page answers within a second and can be walked."""
    from playwright.sync_api import expect

    req = make_plan(
        people["officer"], devices=1000, kind="export_and_erasure", status=Status.FAILED
    )
    done = req.operations.filter(device__position__lte=400)
    done.update(state=Operation.State.DONE, http_status=200)
    failed = req.devices.get(position=401).operations.order_by("seq").first()
    Operation.objects.filter(pk=failed.pk).update(
        state=Operation.State.FAILED, http_status=500, message="ServerError: try again"
    )
    DataRequest.objects.filter(pk=req.pk).update(
        failure={"action": failed.action, "device": failed.device.label, "http_status": 500}
    )

    page = login(browser, stack.url, "olivia")
    page.goto(f"/requests/{req.reference}/")
    page.goto(f"/requests/{req.reference}/")  # the second visit: templates compiled
    server_ms = page.evaluate(SERVER_MS)
    print(f"\n1,000-device plan page: {server_ms:.0f} ms to first byte, {page.evaluate(HEIGHT)} px")
    assert server_ms < 1000, f"{server_ms:.0f} ms"
    expect(page.locator("#status-badge")).to_have_text("Failed")
    expect(page.locator("table.plan-summary")).to_contain_text("demo-hub-1")
    expect(page.locator("#plan-devices details.device")).to_have_count(50)
    shot(page, "29-request-1000-devices")

    # Walk it: the next page, one device opened, a search, the failed devices only.
    page.get_by_role("link", name="Next →").first.click()
    expect(page.locator("#plan-devices")).to_contain_text("Devices 51–100 of 1,000")
    device = page.locator("details.device").first
    device.locator("summary").click()
    expect(device.locator("table.plan-ops")).to_be_visible()
    expect(device.locator("tbody tr")).to_have_count(12)
    page.get_by_label("Find a device").fill("00100777")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("details.device")).to_have_count(1)
    expect(page.locator("details.device")).to_contain_text("thermostat-00100777")
    page.get_by_role("link", name="Show all devices").click()
    page.locator("ul.chips a", has_text="failed").click()
    expect(page.locator("details.device")).to_have_count(1)
    expect(page.locator("details.device")).to_contain_text("ServerError: try again")
    shot(page, "29-request-1000-devices-failed-only")
    page.context.close()
