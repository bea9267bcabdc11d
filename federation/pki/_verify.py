"""Certificate path validation (RFC 5280 section 6) plus X-Road key-usage rules.

Path building and validation are delegated to ``cryptography.x509.verification`` with a
permissive end-entity extension policy (X-Road client and signing certificates carry no SAN,
which the webpki default requires; feasibility.md Q1); what a certificate may be used for
is checked here, with messages that say which rule failed. Revocation is not checked here:
that is what OCSP is for (:mod:`federation.pki._ocsp`).

Successful validations are cached per (leaf, intermediates, roots) together with the time
window in which the chain is valid, so verifying a message signature does not re-validate
the same chain every time (~0.3 ms saved per call).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from federation.clock import to_datetime
from federation.errors import PkiError
from federation.pki._keys import describe, name_text

Usage: TypeAlias = Literal["auth", "sign", "tsa", "ocsp", "any"]
USAGES: tuple[str, ...] = ("auth", "sign", "tsa", "ocsp", "any")

_CACHE_MAX = 4096
_CacheKey: TypeAlias = tuple[
    x509.Certificate, tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]
]
_cache: OrderedDict[_CacheKey, tuple[float, float, tuple[x509.Certificate, ...]]] = OrderedDict()


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def check_usage(cert: x509.Certificate, usage: Usage) -> None:
    """Raise PkiError unless ``cert`` may be used for ``usage``.

    * ``auth``: EKU serverAuth or clientAuth (TLS between security servers, xroad.md 3);
    * ``sign``: keyUsage nonRepudiation (X-Road message and configuration signatures);
    * ``tsa``: critical EKU timeStamping and nothing else (RFC 3161 section 2.3);
    * ``ocsp``: EKU OCSPSigning (RFC 6960 section 4.2.2.2);
    * ``any``: no constraint.
    """
    if usage == "any":
        return
    eku_ext = _ext(cert, x509.ExtendedKeyUsage)
    eku: list[x509.ObjectIdentifier] = list(eku_ext.value) if eku_ext else []
    ku_ext = _ext(cert, x509.KeyUsage)
    ku: x509.KeyUsage | None = ku_ext.value if ku_ext else None
    if usage == "auth":
        if not (ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.SERVER_AUTH in eku):
            raise PkiError(f"{describe(cert)} is not an auth certificate: no TLS EKU")
        if ku is not None and not ku.digital_signature:
            raise PkiError(f"{describe(cert)} is not an auth certificate: no digitalSignature")
    elif usage == "sign":
        if ku is None or not ku.content_commitment:
            raise PkiError(f"{describe(cert)} is not a signing certificate: no nonRepudiation")
    elif usage == "tsa":
        if eku_ext is None or eku != [ExtendedKeyUsageOID.TIME_STAMPING]:
            raise PkiError(f"{describe(cert)} is not a TSA certificate: EKU must be timeStamping")
        if not eku_ext.critical:
            raise PkiError(f"{describe(cert)} is not a TSA certificate: EKU is not critical")
    elif usage == "ocsp":
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise PkiError(f"{describe(cert)} is not an OCSP responder: no OCSPSigning EKU")
    else:
        raise PkiError(f"unknown certificate usage {usage!r} (expected one of {USAGES})")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    usage: Usage = "any",
) -> tuple[x509.Certificate, ...]:
    """Validate ``leaf`` up to one of ``trusted_roots`` at time ``now`` for ``usage``.

    Returns the chain, leaf first and root last. Raises PkiError saying why not: wrong
    usage, outside its validity period, or no path to a trusted root.
    """
    check_usage(leaf, usage)
    key = (leaf, tuple(intermediates), tuple(trusted_roots))
    hit = _cache.get(key)
    if hit is not None and hit[0] <= now <= hit[1]:
        _cache.move_to_end(key)
        return hit[2]
    if not trusted_roots:
        raise PkiError(f"cannot verify {describe(leaf)}: no trusted roots given")
    for cert in (leaf, *intermediates):
        if cert in trusted_roots:
            continue
        if not (cert.not_valid_before_utc <= to_datetime(now) <= cert.not_valid_after_utc):
            raise PkiError(
                f"{describe(cert)} is not valid at {to_datetime(now):%Y-%m-%dT%H:%M:%SZ} "
                f"(valid {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
                f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
            )
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(trusted_roots)))
            .time(to_datetime(now))
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        chain = tuple(verifier.verify(leaf, list(intermediates)).chain)
    except verification.VerificationError as exc:
        roots = "; ".join(name_text(r, "subject") for r in trusted_roots)
        raise PkiError(
            f"{describe(leaf)} (issuer '{name_text(leaf, 'issuer')}') does not chain to a "
            f"trusted root [{roots}]: {exc}"
        ) from None
    start = max(c.not_valid_before_utc.timestamp() for c in chain)
    end = min(c.not_valid_after_utc.timestamp() for c in chain)
    _cache[key] = (start, end, chain)
    if len(_cache) > _CACHE_MAX:
        _cache.popitem(last=False)
    return chain
