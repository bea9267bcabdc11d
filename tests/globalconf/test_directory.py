"""Signed directory and parameters, sans-IO: round trip, tampering, anchors."""

from __future__ import annotations

import pytest

from federation.central import CentralFacts, ConfGenerator
from federation.errors import ConfigError, GlobalConfError
from federation.globalconf import (
    PRIVATE_PARAMETERS,
    SHARED_PARAMETERS,
    ApprovedCA,
    ApprovedTSA,
    ConfFile,
    ConfigurationAnchor,
    ConfSigningKey,
    OcspResponder,
    PrivateParameters,
    SharedParameters,
    build_signed_directory,
    parse_signed_directory,
    verify_signed_directory,
)
from tests.globalconf.fed import WALL0, facts_for, shipped

NOW = WALL0


@pytest.fixture(scope="module")
def keys() -> dict[str, ConfSigningKey]:
    return {
        name: ConfSigningKey.generate(name[:2], name[2:], now=NOW)
        for name in ("EEinternal", "EEexternal", "FIinternal", "FIexternal", "EEother")
    }


def generator(keys: dict[str, ConfSigningKey], inst: str = "EE") -> ConfGenerator:
    d = shipped()[inst]
    pem = keys["EEother"].cert_pem
    facts = CentralFacts(
        approved_cas=(
            ApprovedCA(
                name=f"{inst} test CA",
                top_ca_pem=pem,
                intermediate_pems=(pem,),
                ocsp=(OcspResponder(url="http://ocsp.test", cert_pem=pem),),
            ),
        ),
        approved_tsas=(ApprovedTSA(name="TSA", url="http://tsa.test", cert_pem=pem),),
        security_servers=facts_for(d).security_servers,
    )
    return ConfGenerator(
        d,
        facts,
        internal_key=keys[f"{inst}internal"],
        external_key=keys[f"{inst}external"],
        public_url=f"http://{inst.lower()}-cs.test",
    )


def test_parameters_round_trip(keys: dict[str, ConfSigningKey]) -> None:
    gen = generator(keys)
    shared = gen.shared_parameters()
    again = SharedParameters.from_bytes(shared.to_bytes())
    assert again == shared
    assert again.instance == "EE"
    ss = again.servers_hosting(again.members[0].id.__class__.parse("EE/GOV/70000001/rr"))
    assert [s.id.code for s in ss] == ["ee-ss1"]
    assert ss[0].address == "ee-ss1.test:5500"  # fixed-port-ok: a name, never bound
    assert again.global_settings.ocsp_freshness_s == 3600.0
    assert again.approved_cas[0].ocsp[0].url == "http://ocsp.test"
    gen.trust(gen.anchor("external", now=NOW))  # any anchor, just for the round trip
    private = gen.private_parameters()
    assert PrivateParameters.from_bytes(private.to_bytes()) == private


def test_shared_parameters_naming_another_instance_rejected(
    keys: dict[str, ConfSigningKey],
) -> None:
    data = generator(keys).shared_parameters().to_bytes().replace(b'"EE/GOV', b'"FI/GOV')
    with pytest.raises(GlobalConfError, match="name FI/GOV"):
        SharedParameters.from_bytes(data)
    with pytest.raises(GlobalConfError, match="not JSON"):
        SharedParameters.from_bytes(b"<xml/>")


def test_directory_round_trip_and_layout(keys: dict[str, ConfSigningKey]) -> None:
    gen = generator(keys).generate(NOW)
    assert gen.expire_date == NOW + 600
    ctype, body = gen.internal
    assert ctype.startswith("multipart/related; charset=UTF-8; boundary=")
    assert b'Content-identifier: SHARED-PARAMETERS; instance="EE"' in body
    assert b"Expire-date: 2023-11-14T22:23:20.000Z" in body
    d = parse_signed_directory(ctype, body)
    assert d.version == 5
    assert d.serial == gen.serial
    assert {e.content_identifier for e in d.entries} == {SHARED_PARAMETERS, PRIVATE_PARAMETERS}
    anchor = generator(keys).anchor("internal", now=NOW)
    assert verify_signed_directory(d, anchor=anchor, now=NOW + 599) == keys["EEinternal"].cert
    for e in d.entries:
        e.check(gen.files[e.location])
    ext = parse_signed_directory(*gen.external)
    assert [e.content_identifier for e in ext.entries] == [SHARED_PARAMETERS]
    # the internal key does not verify the external directory
    with pytest.raises(GlobalConfError, match="not in the anchor"):
        verify_signed_directory(ext, anchor=anchor, now=NOW)


