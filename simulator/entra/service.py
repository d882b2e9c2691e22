"""The Entra stand-in's state and its Python interface (``sim.entra``).

Holds what the real service keeps for this tenant: the signing keys (current last), the app
registration's redirect URIs and client certificate, issued authorization codes (single use,
ten minutes), sign-in sessions (the login server's cookie), used client-assertion ``jti``s,
and the test hooks: pending faults and token options.
"""

import copy
import threading
import time
import uuid

import jwt

from .directory import APP_NAME, Directory
from .errors import CODES
from .keys import KeyPair

CODE_LIFETIME = 600  # "Authorization codes are short lived ... after about 10 minutes."
ID_TOKEN_FAULTS = {
    "issuer": str,
    "audience": str,
    "nonce": str,
    "sign_with_unknown_key": (bool, str),
    "unsigned": bool,
    "expired": bool,
    "not_yet_valid": bool,
    "claims": dict,
    "omit_claims": list,
}
FAULTS = dict(ID_TOKEN_FAULTS, state=str, token_error=int)
OPTION_DEFAULTS = {"amr": True, "auth_time": True}


class Entra:
    """Microsoft Entra ID for one tenant, as far as the portal's sign-in needs it."""

    def __init__(self, seed, redirect_uris=(), clock=time.time):
        self.directory = Directory(seed)
        self.clock = clock
        self._initial_redirect_uris = list(redirect_uris)
        self._lock = threading.RLock()
        self._keys = None
        self._initial_key = None
        self._client_certificates = None
        self._stranger = None
        self.reset()

    # -- identity of the tenant and the app ---------------------------------------------

    @property
    def tenant_id(self):
        return self.directory.tenant_id

    @property
    def client_id(self):
        return self.directory.client_id

    @property
    def client_secret(self):
        return self.directory.client_secret

    @property
    def issuer(self):
        """Always the public cloud's issuer, whatever host the request came to, as Entra."""
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"

    @property
    def users(self):
        return list(self.directory.users)

    def user(self, key):
        return self.directory.user(key)

    def metadata_url(self, base_url):
        return f"{base_url.rstrip('/')}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    # -- test hooks -----------------------------------------------------------------------

    def reset(self):
        """Forget codes, sessions, faults and options; back to the first signing key."""
        with self._lock:
            self.redirect_uris = list(self._initial_redirect_uris)
            self._codes = {}
            self._sessions = {}
            self._jtis = {}
            self._faults = {}
            self.options = dict(OPTION_DEFAULTS)
            self._calls = []
            if self._initial_key is not None:
                self._keys = [self._initial_key]

    def set_redirect_uris(self, uris):
        uris = list(uris)
        if not all(isinstance(u, str) and u for u in uris):
            raise ValueError("redirect URIs must be non-empty strings")
        with self._lock:
            self.redirect_uris = uris
            return list(uris)

    def add_redirect_uri(self, uri):
        with self._lock:
            if uri not in self.redirect_uris:
                self.redirect_uris.append(uri)
            return list(self.redirect_uris)

    def set_faults(self, **faults):
        """Make the next answers wrong on purpose, each once (consumed when used):

        ``issuer``, ``audience``, ``nonce`` (the next ID token carries this value instead),
        ``sign_with_unknown_key`` (True: signed by a key the JWKS does not list, under its own
        ``kid``; ``"same_kid"``: under the current key's ``kid``), ``unsigned`` (``alg:
        none``), ``expired``, ``not_yet_valid``, ``claims`` (merged into the next ID token),
        ``omit_claims`` (names left out of it): all for the next ID token issued.
        ``state``: the next successful authorization redirect carries this ``state``.
        ``token_error``: an AADSTS code (e.g. 70008) the next token request fails with.
        Pending faults survive errors that issue no token; ``clear_faults``/reset drop them.
        """
        for name, value in faults.items():
            if name not in FAULTS:
                raise ValueError(f"Unknown Entra fault: {name}")
            if not isinstance(value, FAULTS[name]):
                raise ValueError(f"Entra fault {name}: wrong type {type(value).__name__}")
            if name == "sign_with_unknown_key" and value not in (True, False, "same_kid"):
                raise ValueError("sign_with_unknown_key: true, false or 'same_kid'")
            if name == "token_error" and value not in CODES:
                raise ValueError(f"token_error: unknown AADSTS code {value}")
        with self._lock:
            for name, value in faults.items():
                if value is False:
                    self._faults.pop(name, None)
                else:
                    self._faults[name] = copy.deepcopy(value)
            return copy.deepcopy(self._faults)

    @property
    def faults(self):
        with self._lock:
            return copy.deepcopy(self._faults)

    def clear_faults(self):
        with self._lock:
            self._faults = {}

    def take_faults(self, names):
        """Pop and return the pending faults among ``names`` (they apply once)."""
        with self._lock:
            return {n: self._faults.pop(n) for n in list(self._faults) if n in names}

    def set_options(self, **options):
        """``amr`` / ``auth_time`` (default True): whether ID tokens carry these claims.
        ``amr=False`` gives what real Entra's v2.0 ID tokens look like."""
        unknown = set(options) - set(OPTION_DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown Entra options: {', '.join(sorted(unknown))}")
        with self._lock:
            self.options.update({k: bool(v) for k, v in options.items()})
            return dict(self.options)

    @property
    def calls(self):
        with self._lock:
            return [dict(c) for c in self._calls]

    def record(self, method, path, status):
        with self._lock:
            self._calls.append(
                {
                    "seq": len(self._calls),
                    "time": time.time(),
                    "method": method,
                    "path": path,
                    "status": status,
                }
            )

    # -- keys -----------------------------------------------------------------------------

    def _signing_keys(self):
        with self._lock:
            if self._keys is None:
                self._initial_key = KeyPair.generate("login.microsoftonline.com (simulated)")
                self._keys = [self._initial_key]
            return self._keys

    def current_key(self):
        return self._signing_keys()[-1]

    @property
    def current_kid(self):
        return self.current_key().kid

    @property
    def signing_kids(self):
        return [k.kid for k in self._signing_keys()]

    def rotate_keys(self):
        """A new signing key becomes current; the old ones stay published (Entra's overlap)."""
        with self._lock:
            self._signing_keys().append(KeyPair.generate("login.microsoftonline.com (rolled)"))
            return self.current_kid

    def retire_old_keys(self):
        """Stop publishing every key but the current one; return the retired kids."""
        with self._lock:
            keys = self._signing_keys()
            retired = [k.kid for k in keys[:-1]]
            del keys[:-1]
            return retired

    def stranger_key(self):
        """A key nobody published: what ``sign_with_unknown_key`` signs with."""
        with self._lock:
            if self._stranger is None:
                self._stranger = KeyPair.generate("not Entra")
            return self._stranger

    def jwks(self):
        return {"keys": [k.jwk(self.issuer) for k in self._signing_keys()]}

    def _client_certs(self):
        with self._lock:
            if self._client_certificates is None:
                self._client_certificates = [KeyPair.generate(APP_NAME)]
            return self._client_certificates

    def client_certificate_pem(self):
        return self._client_certs()[0].certificate_pem()

    def client_key_pem(self):
        return self._client_certs()[0].key_pem()

    @property
    def client_certificate_thumbprint(self):
        """The SHA-1 thumbprint (hex) the app registration shows for the certificate."""
        return self._client_certs()[0].sha1_hex

    def client_certificate_named(self, names):
        for cert in self._client_certs():
            if any(name in cert.names() for name in names):
                return cert
        return None

    def client_assertion(self, audience, lifetime=600, header="x5t#S256", alg="RS256"):
        """A client assertion signed with the registered certificate (for tests)."""
        cert = self._client_certs()[0]
        now = int(self.clock())
        claims = {
            "aud": audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "iat": now,
            "exp": now + lifetime,
        }
        value = {"x5t#S256": cert.x5t_s256, "x5t": cert.x5t, "kid": cert.sha1_hex}[header]
        return jwt.encode(claims, cert.private_key, algorithm=alg, headers={header: value})

    def remember_assertion(self, jti, exp):
        """False if this ``jti`` was seen before (and has not expired since)."""
        with self._lock:
            now = self.clock()
            self._jtis = {j: e for j, e in self._jtis.items() if e > now - 600}
            if jti in self._jtis:
                return False
            self._jtis[jti] = exp
            return True

    # -- codes and sessions ---------------------------------------------------------------

    def store_code(self, code, grant):
        with self._lock:
            now = self.clock()
            self._codes = {
                c: g for c, g in self._codes.items() if g["expires"] > now - CODE_LIFETIME
            }
            self._codes[code] = dict(grant, expires=now + CODE_LIFETIME, redeemed=False)

    def take_code(self, code):
        """The grant for ``code`` (marked redeemed from now on), or None if unknown. The
        caller checks ``redeemed`` and ``expires`` on the copy it gets."""
        with self._lock:
            grant = self._codes.get(code)
            if grant is None:
                return None
            found = dict(grant)
            grant["redeemed"] = True
            return found

    def session(self, token):
        with self._lock:
            return dict(self._sessions[token]) if token in self._sessions else None

    def start_session(self, token, oid, auth_time):
        with self._lock:
            self._sessions[token] = {"oid": oid, "auth_time": auth_time}

    def end_session(self, token):
        with self._lock:
            self._sessions.pop(token, None)

    # -- persistence and introspection ----------------------------------------------------

    def export_keys(self):
        """Signing keys and the client certificate, for the state file."""
        return {
            "signing": [k.to_dict() for k in self._signing_keys()],
            "client": [c.to_dict() for c in self._client_certs()],
        }

    def import_keys(self, data):
        with self._lock:
            self._keys = [KeyPair.from_dict(d) for d in data["signing"]]
            self._initial_key = self._keys[0]
            self._client_certificates = [KeyPair.from_dict(d) for d in data["client"]]

    def describe(self, base_url=None):
        """What ``GET /_sim/entra`` shows: everything a test or the dev stack configures."""
        info = {
            "tenant_id": self.tenant_id,
            "tenant_domain": self.directory.domain,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "client_certificate_thumbprint": self.client_certificate_thumbprint,
            "app_name": APP_NAME,
            "app_roles": self.directory.app_roles(),
            "redirect_uris": list(self.redirect_uris),
            "users": [u.as_dict() for u in self.directory.users],
            "signing_kids": self.signing_kids,
            "current_kid": self.current_kid,
            "faults": self.faults,
            "options": dict(self.options),
        }
        if base_url:
            info["authority"] = base_url.rstrip("/")
            info["metadata_url"] = self.metadata_url(base_url)
        return info
