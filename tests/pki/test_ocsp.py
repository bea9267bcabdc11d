"""OCSP responder core and client checks (no sockets; see test_servers.py for HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from federation.errors import PkiError
from federation.pki import (
    CertificateAuthority,
    OcspResponder,
    OcspStaleError,
    build_ocsp_request,
    check_ocsp_response,
)

from .conftest import Pki, openssl


def responder(pki: Pki, **kw: float) -> OcspResponder:
    return OcspResponder(pki.ca, pki.ocsp, **kw)


def ask(r: OcspResponder, pki: Pki, now: float, **kw: object) -> bytes:
    return r.respond(build_ocsp_request(pki.sign.cert, pki.ca.issuer, **kw), now)  # type: ignore[arg-type]


def check(pki: Pki, der: bytes, now: float, **kw: object) -> object:
    return check_ocsp_response(der, pki.sign.cert, pki.ca.issuer, now=now, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("hash_alg", ["sha1", "sha256", "sha384", "sha512"])
def test_good_revoked_and_back(pki: Pki, now: float, hash_alg: str) -> None:
    r = responder(pki)
    st = check_ocsp_response(
        ask(r, pki, now, hash_alg=hash_alg), pki.sign.cert, pki.ca.issuer, now=now
    )
    assert st.status == "good"
    assert st.good
    assert st.this_update == int(now)
    assert st.next_update == int(now + 3600)
    assert st.revocation_time is None
    r.revoke(pki.sign.cert, now - 10, "keyCompromise")
    resp = ask(r, pki, now, hash_alg=hash_alg)
    parsed = ocsp.load_der_ocsp_response(resp)
    assert parsed.hash_algorithm.name == hash_alg  # echoed CertID algorithm
    assert parsed.certificates == [pki.ocsp.cert]  # delegated responder embedded
    st = check_ocsp_response(resp, pki.sign.cert, pki.ca.issuer, now=now)
    assert (st.status, st.revocation_time, st.reason) == ("revoked", int(now - 10), "keyCompromise")
    assert r.unrevoke(pki.sign.cert.serial_number)
    assert not r.unrevoke(pki.sign.cert.serial_number)
    assert check_ocsp_response(ask(r, pki, now), pki.sign.cert, pki.ca.issuer, now=now).good


def test_unknown_serial_and_foreign_issuer(pki_ec: Pki, pki_foreign: Pki, now: float) -> None:
    r = responder(pki_ec)
    # a serial this CA never issued (its twin with a separate registry issued it)
    twin = CertificateAuthority("EE", pki_ec.ca.root, pki_ec.ca.intermediate)
    stray = twin.issue_sign(pki_ec.member_id, now=now).cert
    req = build_ocsp_request(stray, pki_ec.ca.issuer)
    st = check_ocsp_response(r.respond(req, now), stray, pki_ec.ca.issuer, now=now)
    assert st.status == "unknown"
    # a CertID about another CA's certificate
    req = build_ocsp_request(pki_foreign.sign.cert, pki_foreign.ca.issuer)
    parsed = ocsp.load_der_ocsp_response(r.respond(req, now))
    assert parsed.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert r.status_of(pki_ec.auth.cert.serial_number) == "good"
    assert r.status_of(12345) == "unknown"


def test_nonce_is_echoed(pki_ec: Pki, now: float) -> None:
    r = responder(pki_ec)
    resp = ask(r, pki_ec, now, nonce=b"0123456789abcdef")
    check(pki_ec, resp, now, nonce=b"0123456789abcdef")
    with pytest.raises(PkiError, match="nonce"):
        check(pki_ec, ask(r, pki_ec, now), now, nonce=b"0123456789abcdef")


@pytest.mark.parametrize(
    "bad", [b"", b"\x30\x00", b"not der at all", b"\x30\x82\xff\xff" + b"\x00" * 10]
)
def test_malformed_request(pki_ec: Pki, now: float, bad: bytes) -> None:
    resp = responder(pki_ec).respond(bad, now)
    assert ocsp.load_der_ocsp_response(resp).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    with pytest.raises(PkiError, match="answered MALFORMED_REQUEST"):
        check(pki_ec, resp, now)


def test_truncated_request(pki_ec: Pki, now: float) -> None:
    req = build_ocsp_request(pki_ec.sign.cert, pki_ec.ca.issuer)
    resp = responder(pki_ec).respond(req[:-3], now)
    assert ocsp.load_der_ocsp_response(resp).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_stale_and_next_update(pki_ec: Pki, now: float) -> None:
    now = float(int(now))
    resp = ask(responder(pki_ec, validity_s=1200), pki_ec, now)
    check(pki_ec, resp, now + 1200, freshness_s=3600)
    with pytest.raises(OcspStaleError, match="past its nextUpdate") as err:
        check(pki_ec, resp, now + 1201, freshness_s=3600)
    assert err.value.next_update == int(now) + 1200
    check(pki_ec, resp, now + 1201, freshness_s=3600, verify_next_update=False)
    with pytest.raises(OcspStaleError, match="stale: thisUpdate is 3601 s old"):
        check(pki_ec, resp, int(now) + 3601, freshness_s=3600, verify_next_update=False)
    early = ask(responder(pki_ec), pki_ec, now + 400)
    with pytest.raises(PkiError, match="400 s in the future"):
        check(pki_ec, early, now)


def test_signature_and_responder_checks(pki_ec: Pki, pki_foreign: Pki, now: float) -> None:
    # a responder certified by another CA
    foreign = OcspResponder(pki_ec.ca, pki_foreign.ocsp)
    with pytest.raises(PkiError, match="is not issued by"):
        check(pki_ec, ask(foreign, pki_ec, now), now)
    # a certificate of our CA without OCSPSigning
    no_eku = OcspResponder(pki_ec.ca, pki_ec.auth)
    with pytest.raises(PkiError, match="no OCSPSigning EKU"):
        check(pki_ec, ask(no_eku, pki_ec, now), now)
    # the CA itself may sign (RFC 6960 4.2.2.2 case 1)
    by_ca = OcspResponder(pki_ec.ca, pki_ec.ca.intermediate)
    assert check(pki_ec, ask(by_ca, pki_ec, now), now)
    # a tampered signature
    resp = bytearray(ask(responder(pki_ec), pki_ec, now))
    sig_at = bytes(resp).find(ocsp.load_der_ocsp_response(bytes(resp)).signature)
    resp[sig_at + 10] ^= 0x40
    with pytest.raises(PkiError, match=r"signature .* does not verify"):
        check(pki_ec, bytes(resp), now)
    # an answer about another certificate
    other = responder(pki_ec).respond(build_ocsp_request(pki_ec.auth.cert, pki_ec.ca.issuer), now)
    with pytest.raises(PkiError, match="is not about"):
        check(pki_ec, other, now)
    with pytest.raises(PkiError, match="malformed OCSP response"):
        check(pki_ec, b"junk", now)


def test_revoke_arguments(pki_ec: Pki, pki_foreign: Pki, now: float) -> None:
    r = responder(pki_ec)
    rev = r.revoke(17, now, "key_compromise")
    assert (rev.serial, rev.reason) == (17, "keyCompromise")
    assert r.revoke(18, now, "cessationOfOperation").reason == "cessationOfOperation"
    assert [x.serial for x in r.revocations()] == [17, 18]
    with pytest.raises(PkiError, match="unknown revocation reason"):
        r.revoke(19, now, "because")
    with pytest.raises(PkiError, match="removeFromCRL"):
        r.revoke(19, now, "removeFromCRL")
    with pytest.raises(PkiError, match="was not issued by"):
        r.revoke(pki_foreign.sign.cert, now)


def test_openssl_request_and_verify(pki: Pki, now: float, tmp_path: Path) -> None:
    """openssl builds the request (SHA-256 CertID, nonce) and verifies our response."""
    req, resp = tmp_path / "req.der", tmp_path / "resp.der"
    common = ["-issuer", pki.path("intermediate.pem"), "-sha256", "-cert", pki.path("sign.pem")]
    r = openssl("ocsp", *common, "-reqout", str(req))
    assert r.returncode == 0, r.stderr
    o = responder(pki)
    o.revoke(pki.sign.cert, now - 60, "superseded")
    resp.write_bytes(o.respond(req.read_bytes(), now))
    # a fresh openssl run would make a new nonce: check the response without one
    verify = ["-no_nonce", "-respin", str(resp), "-CAfile", pki.path("root.pem")]
    r = openssl("ocsp", *common, *verify)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Response verify OK" in out
    assert "revoked" in out
    assert "Reason: superseded" in out
    parsed = ocsp.load_der_ocsp_response(resp.read_bytes())
    assert parsed.public_bytes(serialization.Encoding.DER) == resp.read_bytes()


def _edited_request(pki: Pki, edit: Callable[[Any], None]) -> bytes:
    """A request for ``pki.sign.cert`` with ``edit`` applied to its asn1crypto requestList."""
    from asn1crypto import ocsp as asn1_ocsp

    req = asn1_ocsp.OCSPRequest.load(build_ocsp_request(pki.sign.cert, pki.ca.issuer))
    edit(req["tbs_request"]["request_list"])
    return req.dump(force=True)


@pytest.mark.parametrize("field", ["issuer_name_hash", "issuer_key_hash"])
def test_cert_id_hash_of_wrong_length_is_malformed(pki_ec: Pki, now: float, field: str) -> None:
    def shorten(requests: Any) -> None:
        requests[0]["req_cert"][field] = b"\x01" * 5

    resp = responder(pki_ec).respond(_edited_request(pki_ec, shorten), now)
    assert ocsp.load_der_ocsp_response(resp).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_request_for_several_certificates_is_malformed(pki_ec: Pki, now: float) -> None:
    """Documented in docs/pki.md: one certificate per request, as X-Road asks."""
    from asn1crypto import ocsp as asn1_ocsp

    def twice(requests: Any) -> None:
        requests.append(asn1_ocsp.Request.load(requests[0].dump()))

    der = _edited_request(pki_ec, twice)
    assert len(asn1_ocsp.OCSPRequest.load(der)["tbs_request"]["request_list"]) == 2
    resp = responder(pki_ec).respond(der, now)
    assert ocsp.load_der_ocsp_response(resp).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_negative_serial_is_malformed(pki_ec: Pki, now: float) -> None:
    from asn1crypto import core

    def negate(requests: Any) -> None:
        requests[0]["req_cert"]["serial_number"] = core.Integer(-5)

    resp = responder(pki_ec).respond(_edited_request(pki_ec, negate), now)
    assert ocsp.load_der_ocsp_response(resp).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