def _flip(body: bytes, marker: bytes) -> bytes:
    i = body.index(marker) + len(marker) + 2
    return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]


def test_tampering_rejected(keys: dict[str, ConfSigningKey]) -> None:
    g = generator(keys)
    gen = g.generate(NOW)
    anchor = g.anchor("external", now=NOW)
    ctype, body = gen.external
    # one changed byte in the signed part: the hash line of the shared parameters entry
    bad = _flip(body, b"Hash-algorithm-id: http://www.w3.org/2001/04/xmlenc#sha512\r\n")
    d = parse_signed_directory(ctype, bad)
    with pytest.raises(GlobalConfError, match="signature does not verify"):
        verify_signed_directory(d, anchor=anchor, now=NOW)
    # one changed byte in the signature
    bad = _flip(body, b'hash-algorithm-id="http://www.w3.org/2001/04/xmlenc#sha512"\r\n')
    with pytest.raises(GlobalConfError):
        verify_signed_directory(parse_signed_directory(ctype, bad), anchor=anchor, now=NOW)
    # one changed byte in a file
    d = parse_signed_directory(ctype, body)
    entry = d.entry(SHARED_PARAMETERS)
    assert entry is not None
    data = bytearray(gen.files[entry.location])
    data[10] ^= 0x01
    with pytest.raises(GlobalConfError, match="does not match its hash"):
        entry.check(bytes(data))
    # expired
    with pytest.raises(GlobalConfError, match="expired"):
        verify_signed_directory(d, anchor=anchor, now=NOW + 600)
    # garbage
    with pytest.raises(GlobalConfError):
        parse_signed_directory(ctype, b"garbage")
    with pytest.raises(GlobalConfError, match="expected multipart/related"):
        parse_signed_directory("text/plain", body)


# cryptography warns (it does not raise) when a parsed name has, say, a 33-byte countryName
@pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")
def test_corrupted_directory_gives_only_conf_errors(keys: dict[str, ConfSigningKey]) -> None:
    """Every byte of a signed directory replaced by three seeded other values: parsing and
    verifying either succeed or raise GlobalConfError, never anything else (a corrupted
    download must not crash the configuration client; a fuzz run once found signer
    certificates whose subject does not parse, and an unknown X.509 version)."""
    import random

    g = generator(keys)
    anchor = g.anchor("external", now=NOW)
    ctype, body = g.generate(NOW).external
    rng = random.Random(20240607)
    rejected = 0
    for i in range(len(body)):
        for _ in range(3):
            bad = body[:i] + bytes([body[i] ^ rng.randrange(1, 256)]) + body[i + 1 :]
            try:
                verify_signed_directory(parse_signed_directory(ctype, bad), anchor=anchor, now=NOW)
            except GlobalConfError:
                rejected += 1
    assert rejected > 2 * len(body)  # most corruptions are caught


def test_wrong_signer_and_wrong_instance(keys: dict[str, ConfSigningKey]) -> None:
    anchor = generator(keys).anchor("external", now=NOW)
    files = [
        ConfFile(content_identifier=SHARED_PARAMETERS, instance="EE", location="/x", data=b"{}")
    ]
    ctype, body = build_signed_directory(
        files, expire_date=NOW + 600, serial=1, signer=keys["EEother"]
    )
    with pytest.raises(GlobalConfError, match="not in the anchor"):
        verify_signed_directory(parse_signed_directory(ctype, body), anchor=anchor, now=NOW)
    # a signature by another key, but a forged Verification-certificate-hash header
    good_hash = parse_signed_directory(
        *build_signed_directory(files, expire_date=NOW + 600, serial=1, signer=keys["EEexternal"])
    ).verification_cert_hash
    forged = parse_signed_directory(
        ctype,
        body.replace(
            parse_signed_directory(ctype, body).verification_cert_hash.encode(),
            good_hash.encode(),
        ),
    )
    with pytest.raises(GlobalConfError, match="signature does not verify"):
        verify_signed_directory(forged, anchor=anchor, now=NOW)
    # a correct signature without the header: X-Road's client finds the certificate by it
    ctype, body = build_signed_directory(
        files, expire_date=NOW + 600, serial=1, signer=keys["EEexternal"]
    )
    start = body.index(b"Verification-certificate-hash: ")
    headerless = body[:start] + body[body.index(b"\r\n", start) + 2 :]
    with pytest.raises(GlobalConfError, match="no Verification-certificate-hash header"):
        parse_signed_directory(ctype, headerless)
    empty = body[:start] + b"X-Other: 1" + body[body.index(b"\r\n", start) :]
    with pytest.raises(GlobalConfError, match="no Verification-certificate-hash header"):
        parse_signed_directory(ctype, empty)
    # correctly signed, but listing another instance's file
    fi_files = [
        ConfFile(content_identifier=SHARED_PARAMETERS, instance="FI", location="/x", data=b"{}")
    ]
    d = parse_signed_directory(
        *build_signed_directory(
            fi_files, expire_date=NOW + 600, serial=1, signer=keys["EEexternal"]
        )
    )
    with pytest.raises(GlobalConfError, match="names instance 'FI'"):
        verify_signed_directory(d, anchor=anchor, now=NOW)


