"""Microsoft Entra ID single sign-on: OpenID Connect's authorization code flow via Authlib.

Authlib fetches Entra's discovery document and keys, keeps ``state`` and ``nonce`` in the
session, exchanges the code and validates the ID token: signature against the tenant's JWKS
(fetched again when a new ``kid`` appears), ``iss`` (Entra's issuer for the configured
tenant), ``aud`` (our client ID), ``exp``/``iat`` and ``nonce``. We check ``tid`` besides.

Who the person is in the portal comes from the token: the user is found by (tenant, ``oid``)
(models.ExternalIdentity), created on the first sign-in with the UPN as username, and their
portal roles are set from Entra app roles (the ``roles`` claim, mapped by DSR_OIDC_ROLE_MAP)
at every sign-in. A token with no mapped role is refused.

A second factor done at Entra counts as the portal's when the token shows it:
- ``acrs`` holds the Conditional Access authentication context named by DSR_OIDC_MFA_ACRS
  (e.g. ``c1``, one whose policy requires MFA); the portal asks for it in the ``claims``
  parameter. This is the way for Entra's v2.0 ID tokens, which carry no ``amr`` (Microsoft's
  ID token claims reference lists none; ``amr`` is in v1.0 tokens only);
- or ``amr`` holds one of DSR_OIDC_MFA_AMR (default ``mfa``): v1.0 tokens, other OpenID
  providers, and the simulator's stand-in.
"""

import base64
import hashlib
import json

from authlib.integrations.django_client import OAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from requests_app.access import roles
from requests_app.accounts import changes
from requests_app.models import ExternalIdentity

ENTRA_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
CALLBACK_PATH = "/accounts/sso/callback/"


class SsoRefused(Exception):  # noqa: N818 (an answer to show, like access.Refusal)
    def __init__(self, reason, message, status=403):
        super().__init__(message)
        self.reason = reason
        self.status = status


def enabled():
    return bool(settings.DSR_OIDC_TENANT and settings.DSR_OIDC_CLIENT_ID)


def expected_issuer():
    return settings.DSR_OIDC_ISSUER or ENTRA_ISSUER.format(tenant=settings.DSR_OIDC_TENANT)


def redirect_url():
    return settings.DSR_OIDC_REDIRECT_URL or settings.SITE_URL + CALLBACK_PATH


def _thumbprint(certificate_pem):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certificate = x509.load_pem_x509_certificate(certificate_pem)
    der = certificate.public_bytes(Encoding.DER)
    return (
        base64.urlsafe_b64encode(hashlib.sha1(der, usedforsecurity=False).digest())
        .rstrip(b"=")
        .decode()
    )


def client():
    """An Authlib client for the configured tenant (built per sign-in: settings may change)."""
    authority = settings.DSR_OIDC_AUTHORITY.rstrip("/")
    options = {
        "client_id": settings.DSR_OIDC_CLIENT_ID,
        "server_metadata_url": (
            f"{authority}/{settings.DSR_OIDC_TENANT}/v2.0/.well-known/openid-configuration"
        ),
        "client_kwargs": {"scope": "openid profile email", "timeout": 15},
    }
    if settings.DSR_OIDC_CLIENT_CERTIFICATE:
        # A certificate credential: a client assertion signed with its key (private_key_jwt).
        with open(settings.DSR_OIDC_CLIENT_CERTIFICATE, "rb") as handle:
            certificate = handle.read()
        with open(settings.DSR_OIDC_CLIENT_KEY, "rb") as handle:
            options["client_secret"] = handle.read().decode()
        options["client_kwargs"]["token_endpoint_auth_method"] = "private_key_jwt"  # noqa: S105
        options["client_auth_methods"] = [
            PrivateKeyJWT(headers={"x5t": _thumbprint(certificate)}, alg="RS256")
        ]
    else:
        options["client_secret"] = settings.DSR_OIDC_CLIENT_SECRET
        options["client_kwargs"]["token_endpoint_auth_method"] = "client_secret_post"  # noqa: S105
    oauth = OAuth()
    return oauth.register("entra", **options)


