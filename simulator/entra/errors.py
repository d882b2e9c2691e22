"""AADSTS errors in the three shapes Entra gives them.

- Token endpoint: JSON ``{"error", "error_description": "AADSTSnnnnn: ...\\r\\nTrace ID: ...
  \\r\\nCorrelation ID: ...\\r\\nTimestamp: ...", "error_codes": [n], "timestamp", "trace_id",
  "correlation_id", "error_uri"}`` with 400, or 401 for ``invalid_client``.
- Authorization endpoint, once the redirect URI is trusted: a redirect back to it with
  ``error`` and ``error_description``.
- Authorization endpoint, before it is (unknown tenant or app, unregistered redirect URI): a
  page on the login server itself, never a redirect, so nobody can be sent elsewhere.

Codes and wording follow Microsoft's "Microsoft Entra authentication & authorization error
codes" (https://learn.microsoft.com/entra/identity-platform/reference-error-codes); the two
marked *observed* are not in that table but are what the service answers.
"""

import datetime
import uuid

from ..request import Response

# code -> (OAuth error, HTTP status at the token endpoint, message)
CODES = {
    50011: (
        "invalid_request",
        400,
        "The redirect URI '{redirect_uri}' specified in the request does not match the "
        "redirect URIs configured for the application '{client_id}'. Make sure the redirect "
        "URI sent in the request matches one added to your application in the Azure portal. "
        "Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix "
        "this.",
    ),
    50013: ("invalid_client", 401, "Assertion is invalid. {reason}"),
    50027: ("invalid_client", 401, "JWT token is invalid or malformed."),
    50048: (
        "invalid_client",
        401,
        "Subject mismatches Issuer claim in the client assertion. Subject={sub}, Issuer={iss}.",
    ),
    50076: (
        "interaction_required",
        400,
        "Due to a configuration change made by your administrator, or because you moved to a "
        "new location, you must use multi-factor authentication to access '{resource}'.",
    ),
    50058: (
        "login_required",
        400,
        "A silent sign-in request was sent but no user is signed in.",
    ),
    54005: (
        "invalid_grant",
        400,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
        "or use an existing refresh token.",
    ),
    65004: ("access_denied", 400, "User declined to consent to access the app."),
    70000: ("invalid_grant", 400, "The provided value for the 'code' parameter is not valid."),
    70003: (
        "unsupported_grant_type",
        400,
        "The app requested an unsupported grant type '{grant_type}'.",
    ),
    70005: (
        "unsupported_response_type",
        400,
        "response_type '{response_type}' is not enabled for the application.",
    ),
    70007: (
        "invalid_request",
        400,
        "The application returned an unsupported value of 'response_mode' when requesting a token.",
    ),
    70008: (
        "invalid_grant",
        400,
        "The provided authorization code or refresh token has expired due to inactivity. "
        "Send a new interactive authorization request for this user and resource.",
    ),
    70011: (
        "invalid_scope",
        400,
        "The provided value for the input parameter 'scope' is not valid. {detail}",
    ),
    90002: (
        "invalid_tenant",
        400,
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    ),
    90023: ("invalid_request", 400, "Invalid request. {detail}"),
    90100: ("invalid_request", 400, "{name} parameter is empty or not valid."),
    700016: (
        "unauthorized_client",
        400,
        "Application with identifier '{client_id}' was not found in the directory "
        "'{directory}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
    ),
    700027: (
        "invalid_client",
        401,
        "Client assertion failed signature validation. [Reason - {reason}]",
    ),
    700054: (
        "unsupported_response_type",
        400,
        "response_type 'id_token' is not enabled for the application.",
    ),
    # observed: the assertion's time window (the reference lists 500133 for user assertions)
    700024: (
        "invalid_client",
        401,
        "Client assertion is not within its valid time range. Current time: {now}, "
        "assertion valid from {nbf}, expiry time of assertion {exp}.",
    ),
    # observed: the redirect URI at redemption differs from the one the code was issued for
    500112: (
        "invalid_grant",
        400,
        "The reply address '{redirect_uri}' does not match the reply address "
        "'{expected}' provided when requesting Authorization code.",
    ),
    501481: (
        "invalid_grant",
        400,
        "The Code_Verifier does not match the code_challenge supplied in the authorization "
        "request.",
    ),
    501491: ("invalid_request", 400, "Invalid size of Code_Challenge parameter."),
    900144: (
        "invalid_request",
        400,
        "The request body must contain the following parameter: '{name}'.",
    ),
    900561: (
        "invalid_request",
        400,
        "The endpoint only accepts {valid} requests. Received a {method} request.",
    ),
    900971: ("invalid_request", 400, "No reply address provided."),
    7000215: (
        "invalid_client",
        401,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app "
        "'{client_id}'.",
    ),
    7000218: (
        "invalid_client",
        401,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    ),
}


class _Values(dict):
    """Format values; a placeholder nobody filled (a fault hook's error) shows as '…'."""

    def __missing__(self, key):
        return "…"


class EntraError(Exception):
    """One AADSTS error; ``render_*`` turn it into each of Entra's shapes."""

    def __init__(self, code, **values):
        self.code = code
        self.error, self.status, template = CODES[code]
        self.message = f"AADSTS{code}: " + template.format_map(_Values(values))
        self.trace_id = str(uuid.uuid4())
        self.correlation_id = str(uuid.uuid4())
        self.timestamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        super().__init__(self.message)

    def description(self):
        return (
            f"{self.message}\r\nTrace ID: {self.trace_id}\r\nCorrelation ID: "
            f"{self.correlation_id}\r\nTimestamp: {self.timestamp}"
        )

    def as_json(self):
        return {
            "error": self.error,
            "error_description": self.description(),
            "error_codes": [self.code],
            "timestamp": self.timestamp,
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }

    def token_response(self):
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="login.microsoftonline.com"'
        return Response(self.status, self.as_json(), headers)

    def redirect_params(self):
        return {"error": self.error, "error_description": self.description()}
