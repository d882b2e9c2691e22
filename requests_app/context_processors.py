from django.conf import settings

from requests_app.access import roles


def portal(request):
    user = getattr(request, "user", None)
    user_roles = roles.roles_of(user) if user is not None else []
    return {
        "user_roles": user_roles,
        "is_officer": roles.OFFICER in user_roles,
        "is_approver": roles.APPROVER in user_roles,
        "is_auditor": roles.AUDITOR in user_roles,
        "is_portal_admin": roles.ADMIN in user_roles,
        "dev_outbox": settings.DSR_DEV_OUTBOX,
    }
