"""Keys, credentials (certificate + key + issuing chain) and PEM files.

ECDSA P-256 is the default key type (feasibility.md Q5a: signing is ~20x faster than
RSA-2048); RSA-2048 is selectable with ``key_type="rsa"``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from federation.errors import PkiError

KeyType: TypeAlias = Literal["ec", "rsa"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

HashName: TypeAlias = Literal["sha1", "sha224", "sha256", "sha384", "sha512"]

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """``"sha256"`` -> ``hashes.SHA256()``; PkiError for anything else."""
    try:
        return HASHES[name.lower().replace("-", "")]()
    except KeyError:
        raise PkiError(
            f"unsupported hash algorithm {name!r} (expected one of {', '.join(HASHES)})"
        ) from None


def generate_key(key_type: KeyType = "ec") -> PrivateKey:
    """A fresh ECDSA P-256 (``"ec"``) or RSA-2048 (``"rsa"``) private key."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PkiError(f"unknown key type {key_type!r} (expected 'ec' or 'rsa')")


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's public key, if it is EC or RSA (the only kinds xfed issues)."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PkiError(f"unsupported public key type {type(key).__name__} in {describe(cert)}")
    return key


def describe(cert: x509.Certificate) -> str:
    """A short human label: ``'CN=...,O=...' (serial 0x1a2b)``; never raises (certificates
    from untrusted bytes may have a subject that does not parse)."""
    try:
        serial = f"{cert.serial_number:#x}"
    except ValueError:
        serial = "unparsable"
    return f"'{name_text(cert, 'subject')}' (serial {serial})"


def name_text(cert: x509.Certificate, which: Literal["subject", "issuer"]) -> str:
    """``cert``'s subject or issuer in RFC 4514 form, ``<unparsable subject>`` when that
    name does not parse (cryptography parses names only when they are read). A label: what
    cryptography warns about while parsing (a countryName that is not 2 letters) is not
    reported here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            name = cert.subject if which == "subject" else cert.issuer
            return name.rfc4514_string()
    except ValueError:
        return f"<unparsable {which}>"


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (a test PKI: the run directory is the protection)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_cert_pem(data: bytes) -> x509.Certificate:
    """One PEM certificate; PkiError if the bytes are not one."""
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from None


def load_certs_pem(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (possibly none)."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate bundle: {exc}") from None


def load_key_pem(data: bytes) -> PrivateKey:
    """An unencrypted EC or RSA private key in PEM."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"unsupported private key type {type(key).__name__}")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a key file readable only by its owner."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate, its private key and the chain up to (not including) the root.

    ``chain`` holds the issuing (intermediate) CA certificates, nearest first: what a TLS
    server sends after its leaf, what a CMS signature embeds.
    """

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def fullchain_pem(self) -> bytes:
        """Leaf then intermediates (``ssl.SSLContext.load_cert_chain`` format)."""
        return b"".join(cert_pem(c) for c in (self.cert, *self.chain))

    def save(self, directory: str | os.PathLike[str], name: str) -> None:
        """Write ``NAME.pem`` (cert), ``NAME.key`` (0600) and ``NAME-chain.pem`` (full chain)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.pem").write_bytes(self.cert_pem())
        write_private(d / f"{name}.key", self.key_pem())
        (d / f"{name}-chain.pem").write_bytes(self.fullchain_pem())

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str) -> Credential:
        """Read back what :meth:`save` wrote."""
        d = Path(directory)
        try:
            cert = load_cert_pem((d / f"{name}.pem").read_bytes())
            key = load_key_pem((d / f"{name}.key").read_bytes())
            chain_file = d / f"{name}-chain.pem"
            chain = load_certs_pem(chain_file.read_bytes())[1:] if chain_file.exists() else []
        except OSError as exc:
            raise PkiError(f"cannot read credential {name!r} in {d}: {exc}") from None
        if cert.public_key() != key.public_key():
            raise PkiError(f"{d / (name + '.key')} does not match {d / (name + '.pem')}")
        return cls(cert, key, tuple(chain))
