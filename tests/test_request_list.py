"""The request list: filters, search, sorting, pagination, days-left colours, query count."""

from datetime import timedelta

import pytest
from django.utils import timezone

from requests_app.models import DataRequest, RequestIdentifier, Status
from tests.conftest import make_user, sign_in
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db


def _request(officer, *, due_in=30, received_ago=0, status=Status.DRAFT, ids=("reg-x",), **kw):
    req = make_request(officer, list(ids), **kw)
    today = timezone.localdate()
    DataRequest.objects.filter(pk=req.pk).update(
        due_at=today + timedelta(days=due_in),
        received_at=today - timedelta(days=received_ago),
        status=status,
    )
    req.refresh_from_db()
    return req


def _references(response):
    return [r.reference for r in response.context["page"]]


def test_visible_to_viewer_roles_only(client, officer, approver, auditor, admin_user):
    for user in (officer, approver, auditor, admin_user):
        sign_in(client, user)
        assert client.get("/requests/").status_code == 200
    client.force_login(make_user("nobody"))
    assert client.get("/requests/").status_code == 404


def test_anonymous_goes_to_login(client):
    response = client.get("/requests/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_filter_by_status_kind_regulation(client, officer):
    draft = _request(officer, kind="export", regulation="gdpr")
    failed = _request(officer, status=Status.FAILED, kind="erasure", regulation="ccpa")
    client.force_login(officer)
    assert _references(client.get("/requests/?status=failed")) == [failed.reference]
    assert _references(client.get("/requests/?kind=export")) == [draft.reference]
    assert _references(client.get("/requests/?regulation=ccpa")) == [failed.reference]
    assert _references(client.get("/requests/?regulation=gdpr&kind=erasure")) == []


def test_due_and_overdue_filters_cover_open_requests_only(client, officer):
    soon = _request(officer, due_in=3)
    later = _request(officer, due_in=20)
    late = _request(officer, due_in=-2, status=Status.AWAITING_APPROVAL)
    _request(officer, due_in=-2, status=Status.COMPLETED)
    _request(officer, due_in=2, status=Status.CANCELLED)
    extended = _request(officer, due_in=-1)
    DataRequest.objects.filter(pk=extended.pk).update(
        extended_until=timezone.localdate() + timedelta(days=5)
    )
    client.force_login(officer)
    assert set(_references(client.get("/requests/?due=7d"))) == {
        soon.reference,
        extended.reference,
    }
    assert _references(client.get("/requests/?due=overdue")) == [late.reference]
    assert later.reference in _references(client.get("/requests/"))


def test_received_date_range(client, officer):
    old = _request(officer, received_ago=40)
    recent = _request(officer, received_ago=2)
    today = timezone.localdate()
    client.force_login(officer)
    since = (today - timedelta(days=10)).isoformat()
    assert _references(client.get(f"/requests/?from={since}")) == [recent.reference]
    until = (today - timedelta(days=10)).isoformat()
    assert _references(client.get(f"/requests/?to={until}")) == [old.reference]


@pytest.mark.parametrize("query", ["from=2024-13-01", "to=yesterday", "from=01/02/2024"])
def test_bad_dates_give_a_message_not_an_error(client, officer, query):
    req = _request(officer)
    client.force_login(officer)
    response = client.get(f"/requests/?{query}&status=draft")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Some filters were not applied" in page
    assert "Enter a date as YYYY-MM-DD." in page
    # the valid filters still apply
    assert _references(response) == [req.reference]


def test_reversed_range_is_reported(client, officer):
    client.force_login(officer)
    response = client.get("/requests/?from=2025-05-01&to=2025-04-01")
    assert response.status_code == 200
    assert "before its start" in response.content.decode()


def test_search_reference_subject_and_identifiers(client, officer):
    by_reg = _request(officer, ids=["sensor-alpha-01"])
    by_device = _request(officer, ids=[])
    RequestIdentifier.objects.create(request=by_device, line=1, device_id="Pump-Beta-7", hub="h")
    by_subject = _request(officer, ids=["x"])
    DataRequest.objects.filter(pk=by_subject.pk).update(subject_reference="ZENDESK-4242")
    client.force_login(officer)
    assert _references(client.get("/requests/?q=alpha")) == [by_reg.reference]
    assert _references(client.get("/requests/?q=pump-beta")) == [by_device.reference]
    assert _references(client.get("/requests/?q=zendesk-42")) == [by_subject.reference]
    assert _references(client.get(f"/requests/?q={by_reg.reference}")) == [by_reg.reference]
    assert _references(client.get("/requests/?q=nothing-like-this")) == []


def test_search_with_many_matching_identifiers_lists_the_request_once(client, officer):
    req = _request(officer, ids=["dev-1", "dev-2", "dev-3"])
    client.force_login(officer)
    assert _references(client.get("/requests/?q=dev-")) == [req.reference]


def test_sorting_whitelist(client, officer):
    a = _request(officer, due_in=15, received_ago=1)
    b = _request(officer, due_in=5, received_ago=3)
    c = _request(officer, due_in=25, received_ago=2)
    client.force_login(officer)
    assert _references(client.get("/requests/?sort=due")) == [b.reference, a.reference, c.reference]
    assert _references(client.get("/requests/?sort=-due"))[0] == c.reference
    assert _references(client.get("/requests/?sort=received"))[0] == b.reference
    assert _references(client.get("/requests/?sort=-received"))[0] == a.reference
    assert _references(client.get("/requests/?sort=reference")) == sorted(
        [a.reference, b.reference, c.reference]
    )
    response = client.get("/requests/?sort=created_by__password")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert len(_references(response)) == 3


def test_pagination_keeps_the_filters(client, officer):
    for _ in range(53):
        _request(officer, kind="erasure")
    _request(officer, kind="export")
    client.force_login(officer)
    response = client.get("/requests/?kind=erasure&sort=due")
    assert len(response.context["page"]) == 50
    page = response.content.decode()
    assert 'href="?kind=erasure&amp;sort=due&amp;page=2"' in page
    second = client.get("/requests/?kind=erasure&sort=due&page=2")
    assert len(second.context["page"]) == 3
    assert "Page 2 of 2" in second.content.decode()


@pytest.mark.parametrize(
    ("due_in", "status", "css", "text"),
    [
        (12, Status.DRAFT, "days-ok", "12 days left"),
        (10, Status.DRAFT, "days-ok", "10 days left"),
        (9, Status.PLANNING, "days-soon", "9 days left"),
        (5, Status.APPROVED, "days-soon", "5 days left"),
        (4, Status.RUNNING, "days-urgent", "4 days left"),
        (0, Status.FAILED, "days-urgent", "Due today"),
        (-3, Status.AWAITING_APPROVAL, "days-overdue", "Overdue by 3 days"),
    ],
)
def test_days_left_colours(client, officer, due_in, status, css, text):
    _request(officer, due_in=due_in, status=status)
    client.force_login(officer)
    page = client.get("/requests/").content.decode()
    cell = _days_cell(page)
    assert f'class="badge {css}"' in cell
    assert text in cell


def _days_cell(page):
    return page.split("<tbody>")[1].split('<td class="days">')[1].split("</td>")[0]


@pytest.mark.parametrize(
    "status", [Status.COMPLETED, Status.COMPLETED_WITH_ISSUES, Status.REJECTED, Status.CANCELLED]
)
def test_finished_requests_have_no_days_left_but_a_finished_date(client, officer, status):
    req = _request(officer, due_in=-3, status=status)
    finished = timezone.now() - timedelta(days=1)
    DataRequest.objects.filter(pk=req.pk).update(completed_at=finished)
    client.force_login(officer)
    page = client.get("/requests/").content.decode()
    cell = _days_cell(page)
    assert "badge" not in cell and "—" in cell  # not a second status badge
    row = page.split("<tbody>")[1].split("</tr>")[0]
    assert row.count(f'class="badge {status}"') == 1
    assert f"{timezone.localdate(finished):%Y-%m-%d}" in row


def test_device_count_column(client, officer):
    _request(officer, ids=["a", "b", "c"])
    client.force_login(officer)
    page = client.get("/requests/").content.decode()
    assert '<th scope="col" class="num">Devices</th>' in page
    assert '<td class="num">3</td>' in page.split("<tbody>")[1]


def test_date_filters_are_iso_text_inputs(client, officer):
    client.force_login(officer)
    page = client.get("/requests/?from=2026-01-05").content.decode()
    assert 'type="date"' not in page
    field = page.split('id="id_from"')[0].rsplit("<input", 1)[1] + page.split('id="id_from"')[1]
    field = field.split(">")[0]
    for attribute in ('type="text"', 'placeholder="YYYY-MM-DD"', 'inputmode="numeric"'):
        assert attribute in field, field
    assert 'value="2026-01-05"' in field
    assert "pattern=" in field


def test_digits_only_dates_are_accepted(client, officer):
    recent = _request(officer, received_ago=2)
    _request(officer, received_ago=40)
    since = timezone.localdate() - timedelta(days=10)
    client.force_login(officer)
    response = client.get(f"/requests/?from={since:%Y%m%d}")
    assert _references(response) == [recent.reference]


def test_filter_form_is_labelled(client, officer):
    client.force_login(officer)
    page = client.get("/requests/").content.decode()
    for name, label in [
        ("q", "Search"),
        ("status", "Status"),
        ("kind", "Kind"),
        ("regulation", "Regulation"),
        ("due", "Deadline"),
        ("from", "Received from"),
        ("to", "Received to"),
        ("sort", "Sort by"),
    ]:
        assert f'<label for="id_{name}">{label}</label>' in page
        assert f'name="{name}"' in page and f'id="id_{name}"' in page


def test_text_is_escaped(client, officer):
    req = _request(officer)
    DataRequest.objects.filter(pk=req.pk).update(subject_reference="<script>x</script>")
    client.force_login(officer)
    page = client.get("/requests/").content.decode()
    assert "<script>x</script>" not in page and "&lt;script&gt;x" in page
    assert 'value="&lt;b&gt;"' in client.get("/requests/?q=<b>").content.decode()


def _count_queries(client, django_assert_max_num_queries, url, limit):
    client.get(url)  # the session's first request may write to it: not the page's cost
    with django_assert_max_num_queries(limit) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_query_count_does_not_grow_with_page_size(client, officer, django_assert_max_num_queries):
    client.force_login(officer)
    for _ in range(5):
        _request(officer, ids=["a", "b"])
    url = "/requests/?q=a&sort=due"
    few = _count_queries(client, django_assert_max_num_queries, url, 12)
    for _ in range(55):
        _request(officer, ids=["a", "b"])
    many = _count_queries(client, django_assert_max_num_queries, url, few)
    assert many == few
