import pytest

from tests.conftest import sign_in


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_navigation_depends_on_role(client, officer, auditor):
    sign_in(client, officer)
    page = client.get("/").content.decode()
    assert "Privacy officer" in page and "Auditor:" not in page
    assert "Admin</a>" not in page
    sign_in(client, auditor)
    page = client.get("/").content.decode()
    assert "Auditor:" in page and "Privacy officer" not in page


@pytest.mark.django_db
def test_custom_404_and_headers(client, officer):
    sign_in(client, officer)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"There is nothing here" in response.content
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_stylesheet_is_local(client, db):
    page = client.get("/accounts/login/").content.decode()
    assert 'href="/static/css/portal.css"' in page
    assert "http://" not in page.split("<body")[0] and "https://" not in page.split("<body")[0]
    assert client.get("/static/css/portal.css").status_code == 200


@pytest.mark.django_db
def test_outbox_only_in_dev_mode(client, settings):
    settings.DSR_DEV_OUTBOX = False
    assert client.get("/dev/outbox/").status_code == 404


@pytest.mark.django_db
def test_rq_dashboard_is_staff_only(client, officer, admin_user):
    sign_in(client, officer)
    assert client.get("/admin/rq/").status_code == 302
    sign_in(client, admin_user)
    assert client.get("/admin/rq/").status_code == 200
