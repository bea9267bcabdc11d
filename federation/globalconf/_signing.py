"""Configuration-signing keys of a central server (xroad.md section 4, "CS generation").

X-Road's central server signs the internal and the external directory each with its own
key; the key is not part of the member PKI, the anchor carries its certificate. xfed makes
a self-signed ECDSA P-256 certificate per key, so ``openssl cms -verify -CAfile anchor-cert``
accepts a signature made with it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from federation.clock import to_datetime
from federation.errors import GlobalConfError, PkiError
from federation.globalconf._model import cert_to_pem
from federation.pki import cms_sign_detached, cms_verify_detached

SIGNING_CERT_VALIDITY_S = 20 * 365 * 86400.0
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class ConfSigningKey:
    """A configuration-signing certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @classmethod
    def generate(cls, instance: str, purpose: str, *, now: float) -> ConfSigningKey:
        """A fresh self-signed key, ``purpose`` being ``internal`` or ``external``.

        The subject's C is the instance id's country code (``FI`` of ``FI-TEST``), left out
        when the id does not start with two letters.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        country = instance[:2].upper()
        rdns = (
            [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if _COUNTRY.match(country) else []
        )
        name = x509.Name(
            [
                *rdns,
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{instance} central server"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"{instance} {purpose} configuration signing"
                ),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(to_datetime(now) - dt.timedelta(days=1))
            .not_valid_after(to_datetime(now + SIGNING_CERT_VALIDITY_S))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def cert_pem(self) -> str:
        return cert_to_pem(self.cert)

    @property
    def algorithm_id(self) -> str:
        """The XML-DSig URI of the signature algorithm (``Signature-algorithm-id``)."""
        kind = "ecdsa" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "rsa"
        return f"http://www.w3.org/2001/04/xmldsig-more#{kind}-sha256"

    def sign(self, data: bytes) -> bytes:
        """A DER CMS detached signature over ``data``."""
        return cms_sign_detached(data, self.cert, self.key)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def verify_with_certificate(
    signature_der: bytes, data: bytes, cert: x509.Certificate, *, now: float, instance: str
) -> None:
    """Check that ``cert`` (from an anchor) signed ``data``; GlobalConfError if not."""
    try:
        signer = cms_verify_detached(
            signature_der, data, trusted_roots=[cert], now=now, usage="any"
        )
    except PkiError as exc:
        raise GlobalConfError(f"signature does not verify: {exc}", instance=instance) from None
    if signer != cert:
        raise GlobalConfError(
            "signature is not made with the anchor's verification certificate", instance=instance
        )