def test_anchor_file_round_trip_and_errors(keys: dict[str, ConfSigningKey]) -> None:
    anchor = generator(keys).anchor("external", now=NOW)
    again = ConfigurationAnchor.from_bytes(anchor.to_bytes())
    assert again == anchor
    assert again.sources[0].download_url == "http://ee-cs.test/externalconf"
    assert len(anchor.hash().split(":")) == 28  # SHA-224
    with pytest.raises(ConfigError, match=r"a\.json: invalid configuration anchor: not JSON"):
        ConfigurationAnchor.from_bytes(b"nope", file="a.json")
    with pytest.raises(ConfigError, match="missing 'instance_identifier'"):
        ConfigurationAnchor.from_json({"generated_at": "2024-01-01T00:00:00Z", "sources": []})
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        ConfigurationAnchor.from_json(
            {
                "instance_identifier": "EE",
                "generated_at": "2024-01-01T00:00:00Z",
                "sources": [{"download_url": "http://x", "verification_certs": ["junk"]}],
            }
        )


def test_time_scale_divides_expiry(keys: dict[str, ConfSigningKey]) -> None:
    import dataclasses

    g = generator(keys)
    g.definition = dataclasses.replace(g.definition, time_scale=60.0)
    gen = g.generate(NOW)
    assert gen.expire_date - gen.generated_at == pytest.approx(10.0)
    assert g.shared_parameters().global_settings.ocsp_freshness_s == pytest.approx(60.0)
    assert g.private_parameters().timestamping_interval_s == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://cs.test:99999/externalconf", "Port out of range"),
        ("http://cs.test:8o/externalconf", "could not be cast to integer"),
        ("http://[::1/externalconf", "Invalid IPv6 URL"),
        ("http://cs.test:0/externalconf", "port 0"),
        ("ftp://cs.test/externalconf", "scheme 'ftp' is not supported"),
        ("/externalconf", "scheme '' is not supported"),
        ("http://cs.test/external\nconf", "control characters"),
    ],
)
def test_anchor_with_a_bad_download_url_rejected(
    keys: dict[str, ConfSigningKey], url: str, why: str
) -> None:
    node = generator(keys).anchor("external", now=NOW).to_json()
    node["sources"][0]["download_url"] = url
    with pytest.raises(ConfigError) as err:
        ConfigurationAnchor.from_json(node, file="ee.json")
    text = str(err.value)
    assert text.startswith("ee.json: invalid configuration anchor: $.sources[0].download_url: ")
    assert why in text
    assert text.endswith(f"(expected http://HOST[:PORT]/PATH, found {url!r})")


@pytest.mark.parametrize(
    ("instance", "country"),
    [("X", None), ("1A", None), ("E1", None), ("FI-TEST", "FI"), ("ee", "EE"), ("A" * 32, "AA")],
)
def test_signing_key_for_any_instance_id(instance: str, country: str | None) -> None:
    """C= is the id's country code when it starts with two letters, absent otherwise (a
    one-character id once crashed the central server: cryptography wants 2-letter C)."""
    from cryptography.x509.oid import NameOID

    from federation.globalconf import AnchorSource

    key = ConfSigningKey.generate(instance, "internal", now=NOW)
    countries = key.cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    assert [a.value for a in countries] == ([country] if country else [])
    files = [
        ConfFile(content_identifier=SHARED_PARAMETERS, instance=instance, location="/x", data=b"")
    ]
    d = parse_signed_directory(
        *build_signed_directory(files, expire_date=NOW + 600, serial=1, signer=key)
    )
    anchor = ConfigurationAnchor(
        instance=instance,
        generated_at=NOW,
        sources=(
            AnchorSource(
                download_url="http://cs.test/internalconf", verification_certs=(key.cert_pem,)
            ),
        ),
    )
    assert verify_signed_directory(d, anchor=anchor, now=NOW) == key.cert
