"""CMS detached signatures (RFC 5652) for signed global configuration and X-Road messages.

Signing uses cryptography's ``PKCS7SignatureBuilder`` with ``DetachedSignature`` and
``Binary`` (without ``Binary`` the content is canonicalised to CRLF first and a raw verify
fails; feasibility.md Q3). The signer's intermediate is embedded so that
``openssl cms -verify -binary -content DATA -inform DER -in SIG -CAfile root.pem`` works.

cryptography cannot verify CMS, so verification parses with asn1crypto and checks with
cryptography (RFC 5652 section 5.6): the messageDigest attribute equals the digest of the
content, the signature covers the DER ``SET OF`` signed attributes, and the signer
certificate chains to a trusted root. :func:`verify_signer_info` is shared with the RFC 3161
token verifier.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from federation.errors import PkiError
from federation.pki._keys import PrivateKey, describe, hash_algorithm, public_key_of
from federation.pki._verify import Usage, verify_chain

_CERT_CACHE_MAX = 1024
_cert_cache: OrderedDict[bytes, x509.Certificate] = OrderedDict()


def cms_sign_detached(
    data: bytes,
    cert: x509.Certificate,
    key: PrivateKey,
    chain: Sequence[x509.Certificate] = (),
    *,
    hash_alg: str = "sha256",
) -> bytes:
    """A DER ``ContentInfo``/``SignedData`` over ``data`` without the data itself.

    ``chain`` (normally the issuing intermediate) is embedded after the signer certificate.
    Signed attributes: contentType, signingTime, messageDigest, SMIMECapabilities.
    """
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data)
    builder = builder.add_signer(cert, key, hash_algorithm(hash_alg))  # type: ignore[arg-type]
    for c in chain:
        builder = builder.add_certificate(c)
    return builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )


def load_der_cert_cached(der: bytes) -> x509.Certificate:
    """Parse a DER certificate, remembering the last few hundred (signatures repeat them)."""
    cert = _cert_cache.get(der)
    if cert is None:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise PkiError(f"malformed certificate in signature: {exc}") from None
        _cert_cache[der] = cert
        if len(_cert_cache) > _CERT_CACHE_MAX:
            _cert_cache.popitem(last=False)
    return cert


def embedded_certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    """The X.509 certificates in ``SignedData.certificates`` (others are ignored)."""
    out: list[x509.Certificate] = []
    certs = signed_data["certificates"]
    if isinstance(certs, core.Void):
        return out
    for choice in certs:
        if choice.name == "certificate":
            out.append(load_der_cert_cached(choice.chosen.dump()))
    return out


def find_signer(
    signer_info: cms.SignerInfo, candidates: Sequence[x509.Certificate]
) -> x509.Certificate:
    """The certificate named by ``SignerInfo.sid`` (issuerAndSerialNumber or SKI)."""
    sid = signer_info["sid"]
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        for c in candidates:
            if c.serial_number == serial and c.issuer.public_bytes() == issuer_der:
                return c
        raise PkiError(f"signer certificate (serial {serial:#x}) is not in the signature")
    ski = sid.chosen.native
    for c in candidates:
        try:
            ext = c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            continue
        if ext.value.digest == ski:
            return c
    raise PkiError(f"signer certificate (key id {ski.hex()}) is not in the signature")


def _verify_signature(
    cert: x509.Certificate,
    signature: bytes,
    message: bytes,
    sig_alg: algos.SignedDigestAlgorithm,
    hash_name: str,
) -> None:
    key = public_key_of(cert)
    try:
        algo = sig_alg.signature_algo
    except ValueError as exc:
        raise PkiError(f"unsupported signature algorithm: {exc}") from None
    h = hash_algorithm(hash_name)
    try:
        if algo == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(h))
        elif algo == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), h)
        elif algo == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = sig_alg["parameters"]
            pss_hash = hash_algorithm(params["hash_algorithm"]["algorithm"].native)
            mgf_hash = hash_algorithm(
                params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            )
            pad = padding.PSS(padding.MGF1(mgf_hash), params["salt_length"].native)
            key.verify(signature, message, pad, pss_hash)
        else:
            raise PkiError(f"signature algorithm {algo} does not fit the key of {describe(cert)}")
    except InvalidSignature:
        raise PkiError(f"signature by {describe(cert)} does not verify") from None
    except UnsupportedAlgorithm as exc:
        raise PkiError(f"unsupported signature algorithm: {exc}") from None


def verify_signer_info(
    signer_info: cms.SignerInfo,
    signer: x509.Certificate,
    content: bytes,
    content_type: str,
) -> dict[str, Any]:
    """Check one SignerInfo over ``content`` (RFC 5652 section 5.6).

    With signed attributes: contentType must be ``content_type``, messageDigest the
    digest of ``content``, and the signature must cover the DER ``SET OF`` attributes.
    Without them (allowed only for ``data``) the signature covers the content. Returns the
    signed attributes by name (asn1crypto values, first value of each).
    """
    hash_name = signer_info["digest_algorithm"]["algorithm"].native
    hash_algorithm(hash_name)  # PkiError for unsupported digests
    signed_attrs = signer_info["signed_attrs"]
    attrs: dict[str, Any] = {}
    if isinstance(signed_attrs, core.Void) or len(signed_attrs) == 0:
        if content_type != "data":
            raise PkiError("signature has no signed attributes (required for non-data content)")
        message = content
    else:
        for attr in signed_attrs:
            name = attr["type"].native
            values = attr["values"]
            if len(values) != 1:
                raise PkiError(f"signed attribute {name} must have exactly one value")
            attrs[name] = values[0]
        if "content_type" not in attrs or attrs["content_type"].native != content_type:
            raise PkiError(f"signed contentType is not {content_type}")
        if "message_digest" not in attrs:
            raise PkiError("signature has no messageDigest attribute")
        if attrs["message_digest"].native != hashlib.new(hash_name, content).digest():
            raise PkiError("messageDigest does not match the content (the data was altered)")
        message = signed_attrs.untag().dump()
    _verify_signature(
        signer,
        signer_info["signature"].native,
        message,
        signer_info["signature_algorithm"],
        hash_name,
    )
    return attrs


def parse_signed_data(der: bytes, what: str) -> cms.SignedData:
    """``ContentInfo`` -> ``SignedData``, PkiError when it is not one."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise PkiError(f"{what} is a CMS {info['content_type'].native}, not signedData")
        signed = info["content"]
        signed["signer_infos"]  # forces the parse
        return signed
    except (ValueError, TypeError, KeyError) as exc:
        raise PkiError(f"malformed {what}: {exc}") from None


