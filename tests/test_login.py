import pytest
from django.test import override_settings

from requests_app.models import AuditEvent
from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_login_page_and_successful_login(client, officer):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    response = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="login", actor_name="olivia").count() == 1


@pytest.mark.django_db
@override_settings(DSR_LOGIN_MAX_FAILURES=3)
def test_failed_logins_are_audited_then_throttled(client, officer):
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
        assert response.status_code == 200
    assert AuditEvent.objects.filter(action="login_failed", actor_name="olivia").count() == 3
    # Even the right password is refused while locked out.
    response = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 200
    assert b"Too many failed sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login_throttled").count() == 1


@pytest.mark.django_db
def test_logout_is_a_post(client, officer):
    client.force_login(officer)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302


@pytest.mark.django_db
def test_password_change(client, officer):
    client.force_login(officer)
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "An0ther-long-pass",
            "new_password2": "An0ther-long-pass",
        },
    )
    assert response.status_code == 302
    officer.refresh_from_db()
    assert officer.check_password("An0ther-long-pass")
