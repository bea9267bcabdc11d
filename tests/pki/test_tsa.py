"""RFC 3161 TSA core and client helpers (no sockets; see test_servers.py for HTTP)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from asn1crypto import cms, tsp

from federation.errors import PkiError
from federation.pki import (
    Credential,
    TimeStampAuthority,
    build_ts_query,
    parse_ts_reply,
    verify_ts_token,
)
from federation.pki._tsa import FAIL_INFO_NAMES, TimeStampResp

from .conftest import Pki, openssl

DATA = b"hash chain result\x00\r\n"


def tst_info(token_der: bytes) -> tsp.TSTInfo:
    signed = cms.ContentInfo.load(token_der)["content"]
    return signed["encap_content_info"]["content"].parsed


def fail_info(reply: bytes) -> set[str]:
    status = TimeStampResp.load(reply)["status"]
    assert status["status"].native == "rejection"
    return set(status["fail_info"].native)


def openssl_verify(pki: Pki, tmp: Path, reply: bytes, *, untrusted: str) -> str:
    (tmp / "data").write_bytes(DATA)
    (tmp / "resp.tsr").write_bytes(reply)
    r = openssl(
        "ts", "-verify", "-data", str(tmp / "data"), "-in", str(tmp / "resp.tsr"),
        "-CAfile", pki.path("root.pem"), "-untrusted", untrusted,
    )  # fmt: skip
    return r.stdout + r.stderr


@pytest.mark.parametrize(
    ("hash_flag", "extra"),
    [("-sha256", ["-cert"]), ("-sha512", ["-cert"]), ("-sha384", ["-no_nonce", "-cert"])],
)
def test_openssl_query_and_verify(
    pki: Pki, now: float, tmp_path: Path, hash_flag: str, extra: list[str]
) -> None:
    (tmp_path / "data").write_bytes(DATA)
    query = tmp_path / "q.tsq"
    r = openssl(
        "ts", "-query", "-data", str(tmp_path / "data"), hash_flag, *extra, "-out", str(query)
    )
    assert r.returncode == 0, r.stderr
    reply = TimeStampAuthority(pki.tsa).respond(query.read_bytes(), now)
    out = openssl_verify(pki, tmp_path, reply, untrusted=pki.path("intermediate.pem"))
    assert "Verification: OK" in out, out
    text = openssl("ts", "-reply", "-in", str(tmp_path / "resp.tsr"), "-text")
    assert "Status: Granted." in text.stdout
    assert ("Nonce: unspecified" in text.stdout) == ("-no_nonce" in extra)


def test_openssl_verify_without_embedded_cert(pki_ec: Pki, now: float, tmp_path: Path) -> None:
    query = build_ts_query(data=DATA, hash_alg="sha256", cert_req=False)
    reply = TimeStampAuthority(pki_ec.tsa).respond(query, now)
    token = parse_ts_reply(reply)
    assert "certificates" not in cms.ContentInfo.load(token)["content"].native or (
        cms.ContentInfo.load(token)["content"]["certificates"].native is None
    )
    out = openssl_verify(pki_ec, tmp_path, reply, untrusted=pki_ec.path("intermediate.pem"))
    assert "Verification: OK" not in out
    out = openssl_verify(pki_ec, tmp_path, reply, untrusted=pki_ec.path("tsa-chain.pem"))
    assert "Verification: OK" in out, out
    digest = hashlib.sha256(DATA).digest()
    roots = [pki_ec.ca.root.cert]
    with pytest.raises(PkiError, match="not in the signature"):
        verify_ts_token(token, digest=digest, hash_alg="sha256", trusted_roots=roots)
    inter = [pki_ec.tsa.cert, pki_ec.ca.intermediate.cert]
    verify_ts_token(
        token, digest=digest, hash_alg="sha256", trusted_roots=roots, intermediates=inter
    )


def test_openssl_rejects_tampered_data(pki_ec: Pki, now: float, tmp_path: Path) -> None:
    query = build_ts_query(data=DATA + b"x", hash_alg="sha256")
    reply = TimeStampAuthority(pki_ec.tsa).respond(query, now)
    out = openssl_verify(pki_ec, tmp_path, reply, untrusted=pki_ec.path("intermediate.pem"))
    assert "message imprint mismatch" in out


@pytest.mark.parametrize("hash_alg", ["sha1", "sha256", "sha384", "sha512"])
def test_client_round_trip(pki: Pki, now: float, hash_alg: str) -> None:
    tsa = TimeStampAuthority(pki.tsa)
    reply = tsa.respond(build_ts_query(data=DATA, hash_alg=hash_alg, nonce=1234567), now)
    token = parse_ts_reply(reply, nonce=1234567)
    digest = hashlib.new(hash_alg, DATA).digest()
    gen_time = verify_ts_token(
        token, digest=digest, hash_alg=hash_alg, trusted_roots=[pki.ca.root.cert]
    )
    assert gen_time == pytest.approx(now, abs=1e-5)
    info = tst_info(token)
    assert info["nonce"].native == 1234567
    assert info["accuracy"]["seconds"].native == 1
    with pytest.raises(PkiError, match="nonce"):
        parse_ts_reply(reply, nonce=7)


def test_serials_increase(pki_ec: Pki, now: float) -> None:
    tsa = TimeStampAuthority(pki_ec.tsa)
    query = build_ts_query(digest=b"\x01" * 64)
    serials = [
        tst_info(parse_ts_reply(tsa.respond(query, now)))["serial_number"].native for _ in range(3)
    ]
    assert serials[0] >= int(now * 1000)
    assert serials == sorted(set(serials))
    later = tst_info(parse_ts_reply(tsa.respond(query, now - 100)))["serial_number"].native
    assert later > serials[-1]  # even if the clock steps back


def test_verify_rejects(pki_ec: Pki, pki_foreign: Pki, now: float) -> None:
    tsa = TimeStampAuthority(pki_ec.tsa)
    token = parse_ts_reply(tsa.respond(build_ts_query(data=DATA, hash_alg="sha256"), now))
    digest = hashlib.sha256(DATA).digest()
    roots = [pki_ec.ca.root.cert]
    with pytest.raises(PkiError, match="message imprint mismatch"):
        verify_ts_token(token, digest=b"\x00" * 32, hash_alg="sha256", trusted_roots=roots)
    with pytest.raises(PkiError, match="imprint uses sha256, expected sha512"):
        verify_ts_token(token, digest=digest, hash_alg="sha512", trusted_roots=roots)
    with pytest.raises(PkiError, match="does not chain to a trusted root"):
        verify_ts_token(
            token, digest=digest, hash_alg="sha256", trusted_roots=[pki_foreign.ca.root.cert]
        )
    with pytest.raises(PkiError, match="not valid at"):
        verify_ts_token(token, digest=digest, hash_alg="sha256", trusted_roots=roots, now=now + 9e8)
    bad = bytearray(token)
    sig = cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature"].native
    bad[bytes(bad).find(sig) + 8] ^= 0x01
    with pytest.raises(PkiError, match="does not verify"):
        verify_ts_token(bytes(bad), digest=digest, hash_alg="sha256", trusted_roots=roots)
    with pytest.raises(PkiError, match="malformed time-stamp token"):
        verify_ts_token(token[:-30], digest=digest, hash_alg="sha256", trusted_roots=roots)


def test_signer_must_be_a_tsa(pki_ec: Pki, now: float, tmp_path: Path) -> None:
    not_tsa = TimeStampAuthority(pki_ec.sign)
    reply = not_tsa.respond(build_ts_query(data=DATA, hash_alg="sha256"), now)
    with pytest.raises(PkiError, match="not a TSA certificate"):
        verify_ts_token(
            parse_ts_reply(reply),
            digest=hashlib.sha256(DATA).digest(),
            hash_alg="sha256",
            trusted_roots=[pki_ec.ca.root.cert],
        )
    out = openssl_verify(pki_ec, tmp_path, reply, untrusted=pki_ec.path("intermediate.pem"))
    assert "Verification: OK" not in out


def test_ess_attribute_must_name_the_signer(pki_ec: Pki, now: float) -> None:
    tsa = TimeStampAuthority(pki_ec.tsa)
    other = TimeStampAuthority(Credential(pki_ec.sign.cert, pki_ec.sign.key))
    tsa._ess_der = other._ess_der  # a token whose ESS attribute names another certificate
    token = parse_ts_reply(tsa.respond(build_ts_query(data=DATA, hash_alg="sha256"), now))
    with pytest.raises(PkiError, match="ESS signing-certificate attribute does not name"):
        verify_ts_token(
            token,
            digest=hashlib.sha256(DATA).digest(),
            hash_alg="sha256",
            trusted_roots=[pki_ec.ca.root.cert],
        )


def _query(**fields: object) -> bytes:
    req: dict[str, object] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": b"\x00" * 32,
        },
    }
    req.update(fields)
    return tsp.TimeStampReq(req).dump()


@pytest.mark.parametrize(
    ("query", "expected", "text"),
    [
        (b"", "bad_data_format", "request does not parse"),
        (b"garbage garbage", "bad_data_format", "request does not parse"),
        (b"truncated", "bad_data_format", "request does not parse"),
        (
            _query(
                message_imprint={
                    "hash_algorithm": {"algorithm": "md5"},
                    "hashed_message": b"\x00" * 16,
                }
            ),
            "bad_alg",
            "unsupported hash algorithm md5",
        ),
        (
            _query(
                message_imprint={
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": b"\x00" * 20,
                }
            ),
            "bad_data_format",
            "sha256 digest must be 32 bytes",
        ),
        (_query(version=2), "bad_request", "unsupported request version"),
        (
            # certReq BOOLEAN (01 01 ff) re-tagged as an ObjectDescriptor (07)
            _query(cert_req=True).replace(b"\x01\x01\xff", b"\x07\x01\xff"),
            "bad_data_format",
            "request does not parse",
        ),
        (_query(req_policy="1.2.3.4"), "unaccepted_policy", "policy 1.2.3.4 is not offered"),
        (
            _query(
                extensions=[{"extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}]
            ),
            "unaccepted_extensions",
            "request extensions are not supported",
        ),
    ],
)
def test_rejections(pki_ec: Pki, now: float, query: bytes, expected: str, text: str) -> None:
    tsa = TimeStampAuthority(pki_ec.tsa)
    if query == b"truncated":
        query = build_ts_query(data=DATA)[:-4]
    reply = tsa.respond(query, now)
    assert fail_info(reply) == {expected}
    rfc_name = FAIL_INFO_NAMES[expected]
    with pytest.raises(PkiError, match=f"status rejection, failInfo {rfc_name}: {text}"):
        parse_ts_reply(reply)


def test_openssl_reads_rejection(pki_ec: Pki, now: float, tmp_path: Path) -> None:
    md5 = {"hash_algorithm": {"algorithm": "md5"}, "hashed_message": b"\x00" * 16}
    (tmp_path / "r.tsr").write_bytes(
        TimeStampAuthority(pki_ec.tsa).respond(_query(message_imprint=md5), now)
    )
    r = openssl("ts", "-reply", "-in", str(tmp_path / "r.tsr"), "-text")
    assert "Status: Rejected." in r.stdout
    assert "unrecognized or unsupported algorithm identifier" in r.stdout


def test_build_ts_query_arguments() -> None:
    with pytest.raises(PkiError, match="exactly one of data and digest"):
        build_ts_query()
    with pytest.raises(PkiError, match="exactly one of data and digest"):
        build_ts_query(data=b"x", digest=b"y")
    with pytest.raises(PkiError, match="unsupported hash algorithm"):
        build_ts_query(data=b"x", hash_alg="md5")
    q = tsp.TimeStampReq.load(build_ts_query(data=b"x", nonce=5, cert_req=False, policy="1.2.3"))
    assert q.native["nonce"] == 5
    assert q.native["cert_req"] is False
    assert q.native["message_imprint"]["hashed_message"] == hashlib.sha512(b"x").digest()


def test_parse_ts_reply_malformed() -> None:
    with pytest.raises(PkiError, match="malformed time-stamp response"):
        parse_ts_reply(b"\x30\x03\x02\x01\x00")