def cms_verify_detached(
    sig_der: bytes,
    data: bytes,
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    usage: Usage = "sign",
    intermediates: Sequence[x509.Certificate] = (),
) -> x509.Certificate:
    """Verify a detached CMS signature over ``data``; return the signer's certificate.

    The signer must chain (through embedded certificates or ``intermediates``) to one of
    ``trusted_roots`` at ``now`` and be fit for ``usage`` (``"sign"``: nonRepudiation).
    Exactly one signer is accepted. Raises PkiError saying what failed.
    """
    signed = parse_signed_data(sig_der, "CMS signature")
    try:
        encap = signed["encap_content_info"]
        if not isinstance(encap["content"], core.Void):
            raise PkiError("CMS signature is not detached (it carries its content)")
        content_type = encap["content_type"].native
        infos = signed["signer_infos"]
        if len(infos) != 1:
            raise PkiError(f"CMS signature has {len(infos)} signers, expected 1")
        info = infos[0]
        certs = embedded_certificates(signed)
        signer = find_signer(info, [*certs, *intermediates])
        verify_signer_info(info, signer, data, content_type)
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"malformed CMS signature: {exc}") from None
    others = tuple(c for c in (*certs, *intermediates) if c != signer)
    verify_chain(signer, others, trusted_roots, now, usage)
    return signer
