from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509

from federation.errors import PkiError
from federation.identifiers import ClientId, SecurityServerId
from federation.pki import (
    CertificateAuthority,
    Credential,
    check_usage,
    identify,
    load_certs_pem,
    verify_chain,
)

from .conftest import Pki, build_pki, openssl

YEAR_S = 365 * 86400.0


@pytest.mark.parametrize(
    ("profile", "purpose"),
    [
        ("auth", "sslclient"),
        ("auth", "sslserver"),
        ("sign", "smimesign"),
        ("sign", "any"),
        ("tsa", "timestampsign"),
        ("ocsp", "ocsphelper"),
    ],
)
def test_openssl_verify_accepts_every_chain(pki: Pki, profile: str, purpose: str) -> None:
    r = openssl(
        "verify",
        "-CAfile",
        pki.path("root.pem"),
        "-untrusted",
        pki.path("intermediate.pem"),
        "-purpose",
        purpose,
        pki.path(f"{profile}.pem"),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith(": OK")


def test_openssl_rejects_wrong_purpose(pki_ec: Pki) -> None:
    r = openssl(
        "verify",
        "-CAfile",
        pki_ec.path("root.pem"),
        "-untrusted",
        pki_ec.path("intermediate.pem"),
        "-purpose",
        "timestampsign",
        pki_ec.path("auth.pem"),
    )
    assert r.returncode != 0
    assert "unsuitable certificate purpose" in r.stdout + r.stderr


def test_ca_bundle_verifies_fullchain(pki: Pki) -> None:
    r = openssl("verify", "-CAfile", pki.path("ca-bundle.pem"), pki.path("auth.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    bundle = load_certs_pem(pki.ca.ca_bundle_pem())
    assert bundle == [pki.ca.intermediate.cert, pki.ca.root.cert]
    assert load_certs_pem(pki.auth.fullchain_pem()) == [pki.auth.cert, pki.ca.intermediate.cert]


def test_distinct_names_per_instance(pki_ec: Pki, pki_rsa: Pki) -> None:
    assert pki_ec.ca.root.cert.subject.rfc4514_string() == (
        "CN=xfed EE Root CA,OU=EE,O=xfed test PKI,C=EE"
    )
    assert "CN=xfed FI Issuing CA" in pki_rsa.ca.intermediate.cert.subject.rfc4514_string()
    assert pki_ec.ca.key_type == "ec"
    assert pki_rsa.ca.key_type == "rsa"


def test_profiles(pki: Pki) -> None:
    auth = pki.auth.cert
    eku = auth.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH}
    ku = auth.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert ku.key_encipherment == (pki.ca.key_type == "rsa")
    san = auth.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    sign = pki.sign.cert
    assert sign.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        sign.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    inst = pki.ca.instance
    assert sign.subject.rfc4514_string() == (
        f"2.5.4.5={inst}/GOV/70000001,CN=70000001,O=GOV,C={inst}"
    )
    tsa_eku = pki.tsa.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert tsa_eku.critical
    assert list(tsa_eku.value) == [x509.ExtendedKeyUsageOID.TIME_STAMPING]
    pki.ocsp.cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    for cred in (pki.auth, pki.sign, pki.ocsp, pki.tsa):
        assert pki.ca.is_issued(cred.cert.serial_number)
    assert not pki.ca.is_issued(pki.ca.intermediate.cert.serial_number)


def test_identify_round_trips(pki: Pki) -> None:
    assert identify(pki.auth.cert) == pki.server_id
    assert identify(pki.sign.cert) == pki.member_id
    for cert in (pki.ocsp.cert, pki.tsa.cert, pki.ca.root.cert):
        with pytest.raises(PkiError, match="neither an X-Road auth nor a signing"):
            identify(cert)


def test_instance_id_that_is_not_a_country(now: float, tmp_path: os.PathLike[str]) -> None:
    ca = CertificateAuthority.create("EE-TEST", now=now)
    server = SecurityServerId.parse("EE-TEST/COM/1234567-8/ss.2")
    member = ClientId.parse("EE-TEST/COM/1234567-8")
    auth = ca.issue_auth(server, now=now)
    sign = ca.issue_sign(member, now=now)
    assert not auth.cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
    assert "CN=xfed EE-TEST Root CA" in ca.root.cert.subject.rfc4514_string()
    assert identify(auth.cert) == server
    assert identify(sign.cert) == member
    verify_chain(sign.cert, sign.chain, [ca.root.cert], now, "sign")


def test_issue_rejects_foreign_ids(pki_ec: Pki, now: float) -> None:
    with pytest.raises(PkiError, match="does not issue certificates for instance FI"):
        pki_ec.ca.issue_sign(ClientId.parse("FI/GOV/1"), now=now)
    with pytest.raises(PkiError, match="not subsystems"):
        pki_ec.ca.issue_sign(ClientId.parse("EE/GOV/1/sub"), now=now)


def test_save_and_load(pki_ec: Pki, now: float) -> None:
    ca = CertificateAuthority.load(pki_ec.dir)
    assert ca.instance == "EE"
    assert ca.root.cert == pki_ec.ca.root.cert
    assert ca.issued_serials == pki_ec.ca.issued_serials
    cred = Credential.load(pki_ec.dir, "auth")
    assert cred.cert == pki_ec.auth.cert
    assert cred.chain == (pki_ec.ca.intermediate.cert,)
    assert stat.S_IMODE(os.stat(pki_ec.dir / "auth.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pki_ec.dir / "root.key").st_mode) == 0o600
    with pytest.raises(PkiError, match="cannot read credential"):
        Credential.load(pki_ec.dir, "missing")
    with pytest.raises(PkiError, match="cannot load the CA"):
        CertificateAuthority.load(pki_ec.dir / "nowhere")


def test_loaded_ca_keeps_issuing(pki_ec: Pki, now: float, tmp_path: os.PathLike[str]) -> None:
    built = build_pki("EE", "ec", now, tmp_path)  # type: ignore[arg-type]
    ca = CertificateAuthority.load(tmp_path)
    sign = ca.issue_sign(ClientId.parse("EE/GOV/2"), now=now)
    assert sign.cert.issuer == built.ca.intermediate.cert.subject
    verify_chain(sign.cert, sign.chain, [built.ca.root.cert], now, "sign")


def test_verify_chain(pki: Pki, pki_foreign: Pki, now: float) -> None:
    inter = [pki.ca.intermediate.cert]
    roots = [pki.ca.root.cert]
    chain = verify_chain(pki.auth.cert, inter, roots, now, "auth")
    assert chain == (pki.auth.cert, pki.ca.intermediate.cert, pki.ca.root.cert)
    verify_chain(pki.sign.cert, inter, roots, now, "sign")
    verify_chain(pki.tsa.cert, inter, roots, now, "tsa")
    verify_chain(pki.ocsp.cert, inter, roots, now, "ocsp")
    with pytest.raises(PkiError, match="does not chain to a trusted root"):
        verify_chain(pki.auth.cert, inter, [pki_foreign.ca.root.cert], now, "auth")
    with pytest.raises(PkiError, match="does not chain to a trusted root"):
        verify_chain(pki.auth.cert, [], roots, now, "auth")
    with pytest.raises(PkiError, match="not valid at"):
        verify_chain(pki.auth.cert, inter, roots, now + 3 * YEAR_S, "auth")
    with pytest.raises(PkiError, match="not valid at"):
        verify_chain(pki.auth.cert, inter, roots, now - 3600, "auth")
    with pytest.raises(PkiError, match="no trusted roots"):
        verify_chain(pki.auth.cert, inter, [], now, "auth")


@pytest.mark.parametrize(
    ("profile", "bad_usage", "reason"),
    [
        ("auth", "sign", "no nonRepudiation"),
        ("sign", "auth", "no TLS EKU"),
        ("sign", "tsa", "EKU must be timeStamping"),
        ("auth", "ocsp", "no OCSPSigning"),
        ("ocsp", "tsa", "EKU must be timeStamping"),
    ],
)
def test_usage_mismatch(pki_ec: Pki, now: float, profile: str, bad_usage: str, reason: str) -> None:
    cert = getattr(pki_ec, profile).cert
    with pytest.raises(PkiError, match=reason):
        verify_chain(cert, [pki_ec.ca.intermediate.cert], [pki_ec.ca.root.cert], now, bad_usage)  # type: ignore[arg-type]
    check_usage(cert, "any")
