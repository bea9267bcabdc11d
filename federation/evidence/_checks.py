"""The checks shared by ``xfed evidence verify`` and ``audit``: each returns what it
established or raises :class:`CheckFailed` saying what did not hold.

All are synchronous and offline: bytes and trust in, no clock (the time a check is made
at is the message's signing time or the token's genTime).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms, core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from federation.errors import FederationError
from federation.identifiers import ClientId
from federation.pki import check_ocsp_response, identify, verify_chain, verify_ts_token
from federation.pki._cms import (
    embedded_certificates,
    find_signer,
    parse_signed_data,
    verify_signer_info,
)
from federation.pki._keys import describe
from federation.securityserver._messagelog import chain_step

TIME_SKEW_S = 5.0
"""Tolerance between a CMS signingTime (whole seconds) and a time-stamp's genTime."""


class CheckFailed(Exception):
    """Raised by a check that did not hold; ``str()`` says why."""


def failure_text(exc: BaseException) -> str:
    """A verdict message for any exception a check raised on untrusted bytes (lazy ASN.1
    parsers raise ValueError and friends late, e.g. when a field is first read)."""
    if isinstance(exc, CheckFailed | FederationError):
        return str(exc)
    return f"malformed data: {type(exc).__name__}: {exc}"


def _describe(cert: x509.Certificate) -> str:
    try:
        return describe(cert)
    except Exception:
        return "a malformed certificate"


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureInfo:
    """A parsed (not yet trusted) CMS signature."""

    signer: x509.Certificate
    embedded: tuple[x509.Certificate, ...]
    signing_time: float | None
    signer_info: cms.SignerInfo
    content_type: str


