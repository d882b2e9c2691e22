"""The sign-in pages: password, code, enrolment, recovery codes, re-authentication, Entra ID
single sign-on, password reset, and the lockout page every door shares."""

import time
from urllib.parse import urlsplit

from authlib.common.errors import AuthlibBaseError
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from joserfc.errors import JoseError
from requests.exceptions import RequestException

from requests_app.accounts import lockout, noise, sso, twofactor
from requests_app.accounts.forms import CodeForm, PasswordForm, ReauthForm
from requests_app.accounts.identity import client_of
from requests_app.models import AuditEvent

SSO_NEXT = "dsr_sso_next"
SSO_REAUTH = "dsr_sso_reauth"
RECOVERY_SHOWN_ONCE = "dsr_recovery_codes"


def safe_next(request, value):
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return reverse(settings.LOGIN_REDIRECT_URL)


def locked_out(request, credentials=None, *args, **kwargs):
    """Every door's answer while the username or the address is locked out (django-axes'
    AXES_LOCKOUT_CALLABLE, and our own doors)."""
    minutes = lockout.lockout_minutes()
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "error": "too many failed authentications from this address; "
                f"try again in {minutes} minutes"
            },
            status=429,
        )
        response["Retry-After"] = str(minutes * 60)
        return response
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": minutes},
        status=429,
    )


class PasswordStep(auth_views.LoginView):
    """Step one. The right password signs nobody in by itself when a second factor exists
    or is required: the user waits in the session for step two."""

    form_class = PasswordForm

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST" and not settings.DSR_LOCAL_LOGIN:
            raise Http404("Password sign-in is turned off; use single sign-on.")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            sso=sso.enabled(),
            local_login=settings.DSR_LOCAL_LOGIN,
            password_reset=settings.DSR_PASSWORD_RESET,
            **kwargs,
        )

    def form_valid(self, form):
        user = form.get_user()
        next_url = self.get_success_url()
        if twofactor.has_second_factor(user):
            twofactor.begin(self.request, user, next_url)
            return redirect("login_code")
        if twofactor.second_factor_required(user):
            twofactor.begin(self.request, user, next_url)
            return redirect("twofactor_setup")
        twofactor.complete(self.request, user, "", method="password")
        return HttpResponseRedirect(next_url)


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request):
    """Step two: the code, posted as ``otp_token``."""
    user, next_url = twofactor.pending(request)
    if user is None:
        messages.info(request, "Your sign-in took too long; enter your password again.")
        return redirect("login")
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        if lockout.is_locked(request, user.get_username()):
            return locked_out(request)
        if form.is_valid():
            device, label, wait = twofactor.verify(user, form.cleaned_data["otp_token"])
            if device is not None:
                twofactor.complete(request, user, label, device=device, method="password")
                return HttpResponseRedirect(safe_next(request, next_url))
            if wait:
                form.add_error("otp_token", f"Too many wrong codes: wait {wait} s, then retry.")
            else:
                form.add_error(
                    "otp_token",
                    "That code is not right or was used already. Enter the current code.",
                )
            lockout.count_failure(request, user.get_username(), "second_factor")
    return render(request, "registration/login_code.html", {"form": form, "who": user})


