"""Shared access policies and the checks Azure makes on a request's Authorization header.

A SAS token is ``SharedAccessSignature sr=<url-encoded audience>&sig=<url-encoded base64
HMAC-SHA256>&se=<expiry epoch seconds>&skn=<policy>``; the signature covers
``quote_plus(audience) + "\\n" + se`` with the base64-decoded policy key. The audience must be the
host name (case-insensitive), optionally followed by a path. Keys derive from the seed, so a
restarted simulator with the same seed accepts the same connection strings.
"""

import base64
import hashlib
import hmac
import time
import urllib.parse

from .errors import ApiError
from .hosts import DPS_HOSTS

READ = "read"
WRITE = "write"

# policy name -> rights, per kind of service
HUB_POLICIES = {"iothubowner": {READ, WRITE}, "registryRead": {READ}}
DPS_POLICIES = {"provisioningserviceowner": {READ, WRITE}, "enrollmentread": {READ}}


def policies_for(host):
    return DPS_POLICIES if host in DPS_HOSTS else HUB_POLICIES


def owner_policy(host):
    return "provisioningserviceowner" if host in DPS_HOSTS else "iothubowner"


def derive_key(seed, host, policy):
    digest = hashlib.sha256(f"azuresim/{seed}/{host}/{policy}".encode()).digest()
    return base64.b64encode(digest).decode()


def connection_string(seed, host, policy=None):
    policy = policy or owner_policy(host)
    key = derive_key(seed, host, policy)
    return f"HostName={host};SharedAccessKeyName={policy};SharedAccessKey={key}"


def make_sas_token(audience, policy, key, expiry=None, ttl=3600):
    """Build a service SAS token the way the Azure SDKs do."""
    se = str(int(expiry if expiry is not None else time.time() + ttl))
    encoded = urllib.parse.quote_plus(audience)
    mac = hmac.new(base64.b64decode(key), f"{encoded}\n{se}".encode(), hashlib.sha256)
    sig = urllib.parse.quote_plus(base64.b64encode(mac.digest()).decode())
    return f"SharedAccessSignature sr={encoded}&sig={sig}&se={se}&skn={policy}"


def _unauthorized(reason):
    return ApiError("unauthorized", f"Unauthorized. {reason}")


def _parse_sas(value):
    fields = {}
    for part in value.split("&"):
        name, sep, raw = part.partition("=")
        if not sep:
            raise _unauthorized("Malformed SharedAccessSignature.")
        fields[name.strip().lower()] = raw.strip()
    missing = {"sr", "sig", "se", "skn"} - fields.keys()
    if missing:
        raise _unauthorized(f"SharedAccessSignature is missing {', '.join(sorted(missing))}.")
    return fields


def _audience_matches(audience, host):
    audience = audience.lower()
    for prefix in ("https://", "http://", "amqps://"):
        if audience.startswith(prefix):
            audience = audience[len(prefix) :]
    return audience == host or audience.startswith(host + "/")


def authorize(header, host, seed, entra_token=None, now=None):
    """Return the rights the Authorization header grants on ``host``, or raise 401."""
    if not header:
        raise _unauthorized("Missing Authorization header.")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        if entra_token and hmac.compare_digest(value.strip().encode(), entra_token.encode()):
            return {READ, WRITE}
        raise _unauthorized("Invalid bearer token.")
    if scheme != "SharedAccessSignature":
        raise _unauthorized("Unsupported authorization scheme.")
    fields = _parse_sas(value)
    audience = urllib.parse.unquote_plus(fields["sr"])
    if not _audience_matches(audience, host):
        raise _unauthorized("The token audience does not match this host.")
    try:
        expiry = int(fields["se"])
    except ValueError:
        raise _unauthorized("Malformed expiry.") from None
    if expiry <= (now if now is not None else time.time()):
        raise _unauthorized("The SAS token has expired.")
    policy = urllib.parse.unquote_plus(fields["skn"])
    rights = policies_for(host).get(policy)
    if rights is None:
        raise _unauthorized(f"Unknown shared access policy '{policy}'.")
    key = base64.b64decode(derive_key(seed, host, policy))
    try:
        presented = base64.b64decode(urllib.parse.unquote_plus(fields["sig"]), validate=True)
    except ValueError:
        raise _unauthorized("Malformed signature.") from None
    # The SDKs sign quote_plus(audience); accept the audience as sent too (already encoded).
    candidates = {urllib.parse.quote_plus(audience), fields["sr"]}
    for signed in candidates:
        expected = hmac.new(key, f"{signed}\n{fields['se']}".encode(), hashlib.sha256).digest()
        if hmac.compare_digest(expected, presented):
            return set(rights)
    raise _unauthorized("The SAS token signature is invalid.")
