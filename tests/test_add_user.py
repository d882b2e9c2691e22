import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from requests_app import roles


@pytest.mark.django_db
def test_creates_user_with_generated_password(capsys):
    call_command("add_user", "paula", email="paula@example.com", role="officer")
    out = capsys.readouterr().out
    password = out.split("password: ")[1].strip()
    user = get_user_model().objects.get(username="paula")
    assert user.check_password(password)
    assert roles.has_role(user, roles.OFFICER)
    assert not roles.has_role(user, roles.APPROVER)


@pytest.mark.django_db
def test_given_password_is_not_printed(capsys):
    call_command("add_user", "a1", email="a1@example.com", role="approver", password="s3cret-Pass!")
    assert "s3cret" not in capsys.readouterr().out
    assert get_user_model().objects.get(username="a1").check_password("s3cret-Pass!")


@pytest.mark.django_db
def test_admin_role_is_staff():
    call_command("add_user", "boss", email="boss@example.com", role="admin", password="x" * 12)
    user = get_user_model().objects.get(username="boss")
    assert user.is_staff and user.is_superuser


@pytest.mark.django_db
def test_unknown_role_refused():
    with pytest.raises(CommandError, match="unknown role 'janitor'; choose one of: officer"):
        call_command("add_user", "x", email="x@example.com", role="janitor")
    assert not get_user_model().objects.filter(username="x").exists()


@pytest.mark.django_db
def test_bad_email_refused():
    with pytest.raises(CommandError, match="not a valid email"):
        call_command("add_user", "x", email="nope", role="officer")
