import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from requests_app.access import roles


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
    call_command(
        "add_user", "boss", email="boss@example.com", role="admin", password="Tr1cky-Horse-42"
    )
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


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "why"),
    [("short1", "too short"), ("password123", "too common"), ("83749261057", "entirely numeric")],
)
def test_given_password_must_pass_the_validators(password, why):
    with pytest.raises(CommandError, match=f"--password: .*{why}"):
        call_command(
            "add_user", "weak", email="weak@example.com", role="officer", password=password
        )
    assert not get_user_model().objects.filter(username="weak").exists()


@pytest.mark.django_db
def test_totp_is_enrolled_and_its_uri_printed_once(capsys):
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    call_command("add_user", "ada", email="ada@example.com", role="approver", totp=True)
    out = capsys.readouterr().out
    uri = out.split("totp: ")[1].strip()
    assert uri.startswith("otpauth://totp/DSR%20Portal%3Aada?secret=")
    device = TOTPDevice.objects.get(user__username="ada")
    assert device.confirmed
    # The URI's secret is the device's: an app configured from it produces accepted codes.
    import base64
    from urllib.parse import parse_qs, urlsplit

    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert base64.b32decode(secret + "=" * (-len(secret) % 8)) == device.bin_key
    assert device.verify_token(TOTP(device.bin_key).token())


@pytest.mark.django_db
def test_username_is_normalised_like_the_sign_in_form():
    call_command("add_user", " ｂｏｂ ", email="bob@example.com", role="officer")
    assert get_user_model().objects.filter(username="bob").exists()
