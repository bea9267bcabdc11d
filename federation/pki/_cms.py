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
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms, core, parser
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.utils import CryptographyDeprecationWarning

from federation.errors import PkiError
from federation.pki._keys import PrivateKey, describe, hash_algorithm, public_key_of
from federation.pki._verify import Usage, verify_chain

_CERT_CACHE_MAX = 1024
_cert_cache: OrderedDict[bytes, x509.Certificate] = OrderedDict()

MALFORMED_INPUT_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
)
"""What asn1crypto and cryptography raise on bytes they cannot parse or use; a verifier of
untrusted input turns them into :class:`PkiError`."""


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
            with warnings.catch_warnings():
                # a non-positive serial: RFC 5280 forbids it, cryptography only warns (for now)
                warnings.simplefilter("error", CryptographyDeprecationWarning)
                cert = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion, CryptographyDeprecationWarning) as exc:
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


# --------------------------------------------------------------------------------------
# Fast path for repeated signature *templates*.
#
# A security server verifies thousands of signatures by the same signer: they differ only in
# the signed attributes (signing time, message digest) and the signature value. Parsing the
# whole structure with asn1crypto, finding the signer among the embedded certificates and
# re-validating its chain cost ~0.3 ms per message (docs/performance.md). So the bytes of a
# signature *without* those two fields (its template) are remembered once the full check
# (:func:`_verify_full`) passed for given roots, intermediates and usage; a later signature
# with the same template only needs its signed attributes and its signature value checked,
# exactly as the full path checks them. Anything unusual (BER, several signers, no or
# duplicate signed attributes) takes the full path.

_TEMPLATE_CACHE_MAX = 256


@dataclass(frozen=True, slots=True)
class _Template:
    content_type_tlv: bytes
    hash_name: str
    sig_alg: algos.SignedDigestAlgorithm
    signer: x509.Certificate
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    usage: str
    valid_from: float
    valid_to: float


@dataclass(frozen=True, slots=True)
class _Split:
    template: bytes
    signed_attrs_header: bytes
    signed_attrs: bytes
    signature: bytes


_templates: OrderedDict[bytes, _Template] = OrderedDict()
# dotted forms: naming them through cms.CMSAttributeType here would freeze asn1crypto's
# reverse name map before federation.pki._tsa registers signing_certificate_v2
_OID_CONTENT_TYPE = core.ObjectIdentifier("1.2.840.113549.1.9.3").dump()
_OID_MESSAGE_DIGEST = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()
_OID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()


def _tlvs(data: bytes) -> list[tuple[int, int, int, bytes, bytes, int, int]]:
    """DER children of a constructed value's contents: ``(class, method, tag, header,
    contents, start, end)``; ValueError on BER (indefinite length) or truncation."""
    out = []
    pos, n = 0, len(data)
    while pos < n:
        cls, method, tag, header, contents, trailer = parser.parse(data[pos:])
        if trailer:
            raise ValueError("indefinite length")
        end = pos + len(header) + len(contents)
        out.append((cls, method, tag, header, contents, pos, end))
        pos = end
    return out


def _split(sig_der: bytes) -> _Split | None:
    """The template and the variable parts of a one-signer DER ``ContentInfo``, or None."""
    try:
        cls, method, tag, _, ci, trailer = parser.parse(sig_der, strict=True)
        if (cls, method, tag) != (0, 1, 16) or trailer:
            return None
        kids = _tlvs(ci)
        if len(kids) != 2 or kids[0][3] + kids[0][4] != _OID_SIGNED_DATA:
            return None
        c, m, t, _, explicit, _, _ = kids[1]
        if (c, m, t) != (2, 1, 0):
            return None
        sd_list = _tlvs(explicit)
        if len(sd_list) != 1 or sd_list[0][:3] != (0, 1, 16):
            return None
        sd_kids = _tlvs(sd_list[0][4])
        infos = sd_kids[-1]
        if infos[:3] != (0, 1, 17):
            return None
        info_list = _tlvs(infos[4])
        if len(info_list) != 1 or info_list[0][:3] != (0, 1, 16):
            return None
        si = _tlvs(info_list[0][4])
        attrs = [k for k in si if k[:3] == (2, 1, 0)]
        sigs = [k for k in si if k[:3] == (0, 0, 4)]
        if len(attrs) != 1 or len(sigs) != 1 or not attrs[0][4]:
            return None
    except (ValueError, TypeError):
        return None
    # the template: every fixed TLV (each with its own header) in order, the two variable
    # fields as markers; the enclosing headers only carry lengths that follow from these
    fixed = [kids[0][3] + kids[0][4]]
    fixed += [k[3] + k[4] for k in sd_kids[:-1]]
    for k in si:
        if k is attrs[0]:
            fixed.append(b"\x00A")
        elif k is sigs[0]:
            fixed.append(b"\x00S")
        else:
            fixed.append(k[3] + k[4])
    template = b"".join(fixed)
    return _Split(template, attrs[0][3], attrs[0][4], sigs[0][4])