@never_cache
@require_http_methods(["GET", "POST"])
def twofactor_setup(request):
    """Enrol an authenticator app.

    - During a first sign-in (pending, password given): only for a user who has no second
      factor yet. A user who has one must give its code: a password alone never replaces it.
    - Signed in: replacing the authenticator needs a recent sign-in with the current one;
      a first authenticator set up in a signed-in session does not make that session
      second-factor (sign in again with it). Entra ID users have their second factor at
      Microsoft and none here.
    """
    user, next_url = twofactor.pending(request)
    signed_in = user is None and request.user.is_authenticated
    if user is not None and twofactor.has_second_factor(user):
        return redirect("login_code")
    if signed_in:
        user = request.user
        if not user.has_usable_password():
            messages.info(request, "Your second factor is your Microsoft sign-in.")
            return redirect("account_security")
        if (
            twofactor.has_second_factor(user)
            and twofactor.proof_of(request).age() > settings.DSR_APPROVAL_REAUTH_SECONDS
        ):
            return redirect(f"{reverse('reauth')}?next={reverse('twofactor_setup')}")
    elif user is None:
        return redirect_to_login(request.get_full_path())
    replacing = signed_in and twofactor.has_second_factor(user)
    device = twofactor.enrolment_device(user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if lockout.is_locked(request, user.get_username()):
            return locked_out(request)
        codes = twofactor.confirm_enrolment(user, device, form.cleaned_data["otp_token"])
        if codes is None:
            form.add_error("otp_token", "That code is not right. Enter the code the app shows now.")
            lockout.count_failure(request, user.get_username(), "second_factor")
        else:
            device.refresh_from_db()
            if not signed_in:
                twofactor.complete(request, user, "totp", device=device, method="password")
            elif replacing:
                # The session was verified with the device just replaced (and recently).
                otp_login(request, device)
            else:
                messages.info(request, "Sign out and in again to use it: decisions need it.")
            request.session[RECOVERY_SHOWN_ONCE] = {"codes": codes, "next": next_url}
            return redirect("twofactor_recovery")
    context = {
        "form": form,
        "who": user,
        "qr": twofactor.qr_data_uri(device),
        "secret": device.config_url.split("secret=")[1].split("&")[0],
        "replacing": replacing,
    }
    return render(request, "registration/twofactor_setup.html", context)


@never_cache
@login_required
def twofactor_recovery(request):
    """The new recovery codes, shown once (they live in the session until this page)."""
    shown = request.session.pop(RECOVERY_SHOWN_ONCE, None)
    if not shown:
        return redirect("account_security")
    return render(
        request,
        "registration/recovery_codes.html",
        {"codes": shown["codes"], "next": safe_next(request, shown.get("next"))},
    )


@never_cache
@login_required
@require_POST
def recovery_codes_renew(request):
    if twofactor.proof_of(request).age() > settings.DSR_APPROVAL_REAUTH_SECONDS:
        return redirect(f"{reverse('reauth')}?next={reverse('account_security')}")
    if not twofactor.has_second_factor(request.user):
        return redirect("twofactor_setup")
    codes = twofactor.new_recovery_codes(request.user)
    AuditEvent.record("recovery_codes_renewed", actor=request.user)
    request.session[RECOVERY_SHOWN_ONCE] = {"codes": codes, "next": reverse("account_security")}
    return redirect("twofactor_recovery")


@never_cache
@login_required
def account_security(request):
    from django_otp.plugins.otp_static.models import StaticToken

    proof = twofactor.proof_of(request)
    return render(
        request,
        "registration/security.html",
        {
            "proof": proof,
            "has_device": twofactor.has_second_factor(request.user),
            "required": twofactor.second_factor_required(request.user),
            "recovery_left": StaticToken.objects.filter(device__user=request.user).count(),
            "sso_user": request.user.external_identities.exists(),
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def reauth(request):
    """Confirm it is you (password and code, or Entra again) before an irreversible step."""
    user = request.user
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if not user.has_usable_password():
        if not sso.enabled():
            raise Http404
        return render(request, "registration/reauth_sso.html", {"next": next_url})
    form = ReauthForm(request.POST or None)
    if request.method == "POST":
        if lockout.is_locked(request, user.get_username()):
            return locked_out(request)
        if form.is_valid():
            good = user.check_password(form.cleaned_data["password"])
            device, label, wait = (
                twofactor.verify(user, form.cleaned_data["otp_token"]) if good else (None, "", 0)
            )
            if device is not None:
                twofactor.reauthenticated(request, label)
                return HttpResponseRedirect(next_url)
            form.add_error(
                None,
                f"Wait {wait} s, then try again." if wait else "The password or code is wrong.",
            )
            lockout.count_failure(request, user.get_username(), "reauth")
    return render(request, "registration/reauth.html", {"form": form, "next": next_url})


# -- Entra ID --------------------------------------------------------------------------------


@require_POST
def sso_login(request):
    """Start the code flow (a POST from the sign-in or re-authentication page)."""
    if not sso.enabled():
        raise Http404
    reauthenticating = request.POST.get("reauth") == "1" and request.user.is_authenticated
    request.session[SSO_NEXT] = safe_next(request, request.POST.get("next"))
    request.session[SSO_REAUTH] = request.user.pk if reauthenticating else None
    extra = sso.authorize_params(reauthenticate=reauthenticating)
    try:
        return sso.client().authorize_redirect(request, sso.redirect_url(), **extra)
    except (RequestException, AuthlibBaseError, ValueError) as exc:
        return sso_refused(
            request, "idp_unreachable", f"Microsoft sign-in is not reachable: {exc}", 502
        )


def sso_refused(request, reason, message, status):
    noise.record_anonymous("sso_refused", reason=reason, **client_of(request))
    return render(
        request,
        "registration/sso_refused.html",
        {"message": message, "reason": reason},
        status=status,
    )


@never_cache
@require_http_methods(["GET"])
def sso_callback(request):
    if not sso.enabled():
        raise Http404
    try:
        claims = sso.validated_claims(request)
        user = sso.user_for(claims)
    except sso.SsoRefused as refusal:
        return sso_refused(request, refusal.reason, str(refusal), refusal.status)
    except (AuthlibBaseError, JoseError, RequestException, ValueError, KeyError) as exc:
        reason = getattr(exc, "error", None) or exc.__class__.__name__
        message = (
            "Microsoft's answer could not be verified, so nobody was signed in "
            f"({getattr(exc, 'description', None) or reason}). Start the sign-in again."
        )
        return sso_refused(request, str(reason)[:64], message, 400)
    factor = sso.second_factor(claims)
    if twofactor.second_factor_required(user) and not factor:
        return sso_refused(
            request,
            "mfa_missing",
            "Your Microsoft sign-in did not include multi-factor authentication, which the "
            "portal requires for your role. Ask your administrator to require MFA for it.",
            403,
        )
    next_url = request.session.pop(SSO_NEXT, None) or reverse(settings.LOGIN_REDIRECT_URL)
    # Entra's auth_time (an optional claim) says when the person last authenticated there; a
    # single sign-on session may be hours old. Without it, only a sign-in we asked to be fresh
    # (prompt=login, max_age=0) counts as recent; any other is taken as old.
    at = claims.get("auth_time")
    reauthenticating = request.session.pop(SSO_REAUTH, None) == user.pk
    if at is None and not reauthenticating:
        at = 1  # long ago: an erasure will ask for a fresh sign-in
    if reauthenticating and request.user.pk == user.pk:
        if at is not None and time.time() - at > 300:
            return sso_refused(
                request,
                "not_reauthenticated",
                "Microsoft did not ask for your sign-in again, so it is not confirmed. "
                "Try once more.",
                403,
            )
        twofactor.reauthenticated(request, factor, at=at)
    else:
        twofactor.complete(
            request,
            user,
            factor,
            backend="django.contrib.auth.backends.ModelBackend",
            method="entra",
            at=at,
        )
    return HttpResponseRedirect(next_url)


# -- the admin site's door, and password reset ----------------------------------------------


def admin_login(request, extra_context=None):
    """The admin site signs in through the portal's own two-step sign-in, never its own."""
    target = request.GET.get("next") or reverse("admin:index")
    return redirect_to_login(target)


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
