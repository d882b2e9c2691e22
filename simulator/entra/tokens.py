"""Tokens the stand-in issues (ID token, access token) and the client assertion it checks.

The ID token follows Microsoft's "ID token claims reference" for v2.0 tokens: header ``typ``,
``alg`` (RS256), ``kid``; claims ``aud``, ``iss``, ``iat``, ``nbf``, ``exp`` (one hour),
``aio``, ``name``, ``nonce``, ``oid``, ``preferred_username``, ``rh``, ``roles`` (app role
values, only when the user has some), ``sub`` (pairwise per app), ``tid``, ``uti``, ``ver``.
``name``, ``preferred_username`` and ``oid`` need the ``profile`` scope and ``email`` the
``email`` scope, as documented. ``auth_time`` is an *optional claim* in Entra (the app
registration must ask for it); the simulated registration does. ``amr``: see the package
docstring. ``acrs`` lists the Conditional Access authentication contexts the sign-in
satisfied, when the app asked for them with the ``claims`` parameter.

The access token is what a sign-in with only OpenID Connect scopes returns: a v1.0 token for
Microsoft Graph (``User.Read``), which the app must not validate; it is here so the response
has the shape of Entra's.
"""

import base64
import hashlib
import secrets
import time

import jwt

from .directory import GRAPH_APP_ID
from .errors import EntraError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ID_TOKEN_LIFETIME = 3600
ACCESS_TOKEN_LIFETIME = 3599
ASSERTION_ALGORITHMS = ["RS256", "PS256"]
CLOCK_SKEW = 300  # seconds of clock difference tolerated on a client assertion's times


def _opaque(prefix, size=48):
    return prefix + secrets.token_urlsafe(size)


def _uti():
    return secrets.token_urlsafe(16)[:22]


def sign(claims, private_key, kid, alg="RS256"):
    """A compact JWS with Entra's header (``typ``, ``alg``, ``kid``)."""
    if alg == "none":
        return jwt.encode(claims, None, algorithm="none", headers={"typ": "JWT"})
    return jwt.encode(claims, private_key, algorithm=alg, headers={"typ": "JWT", "kid": kid})


def id_token_claims(entra, grant, now, options):
    """The ID token's claims for a redeemed authorization code (``grant``)."""
    directory = entra.directory
    user = directory.user(grant["oid"])
    scopes = set(grant["scope"].split())
    claims = {
        "aud": grant["client_id"],
        "iss": entra.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME,
        "aio": _opaque("A", 60),
    }
    if options.get("auth_time", True):
        claims["auth_time"] = grant["auth_time"]
    if "email" in scopes:
        claims["email"] = user.upn
    if "profile" in scopes:
        claims["name"] = user.display_name
    if grant.get("nonce") is not None:
        claims["nonce"] = grant["nonce"]
    if "profile" in scopes:
        claims["oid"] = user.oid
        claims["preferred_username"] = user.upn
    claims["rh"] = "1.A" + secrets.token_urlsafe(54) + "."
    if user.roles:
        claims["roles"] = list(user.roles)
    claims["sub"] = directory.pairwise_subject(user, grant["client_id"])
    claims["tid"] = directory.tenant_id
    claims["uti"] = _uti()
    claims["ver"] = "2.0"
    if options.get("amr", True):
        claims["amr"] = list(grant["amr"])
    if grant.get("acrs"):
        claims["acrs"] = list(grant["acrs"])  # the authentication contexts satisfied
    return claims


def apply_faults(claims, faults, now):
    """Bend the claims as the pending fault hooks say (the hooks are documented in
    ``Entra.set_faults``)."""
    claims = dict(claims)
    if "issuer" in faults:
        claims["iss"] = faults["issuer"]
    if "audience" in faults:
        claims["aud"] = faults["audience"]
    if "nonce" in faults:
        claims["nonce"] = faults["nonce"]
    if faults.get("expired"):
        claims.update(iat=now - 2 * ID_TOKEN_LIFETIME, nbf=now - 2 * ID_TOKEN_LIFETIME)
        claims["exp"] = now - ID_TOKEN_LIFETIME
    if faults.get("not_yet_valid"):
        claims.update(iat=now + ID_TOKEN_LIFETIME, nbf=now + ID_TOKEN_LIFETIME)
        claims["exp"] = now + 2 * ID_TOKEN_LIFETIME
    claims.update(faults.get("claims") or {})
    for name in faults.get("omit_claims") or ():
        claims.pop(name, None)
    return claims


