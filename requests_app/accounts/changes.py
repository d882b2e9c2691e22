"""Privileged changes go into the audit chain, whichever way they are made (the admin, a
management command, single sign-on, the shell): signals on the models, not code in each view.

Recorded: a user created, activated or deactivated, their staff or superuser flag changed,
their roles (groups) or direct permissions changed, a second factor enrolled or removed, an
API token created or revoked. Who did it is the signed-in person of the web request
(``acting``, set by accounts.middleware) or the label of the process that did it, e.g.
"manage.py add_user" or "Entra ID sign-in".

Users who appear in the trail are never deleted (deactivate them): the trail must still say
who did what, and a deletion is refused here whatever path asks for it.
"""

import contextlib
import contextvars

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from requests_app.models import ApiToken, AuditEvent

User = get_user_model()
_actor = contextvars.ContextVar("dsr_change_actor", default=None)
FLAGS = ("is_active", "is_staff", "is_superuser")


@contextlib.contextmanager
def acting(who):
    """Changes made inside are attributed to ``who``: a user, or a label for a process."""
    token = _actor.set(who)
    try:
        yield
    finally:
        _actor.reset(token)


def _record(action, **details):
    who = _actor.get()
    if who is not None and getattr(who, "is_authenticated", False):
        return AuditEvent.record(action, actor=who, **details)
    label = who if isinstance(who, str) else "system"
    return AuditEvent.record(action, actor_kind="system", actor_name=label, **details)


class UserInTrail(Exception):  # noqa: N818 (the refusal, as a reason)
    """A user who appears in the audit trail cannot be deleted; deactivate them instead."""


def appears_in_trail(user):
    return AuditEvent.objects.filter(actor_user_id=user.pk).exists() or (
        AuditEvent.objects.filter(actor_name=user.get_username()).exists()
    )


@receiver(pre_delete, sender=User)
def refuse_deleting_users_in_the_trail(sender, instance, **kwargs):
    if appears_in_trail(instance):
        raise UserInTrail(
            f"{instance.get_username()} appears in the audit trail, so the account cannot be "
            "deleted (the trail must keep saying who did what). Deactivate it instead."
        )


@receiver(pre_save, sender=User)
def remember_flags(sender, instance, **kwargs):
    before = User.objects.filter(pk=instance.pk).values(*FLAGS).first() if instance.pk else None
    instance._dsr_flags_before = before


@receiver(post_save, sender=User)
def record_user_change(sender, instance, created, **kwargs):
    name = instance.get_username()
    if created:
        _record("user_created", user=name, **{f: getattr(instance, f) for f in FLAGS})
        return
    before = getattr(instance, "_dsr_flags_before", None) or {}
    if "is_active" in before and before["is_active"] != instance.is_active:
        _record("user_activated" if instance.is_active else "user_deactivated", user=name)
    changed = {
        flag: [before[flag], getattr(instance, flag)]
        for flag in ("is_staff", "is_superuser")
        if flag in before and before[flag] != getattr(instance, flag)
    }
    if changed:
        _record("user_privileges_changed", user=name, **changed)


def _names(model, pks):
    field = "name" if model is not User else "username"
    if model.__name__ == "Permission":
        field = "codename"
    return sorted(model.objects.filter(pk__in=pks).values_list(field, flat=True))


def _m2m_change(action, what, instance, model, pk_set, reverse):
    """Record one add/remove/clear on a user's groups or permissions (from either side)."""
    if action == "pre_clear":
        related = instance.groups if what == "roles" else instance.user_permissions
        if not reverse:
            instance._dsr_cleared = list(related.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear") or (
        action != "post_clear" and not pk_set
    ):
        return
    if reverse:  # group.user_set.add(users): the users changed
        for user in User.objects.filter(pk__in=pk_set or ()):
            key = "added" if action == "post_add" else "removed"
            _record(f"{what}_changed", user=user.get_username(), **{key: [str(instance)]})
        return
    pks = getattr(instance, "_dsr_cleared", []) if action == "post_clear" else pk_set
    key = "added" if action == "post_add" else "removed"
    if pks:
        _record(f"{what}_changed", user=instance.get_username(), **{key: _names(model, pks)})


@receiver(m2m_changed, sender=User.groups.through)
def record_roles(sender, instance, action, reverse, model, pk_set, **kwargs):
    _m2m_change(action, "roles", instance, model, pk_set, reverse)


@receiver(m2m_changed, sender=User.user_permissions.through)
def record_permissions(sender, instance, action, reverse, model, pk_set, **kwargs):
    _m2m_change(action, "permissions", instance, model, pk_set, reverse)


def _device_kind(device):
    return "authenticator app" if isinstance(device, TOTPDevice) else "recovery codes"


@receiver(pre_save, sender=TOTPDevice)
def remember_confirmation(sender, instance, **kwargs):
    before = TOTPDevice.objects.filter(pk=instance.pk).values_list("confirmed", flat=True)
    instance._dsr_was_confirmed = bool(instance.pk and before and before[0])


@receiver(post_save, sender=TOTPDevice)
def record_enrolment(sender, instance, created, **kwargs):
    if instance.confirmed and not getattr(instance, "_dsr_was_confirmed", False):
        _record("second_factor_enrolled", user=instance.user.get_username(), kind="totp")


@receiver(post_delete, sender=TOTPDevice)
@receiver(post_delete, sender=StaticDevice)
def record_removal(sender, instance, **kwargs):
    if instance.confirmed:
        _record(
            "second_factor_removed",
            user=instance.user.get_username(),
            kind=_device_kind(instance),
        )


@receiver(pre_save, sender=ApiToken)
def refuse_unrevoking(sender, instance, **kwargs):
    was_revoked = bool(
        instance.pk and ApiToken.objects.filter(pk=instance.pk, revoked=True).exists()
    )
    if was_revoked and not instance.revoked:
        raise ValueError("A revoked API token cannot be brought back; create a new one.")
    instance._dsr_was_revoked = was_revoked


@receiver(post_save, sender=ApiToken)
def record_token(sender, instance, created, **kwargs):
    details = {"user": instance.user.get_username(), "prefix": instance.prefix}
    if created:
        _record("api_token_created", name=instance.name, **details)
    elif instance.revoked and not getattr(instance, "_dsr_was_revoked", False):
        _record("api_token_revoked", **details)
