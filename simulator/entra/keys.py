"""RSA key pairs with self-signed X.509 certificates: Entra's token-signing keys and the
portal's client certificate.

Entra publishes each signing key as a certificate, and names it (``kid`` and ``x5t``) by the
base64url SHA-1 thumbprint of that certificate; the JWKS entry carries the certificate in
``x5c``. The keys are random (2048-bit RSA, as Entra's), made when first needed and kept in
memory, or in the state file when the simulator has one.
"""

import base64
import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .directory import b64url


def _int_b64url(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class KeyPair:
    """An RSA private key and the self-signed certificate that publishes its public half."""

    def __init__(self, private_key, certificate):
        self.private_key = private_key
        self.certificate = certificate
        der = certificate.public_bytes(serialization.Encoding.DER)
        self.der = der
        self.x5t = b64url(hashlib.sha1(der, usedforsecurity=False).digest())
        self.x5t_s256 = b64url(hashlib.sha256(der).digest())
        self.sha1_hex = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()

    @classmethod
    def generate(cls, common_name, days=730):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def from_pem(cls, key_pem, certificate_pem):
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        return cls(key, x509.load_pem_x509_certificate(certificate_pem.encode()))

    @property
    def kid(self):
        return self.x5t

    @property
    def public_key(self):
        return self.private_key.public_key()

    def key_pem(self):
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def certificate_pem(self):
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def to_dict(self):
        return {"key": self.key_pem(), "certificate": self.certificate_pem()}

    @classmethod
    def from_dict(cls, data):
        return cls.from_pem(data["key"], data["certificate"])

    def jwk(self, issuer):
        """The key as Entra's ``/discovery/v2.0/keys`` lists it."""
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
            "x5c": [base64.b64encode(self.der).decode()],
            "cloud_instance_name": "microsoftonline.com",
            "issuer": issuer,
        }

    def names(self):
        """Every way a client assertion's header may name this certificate."""
        return {self.x5t, self.x5t_s256, self.sha1_hex, self.sha1_hex.lower()}
