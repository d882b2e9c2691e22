"""The Django admin: users and roles (Django's own), requests read-only, the audit trail
read-only, API tokens revocable, and the Azure targets file shown read-only."""

from django.contrib import admin
from django.shortcuts import render

from requests_app.models import ApiToken, AuditEvent, DataRequest


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
    readonly_fields = ["prefix", "user", "name", "token_hash", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are created with `manage.py create_api_token` (printed once)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        queryset.update(revoked=True)
        for token in queryset:
            AuditEvent.record("api_token_revoked", actor=request.user, prefix=token.prefix)


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
