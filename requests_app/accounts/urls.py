"""Sign-in routes, mounted at accounts/ before django.contrib.auth.urls (ours win)."""

from django.urls import path

from requests_app.accounts import password_views, sso_views, views

urlpatterns = [
    path("login/", views.PasswordStep.as_view(), name="login"),
    path("login/code/", views.login_code, name="login_code"),
    path("reauth/", views.reauth, name="reauth"),
    path("security/", views.account_security, name="account_security"),
    path("2fa/setup/", views.twofactor_setup, name="twofactor_setup"),
    path("2fa/recovery-codes/", views.twofactor_recovery, name="twofactor_recovery"),
    path("2fa/recovery-codes/new", views.recovery_codes_renew, name="recovery_codes_renew"),
    path("sso/login/", sso_views.sso_login, name="sso_login"),
    path("sso/callback/", sso_views.sso_callback, name="sso_callback"),
    path("password_reset/", password_views.PasswordReset.as_view(), name="password_reset"),
    path("password_change/", password_views.PasswordChange.as_view(), name="password_change"),
    path(
        "reset/<uidb64>/<token>/",
        password_views.PasswordResetConfirm.as_view(),
        name="password_reset_confirm",
    ),
]
