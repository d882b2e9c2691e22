"""Password reset and change, behind the shared lockout and on the record."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpResponseRedirect

from requests_app.accounts import lockout
from requests_app.accounts.identity import client_of
from requests_app.accounts.views import locked_out
from requests_app.models import AuditEvent


class PasswordReset(auth_views.PasswordResetView):
    """Django's reset request, throttled by the shared lockout and audited. The link in the
    email is built from SITE_URL, never from the request's Host header."""

    def dispatch(self, request, *args, **kwargs):
        if not settings.DSR_PASSWORD_RESET:
            raise Http404("Password reset is turned off.")
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        from django.contrib.auth import get_user_model

        email = form.cleaned_data["email"]
        users = list(get_user_model().objects.filter(email__iexact=email, is_active=True)[:2])
        # Counted under their own key (and the address), not the account's sign-in: anyone can
        # ask for a reset, and that must not lock the account's owner out.
        key = f"reset:{users[0].get_username() if len(users) == 1 else email.lower()}"
        if lockout.is_locked(self.request, key):
            return locked_out(self.request)
        lockout.count_failure(self.request, key, "password_reset")
        if getattr(self.request, "axes_locked_out", False):
            return locked_out(self.request)
        site = urlsplit(settings.SITE_URL)
        form.save(
            domain_override=site.netloc,
            use_https=site.scheme == "https",
            token_generator=self.token_generator,
            from_email=self.from_email,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=self.request,
            html_email_template_name=self.html_email_template_name,
            extra_email_context=self.extra_email_context,
        )
        return HttpResponseRedirect(self.get_success_url())


class PasswordChange(auth_views.PasswordChangeView):
    """Django's password change, behind the shared lockout: a wrong old password counts as a
    failed sign-in (a session must not be a way to guess the password)."""

    def post(self, request, *args, **kwargs):
        if lockout.is_locked(request, request.user.get_username()):
            return locked_out(request)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        if "old_password" in form.errors:
            lockout.count_failure(self.request, self.request.user.get_username(), "password_change")
        return super().form_invalid(form)

    def form_valid(self, form):
        response = super().form_valid(form)
        AuditEvent.record("password_changed", actor=self.request.user, **client_of(self.request))
        return response


class PasswordResetConfirm(auth_views.PasswordResetConfirmView):
    def dispatch(self, request, *args, **kwargs):
        if not settings.DSR_PASSWORD_RESET:
            raise Http404("Password reset is turned off.")
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        AuditEvent.record("password_reset_completed", actor=form.user, **client_of(self.request))
        return response
