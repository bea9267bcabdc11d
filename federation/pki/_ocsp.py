"""OCSP (RFC 6960): a sans-IO responder and the client-side checks X-Road makes.

The responder answers for one issuing CA (the instance's intermediate) and signs with a
delegated responder certificate (EKU OCSPSigning, RFC 6960 section 4.2.2.2) that it embeds
in every response, so ``openssl ocsp -issuer inter.pem -CAfile root.pem`` verifies it.

What :meth:`OcspResponder.respond` returns (section 2.2/2.3, 4.2.1):

* ``good``: the CA issued the serial and it is not revoked;
* ``revoked`` with revocationTime and CRLReason: revoked through :meth:`~OcspResponder.revoke`;
* ``unknown``: the serial was never issued, or the CertID names another issuer;
* ``malformedRequest`` (no signed body): the request does not parse, asks about more than one
  certificate (cryptography reads only single requests; X-Road sends one per request), uses a
  CertID hash algorithm other than SHA-1/SHA-2, its hashes have the wrong length, or its
  serial number is negative;
* ``internalError``: anything unexpected (never an exception).

The CertID hash algorithm of the request is echoed (``openssl ocsp`` defaults to SHA-1,
X-Road too) and so is a nonce. thisUpdate is ``now`` (whole seconds) and nextUpdate
``now + validity_s``. producedAt is set by cryptography from the real wall clock.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, final

from asn1crypto import keys
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from federation.clock import to_datetime
from federation.errors import PkiError
from federation.pki._issue import CertificateAuthority
from federation.pki._keys import Credential, describe, hash_algorithm
from federation.pki._verify import check_usage

CertStatus: TypeAlias = Literal["good", "revoked", "unknown"]
CERT_ID_HASHES = ("sha1", "sha224", "sha256", "sha384", "sha512")
MAX_FUTURE_SKEW_S = 300.0
"""A response whose thisUpdate lies further in the future than this is rejected."""


@functools.lru_cache(maxsize=256)
def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (what issuerKeyHash hashes, RFC 6960 4.1.1)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bytes(keys.PublicKeyInfo.load(spki)["public_key"])


@functools.lru_cache(maxsize=256)
def _cert_id_hashes(issuer: x509.Certificate, hash_name: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``issuer`` under ``hash_name``."""
    name = issuer.subject.public_bytes()
    return hashlib.new(hash_name, name).digest(), hashlib.new(hash_name, _key_bits(issuer)).digest()


