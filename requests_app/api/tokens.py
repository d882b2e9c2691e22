"""Bearer tokens of the JSON API, who a call comes from, and the API's refusals.

Tokens belong to an officer and are stored only as SHA-256 hashes. Problems are raised as
``ApiError`` (status + JSON body + headers); the API turns them into answers.
"""

import hashlib
import secrets

from django.utils import timezone
from ninja.security.http import HttpAuthBase

from requests_app.access import roles
from requests_app.accounts import lockout
from requests_app.accounts.identity import client_ip
from requests_app.models import ApiToken


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(user, name=""):
    """Create a token for ``user``: returns (ApiToken, the token), the token is shown once."""
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, token_hash=hash_token(raw), prefix=raw[:8]
    )
    return token, raw


class ApiError(Exception):
    """A refusal: the HTTP status and the JSON body ``{"error": message, **extra}``."""

    def __init__(self, http_status, message, **extra):
        super().__init__(message)
        self.status = http_status
        self.body = {"error": message, **extra}
        self.headers = {}


def _unauthorized(message, error="invalid_token"):
    problem = ApiError(401, message)
    problem.headers["WWW-Authenticate"] = f'Bearer realm="dsr-portal", error="{error}"'
    return problem


def authenticate(request):
    """The officer the request's bearer token belongs to; ApiError 401/403/429 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if not header:
        problem = _unauthorized("missing token: send Authorization: Bearer <token>")
        problem.headers["WWW-Authenticate"] = 'Bearer realm="dsr-portal"'
        raise problem
    if scheme.lower() != "bearer" or not raw.strip():
        raise _unauthorized("the Authorization header must be: Bearer <token>", "invalid_request")
    # The same lockout as every sign-in door: a client that keeps guessing tokens is refused.
    # Tokens have no username, so the address stands in for one: five bad tokens lock the
    # API for that address (and count toward its limit at the other doors).
    guessed = f"api-token@{client_ip(request)}"
    if lockout.is_locked(request, guessed):
        problem = ApiError(
            429,
            "too many failed authentications from this address; "
            f"try again in {lockout.lockout_minutes()} minutes",
        )
        problem.headers["Retry-After"] = str(lockout.lockout_minutes() * 60)
        raise problem
    token = (
        ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw.strip())).first()
    )
    if token is None or token.revoked:
        lockout.count_failure(request, guessed, "api_token")
        raise _unauthorized("unknown token" if token is None else "this token has been revoked")
    user = token.user
    if not user.is_active:
        raise _unauthorized("the token's user is deactivated")
    if not roles.has_role(user, roles.OFFICER):
        raise ApiError(403, "the token's user is not a privacy officer")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return user


class BearerToken(HttpAuthBase):
    """The API's security scheme: Django Ninja describes it in the document and calls it
    before each operation; the checking is ``authenticate``'s (its refusals are ApiErrors)."""

    openapi_scheme = "bearer"
    openapi_description = (
        "A privacy officer's token from `manage.py create_api_token USERNAME`, sent as "
        "`Authorization: Bearer <token>`"
    )

    def __call__(self, request):
        return authenticate(request)
