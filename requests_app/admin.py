"""The Django admin: users and roles (deactivated, never deleted once in the trail), requests
read-only, the audit trail read-only, API tokens revocable (for good), and the Azure targets
file shown read-only. Every privileged change is recorded by accounts.changes."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import redirect, render

from requests_app.accounts.changes import UserInTrail, appears_in_trail
from requests_app.models import ApiToken, AuditEvent, DataRequest

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    """Django's user admin, with deactivation instead of deletion for anyone in the trail."""

    actions = ["deactivate"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one by one, with the refusal below
        return actions

    @admin.action(description="Deactivate the selected users (they can no longer sign in)")
    def deactivate(self, request, queryset):
        for user in queryset.filter(is_active=True):
            user.is_active = False
            user.save(update_fields=["is_active"])  # recorded as user_deactivated

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, object_id)
        if user is not None and appears_in_trail(user):
            messages.error(
                request,
                f"{user.get_username()} appears in the audit trail, so the account cannot be "
                "deleted: the trail must keep saying who did what. Deactivate it instead "
                "(untick Active).",
            )
            return redirect("admin:auth_user_change", object_id)
        try:
            return super().delete_view(request, object_id, extra_context)
        except UserInTrail as refusal:  # it appeared in the trail meanwhile
            messages.error(request, str(refusal))
            return redirect("admin:auth_user_change", object_id)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DataRequest)
class DataRequestAdmin(ReadOnlyAdmin):
    list_display = ["reference", "kind", "regulation", "status", "received_at", "due_at"]
    list_filter = ["status", "kind", "regulation"]
    search_fields = ["reference", "subject_reference"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "created_at", "action", "actor_name", "request_ref"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["request_ref", "actor_name", "action"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked"]
    readonly_fields = [
        "prefix",
        "user",
        "name",
        "token_hash",
        "created_at",
        "last_used_at",
        "revoked",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are created with `manage.py create_api_token` (printed once)

    def has_delete_permission(self, request, obj=None):
        return False  # revoked tokens stay listed

    @admin.action(description="Revoke the selected tokens (for good)")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked=False):
            token.revoked = True
            token.save(update_fields=["revoked"])  # recorded as api_token_revoked


def azure_targets(request):
    """The targets file as the portal loaded it (host names and settings, never secrets)."""
    from requests_app.azure import TargetsError, configured_targets

    error, targets = "", []
    try:
        targets = list(configured_targets(secrets=False))
    except TargetsError as exc:
        error = str(exc)
    context = {
        **admin.site.each_context(request),
        "title": "Azure targets",
        "targets": targets,
        "error": error,
    }
    from django.conf import settings

    context["path"] = settings.DSR_AZURE_TARGETS
    return render(request, "admin/azure_targets.html", context)
