"""The dashboard: counts, deadlines, what waits on me, and the twelve-month chart."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from requests_app.models import Approval, DataRequest, Status
from requests_app.models.requests import add_months
from requests_app.reporting import charts, dashboard
from tests.conftest import make_user, sign_in
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db


def _request(officer, *, due_in=30, status=Status.DRAFT, **fields):
    req = make_request(officer, ["reg-1"])
    today = timezone.localdate()
    values = {"due_at": today + timedelta(days=due_in), "status": status, **fields}
    DataRequest.objects.filter(pk=req.pk).update(**values)
    req.refresh_from_db()
    return req


def _at(day):
    return timezone.make_aware(datetime(day.year, day.month, day.day, 12))


def test_counts_by_status_include_zeros(officer):
    _request(officer)
    _request(officer)
    _request(officer, status=Status.FAILED)
    counts = {value: n for value, _, n in dashboard.counts_by_status()}
    assert counts[Status.DRAFT] == 2 and counts[Status.FAILED] == 1
    assert counts[Status.COMPLETED] == 0
    assert list(counts) == list(Status.values)


def test_due_soon_and_overdue_are_open_requests_only(officer):
    soon = _request(officer, due_in=7)
    today_due = _request(officer, due_in=0)
    _request(officer, due_in=8)
    late = _request(officer, due_in=-1, status=Status.RUNNING)
    _request(officer, due_in=-5, status=Status.COMPLETED)
    _request(officer, due_in=2, status=Status.CANCELLED)
    rescued = _request(officer, due_in=-3, extended_until=timezone.localdate() + timedelta(days=9))
    assert [r.pk for r in dashboard.due_soon()] == [today_due.pk, soon.pk]
    assert [r.pk for r in dashboard.overdue()] == [late.pk]
    assert rescued.pk not in {r.pk for r in dashboard.due_soon()}


def test_awaiting_action_for_officers(officer, officer2):
    mine = _request(officer)
    _request(officer2)  # someone else's draft
    failed = _request(officer2, status=Status.FAILED)
    stuck = _request(officer2, status=Status.PLANNING, scoping_error="DPS unreachable")
    _request(officer2, status=Status.PLANNING)  # still planning, nothing to do
    _request(officer, status=Status.AWAITING_APPROVAL)
    assert {r.pk for r in dashboard.awaiting_action(officer)} == {mine.pk, failed.pk, stuck.pk}


def test_awaiting_action_for_approvers(officer, approver, approver2):
    pending = _request(officer, status=Status.AWAITING_APPROVAL, plan_version="v1")
    decided = _request(officer, status=Status.AWAITING_APPROVAL, plan_version="v1")
    Approval.objects.create(
        request=decided,
        approver=approver,
        approver_name="ada",
        plan_version="v1",
        decision="approved",
        via="portal",
    )
    replanned = _request(officer, status=Status.AWAITING_APPROVAL, plan_version="v2")
    Approval.objects.create(
        request=replanned,
        approver=approver,
        approver_name="ada",
        plan_version="v1",
        decision="approved",
        via="portal",
    )
    own = _request(approver, status=Status.AWAITING_APPROVAL, plan_version="v1")
    _request(officer, status=Status.FAILED)
    assert {r.pk for r in dashboard.awaiting_action(approver)} == {pending.pk, replanned.pk}
    assert {r.pk for r in dashboard.awaiting_action(approver2)} == {
        pending.pk,
        decided.pk,
        replanned.pk,
        own.pk,
    }


def test_awaiting_action_is_empty_for_auditors(officer, auditor):
    _request(officer, status=Status.FAILED)
    assert list(dashboard.awaiting_action(auditor)) == []


def test_monthly_volume_and_on_time_rate(officer):
    today = timezone.localdate()
    this_month = today.replace(day=1)
    last_month = add_months(this_month, -1)
    # received this month (2) and last month (1); one received 13 months ago is out of range
    _request(officer, received_at=today)
    _request(officer, received_at=this_month)
    _request(officer, received_at=last_month)
    _request(officer, received_at=add_months(this_month, -13))
    # answered last month: one on time, one late, one late but within its extension
    _request(
        officer,
        status=Status.COMPLETED,
        received_at=add_months(last_month, -12),
        due_at=last_month,
        completed_at=_at(last_month),
    )
    _request(
        officer,
        status=Status.COMPLETED_WITH_ISSUES,
        received_at=add_months(last_month, -12),
        due_at=last_month,
        completed_at=_at(last_month + timedelta(days=1)),
    )
    _request(
        officer,
        status=Status.REJECTED,
        received_at=add_months(last_month, -12),
        due_at=last_month,
        extended_until=last_month + timedelta(days=5),
        completed_at=_at(last_month + timedelta(days=2)),
    )
    # cancelled requests are not answers
    _request(
        officer,
        status=Status.CANCELLED,
        received_at=add_months(last_month, -12),
        due_at=last_month,
        completed_at=_at(last_month + timedelta(days=3)),
    )
    rows = dashboard.monthly(today)
    assert len(rows) == 12
    assert rows[-1]["label"] == f"{this_month:%Y-%m}"
    assert rows[0]["month"] == add_months(this_month, -11)
    assert rows[-1]["received"] == 2 and rows[-2]["received"] == 1
    assert sum(row["received"] for row in rows) == 3
    assert (rows[-2]["answered"], rows[-2]["on_time"], rows[-2]["rate"]) == (3, 2, 67)
    assert rows[-1]["rate"] is None and rows[-1]["answered"] == 0


def test_monthly_is_a_fixed_number_of_queries(officer, django_assert_num_queries):
    for _ in range(5):
        _request(officer, status=Status.COMPLETED, completed_at=timezone.now())
    with django_assert_num_queries(2):
        dashboard.monthly()


def test_chart_is_accessible_svg_and_escapes_text():
    rows = [
        {"label": "2025-01", "received": 4, "answered": 2, "on_time": 1, "rate": 50},
        {"label": "<b>&", "received": 0, "answered": 0, "on_time": 0, "rate": None},
        {"label": "2025-03", "received": 10, "answered": 4, "on_time": 4, "rate": 100},
        {"label": "2025-04", "received": 7, "answered": 4, "on_time": 3, "rate": 75},
    ]
    svg = str(charts.volume_and_on_time(rows, chart_id="c"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg and 'aria-labelledby="c-title c-desc"' in svg
    assert '<title id="c-title">' in svg and '<desc id="c-desc">' in svg
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg
    assert svg.count("<rect") == 4
    # the rate line breaks at the month without answers: one point alone, then a line of two
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 3
    assert "2025-03: 10 received, 100% on time" in svg
    assert "<script" not in svg and "style=" not in svg


def test_chart_with_no_data():
    rows = dashboard.monthly()
    svg = str(charts.volume_and_on_time(rows))
    assert "0 requests received" in svg and "none answered yet" in svg
    assert "<polyline" not in svg


def test_dashboard_page(client, officer, approver):
    late = _request(officer, due_in=-2, status=Status.AWAITING_APPROVAL, plan_version="v1")
    soon = _request(officer, due_in=3)
    client.force_login(officer)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    overdue_box = page.split('class="errorbox" role="alert"')[1].split("</div>")[0]
    assert late.reference in overdue_box and "Overdue by 2 days" in overdue_box
    assert soon.reference in page and "3 days left" in page
    assert "Awaiting your action" in page and "Submit your draft" in page
    assert "<svg" in page and "<table" in page and "On-time rate</th>" in page
    assert "<script" not in page.split("<main")[1]
    sign_in(client, approver)
    page = client.get("/dashboard/").content.decode()
    assert "Approve or reject" in page and "Submit your draft" not in page


def test_dashboard_for_auditor_has_no_action_list(client, auditor):
    client.force_login(auditor)
    page = client.get("/dashboard/").content.decode()
    assert "Requests by status" in page and "Awaiting your action" not in page


def test_dashboard_query_count_is_bounded(client, officer, django_assert_max_num_queries):
    client.force_login(officer)
    for due_in in (-3, -1, 2, 5):
        _request(officer, due_in=due_in)
    with django_assert_max_num_queries(14):
        assert client.get("/dashboard/").status_code == 200


def test_user_without_role_gets_the_welcome_page(client):
    client.force_login(make_user("nobody"))
    response = client.get("/dashboard/")
    assert response.status_code == 200
    assert "has no role yet" in response.content.decode()


# --- running now, finished this week, muted zero tiles ------------------------------------


def test_running_now_and_finished_this_week(officer):
    queued = _request(officer, status=Status.APPROVED)
    running = _request(officer, status=Status.RUNNING, started_at=timezone.now())
    _request(officer, status=Status.AWAITING_APPROVAL)
    done = _request(officer, status=Status.COMPLETED, completed_at=timezone.now())
    cancelled = _request(
        officer, status=Status.CANCELLED, completed_at=timezone.now() - timedelta(days=2)
    )
    _request(officer, status=Status.COMPLETED, completed_at=timezone.now() - timedelta(days=8))
    assert {r.pk for r in dashboard.running_now()} == {queued.pk, running.pk}
    assert [r.pk for r in dashboard.finished_recently()] == [done.pk, cancelled.pk]


def test_dashboard_lists_running_and_finished_with_devices(client, officer):
    running = make_request(officer, ["reg-1", "reg-2", "reg-3"])
    DataRequest.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, started_at=timezone.now()
    )
    done = _request(officer, status=Status.COMPLETED, completed_at=timezone.now())
    client.force_login(officer)
    response = client.get("/")
    page = response.content.decode()
    section = page.split('id="running-heading"')[1].split("</section>")[0]
    assert running.reference in section and '<td class="num">3</td>' in section
    assert "0%" in section
    finished = page.split('id="finished-heading"')[1].split("</section>")[0]
    assert (
        done.reference in finished and f"{timezone.localtime(timezone.now()):%Y-%m-%d}" in finished
    )
    assert running.reference not in finished


def test_zero_tiles_are_muted(client, officer):
    _request(officer, status=Status.FAILED)
    client.force_login(officer)
    page = client.get("/").content.decode()
    tiles = page.split('id="status-heading"')[1].split("</section>")[0]
    assert '<a class="stat" href="/requests/?status=failed">' in tiles
    assert '<a class="stat zero" href="/requests/?status=completed">' in tiles
    assert tiles.count("stat zero") == len(Status.values) - 1


def test_dashboard_query_count_does_not_grow(client, officer, django_assert_max_num_queries):
    client.force_login(officer)
    client.get("/")  # the session's first request may write to it: not the page's cost

    def count():
        with django_assert_max_num_queries(30) as captured:
            assert client.get("/").status_code == 200
        return len(captured.captured_queries)

    for _ in range(2):
        _request(officer, status=Status.RUNNING)
        _request(officer, status=Status.COMPLETED, completed_at=timezone.now())
    few = count()
    for _ in range(20):
        _request(officer, status=Status.RUNNING)
        _request(officer, status=Status.COMPLETED, completed_at=timezone.now())
    assert count() == few
