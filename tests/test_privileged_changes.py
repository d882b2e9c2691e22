"""Privileged changes are in the audit chain, whichever way they are made; users who appear in
the trail are deactivated, never deleted; revoked API tokens stay revoked."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from requests_app.access import roles
from requests_app.accounts.changes import UserInTrail, acting
from requests_app.api import issue_token
from requests_app.models import ApiToken, AuditEvent
from requests_app.models.audit import verify_chain
from tests.conftest import make_user, sign_in

pytestmark = pytest.mark.django_db


def last(action):
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def test_an_admin_making_two_approvers_is_on_the_record(client, admin_user, officer):
    """One admin cannot quietly make themselves and a second account approvers."""
    roles.ensure_groups()
    approvers = Group.objects.get(name=roles.APPROVER)
    accomplice = make_user("mallory")
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    with acting(admin_user):  # what the admin's request does (accounts.middleware)
        admin_user.groups.add(approvers)
        accomplice.groups.add(approvers)
        accomplice.is_staff = True
        accomplice.save()
    changes = AuditEvent.objects.filter(action="roles_changed", seq__gt=before).order_by("seq")
    assert [(e.actor_name, e.details["user"], e.details["added"]) for e in changes] == [
        ("root", "root", ["approver"]),
        ("root", "mallory", ["approver"]),
    ]
    flag = last("user_privileges_changed")
    assert flag.actor_name == "root" and flag.details["is_staff"] == [False, True]
    # From the group's side too (group.user_set.add), and a removal.
    with acting(admin_user):
        approvers.user_set.add(officer)
        approvers.user_set.remove(accomplice)
    assert last("roles_changed").details == {"user": "mallory", "removed": ["approver"]}
    ok, _, _, problem = verify_chain()
    assert ok, problem


def test_the_admin_deactivates_and_refuses_to_delete_users_in_the_trail(client, admin_user):
    victim = make_user("leaver", roles.OFFICER)
    AuditEvent.record("login", actor=victim)
    sign_in(client, admin_user)
    page = client.post(f"/admin/auth/user/{victim.pk}/delete/", {"post": "yes"}, follow=True)
    assert b"appears in the audit trail" in page.content
    assert get_user_model().objects.filter(pk=victim.pk).exists()
    response = client.post(
        "/admin/auth/user/", {"action": "deactivate", "_selected_action": [victim.pk]}
    )
    assert response.status_code == 302
    victim.refresh_from_db()
    assert not victim.is_active
    deactivated = last("user_deactivated")
    assert deactivated.actor_name == "root" and deactivated.details["user"] == "leaver"
    actions = client.get("/admin/auth/user/").content.decode()
    assert "delete_selected" not in actions
    # Any other path (the shell, a script) is refused the same way.
    with pytest.raises(UserInTrail, match="cannot be deleted"), transaction.atomic():
        victim.delete()
    ok, _, _, problem = verify_chain()
    assert ok, problem


def test_a_user_never_in_the_trail_can_still_be_deleted(client, admin_user):
    mistake = get_user_model().objects.create_user("typo-account")
    AuditEvent.objects.all()  # (its creation is in the trail under the admin's name)
    assert not AuditEvent.objects.filter(actor_name="typo-account").exists()
    sign_in(client, admin_user)
    client.post(f"/admin/auth/user/{mistake.pk}/delete/", {"post": "yes"})
    assert not get_user_model().objects.filter(pk=mistake.pk).exists()


def test_api_tokens_are_recorded_and_cannot_be_unrevoked(client, admin_user, officer):
    token, _ = issue_token(officer, "ticketing")
    assert last("api_token_created").details["prefix"] == token.prefix
    sign_in(client, admin_user)
    client.post(
        "/admin/requests_app/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    token.refresh_from_db()
    assert token.revoked and last("api_token_revoked").actor_name == "root"
    form = client.get(f"/admin/requests_app/apitoken/{token.pk}/change/").content.decode()
    assert 'name="revoked"' not in form  # read-only in the admin
    token.revoked = False
    with pytest.raises(ValueError, match="cannot be brought back"):
        token.save()
    assert ApiToken.objects.get(pk=token.pk).revoked


def test_second_factors_enrolled_and_removed_are_recorded(admin_user, approver):
    with acting(admin_user):
        device = TOTPDevice.objects.create(user=approver, name="app", confirmed=True)
        device.delete()  # e.g. a lost phone, reset by an admin
    assert last("second_factor_enrolled").details == {"user": "ada", "kind": "totp"}
    removed = last("second_factor_removed")
    assert removed.actor_name == "root" and removed.details["kind"] == "authenticator app"


def test_commands_are_named_as_the_actor(capsys):
    call_command("add_user", "nina", email="nina@example.com", role="approver", totp=True)
    created = last("user_created")
    assert created.actor_name == "manage.py add_user" and created.details["user"] == "nina"
    assert last("roles_changed").details == {"user": "nina", "added": ["approver"]}
    assert last("second_factor_enrolled").actor_name == "manage.py add_user"


def test_a_changed_targets_file_is_recorded_when_a_worker_loads_it(settings, tmp_path):
    from requests_app.management.commands.worker import record_targets_loaded

    targets = tmp_path / "targets.toml"
    targets.write_text('[[hub]]\nhostname = "a.azure-devices.net"\n')
    settings.DSR_AZURE_TARGETS = str(targets)
    first = record_targets_loaded()
    assert first is not None and first.details["previous"] is None
    assert record_targets_loaded() is None  # the same file again: nothing new
    targets.write_text('[[hub]]\nhostname = "b.azure-devices.net"\n')
    changed = record_targets_loaded()
    assert changed.details["previous"] == first.details["sha256"] != changed.details["sha256"]