def access_token(entra, grant, now):
    """A Microsoft Graph access token (v1.0 format, as Graph's are)."""
    directory = entra.directory
    user = directory.user(grant["oid"])
    claims = {
        "aud": GRAPH_APP_ID,
        "iss": f"https://sts.windows.net/{directory.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + ACCESS_TOKEN_LIFETIME,
        "acct": 0,
        "acr": "1",
        "aio": _opaque("A", 60),
        "amr": list(grant["amr"]),
        "app_displayname": "DSR Portal (simulated)",
        "appid": grant["client_id"],
        "appidacr": "2" if grant.get("client_auth") == "private_key_jwt" else "1",
        "idtyp": "user",
        "name": user.display_name,
        "oid": user.oid,
        "scp": "email openid profile User.Read",
        "sub": hashlib.sha256(f"graph/{user.oid}".encode()).hexdigest()[:43],
        "tid": directory.tenant_id,
        "unique_name": user.upn,
        "upn": user.upn,
        "uti": _uti(),
        "ver": "1.0",
    }
    key = entra.current_key()
    return sign(claims, key.private_key, key.kid)


# -- client assertions --------------------------------------------------------------------


def check_client_assertion(entra, assertion, client_id, audiences, now=None):
    """Verify a ``private_key_jwt`` client assertion as Entra documents it (header ``x5t``,
    ``x5t#S256`` or ``kid`` naming a registered certificate; ``aud`` the token endpoint;
    ``iss`` = ``sub`` = client ID; ``exp``, ``nbf``, ``jti``). Raise ``EntraError``."""
    now = int(now if now is not None else time.time())
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise EntraError(50027) from None
    names = [header.get(n) for n in ("x5t#S256", "x5t", "kid") if header.get(n)]
    certificate = entra.client_certificate_named(names)
    if certificate is None:
        shown = names[0] if names else "none"
        raise EntraError(
            700027, reason=f"The key was not found., Thumbprint of key used by client: '{shown}'"
        )
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise EntraError(700027, reason=f"The algorithm '{header.get('alg')}' is not allowed.")
    try:
        claims = jwt.decode(
            assertion,
            certificate.public_key,
            algorithms=ASSERTION_ALGORITHMS,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise EntraError(700027, reason="The signature does not verify.") from None
    except jwt.PyJWTError:
        raise EntraError(50027) from None
    for name in ("aud", "exp", "iss", "sub", "jti"):
        if name not in claims:
            raise EntraError(50013, reason=f"The claim '{name}' is missing.")
    if claims["iss"] != claims["sub"]:
        raise EntraError(50048, sub=claims["sub"], iss=claims["iss"])
    if claims["iss"] != client_id:
        raise EntraError(50013, reason="The issuer is not the client ID of the request.")
    if not isinstance(claims["aud"], str):
        # Entra answers a list-valued aud as malformed (openid-client issue #348).
        raise EntraError(50027)
    if claims["aud"] not in audiences:
        raise EntraError(50013, reason=f"The audience '{claims['aud']}' is not the token endpoint.")
    nbf = claims.get("nbf", claims.get("iat", now))
    if not (isinstance(claims["exp"], int | float) and isinstance(nbf, int | float)):
        raise EntraError(50013, reason="exp and nbf must be numbers.")
    if claims["exp"] <= now - CLOCK_SKEW or nbf > now + CLOCK_SKEW:
        raise EntraError(700024, now=now, nbf=nbf, exp=claims["exp"])
    if not entra.remember_assertion(claims["jti"], claims["exp"]):
        raise EntraError(50013, reason="The assertion was already used (jti replay).")
    return claims


def pkce_matches(challenge, method, verifier):
    if method == "plain":
        return secrets.compare_digest(challenge, verifier)
    digest = hashlib.sha256(verifier.encode()).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(challenge, computed)


def new_code():
    """An authorization code, opaque and long like Entra's (which start ``1.A``)."""
    return "1.A" + secrets.token_urlsafe(96)
