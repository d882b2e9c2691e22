"""A Microsoft Entra ID (OpenID Connect, v2.0 endpoints) sign-in stand-in for the portal.

It answers on ``login.microsoftonline.com`` and on any host that is not one of the Azure
data-plane hosts (so a browser reaching ``http://127.0.0.1:8701/{tenant}/...`` gets it); see
``endpoints`` for the paths, ``service.Entra`` (``sim.entra``) for the Python interface and the
fault hooks, ``introspect`` for the ``/_sim/entra`` hooks over HTTP.

What it follows, from Microsoft's documentation (learn.microsoft.com/entra/identity-platform/):

- ``v2-protocols-oidc``: discovery at ``/{tenant}/v2.0/.well-known/openid-configuration``;
  the authorize parameters (``prompt`` login/none/consent/select_account, ``login_hint``,
  ``response_mode`` query/fragment/form_post); errors sent back to the redirect URI as
  ``error`` + ``error_description``; the logout endpoint and ``post_logout_redirect_uri``,
  which must be a registered redirect URI.
- ``v2-oauth2-auth-code-flow``: codes expire after about ten minutes and are single use;
  the token request (``client_secret`` in the body or HTTP Basic, or ``client_assertion``),
  PKCE, the token response (``token_type``, ``scope``, ``expires_in``, ``access_token``,
  ``id_token``) and the JSON error shape with ``error_codes``, ``trace_id``,
  ``correlation_id``, ``timestamp``.
- ``reference-error-codes``: the AADSTS codes (``errors.CODES``).
- ``certificate-credentials``: the client assertion (header ``x5t#S256``, or the older
  ``x5t``; ``aud`` the token endpoint; ``iss`` = ``sub`` = client ID; ``jti``; ``exp``/``nbf``).
- ``reply-url``: exact, case-sensitive redirect URI matching, the port ignored for loopback
  hosts, a trailing slash added to a URI without a path.
- ``id-token-claims-reference`` and ``optional-claims-reference``: the claims (``tokens``).
- ``signing-key-rollover``: keys published at ``jwks_uri``, ``kid`` = ``x5t``, old keys kept
  for a while after a new one becomes current.

``amr`` — what the documentation says: the ID token claims reference
(https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference) does not list
``amr`` for ID tokens, and the access token claims reference
(https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference) lists it
as "JSON array of strings, only present in v1.0 tokens" ("Identifies the authentication
method of the subject of the token"). It is not an optional claim either. The values Microsoft
documents for v1.0 tokens are ``pwd`` (password), ``rsa`` (proof of an RSA key, e.g.
Authenticator or a certificate), ``otp``, ``fed``, ``wia`` (Windows integrated), ``mfa``
(multifactor was used; the other methods are listed too), ``ngcmfa``, ``wiaormfa`` and
``none``. So a real v2.0 ID token carries no ``amr``: an app that must know MFA happened
uses Conditional Access (an "authentication context" it asks for with the ``claims``
parameter shows up as ``acrs``), not ``amr``. This stand-in nevertheless emits
``["pwd", "mfa"]`` for its MFA users and ``["pwd"]`` for the others, as asked of it, and
``sim.entra.set_options(amr=False)`` makes its tokens look like Entra's. Likewise
``auth_time`` is an optional claim the app registration must request; the simulated one does
(``set_options(auth_time=False)`` removes it).

Strict where the documentation is: ``client_id`` is required at the token endpoint even with a
client assertion (Authlib's ``private_key_jwt`` leaves it out: pass ``client_id=`` to the token
request), and a client assertion's ``aud`` must be one string, the token endpoint.

Deliberate differences: a request whose ``scope`` lacks ``openid`` is refused (``invalid_scope``,
AADSTS70011) where Entra would issue a code for an access token only; no refresh tokens
(``offline_access`` is accepted and ignored); the account picker asks for no password.
"""

from ..hosts import ENTRA_HOST
from .directory import APP_ROLES, TENANT_DOMAIN, User
from .service import Entra

__all__ = ["APP_ROLES", "ENTRA_HOST", "TENANT_DOMAIN", "Entra", "User"]
