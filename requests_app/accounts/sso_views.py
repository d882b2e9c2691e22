"""Microsoft Entra ID single sign-on pages: start the code flow, and its callback (accounts/sso.py
holds the flow and the role mapping)."""

import time

from authlib.common.errors import AuthlibBaseError
from django.conf import settings
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from joserfc.errors import JoseError
from requests.exceptions import RequestException

from requests_app.accounts import noise, sso, twofactor
from requests_app.accounts.identity import client_of
from requests_app.accounts.views import safe_next

SSO_NEXT = "dsr_sso_next"
SSO_REAUTH = "dsr_sso_reauth"


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