def reason_flag(reason: str | x509.ReasonFlags) -> x509.ReasonFlags:
    """``"keyCompromise"`` / ``"key_compromise"`` / ReasonFlags -> ReasonFlags (RFC 5280 5.3.1)."""
    if isinstance(reason, x509.ReasonFlags):
        flag = reason
    else:
        try:
            flag = x509.ReasonFlags(reason)
        except ValueError:
            try:
                flag = x509.ReasonFlags[reason]
            except KeyError:
                names = ", ".join(f.value for f in x509.ReasonFlags if f.name != "remove_from_crl")
                raise PkiError(f"unknown revocation reason {reason!r} (one of {names})") from None
    if flag is x509.ReasonFlags.remove_from_crl:
        raise PkiError("removeFromCRL is not a revocation reason; use unrevoke")
    return flag


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked serial: when (POSIX seconds) and why (CRLReason name)."""

    serial: int
    time: float
    reason: str


@final
class OcspResponder:
    """Sans-IO OCSP responder for the certificates issued by ``ca.issuer``.

    ``responder`` is the delegated responder credential (or the intermediate itself).
    Revocations take effect on the next :meth:`respond`.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        responder: Credential,
        *,
        validity_s: float = 3600.0,
    ) -> None:
        self.ca = ca
        self.responder = responder
        self.validity_s = validity_s
        self._revoked: dict[int, Revocation] = {}
        self._hashes = {h: _cert_id_hashes(ca.issuer, h) for h in CERT_ID_HASHES}
        self._malformed = (
            ocsp.OCSPResponseBuilder()
            .build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
            .public_bytes(serialization.Encoding.DER)
        )
        self._internal_error = (
            ocsp.OCSPResponseBuilder()
            .build_unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
            .public_bytes(serialization.Encoding.DER)
        )

    # --- revocation state ------------------------------------------------------------

    def revoke(
        self,
        target: int | x509.Certificate,
        when: float,
        reason: str | x509.ReasonFlags = "keyCompromise",
    ) -> Revocation:
        """Mark a serial (or a certificate of this CA) revoked since ``when``.

        PkiError, and nothing stored, when ``when`` is not a finite time between the
        years 1 and 9999 (what a response's revocationTime can carry).
        """
        serial = self.serial_of(target)
        try:
            seconds = float(int(when))
            to_datetime(seconds)
        except (ValueError, OverflowError, OSError):
            raise PkiError(
                f"revocation time {when!r} is not a POSIX time of the years 1 to 9999"
            ) from None
        rev = Revocation(serial, seconds, reason_flag(reason).value)
        self._revoked[serial] = rev
        return rev

    def unrevoke(self, target: int | x509.Certificate) -> bool:
        """Restore a revoked serial to ``good`` (for chaos scenarios); False if it was not."""
        return self._revoked.pop(self.serial_of(target), None) is not None

    def revocations(self) -> list[Revocation]:
        return sorted(self._revoked.values(), key=lambda r: (r.time, r.serial))

    def status_of(self, serial: int) -> CertStatus:
        if serial in self._revoked:
            return "revoked"
        return "good" if self.ca.is_issued(serial) else "unknown"

    def serial_of(self, target: int | x509.Certificate) -> int:
        """The serial of ``target``; PkiError for a certificate of another issuer."""
        if isinstance(target, int):
            return target
        if target.issuer != self.ca.issuer.subject:
            raise PkiError(f"{describe(target)} was not issued by {describe(self.ca.issuer)}")
        return target.serial_number

    # --- protocol --------------------------------------------------------------------

    def respond(self, request_der: bytes, now: float) -> bytes:
        """One DER OCSPResponse for one DER OCSPRequest; never raises."""
        try:
            return self._respond(request_der, now)
        except Exception:
            return self._internal_error

    def _respond(self, request_der: bytes, now: float) -> bytes:
        try:
            req = ocsp.load_der_ocsp_request(request_der)
            alg = req.hash_algorithm
            hash_name = alg.name
            name_hash, key_hash, serial = (
                req.issuer_name_hash,
                req.issuer_key_hash,
                req.serial_number,
            )
            nonces = [e.value for e in req.extensions if isinstance(e.value, x509.OCSPNonce)]
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
            return self._malformed
        if hash_name not in self._hashes or not (
            len(name_hash) == len(key_hash) == alg.digest_size
        ):
            return self._malformed
        if serial < 0:  # RFC 5280 serials are positive; cryptography cannot echo it
            return self._malformed
        if (name_hash, key_hash) == self._hashes[hash_name]:
            status = self.status_of(serial)
        else:
            status = "unknown"
        this_update = to_datetime(float(int(now)))
        next_update = to_datetime(float(int(now + self.validity_s)))
        rev = self._revoked.get(serial) if status == "revoked" else None
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=serial,
            algorithm=alg,
            cert_status={
                "good": ocsp.OCSPCertStatus.GOOD,
                "revoked": ocsp.OCSPCertStatus.REVOKED,
                "unknown": ocsp.OCSPCertStatus.UNKNOWN,
            }[status],
            this_update=this_update,
            next_update=next_update,
            revocation_time=to_datetime(rev.time) if rev else None,
            revocation_reason=x509.ReasonFlags(rev.reason) if rev else None,
        )
        builder = builder.responder_id(
            ocsp.OCSPResponderEncoding.HASH, self.responder.cert
        ).certificates([self.responder.cert])
        if nonces:
            builder = builder.add_extension(nonces[0], critical=False)
        resp = builder.sign(self.responder.key, hashes.SHA256())
        return resp.public_bytes(serialization.Encoding.DER)


# --- client side -----------------------------------------------------------------------


