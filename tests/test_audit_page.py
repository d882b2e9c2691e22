"""The audit page: the chain's status on top, the events in words (50 a page, newest first,
filtered by request, actor, event and dates), and the offline-verification guide as a page."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from requests_app.models import AuditEvent
from requests_app.reporting.docs_render import render_markdown
from requests_app.views.reports import OFFLINE_GUIDE
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request
from tests.test_reports import bypass_append_only_trigger

pytestmark = pytest.mark.django_db


def _rows(response):
    return list(response.context["events"])


def test_events_are_listed_in_words_newest_first_with_chain_status(client, auditor, officer):
    req = make_request(officer, ["reg-1"])
    AuditEvent.record(
        "azure_call",
        request=req,
        method="DELETE",
        host="demo-hub-1.azure-devices.net",
        path="/devices/thermostat-00100004",
        status=204,
    )
    client.force_login(auditor)
    response = client.get(reverse("audit_chain"))
    page = response.content.decode()
    assert "Verified" in page and 'id="chain-head"' in page
    assert page.index('id="chain-head"') < page.index("Azure: DELETE device thermostat-00100004")
    rows = _rows(response)
    assert rows[0].seq > rows[-1].seq
    assert f'href="/requests/{req.reference}/"' in page
    newest = AuditEvent.objects.order_by("-seq").first()
    assert f'title="{newest.hash}">{newest.hash[:12]}…' in page
    assert "azure_call" not in page.split("<tbody>")[1]


def test_fifty_a_page(client, auditor):
    client.force_login(auditor)
    for number in range(120 - AuditEvent.objects.count()):  # the auditor's account and sign-in
        AuditEvent.record("something", number=number)
    first = client.get(reverse("audit_chain"))
    assert len(_rows(first)) == 50
    assert "Page 1 of 3" in first.content.decode()
    last = client.get(reverse("audit_chain"), {"page": 3})
    assert len(_rows(last)) == 20
    assert _rows(last)[-1].seq == 1


def test_filters_by_request_actor_event_and_date(client, auditor, officer):
    one = make_request(officer, ["reg-1"])
    two = make_request(officer, ["reg-2"])
    AuditEvent.record("email_sent", request=one, template="approval_request", to="a@x")
    AuditEvent.record("email_sent", request=two, template="approval_request", to="b@x")
    AuditEvent.record("deadline_extended", actor=officer, request=two, until="2026-05-01")
    client.force_login(auditor)

    def seqs(**params):
        return [e.action for e in _rows(client.get(reverse("audit_chain"), params))]

    assert seqs(request=one.reference.lower()) == ["email_sent"]
    assert seqs(request=two.reference) == ["deadline_extended", "email_sent"]
    assert seqs(actor=officer.username.upper()) == ["deadline_extended"]
    assert seqs(action="email_sent", request=two.reference) == ["email_sent"]
    today = timezone.localdate()
    assert len(seqs(**{"from": today.isoformat(), "to": today.isoformat()})) >= 3
    tomorrow = today + timedelta(days=1)
    assert seqs(**{"from": tomorrow.isoformat()}) == []
    assert seqs(**{"to": (today - timedelta(days=1)).strftime("%Y%m%d")}) == []


def test_bad_filters_are_reported_and_the_rest_still_apply(client, auditor, officer):
    req = make_request(officer, ["reg-1"])
    AuditEvent.record("email_sent", request=req, template="x", to="a@x")
    client.force_login(auditor)
    response = client.get(
        reverse("audit_chain"), {"from": "01/02/2026", "action": "nope", "request": req.reference}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Some filters were not applied" in page and "Enter a date as YYYY-MM-DD." in page
    assert [e.action for e in _rows(response)] == ["email_sent"]


def test_date_inputs_are_iso_text(client, auditor):
    client.force_login(auditor)
    page = client.get(reverse("audit_chain")).content.decode()
    assert 'type="date"' not in page
    assert page.count('placeholder="YYYY-MM-DD"') == 4  # two filters, two for the download


def test_text_is_escaped(client, auditor):
    AuditEvent.record("login_failed", actor_kind="anonymous", actor_name="<script>x</script>")
    client.force_login(auditor)
    page = client.get(reverse("audit_chain")).content.decode()
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_broken_chain_still_lists_events(client, admin_user):
    for number in range(3):
        AuditEvent.record("something", number=number)
    with connection.cursor() as cursor:
        bypass_append_only_trigger(cursor)
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET actor_name = %s WHERE seq = %s",
            ["mallory", 2],
        )
    sign_in(client, admin_user)
    response = client.get(reverse("audit_chain"))
    page = response.content.decode()
    assert "BROKEN" in page and "event #2 was altered" in page
    assert len(_rows(response)) >= 3


def test_audit_page_queries_do_not_grow_with_events(client, auditor, django_assert_max_num_queries):
    client.force_login(auditor)

    client.get(reverse("audit_chain"))  # the session's first request may write to it

    def count():
        with django_assert_max_num_queries(30) as captured:
            assert client.get(reverse("audit_chain"), {"page": 1}).status_code == 200
        return len(captured.captured_queries)

    for number in range(60):
        AuditEvent.record("something", number=number)
    few = count()
    for number in range(200):
        AuditEvent.record("something", number=number)
    # verify_chain reads in chunks of 2,000: the same number of queries up to that size.
    assert count() == few


# --- the offline-verification guide ---------------------------------------------------------


def test_audit_page_links_the_guide_and_the_guide_is_a_page(client, auditor):
    client.force_login(auditor)
    page = client.get(reverse("audit_chain")).content.decode()
    url = reverse("audit_offline_guide")
    assert url == "/audit/offline-verification/"
    assert f'href="{url}"' in page
    assert "docs/verify-audit-offline.md" not in page  # a link, not a file name to look for
    response = client.get(url)
    guide = response.content.decode()
    assert response.status_code == 200
    assert '<h1 id="verifying-the-audit-log-offline">Verifying the audit log offline</h1>' in guide
    assert '<pre><code class="language-python">import hashlib' in guide
    assert "<ol><li>Sign in as an auditor" in guide
    assert "<strong>Anchor</strong>" in guide
    assert f'href="{reverse("audit_chain")}"' in guide


@pytest.mark.parametrize("persona", ["officer", "approver"])
def test_the_guide_is_for_auditors_and_admins(client, persona, request):
    sign_in(client, request.getfixturevalue(persona))
    assert client.get(reverse("audit_offline_guide")).status_code == 404


def test_guide_file_exists():
    assert OFFLINE_GUIDE.is_file()


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("# T", '<h1 id="t">T</h1>'),
        ("a <b>&\nc", "<p>a &lt;b&gt;&amp; c</p>"),
        ("`<x>` **b** *e*", "<p><code>&lt;x&gt;</code> <strong>b</strong> <em>e</em></p>"),
        ("```\n<tag>\n```", "<pre><code>&lt;tag&gt;</code></pre>"),
        ("    code\n", "<pre><code>code</code></pre>"),
        ("- a\n- b", "<ul><li>a</li><li>b</li></ul>"),
        ("1. a\n   more\n2. b\n   - c", "<ol><li>a more</li><li>b<ul><li>c</li></ul></li></ol>"),
        ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>"),
        ("[x](/audit/)", '<p><a href="/audit/">x</a></p>'),
        ('[x](/a"onclick="y)', '<p><a href="/a&quot;onclick=&quot;y">x</a></p>'),
    ],
)
def test_markdown_renderer(markdown, html):
    assert str(render_markdown(markdown)) == html


def test_the_page_shows_the_latest_checkpoint_and_failing_sinks(client, settings, tmp_path, db):
    """The audit page says where the chain is anchored and which copy could not be published
    (it is retried; it shows until it succeeds)."""
    from requests_app.access import roles
    from requests_app.evidence import checkpoints
    from requests_app.evidence.checkpoints import keys
    from tests.conftest import make_user, sign_in

    key = keys.generate_key_file(tmp_path / "signing.pem")
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.DSR_AUDIT_PUBLIC_KEY = keys.public_b64(key.public_key())
    settings.DSR_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    (tmp_path / "checkpoints").mkdir()
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = True
    AuditEvent.record("something")
    viewer = make_user("audrey", roles.AUDITOR)
    viewer.email = ""  # no auditor with an address: the email copy fails
    viewer.save()
    sign_in(client, viewer)
    assert b"No checkpoint yet" in client.get(reverse("audit_chain")).content
    checkpoint = checkpoints.write_checkpoint()
    page = client.get(reverse("audit_chain")).content.decode()
    assert f"event #{checkpoint.seq}, signed" in page
    assert 'id="checkpoint-failing"' in page and "no active auditor has an email address" in page