def authorize_params(reauthenticate=False):
    """Extra parameters of the authorization request: a fresh sign-in to re-authenticate, and
    the authentication context that proves MFA when one is configured."""
    params = {"prompt": "login", "max_age": 0} if reauthenticate else {}
    if settings.DSR_OIDC_MFA_ACRS:
        wanted = {"essential": True, "value": settings.DSR_OIDC_MFA_ACRS}
        params["claims"] = json.dumps({"id_token": {"acrs": wanted}}, separators=(",", ":"))
    return params


def validated_claims(request):
    """Finish the code flow of this callback: the ID token's validated claims."""
    app = client()
    extra = {}
    if settings.DSR_OIDC_CLIENT_CERTIFICATE:
        extra["client_id"] = settings.DSR_OIDC_CLIENT_ID  # Entra wants it with an assertion
    token = app.authorize_access_token(
        request,
        claims_options={
            "iss": {"essential": True, "values": [expected_issuer()]},
            "aud": {"essential": True, "values": [settings.DSR_OIDC_CLIENT_ID]},
            "exp": {"essential": True},
        },
        leeway=60,
        **extra,
    )
    claims = dict(token.get("userinfo") or {})
    if not claims:
        raise SsoRefused("no_id_token", "Microsoft did not send an ID token.", 400)
    if claims.get("tid") != settings.DSR_OIDC_TENANT:
        raise SsoRefused("wrong_tenant", "This Microsoft account belongs to another tenant.")
    return claims


def role_map():
    pairs = (entry.split("=", 1) for entry in settings.DSR_OIDC_ROLE_MAP if "=" in entry)
    return {value.strip(): role.strip() for value, role in pairs}


def portal_roles(claims):
    mapping = role_map()
    return sorted({mapping[v] for v in claims.get("roles") or [] if v in mapping})


def second_factor(claims):
    """'entra mfa' when the token shows a second factor (``acrs`` or ``amr``), else ''."""
    context = settings.DSR_OIDC_MFA_ACRS
    if context and context in (claims.get("acrs") or []):
        return "entra mfa"
    done = set(claims.get("amr") or []) & {v.strip() for v in settings.DSR_OIDC_MFA_AMR}
    return "entra mfa" if done else ""


def user_for(claims):
    """The portal user for these validated claims, created or updated; SsoRefused if none."""
    wanted = portal_roles(claims)
    name = (claims.get("preferred_username") or claims.get("email") or "").strip()
    if not claims.get("oid") or not name:
        raise SsoRefused("claims_missing", "Microsoft's answer lacks the account's ID or name.")
    if not wanted:
        raise SsoRefused(
            "no_role",
            f"{name} has no role in the DSR Portal. Ask your administrator to assign you one "
            f"of the app roles {', '.join(sorted(role_map()))} in Entra ID.",
        )
    User = get_user_model()  # noqa: N806
    # Accounts and roles changed here are recorded (accounts.changes) as done by the sign-in.
    with transaction.atomic(), changes.acting("Entra ID sign-in"):
        link = (
            ExternalIdentity.objects.select_for_update()
            .select_related("user")
            .filter(tenant=claims["tid"], subject=claims["oid"])
            .first()
        )
        if link is None:
            if User.objects.filter(username=name).exists():
                raise SsoRefused(
                    "name_taken",
                    f"A portal account named {name} exists already and is not linked to this "
                    "Microsoft account. Ask an administrator to rename or remove it.",
                )
            user = User.objects.create_user(username=name, email=claims.get("email") or "")
            user.set_unusable_password()
            user.save()
            link = ExternalIdentity.objects.create(
                user=user, issuer=expected_issuer(), tenant=claims["tid"], subject=claims["oid"]
            )
        user = link.user
        if not user.is_active:
            raise SsoRefused("inactive", f"The portal account {user.username} is deactivated.")
        sync_roles(user, wanted)
        ExternalIdentity.objects.filter(pk=link.pk).update(last_sign_in_at=timezone.now())
    return user


def sync_roles(user, wanted):
    """Make the user's portal roles exactly ``wanted`` (Entra is their source); each change
    is recorded by accounts.changes."""
    roles.ensure_groups()
    admin = roles.ADMIN in wanted
    if user.is_staff != admin or user.is_superuser != admin:
        user.is_staff = user.is_superuser = admin
        user.save(update_fields=["is_staff", "is_superuser"])
    groups = [r for r in wanted if r in roles.GROUP_ROLES]
    user.groups.set(Group.objects.filter(name__in=groups))
    user.__dict__.pop("_dsr_roles", None)
