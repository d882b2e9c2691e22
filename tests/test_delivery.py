"""Delivery to the data subject, as an attacker and as the subject would try it: a link with no
passphrase, wrong passphrases until it locks, a download past the limit, an expired, revoked or
purged link — each a clear page, audited once, nothing served. The browser flow is in
tests/test_browser_delivery.py."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from requests_app.evidence import delivery as deliveries
from requests_app.evidence import retention
from requests_app.evidence.artifacts import store_artifact
from requests_app.models import Artifact, AuditEvent, DataRequest, Delivery, Status
from requests_app.models.audit import verify_chain
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db

MEMBERS = {"README.txt": b"what each file is", "devices/dev-1/device.json": b'{"deviceId": 1}'}


def zip_bytes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in MEMBERS.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def export(settings, tmp_path, officer):
    """A completed export with its archive."""
    settings.DSR_DATA_DIR = tmp_path / "data"
    settings.SITE_URL = "http://testserver"
    request = make_request(officer, ["reg-1"], kind="export")
    store_artifact(
        request,
        Artifact.Kind.EXPORT_ARCHIVE,
        f"{request.reference}-export.zip",
        "application/zip",
        lambda fh: fh.write(zip_bytes()),
    )
    DataRequest.objects.filter(pk=request.pk).update(
        status=Status.COMPLETED, completed_at=timezone.now()
    )
    request.refresh_from_db()
    return request


def make(export, officer, downloads=3, days=7, email=""):
    return deliveries.create(export, actor=officer, days=days, downloads=downloads, email=email)


def events(export, action):
    return list(AuditEvent.objects.filter(request_ref=export.reference, action=action))


def path_of(made):
    return made.url.removeprefix("http://testserver")


PAGE, DOWNLOAD = "/d/", "/d/download"


def open_link(subject, made):
    """The emailed link: swapped for the session, then the page without the token."""
    response = subject.get(path_of(made))
    assert response.status_code == 302 and response["Location"] == PAGE
    return subject.get(PAGE)


def unlock(subject, made, passphrase=None):
    if subject.session.get("dsr_delivery") != made.delivery.pk:
        open_link(subject, made)
    return subject.post(PAGE, {"passphrase": passphrase or made.passphrase})


# --- making a link ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"days": 0}, "expire within 1 to 30 days"),
        ({"days": 31}, "expire within 1 to 30 days"),
        ({"downloads": 0}, "Allow 1 to 10 downloads"),
        ({"downloads": 11}, "Allow 1 to 10 downloads"),
        ({"email": "not an address"}, "is not an email address"),
    ],
)
def test_bad_input_makes_no_link(export, officer, changes, message):
    args = {"days": 7, "downloads": 3, "email": ""} | changes
    with pytest.raises(ValueError, match=message):
        deliveries.create(export, actor=officer, **args)
    assert not Delivery.objects.exists() and not events(export, "delivery_created")


def test_only_a_completed_export_with_its_archive_can_be_delivered(export, officer):
    DataRequest.objects.filter(pk=export.pk).update(status=Status.RUNNING)
    export.refresh_from_db()
    with pytest.raises(ValueError, match="Only a completed export"):
        make(export, officer)
    DataRequest.objects.filter(pk=export.pk).update(status=Status.COMPLETED)
    export.refresh_from_db()
    retention.purge_due(export.completed_at + timedelta(days=31))
    with pytest.raises(ValueError, match="deleted under the retention rule"):
        make(export, officer)
    assert not Delivery.objects.exists()


def test_neither_the_token_nor_the_passphrase_is_stored(export, officer):
    made = make(export, officer)
    token = made.url.rstrip("/").rsplit("/", 1)[-1]
    assert len(token) >= 43 and re.fullmatch(
        r"([A-HJ-NP-Z2-9]{4}-){4}[A-HJ-NP-Z2-9]{4}", made.passphrase
    )
    row = Delivery.objects.values().get()
    stored = " ".join(str(v) for v in row.values())
    assert token not in stored and made.passphrase not in stored
    assert deliveries.normalise(made.passphrase) not in stored
    assert made.delivery.expires_at - timezone.now() > timedelta(days=6, hours=23)


def test_the_officer_makes_a_link_the_email_never_holds_the_passphrase(export, officer, client):
    sign_in(client, officer)
    form = {"days": "7", "downloads": "3", "email": "subject@example.org", "form_id": "f1"}
    response = client.post(f"/requests/{export.reference}/deliveries", form)
    page = response.content.decode()
    assert response.status_code == 200 and "Shown once" in page
    url = re.search(r'id="delivery-url" type="text" readonly value="([^"]+)"', page)[1]
    passphrase = re.search(r'id="delivery-passphrase"[^>]*value="([^"]+)"', page)[1]
    [message] = mail.outbox
    assert message.to == ["subject@example.org"]
    body = message.body + message.alternatives[0][0]
    assert url in message.body and passphrase not in body
    assert deliveries.normalise(passphrase) not in body.upper().replace("-", "")
    [sent] = events(export, "email_sent")
    assert sent.details["to"] == "s***@example.org"  # not the subject's address, for years
    [made] = events(export, "delivery_created")
    assert made.details["max_downloads"] == 3 and made.details["emailed"] is True
    # A reload of the page that showed the link posts the same form: nothing more is made.
    again = client.post(f"/requests/{export.reference}/deliveries", form, follow=True)
    assert "already used" in again.content.decode()
    # Bad input on the form: a message, nothing made.
    client.post(
        f"/requests/{export.reference}/deliveries", {"days": "x", "downloads": "3", "form_id": "f2"}
    )
    assert Delivery.objects.count() == 1 and len(mail.outbox) == 1


def test_who_may_not_download_the_archive_may_not_deliver_it(export, officer2, auditor, client):
    for person in (officer2, auditor):
        sign_in(client, person)
        response = client.post(
            f"/requests/{export.reference}/deliveries", {"days": "7", "downloads": "3"}
        )
        assert response.status_code == 404
    assert not Delivery.objects.exists()


# --- the data subject's side ------------------------------------------------------------------


def test_the_subject_opens_with_the_passphrase_downloads_and_the_limit_holds(
    export, officer, redis_db
):
    made = make(export, officer, downloads=1)
    subject = Client(enforce_csrf_checks=True)
    page = open_link(subject, made)
    assert page.status_code == 200 and "Enter the passphrase" in page.content.decode()
    csrf = {"csrfmiddlewaretoken": subject.cookies["csrftoken"].value}
    # Straight to the download without the passphrase: back to the form, nothing counted.
    response = subject.post(DOWNLOAD, csrf)
    assert response.status_code == 302 and response["Location"] == PAGE
    wrong = subject.post(PAGE, {"passphrase": "AAAA-AAAA-AAAA-AAAA-AAAA", **csrf})
    assert wrong.status_code == 403 and "4 attempts left" in wrong.content.decode()
    # Any case, no dashes: still the passphrase.
    right = made.passphrase.lower().replace("-", " ")
    assert subject.post(PAGE, {"passphrase": right, **csrf}).status_code == 302
    files = subject.get(PAGE).content.decode()
    archive = export.artifacts.get(kind=Artifact.Kind.EXPORT_ARCHIVE)
    assert archive.sha256 in files and "devices/dev-1/device.json" in files
    assert "2 files" in files
    csrf = {"csrfmiddlewaretoken": subject.cookies["csrftoken"].value}  # rotated with the key
    # A download is a POST with the page's CSRF token: a link from elsewhere spends nothing.
    assert subject.post(DOWNLOAD).status_code == 403
    download = subject.post(DOWNLOAD, csrf)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == zip_bytes()
    assert "no-store" in download["Cache-Control"]
    # The second download is past the limit: refused, on the server.
    again = subject.post(DOWNLOAD, csrf)
    assert again.status_code == 410
    assert "used for all the downloads" in again.content.decode()
    subject.get(PAGE)  # opened again: refused again, recorded once
    assert [e.details["download"] for e in events(export, "delivery_downloaded")] == [1]
    [opened] = events(export, "delivery_opened")
    assert opened.details["ip"] == "127.0.0.0/24"  # the network, not the subject's address
    assert len(events(export, "delivery_passphrase_refused")) == 1
    assert [e.details["reason"] for e in events(export, "delivery_refused")] == ["exhausted"]
    ok, _, _, problem = verify_chain()
    assert ok, problem


def test_the_token_leaves_the_address_bar_and_the_unlock_expires(export, officer, settings):
    made = make(export, officer)
    subject = Client()
    unlock(subject, made)
    assert "SHA-256" in subject.get(PAGE).content.decode()
    # A shared computer: after DSR_DELIVERY_UNLOCK_SECONDS the page asks again.
    unlocked = subject.session["dsr_deliveries_unlocked"]
    session = subject.session
    session["dsr_deliveries_unlocked"] = {
        k: v - settings.DSR_DELIVERY_UNLOCK_SECONDS - 1 for k, v in unlocked.items()
    }
    session.save()
    assert "Enter the passphrase" in subject.get(PAGE).content.decode()
    assert subject.post(DOWNLOAD).status_code == 302
    assert Delivery.objects.get().downloads == 0
    # A browser that never opened the link has nothing at /d/.
    stranger = Client()
    assert stranger.get(PAGE).status_code == 404
    assert stranger.post(PAGE, {"passphrase": made.passphrase}).status_code == 404


def test_opening_again_and_again_does_not_grow_the_audit_trail(export, officer, redis_db):
    made = make(export, officer)
    subject = Client()
    for _ in range(5):
        unlock(subject, made)  # already unlocked: no check, no event
    for _ in range(5):
        unlock(Client(), made)  # new browsers, same network: counted, one event a window
    assert len(events(export, "delivery_opened")) == 1


def test_wrong_passphrases_lock_the_link_for_good(export, officer, settings):
    settings.DSR_DELIVERY_ATTEMPTS = 3
    made = make(export, officer)
    subject = Client()
    for _ in range(2):
        assert unlock(subject, made, "WRONG").status_code == 403
    locked = unlock(subject, made, "WRONG")
    assert locked.status_code == 403 and "locked after too many" in locked.content.decode()
    # The right passphrase, now: still locked, nothing served.
    assert unlock(subject, made).status_code == 403
    assert subject.post(DOWNLOAD).status_code == 403
    attempts = events(export, "delivery_passphrase_refused")
    assert [e.details["attempt"] for e in attempts] == [1, 2, 3]
    assert attempts[-1].details["locked"] is True
    assert [e.details["reason"] for e in events(export, "delivery_refused")] == ["locked"]
    assert not events(export, "delivery_opened") and not events(export, "delivery_downloaded")


@pytest.mark.parametrize("how", ["expired", "revoked", "purged"])
def test_an_expired_revoked_or_purged_link_serves_nothing(export, officer, client, how):
    made = make(export, officer)
    subject = Client()
    assert unlock(subject, made).status_code == 302  # opened while it still worked
    if how == "expired":
        Delivery.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    elif how == "revoked":
        sign_in(client, officer)
        client.post(f"/requests/{export.reference}/deliveries/{made.delivery.pk}/revoke")
        assert [e.actor_user_id for e in events(export, "delivery_revoked")] == [officer.pk]
        again = client.post(
            f"/requests/{export.reference}/deliveries/{made.delivery.pk}/revoke", follow=True
        )
        assert "already revoked" in again.content.decode()
    else:
        retention.purge_due(export.completed_at + timedelta(days=31))
    words = {"expired": "has expired", "revoked": "withdrawn", "purged": "was deleted"}[how]
    for response in (open_link(subject, made), subject.get(PAGE), subject.post(DOWNLOAD)):
        assert response.status_code == 410 and words in response.content.decode()
    assert unlock(subject, made).status_code == 410
    assert not events(export, "delivery_downloaded")
    assert [e.details["reason"] for e in events(export, "delivery_refused")] == [how]


def test_an_unknown_token_is_a_plain_404(export, officer):
    make(export, officer)
    subject = Client()
    for url in ("/d/" + "A" * 43 + "/", "/d/" + "x" * 300 + "/", PAGE):
        response = subject.get(url)
        assert response.status_code == 404 and "not valid" in response.content.decode()


def test_two_downloads_at_once_cannot_both_take_the_last_one(export, officer):
    made = make(export, officer, downloads=1)
    first = deliveries.claim_download(made.delivery, "1.2.3.4")
    assert first is not None
    first[1].close()
    assert deliveries.claim_download(made.delivery, "1.2.3.4") is None
    assert Delivery.objects.get().downloads == 1


def test_the_request_page_lists_the_links_and_the_timeline_says_what_happened(
    export, officer, client
):
    made = make(export, officer, downloads=1)
    subject = Client()
    unlock(subject, made)
    subject.post(DOWNLOAD)
    sign_in(client, officer)
    page = client.get(export.get_absolute_url()).content.decode()
    assert "Download limit reached" in page and "1 of 1" in page
    assert f"Delivery link {made.delivery.pk} downloaded by the data subject (1 of 1)" in page


def test_any_officer_may_revoke_a_leaked_link_others_may_not(export, officer, officer2, auditor):
    made = make(export, officer)
    url = f"/requests/{export.reference}/deliveries/{made.delivery.pk}/revoke"
    auditor_client = sign_in(Client(), auditor)
    assert auditor_client.post(url).status_code == 404
    assert not Delivery.objects.get().revoked_at
    assert sign_in(Client(), officer2).post(url).status_code == 302
    assert Delivery.objects.get().revoked_by == officer2
