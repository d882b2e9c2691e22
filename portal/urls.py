"""URL routes. Views live in requests_app; this file only maps paths to them."""

from django.contrib import admin
from django.urls import include, path

from requests_app.accounts.views import admin_login
from requests_app.admin import azure_targets

# One door: the admin site signs in through the portal's two-step sign-in (and its lockout).
admin.site.login = admin_login

urlpatterns = [
    path("accounts/", include("requests_app.accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/azure-targets/", admin.site.admin_view(azure_targets), name="azure_targets"),
    path("admin/", admin.site.urls),
    path("", include("requests_app.urls")),
]
