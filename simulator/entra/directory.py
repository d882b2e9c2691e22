"""The simulated tenant: its app registration for the portal and its users, from the seed.

GUIDs, the client secret and the users' object IDs derive from the seed (as the SAS keys in
``simulator.auth`` do), so a simulator restarted with the same seed accepts the same client
secret and signs in the same users with the same ``oid``: a ``entra.env`` written once stays
valid, and accounts the portal linked to an ``oid`` keep working across ``make run``.
"""

import base64
import dataclasses
import hashlib
import uuid

TENANT_DOMAIN = "contoso.example"
APP_NAME = "DSR Portal (simulated)"
# The app roles the app registration declares (their *values* go into the ``roles`` claim).
APP_ROLES = {
    "DSR.Officer": "Privacy officer: takes in and follows data subject requests.",
    "DSR.Approver": "Approves or rejects the plan of a data subject request.",
    "DSR.Auditor": "Reads requests, timelines and evidence; verifies the audit chain.",
    "DSR.Admin": "Administers users, targets and deadline rules.",
}
# username, display name, app role values, whether the user signs in with MFA
USERS = (
    ("officer", "Olivia Officer", ("DSR.Officer",), False),
    ("approver1", "Anders Approver", ("DSR.Approver",), True),
    ("approver2", "Beatriz Approver", ("DSR.Approver",), True),
    ("approver-nomfa", "Chen Approver (no MFA)", ("DSR.Approver",), False),
    ("auditor", "Dana Auditor", ("DSR.Auditor",), False),
    ("admin", "Erik Admin", ("DSR.Admin",), True),
    ("norole", "Nora Norole", (), False),
)
# Microsoft Graph's application ID: the audience of the access token a sign-in returns when
# the app asks only for OpenID Connect scopes (Entra adds Graph's User.Read).
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_USER_READ = "https://graph.microsoft.com/User.Read"
# The characters Entra uses in client secrets.
SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"  # noqa: S105


def guid(seed, *parts):
    """A version-4-shaped GUID that depends only on the seed and ``parts``."""
    text = "/".join(["azuresim", str(seed), "entra", *map(str, parts)])
    return str(uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4))


def client_secret(seed):
    """A secret shaped like Entra's (three characters, ``8Q~``, then 34 more; 40 in all)."""
    digest = hashlib.sha256(f"azuresim/{seed}/entra/client-secret".encode()).digest()
    digest += hashlib.sha256(digest).digest()
    chars = [SECRET_ALPHABET[b % len(SECRET_ALPHABET)] for b in digest]
    return "".join(chars[:3]) + "8Q~" + "".join(chars[3:37])


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Conditional Access authentication contexts of the tenant (ID → what its policy requires).
# An app asks for one with the ``claims`` parameter; a sign-in that satisfies it carries the
# ID in the ID token's ``acrs`` claim ("Developer guide to Conditional Access authentication
# context", learn.microsoft.com/entra/identity-platform/developer-guide-conditional-access-
# authentication-context).
AUTH_CONTEXTS = {"c1": "mfa"}


@dataclasses.dataclass(frozen=True)
class User:
    username: str
    display_name: str
    upn: str
    oid: str
    roles: tuple
    mfa: bool

    @property
    def amr(self):
        """What the stand-in puts in ``amr`` (see the package docstring: v2.0 ID tokens from
        real Entra carry no ``amr``)."""
        return ["pwd", "mfa"] if self.mfa else ["pwd"]

    def as_dict(self):
        return {
            "username": self.username,
            "name": self.display_name,
            "upn": self.upn,
            "oid": self.oid,
            "roles": list(self.roles),
            "mfa": self.mfa,
            "amr": self.amr,
        }


class Directory:
    """The tenant as Entra would know it: tenant ID, the portal's app registration, users."""

    def __init__(self, seed):
        self.seed = seed
        self.tenant_id = guid(seed, "tenant")
        self.domain = TENANT_DOMAIN
        self.client_id = guid(seed, "app", APP_NAME)
        self.app_object_id = guid(seed, "app-object", APP_NAME)
        self.client_secret = client_secret(seed)
        self.secret_key_id = guid(seed, "app", "secret")
        self.users = tuple(
            User(name, display, f"{name}@{TENANT_DOMAIN}", guid(seed, "user", name), roles, mfa)
            for name, display, roles, mfa in USERS
        )

    def tenant_matches(self, value):
        """The path's ``{tenant}``: the tenant GUID or its domain name, as Entra accepts."""
        return value.lower() in (self.tenant_id, self.domain)

    def user(self, key):
        """A user by username, UPN or object ID; ``KeyError`` if there is none."""
        key = key.lower()
        for user in self.users:
            if key in (user.username, user.upn, user.oid):
                return user
        raise KeyError(key)

    def pairwise_subject(self, user, client_id):
        """``sub``: unique per user and application, as Entra's pairwise identifier is."""
        text = f"{self.tenant_id}/{client_id}/{user.oid}/{self.seed}"
        return b64url(hashlib.sha256(text.encode()).digest())

    def app_roles(self):
        return [
            {
                "id": guid(self.seed, "app-role", value),
                "value": value,
                "displayName": value.split(".", 1)[1],
                "description": description,
                "allowedMemberTypes": ["User"],
                "isEnabled": True,
            }
            for value, description in APP_ROLES.items()
        ]
