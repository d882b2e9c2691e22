"""The portal's roles are Django groups; administrators are staff users."""

OFFICER = "officer"
APPROVER = "approver"
AUDITOR = "auditor"
ADMIN = "admin"
GROUP_ROLES = (OFFICER, APPROVER, AUDITOR)
ALL_ROLES = (*GROUP_ROLES, ADMIN)


def has_role(user, role):
    if not user.is_authenticated or not user.is_active:
        return False
    if role == ADMIN:
        return user.is_staff
    # Cached per request object so navigation and permission checks cost one query.
    names = getattr(user, "_dsr_roles", None)
    if names is None:
        names = set(user.groups.values_list("name", flat=True))
        user._dsr_roles = names
    return role in names


def roles_of(user):
    return [role for role in ALL_ROLES if has_role(user, role)]


def ensure_groups():
    from django.contrib.auth.models import Group

    for name in GROUP_ROLES:
        Group.objects.get_or_create(name=name)
