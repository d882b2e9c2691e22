"""The sign-in pages: password, code, enrolment, recovery codes, re-authentication, the admin
site's door, and the lockout page every door shares (Entra ID: sso_views.py; password reset
and change: password_views.py)."""

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

from requests_app.accounts import lockout, sso, twofactor
from requests_app.accounts.forms import CodeForm, PasswordForm, ReauthForm
from requests_app.models import AuditEvent

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


# -- the admin site's door ------------------------------------------------------------------


def admin_login(request, extra_context=None):
    """The admin site signs in through the portal's own two-step sign-in, never its own."""
    target = request.GET.get("next") or reverse("admin:index")
    return redirect_to_login(target)