def _same(a: Sequence[x509.Certificate], b: Sequence[x509.Certificate]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _verify_fast(
    sp: _Split,
    data: bytes,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    usage: str,
    intermediates: Sequence[x509.Certificate],
) -> x509.Certificate | None:
    """The signer when ``sp``'s template is known for these roots and it verifies; None when
    the full path must decide; PkiError when it certainly fails (as the full path would)."""
    t = _templates.get(sp.template)
    if (
        t is None
        or t.usage != usage
        or not (t.valid_from <= now <= t.valid_to)
        or not _same(t.roots, trusted_roots)
        or not _same(t.intermediates, intermediates)
    ):
        return None
    try:
        attrs = _tlvs(sp.signed_attrs)
        found: dict[bytes, bytes] = {}
        for c, m, tag, _, contents, _, _ in attrs:
            if (c, m, tag) != (0, 1, 16):
                return None
            parts = _tlvs(contents)
            if len(parts) != 2 or parts[1][:3] != (0, 1, 17):
                return None
            oid = parts[0][3] + parts[0][4]
            values = _tlvs(parts[1][4])
            if len(values) != 1 or oid in found:
                return None
            found[oid] = values[0][3] + values[0][4]
    except (ValueError, TypeError):
        return None
    ctype = found.get(_OID_CONTENT_TYPE)
    digest = found.get(_OID_MESSAGE_DIGEST)
    if ctype != t.content_type_tlv or digest is None or digest[:1] != b"\x04":
        return None  # the full path says what is wrong
    _, _, _, _, dc, trailer = parser.parse(digest, strict=True)
    if trailer or dc != hashlib.new(t.hash_name, data).digest():
        raise PkiError("messageDigest does not match the content (the data was altered)")
    message = b"\x31" + sp.signed_attrs_header[1:] + sp.signed_attrs
    _verify_signature(t.signer, sp.signature, message, t.sig_alg, t.hash_name)
    return t.signer


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
    Exactly one signer is accepted. Raises PkiError saying what failed, also for bytes that
    the parsers reject in ways of their own (a signer certificate whose subject does not
    parse, an unknown X.509 version): the signature and its certificates are untrusted.
    """
    try:
        return _verify_detached(sig_der, data, trusted_roots, now, usage, intermediates)
    except MALFORMED_INPUT_ERRORS as exc:
        raise PkiError(f"malformed CMS signature: {type(exc).__name__}: {exc}") from None


def _verify_detached(
    sig_der: bytes,
    data: bytes,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    usage: Usage,
    intermediates: Sequence[x509.Certificate],
) -> x509.Certificate:
    sp = _split(sig_der)
    if sp is not None:
        signer = _verify_fast(sp, data, trusted_roots, now, usage, intermediates)
        if signer is not None:
            _templates.move_to_end(sp.template)
            return signer
    signer, info, content_type, chain = _verify_full(
        sig_der, data, trusted_roots=trusted_roots, now=now, usage=usage,
        intermediates=intermediates,
    )  # fmt: skip
    if sp is not None:
        _remember(sp, info, content_type, chain, trusted_roots, intermediates, usage)
    return signer


def _remember(
    sp: _Split,
    info: cms.SignerInfo,
    content_type: bytes,
    chain: tuple[x509.Certificate, ...],
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    usage: str,
) -> None:
    _templates[sp.template] = _Template(
        content_type_tlv=content_type,
        hash_name=info["digest_algorithm"]["algorithm"].native,
        sig_alg=info["signature_algorithm"],
        signer=chain[0],
        roots=tuple(trusted_roots),
        intermediates=tuple(intermediates),
        usage=usage,
        valid_from=max(c.not_valid_before_utc.timestamp() for c in chain),
        valid_to=min(c.not_valid_after_utc.timestamp() for c in chain),
    )
    if len(_templates) > _TEMPLATE_CACHE_MAX:
        _templates.popitem(last=False)


def _verify_full(
    sig_der: bytes,
    data: bytes,
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    usage: Usage = "sign",
    intermediates: Sequence[x509.Certificate] = (),
) -> tuple[x509.Certificate, cms.SignerInfo, bytes, tuple[x509.Certificate, ...]]:
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
    chain = verify_chain(signer, others, trusted_roots, now, usage)
    return signer, info, encap["content_type"].dump(), chain