def build_ocsp_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    hash_alg: str = "sha1",
    nonce: bytes | None = None,
) -> bytes:
    """A DER OCSPRequest for ``cert`` (RFC 6960 4.1.1). X-Road sends SHA-1 CertIDs and no
    nonce (it caches responses), hence the defaults."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hash_algorithm(hash_alg))
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True, kw_only=True)
class OcspStatus:
    """A verified OCSP answer about one certificate (times are POSIX seconds)."""

    status: CertStatus
    serial: int
    this_update: float
    next_update: float | None
    produced_at: float
    revocation_time: float | None = None
    reason: str | None = None

    @property
    def good(self) -> bool:
        return self.status == "good"


class OcspStaleError(PkiError):
    """Raised when a correctly signed OCSP response is too old (``now - thisUpdate`` over
    the freshness limit, X-Road ``ocspFreshnessSeconds``) or its nextUpdate has passed.
    Distinct from other PkiErrors so callers can refetch instead of failing the cert."""

    def __init__(self, message: str, *, this_update: float, next_update: float | None) -> None:
        super().__init__(message)
        self.this_update = this_update
        self.next_update = next_update


def _responder_matches(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if resp.responder_key_hash is not None:
        return hashlib.sha1(_key_bits(cert)).digest() == resp.responder_key_hash
    return resp.responder_name == cert.subject


def _verify_response_signature(resp: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = signer.public_key()
    h = resp.signature_hash_algorithm
    if h is None:
        raise PkiError("OCSP response signature algorithm has no hash")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(h))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), h)
        else:
            raise PkiError(f"unsupported OCSP responder key type in {describe(signer)}")
    except InvalidSignature:
        raise PkiError(f"OCSP response signature by {describe(signer)} does not verify") from None


_issued_by_cache: set[tuple[x509.Certificate, x509.Certificate]] = set()


def _check_delegated(signer: x509.Certificate, ca: x509.Certificate, now: float) -> None:
    """RFC 6960 4.2.2.2: the delegate is issued by the CA and carries id-kp-OCSPSigning."""
    if (signer, ca) not in _issued_by_cache:
        try:
            signer.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise PkiError(
                f"OCSP responder {describe(signer)} is not issued by {describe(ca)}"
            ) from None
        _issued_by_cache.add((signer, ca))
        if len(_issued_by_cache) > 1024:
            _issued_by_cache.clear()
    check_usage(signer, "ocsp")
    t = to_datetime(now)
    if not (signer.not_valid_before_utc <= t <= signer.not_valid_after_utc):
        raise PkiError(f"OCSP responder {describe(signer)} is not valid at {t:%Y-%m-%dT%H:%M:%SZ}")


def check_ocsp_response(
    response_der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: float,
    freshness_s: float = 3600.0,
    trusted_responder_issuer: x509.Certificate | None = None,
    verify_next_update: bool = True,
    nonce: bytes | None = None,
) -> OcspStatus:
    """Verify an OCSP response about ``cert`` the way an X-Road security server does.

    Checks: status successful; signed by ``issuer`` itself or by a delegated responder that
    ``trusted_responder_issuer`` (default ``issuer``) issued and that has OCSPSigning; the
    signature; a SingleResponse whose CertID matches ``cert``/``issuer``; freshness
    (``now - thisUpdate <= freshness_s``) and, with ``verify_next_update``, nextUpdate not
    passed (X-Road ``ocspFreshnessSeconds`` / ``verifyNextUpdate``, xroad.md 6); the
    ``nonce`` when given. Returns the status, which the caller maps (``revoked`` or
    ``unknown`` -> CertValidation). Raises :class:`OcspStaleError` for a stale response and
    PkiError for anything else.
    """
    try:
        resp = ocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        raise PkiError(f"malformed OCSP response: {exc}") from None
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise PkiError(f"OCSP responder answered {resp.response_status.name}")
    try:
        candidates: Sequence[x509.Certificate] = [*resp.certificates, issuer]
        signer = next((c for c in candidates if _responder_matches(resp, c)), None)
        if signer is None:
            raise PkiError("OCSP response signer is neither the CA nor an embedded certificate")
        if signer != issuer:
            _check_delegated(signer, trusted_responder_issuer or issuer, now)
        _verify_response_signature(resp, signer)
        single = None
        for s in resp.responses:
            alg = s.hash_algorithm.name
            if alg not in CERT_ID_HASHES or s.serial_number != cert.serial_number:
                continue
            if (s.issuer_name_hash, s.issuer_key_hash) == _cert_id_hashes(issuer, alg):
                single = s
                break
        if single is None:
            raise PkiError(f"OCSP response is not about {describe(cert)}")
        if nonce is not None:
            got = [e.value.nonce for e in resp.extensions if isinstance(e.value, x509.OCSPNonce)]
            if got != [nonce]:
                raise PkiError("OCSP response does not echo the request nonce")
        this_update = single.this_update_utc.timestamp()
        nu = single.next_update_utc
        next_update = nu.timestamp() if nu is not None else None
        status: CertStatus = {
            ocsp.OCSPCertStatus.GOOD: "good",
            ocsp.OCSPCertStatus.REVOKED: "revoked",
            ocsp.OCSPCertStatus.UNKNOWN: "unknown",
        }[single.certificate_status]  # type: ignore[assignment]
        rt = single.revocation_time_utc
        rr = single.revocation_reason
        produced_at = resp.produced_at_utc.timestamp()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"malformed OCSP response: {exc}") from None
    if this_update - now > MAX_FUTURE_SKEW_S:
        raise PkiError(
            f"OCSP response for {describe(cert)} has thisUpdate {this_update - now:.0f} s "
            "in the future"
        )
    age = now - this_update
    if age > freshness_s:
        raise OcspStaleError(
            f"OCSP response for {describe(cert)} is stale: thisUpdate is {age:.0f} s old "
            f"(freshness limit {freshness_s:.0f} s)",
            this_update=this_update,
            next_update=next_update,
        )
    if verify_next_update and next_update is not None and now > next_update:
        raise OcspStaleError(
            f"OCSP response for {describe(cert)} is past its nextUpdate by "
            f"{now - next_update:.0f} s",
            this_update=this_update,
            next_update=next_update,
        )
    return OcspStatus(
        status=status,
        serial=cert.serial_number,
        this_update=this_update,
        next_update=next_update,
        produced_at=produced_at,
        revocation_time=rt.timestamp() if rt is not None else None,
        reason=rr.value if rr is not None else None,
    )