def parse_signature(signature: bytes) -> SignatureInfo:
    """The signer certificate, the embedded certificates and the signed signingTime."""
    try:
        signed = parse_signed_data(signature, "CMS signature")
        infos = signed["signer_infos"]
        if len(infos) != 1:
            raise CheckFailed(f"CMS signature has {len(infos)} signers, expected 1")
        info = infos[0]
        encap = signed["encap_content_info"]
        if not isinstance(encap["content"], core.Void):
            raise CheckFailed("CMS signature is not detached")
        _check_structure(signed, info, "CMS signature")
        certs = tuple(embedded_certificates(signed))
        signer = find_signer(info, certs)
        signing_time: float | None = None
        attrs = info["signed_attrs"]
        if not isinstance(attrs, core.Void):
            for attr in attrs:
                if attr["type"].native == "signing_time":
                    signing_time = float(attr["values"][0].native.timestamp())
        return SignatureInfo(
            signer=signer,
            embedded=certs,
            signing_time=signing_time,
            signer_info=info,
            content_type=str(encap["content_type"].native),
        )
    except CheckFailed:
        raise
    except FederationError as exc:
        raise CheckFailed(str(exc)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailed(f"malformed CMS signature: {type(exc).__name__}: {exc}") from None


def _check_structure(signed: cms.SignedData, info: cms.SignerInfo, what: str) -> None:
    """The unsigned fields around the signature agree with the signed ones: a changed
    version, digestAlgorithms set or signature algorithm is a tampered structure."""
    digest = info["digest_algorithm"]["algorithm"].native
    listed = [a.dump() for a in signed["digest_algorithms"]]
    if listed != [info["digest_algorithm"].dump()]:
        raise CheckFailed(f"{what}: digestAlgorithms do not match the signer's {digest}")
    if signed["version"].native not in ("v1", "v3"):
        raise CheckFailed(f"{what}: unexpected SignedData version {signed['version'].native}")
    sid_kind = info["sid"].name
    want = "v1" if sid_kind == "issuer_and_serial_number" else "v3"
    if info["version"].native != want:
        raise CheckFailed(f"{what}: SignerInfo version does not fit its signer identifier")
    try:
        sig_hash = info["signature_algorithm"].hash_algo
    except ValueError:
        sig_hash = digest  # e.g. plain "ecdsa"/"rsassa_pss": the digest algorithm applies
    if sig_hash != digest:
        raise CheckFailed(
            f"{what}: signature algorithm uses {sig_hash}, the digest algorithm is {digest}"
        )
    if not isinstance(info["unsigned_attrs"], core.Void) and len(info["unsigned_attrs"]):
        raise CheckFailed(f"{what}: unexpected unsigned attributes")


def check_cert_encoding(cert: x509.Certificate, what: str) -> None:
    """The certificate's (unsigned) signature BIT STRING declares no unused bits.

    Parsers accept ``03 len 01 ...`` and compare such a certificate equal to the original,
    so without this a flipped byte there would go unnoticed."""
    try:
        der = cert.public_bytes(serialization.Encoding.DER)
        raw = asn1_x509.Certificate.load(der)["signature_value"].contents
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckFailed(f"{what} embeds a malformed certificate: {exc}") from None
    if raw[:1] != b"\x00":
        raise CheckFailed(f"{what} embeds {_describe(cert)} with a non-DER signature field")


def check_embedded(
    embedded: Sequence[x509.Certificate], chain: Sequence[x509.Certificate], what: str
) -> None:
    """Every certificate embedded in a signature belongs to the validated chain."""
    for c in embedded:
        check_cert_encoding(c, what)
        if c not in chain:
            raise CheckFailed(f"{what} embeds {_describe(c)}, which is not in the signer's chain")


def check_signature_value(sig: SignatureInfo, signed_data: bytes) -> None:
    """The CMS signature (messageDigest and signature value) covers ``signed_data``."""
    try:
        verify_signer_info(sig.signer_info, sig.signer, signed_data, sig.content_type)
    except FederationError as exc:
        raise CheckFailed(str(exc)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailed(f"malformed CMS signature: {type(exc).__name__}: {exc}") from None


def signer_member(sig: SignatureInfo) -> ClientId:
    """The member a signing certificate stands for (X-Road signs with member keys)."""
    try:
        who = identify(sig.signer)
    except FederationError as exc:
        raise CheckFailed(f"signer certificate: {exc}") from None
    if not isinstance(who, ClientId):
        raise CheckFailed(f"{describe(sig.signer)} is an auth certificate, not a signing one")
    return who


def check_signer_chain(
    sig: SignatureInfo,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: float,
) -> tuple[x509.Certificate, ...]:
    """The signer chains to ``roots`` at ``at`` with nonRepudiation; returns the chain."""
    if not roots:
        raise CheckFailed("no trusted root for the signer's instance")
    others = [c for c in (*sig.embedded, *intermediates) if c != sig.signer]
    try:
        chain = verify_chain(sig.signer, others, roots, at, "sign")
    except FederationError as exc:
        raise CheckFailed(str(exc)) from None
    check_embedded(sig.embedded, chain, "the signature")
    return chain


def check_expected_signer(kind: str, member: ClientId, expected: ClientId | None) -> None:
    """Request: signed by the client's member; response: by the provider's member."""
    if expected is None:
        return
    if member != expected.member:
        who = "X-Road-Client" if kind == "request" else "service provider"
        raise CheckFailed(f"signed by {member}, but the {who} is {expected}")


def _responder_is(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if resp.responder_key_hash is not None:
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
        return ski.digest == resp.responder_key_hash
    return resp.responder_name == cert.subject


def _response_problem(
    i: int,
    der: bytes,
    issuer: x509.Certificate,
    approved_responders: Sequence[x509.Certificate] | None,
) -> str | None:
    """What is wrong with an OCSP response that ``check_ocsp_response`` accepted: a
    non-DER signature field or embedded certificate, or a responder not approved."""
    resp = ocsp.load_der_ocsp_response(der)
    try:
        basic = asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
        if basic["signature"].contents[:1] != b"\x00":
            raise CheckFailed(f"OCSP response {i}: the signature field is not DER")
        for c in resp.certificates:
            check_cert_encoding(c, f"OCSP response {i}")
    except CheckFailed as exc:
        return str(exc)
    if approved_responders is not None:
        if not (
            _responder_is(resp, issuer) or any(_responder_is(resp, c) for c in approved_responders)
        ):
            return f"response {i} is signed by a responder that is not approved for the CA"
    return None


def _revoked_by(
    i: int,
    der: bytes,
    *,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    at: float,
    approved_responders: Sequence[x509.Certificate] | None,
) -> str | None:
    """Why ``cert`` was revoked at ``at``, when response ``i`` authentically says so (a
    revocation time at or before ``at``), however old or new the response is: freshness
    matters for a GOOD answer, not for a proof of revocation."""
    try:
        issued = [r.this_update_utc.timestamp() for r in ocsp.load_der_ocsp_response(der).responses]
        status = check_ocsp_response(
            der,
            cert,
            issuer,
            now=max([at, *issued]),
            freshness_s=math.inf,
            trusted_responder_issuer=issuer,
            verify_next_update=False,
        )
        if _response_problem(i, der, issuer, approved_responders) is not None:
            return None
    except Exception:  # not an authentic answer about cert: the GOOD pass reports it
        return None
    when = status.revocation_time
    if status.status != "revoked" or when is None or when > at:
        return None
    return (
        f"response {i}: certificate is REVOKED since {_iso(when)} ({status.reason}), "
        f"at or before the signing time {_iso(at)}"
    )


def check_ocsp(
    responses: Sequence[bytes],
    *,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    at: float,
    freshness_s: float,
    approved_responders: Sequence[x509.Certificate] | None,
) -> str:
    """One of ``responses`` is about ``cert``, signed by the CA or an approved (or, without
    an approved list, a delegated) responder, GOOD and fresh at ``at`` (the signing time),
    and none of them (of any age) says ``cert`` was revoked at or before ``at``. Returns a
    description of the GOOD response that holds."""
    for i, der in enumerate(responses):
        revoked = _revoked_by(
            i, der, cert=cert, issuer=issuer, at=at, approved_responders=approved_responders
        )
        if revoked is not None:
            raise CheckFailed(revoked)
    errors: list[str] = []
    for i, der in enumerate(responses):
        try:
            status = check_ocsp_response(
                der, cert, issuer, now=at, freshness_s=freshness_s, trusted_responder_issuer=issuer
            )
        except FederationError as exc:
            if "is not about" in str(exc):
                continue
            errors.append(f"response {i}: {exc}")
            continue
        problem = _response_problem(i, der, issuer, approved_responders)
        if problem is not None:
            errors.append(problem)
            continue
        if status.status != "good":
            when = (
                f" since {_iso(status.revocation_time)} ({status.reason})"
                if status.revocation_time is not None
                else ""
            )
            errors.append(f"response {i}: certificate is {status.status.upper()}{when}")
            continue
        age = at - status.this_update
        return f"GOOD, thisUpdate {age:.0f} s before signing (limit {freshness_s:.0f} s)"
    if not errors:
        raise CheckFailed(f"no OCSP response about {describe(cert)}")
    raise CheckFailed("; ".join(errors))


def _iso(ts: float) -> str:
    from federation.clock import iso

    return iso(ts)


def check_hash_chain(
    signature: bytes,
    previous: bytes,
    steps: Sequence[bytes],
    stamped: bytes,
) -> None:
    """``steps[0]`` is SHA-512 of ``signature`` and folding the steps from ``previous``
    gives ``stamped``."""
    if not steps:
        raise CheckFailed("hash chain has no steps")
    if len(previous) != 64 or any(len(s) != 64 for s in steps) or len(stamped) != 64:
        raise CheckFailed("hash chain values must be 64-byte SHA-512 digests")
    if steps[0] != hashlib.sha512(signature).digest():
        raise CheckFailed("the first step is not SHA-512 of this message's signature")
    value = previous
    for s in steps:
        value = chain_step(value, s)
    if value != stamped:
        raise CheckFailed(
            f"folding the {len(steps)} step(s) does not give the time-stamped chain value"
        )


def tsa_signer(token: bytes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The TSA certificate and the certificates embedded in the token."""
    try:
        signed = parse_signed_data(token, "time-stamp token")
        info = signed["signer_infos"][0]
        _check_structure(signed, info, "time-stamp token")
        certs = embedded_certificates(signed)
        return find_signer(info, certs), certs
    except FederationError as exc:
        raise CheckFailed(str(exc)) from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckFailed(f"malformed time-stamp token: {exc}") from None


def check_timestamp(
    token: bytes,
    *,
    stamped: bytes,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    approved_tsas: Sequence[x509.Certificate] | None,
) -> float:
    """The token is a valid RFC 3161 token over ``stamped`` (SHA-512) by a TSA chaining to
    ``roots`` (and approved, when a list is given); returns genTime."""
    if not roots:
        raise CheckFailed("no trusted root for the time-stamping instance")
    try:
        gen_time = verify_ts_token(
            token,
            digest=stamped,
            hash_alg="sha512",
            trusted_roots=roots,
            intermediates=intermediates,
        )
    except FederationError as exc:
        raise CheckFailed(str(exc)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailed(f"malformed time-stamp token: {type(exc).__name__}: {exc}") from None
    signer, embedded = tsa_signer(token)
    try:
        others = [c for c in (*embedded, *intermediates) if c != signer]
        chain = verify_chain(signer, others, roots, gen_time, "tsa")
    except FederationError as exc:
        raise CheckFailed(str(exc)) from None
    check_embedded(embedded, chain, "the time-stamp token")
    if approved_tsas is not None:
        if signer not in approved_tsas:
            raise CheckFailed(f"time-stamp by {describe(signer)}, which is not an approved TSA")
    return gen_time
