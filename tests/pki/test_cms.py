from __future__ import annotations

from pathlib import Path

import pytest

from federation.errors import PkiError
from federation.pki import cms_sign_detached, cms_verify_detached
from federation.pki._keys import describe

from .conftest import Pki, openssl

DATA = b"signed global configuration\r\nline two\n\x00binary\xff tail"


def sign(pki: Pki, data: bytes = DATA, hash_alg: str = "sha256") -> bytes:
    return cms_sign_detached(
        data, pki.sign.cert, pki.sign.key, [pki.ca.intermediate.cert], hash_alg=hash_alg
    )


@pytest.mark.parametrize("hash_alg", ["sha256", "sha512"])
def test_openssl_cms_verifies_our_signature(pki: Pki, tmp_path: Path, hash_alg: str) -> None:
    (tmp_path / "data").write_bytes(DATA)
    (tmp_path / "sig.der").write_bytes(sign(pki, hash_alg=hash_alg))
    r = openssl(
        "cms", "-verify", "-binary", "-content", str(tmp_path / "data"), "-inform", "DER",
        "-in", str(tmp_path / "sig.der"), "-CAfile", pki.path("root.pem"), "-out", "/dev/null",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "CMS Verification successful" in r.stderr


def test_openssl_cms_rejects_tampered_data(pki_ec: Pki, tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(DATA + b"!")
    (tmp_path / "sig.der").write_bytes(sign(pki_ec))
    r = openssl(
        "cms", "-verify", "-binary", "-content", str(tmp_path / "data"), "-inform", "DER",
        "-in", str(tmp_path / "sig.der"), "-CAfile", pki_ec.path("root.pem"), "-out", "/dev/null",
    )  # fmt: skip
    assert r.returncode != 0


def test_we_verify_our_signature(pki: Pki, now: float) -> None:
    for hash_alg in ("sha256", "sha384", "sha512"):
        signer = cms_verify_detached(
            sign(pki, hash_alg=hash_alg), DATA, trusted_roots=[pki.ca.root.cert], now=now
        )
        assert signer == pki.sign.cert


def test_we_verify_openssl_signatures(pki: Pki, now: float, tmp_path: Path) -> None:
    openssl_sign_and_verify(pki, now, tmp_path, pss=False)


def test_we_verify_openssl_rsa_pss_signatures(pki_rsa: Pki, now: float, tmp_path: Path) -> None:
    openssl_sign_and_verify(pki_rsa, now, tmp_path, pss=True)


def openssl_sign_and_verify(pki: Pki, now: float, tmp_path: Path, *, pss: bool) -> None:
    (tmp_path / "data").write_bytes(DATA)
    extra = ["-keyopt", "rsa_padding_mode:pss"] if pss else []
    r = openssl(
        "cms", "-sign", "-binary", "-in", str(tmp_path / "data"),
        "-signer", pki.path("sign.pem"), "-inkey", pki.path("sign.key"),
        "-certfile", pki.path("intermediate.pem"), "-outform", "DER",
        "-out", str(tmp_path / "sig.der"), *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    sig = (tmp_path / "sig.der").read_bytes()
    assert cms_verify_detached(sig, DATA, trusted_roots=[pki.ca.root.cert], now=now) == (
        pki.sign.cert
    )
    with pytest.raises(PkiError, match="messageDigest does not match"):
        cms_verify_detached(sig, DATA[:-1], trusted_roots=[pki.ca.root.cert], now=now)


def test_rejects_tampered_data(pki: Pki, now: float) -> None:
    with pytest.raises(PkiError, match="messageDigest does not match the content"):
        cms_verify_detached(sign(pki), DATA + b"x", trusted_roots=[pki.ca.root.cert], now=now)


def test_rejects_tampered_signature(pki_ec: Pki, now: float) -> None:
    sig = bytearray(sign(pki_ec))
    # the signature value is the last element; flip a bit inside it
    sig[-5] ^= 0x01
    with pytest.raises(PkiError, match=r"does not verify|malformed"):
        cms_verify_detached(bytes(sig), DATA, trusted_roots=[pki_ec.ca.root.cert], now=now)


def test_rejects_wrong_trust_anchor(pki_ec: Pki, pki_foreign: Pki, now: float) -> None:
    with pytest.raises(PkiError, match="does not chain to a trusted root"):
        cms_verify_detached(sign(pki_foreign), DATA, trusted_roots=[pki_ec.ca.root.cert], now=now)


def test_rejects_wrong_signer_usage(pki_ec: Pki, now: float) -> None:
    sig = cms_sign_detached(DATA, pki_ec.auth.cert, pki_ec.auth.key, [pki_ec.ca.intermediate.cert])
    roots = [pki_ec.ca.root.cert]
    with pytest.raises(PkiError, match="not a signing certificate"):
        cms_verify_detached(sig, DATA, trusted_roots=roots, now=now)
    assert cms_verify_detached(sig, DATA, trusted_roots=roots, now=now, usage="any") == (
        pki_ec.auth.cert
    )


def test_rejects_expired_signer(pki_ec: Pki, now: float) -> None:
    with pytest.raises(PkiError, match="not valid at"):
        cms_verify_detached(
            sign(pki_ec), DATA, trusted_roots=[pki_ec.ca.root.cert], now=now + 5 * 365 * 86400
        )


def test_missing_intermediate_can_be_supplied(pki_ec: Pki, now: float) -> None:
    sig = cms_sign_detached(DATA, pki_ec.sign.cert, pki_ec.sign.key)
    roots = [pki_ec.ca.root.cert]
    with pytest.raises(PkiError, match="does not chain"):
        cms_verify_detached(sig, DATA, trusted_roots=roots, now=now)
    inter = [pki_ec.ca.intermediate.cert]
    assert cms_verify_detached(sig, DATA, trusted_roots=roots, now=now, intermediates=inter)


@pytest.mark.parametrize("bad", [b"", b"\x30\x03\x02\x01", b"garbage" * 10, b"truncate"])
def test_rejects_malformed(pki_ec: Pki, now: float, bad: bytes) -> None:
    if bad == b"truncate":
        bad = sign(pki_ec)[:-20]
    with pytest.raises(PkiError, match="malformed"):
        cms_verify_detached(bad, DATA, trusted_roots=[pki_ec.ca.root.cert], now=now)


def test_rejects_signed_data_with_wrong_content_type(pki_ec: Pki, now: float) -> None:
    from asn1crypto import cms

    wrong = cms.ContentInfo({"content_type": "data", "content": b"x"}).dump()
    with pytest.raises(PkiError, match="not signedData"):
        cms_verify_detached(wrong, DATA, trusted_roots=[pki_ec.ca.root.cert], now=now)


def _corrupt_signer_subject(pki: Pki) -> bytes:
    """A signature whose embedded signer certificate has a subject that does not parse
    (``O`` is a UTF8String that is not UTF-8): the certificate loads (cryptography parses
    names lazily), reading its subject raises."""
    sig = sign(pki)
    subject = pki.sign.cert.subject.public_bytes()
    org = bytes.fromhex("0c03") + b"GOV"  # UTF8String "GOV"
    assert subject in sig
    assert org in subject
    return sig.replace(subject, subject.replace(org, org[:-2] + b"\xffV"))


def test_signer_with_unparsable_subject_is_a_pki_error(pki_ec: Pki, now: float) -> None:
    from federation.pki._cms import embedded_certificates, parse_signed_data

    bad = _corrupt_signer_subject(pki_ec)
    cert = next(
        c
        for c in embedded_certificates(parse_signed_data(bad, "test"))
        if c.serial_number == pki_ec.sign.cert.serial_number
    )
    with pytest.raises(ValueError):
        cert.subject  # noqa: B018 - the premise: cryptography raises on reading it
    assert describe(cert) == f"'<unparsable subject>' (serial {cert.serial_number:#x})"
    with pytest.raises(PkiError, match="unparsable subject"):
        cms_verify_detached(bad, DATA, trusted_roots=[pki_ec.ca.root.cert], now=now)


def test_embedded_certificate_of_unknown_version_is_a_pki_error(pki_ec: Pki, now: float) -> None:
    sig = sign(pki_ec)
    version_v3 = bytes.fromhex("a003020102")
    assert version_v3 in sig
    bad = sig.replace(version_v3, bytes.fromhex("a00302015e"), 1)
    with pytest.raises(PkiError, match="malformed"):
        cms_verify_detached(bad, DATA, trusted_roots=[pki_ec.ca.root.cert], now=now)


def test_embedded_certificate_with_negative_serial_is_a_pki_error(pki_ec: Pki, now: float) -> None:
    """RFC 5280 wants positive serials; cryptography only warns about others (for now)."""
    sig = sign(pki_ec)
    serial = pki_ec.sign.cert.serial_number
    encoded = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    tlv = bytes([0x02, len(encoded)]) + encoded
    assert tlv in sig
    negative = bytes([0x02, len(encoded), 0x80 | encoded[0]]) + encoded[1:]
    with pytest.raises(PkiError, match="malformed certificate in signature"):
        cms_verify_detached(
            sig.replace(tlv, negative, 1), DATA, trusted_roots=[pki_ec.ca.root.cert], now=now
        )
