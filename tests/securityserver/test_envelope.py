from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from federation.securityserver import (
    Envelope,
    Fault,
    RestRequest,
    XRoadError,
    build_rest_request,
    build_rest_response,
    decode_envelope,
    encode_envelope,
    request_hash,
    sign_envelope,
    signed_data,
    verify_request,
    verify_response,
)
from federation.securityserver._envelope import Kind
from tests.securityserver.conftest import CLIENT, NOW, PROVIDER, Pki

BODY = b'{"query": "income", "year": 2024}'
OCSP = (b"\x30\x03ocsp-1", b"\x30\x03ocsp-2")


def rest_request(body: bytes | None = BODY) -> RestRequest:
    return build_rest_request(
        "POST" if body else "GET",
        "/r1/FI/GOV/0245437-2/tax/income/persons/38001010000/income?year=2024",
        [("X-Road-Client", str(CLIENT)), ("Content-Type", "application/json")],
        instance="EE",
        request_id="11111111-2222-3333-4444-555555555555",
        new_xroad_id="EE-test-1",
    )


def signed_request(pki: Pki, body: bytes | None = BODY) -> Envelope:
    return sign_envelope(
        "request",
        rest_request(body).header_part(),
        body,
        signer=pki.client_sign,
        ocsp_responses=OCSP,
    )


def roundtrip(env: Envelope, kind: Kind) -> Envelope:
    ctype, data = encode_envelope(env)
    return decode_envelope(ctype, data, kind)


def test_signed_data_definition() -> None:
    hp = b"GET\r\n/r1/A/B/C/D/E\r\nx-road-id:1\r\n"
    assert signed_data(hp, None) == hp + b"\r\nbody-digest:none\r\n"
    assert signed_data(hp, b"") == hp + b"\r\nbody-digest:none\r\n"
    digest = "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7"
    digest += "2323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
    assert signed_data(hp, b"hello") == hp + b"\r\nbody-digest:sha-512:" + digest.encode() + b"\r\n"


@pytest.mark.parametrize("body", [BODY, None, b"\r\n--xfed" + bytes(range(256)) * 10])
def test_request_round_trip(pki: Pki, body: bytes | None) -> None:
    env = signed_request(pki, body)
    got = roundtrip(env, "request")
    assert got == env
    verified = verify_request(got, trusted_roots=[pki.ee.root.cert], now=NOW)
    assert verified.rest == rest_request(body)
    assert verified.signer_cert == pki.client_sign.cert
    assert got.ocsp_responses == OCSP


def test_response_round_trip(pki: Pki) -> None:
    req = rest_request()
    digest = request_hash(req.header_part(), BODY)
    resp = build_rest_response(
        req, 200, [("Content-Type", "application/json")], request_digest=digest
    )
    env = sign_envelope("response", resp.header_part(), b'{"total": 1}', signer=pki.provider_sign)
    got = roundtrip(env, "response")
    verified = verify_response(got, provider=PROVIDER, trusted_roots=[pki.fi.root.cert], now=NOW)
    assert verified.rest == resp
    assert verified.envelope.body == b'{"total": 1}'
    # signed by the consumer's member instead of the provider's
    wrong = sign_envelope("response", resp.header_part(), b"{}", signer=pki.client_sign)
    with pytest.raises(XRoadError) as info:
        verify_response(
            wrong,
            provider=PROVIDER,
            trusted_roots=[pki.fi.root.cert, pki.ee.root.cert],
            now=NOW,
        )
    assert info.value.fault is Fault.INVALID_SIGNATURE


def flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def tampered(pki: Pki) -> dict[str, Envelope]:
    env = signed_request(pki)
    hp = env.header_part
    assert env.body is not None
    return {
        "body byte": Envelope(**{**_fields(env), "body": flip(env.body, 5)}),
        "body dropped": Envelope(**{**_fields(env), "body": None}),
        "header part": Envelope(**{**_fields(env), "header_part": hp.replace(b"2024", b"2023")}),
        "signature byte": Envelope(
            **{**_fields(env), "signature": flip(env.signature, len(env.signature) - 10)}
        ),
        "signature garbage": Envelope(**{**_fields(env), "signature": b"not a signature"}),
        "wrong signer": sign_envelope("request", hp, env.body, signer=pki.other_ee_sign),
        "foreign CA": sign_envelope("request", hp, env.body, signer=pki.provider_sign),
    }


def _fields(env: Envelope) -> dict[str, object]:
    return {
        "kind": env.kind,
        "header_part": env.header_part,
        "body": env.body,
        "signature": env.signature,
        "ocsp_responses": env.ocsp_responses,
    }


@pytest.mark.parametrize(
    "case",
    [
        "body byte",
        "body dropped",
        "header part",
        "signature byte",
        "signature garbage",
        "wrong signer",
        "foreign CA",
    ],
)
def test_every_tamper_is_detected(pki: Pki, case: str) -> None:
    env = roundtrip(tampered(pki)[case], "request")
    with pytest.raises(XRoadError) as info:
        verify_request(env, trusted_roots=[pki.ee.root.cert], now=NOW)
    assert info.value.fault is Fault.PROVIDER_INVALID_SIGNATURE
    assert info.value.type == "Server.ServerProxy.InvalidSignatureValue"


def test_expired_signer_is_rejected(pki: Pki) -> None:
    env = signed_request(pki)
    with pytest.raises(XRoadError) as info:
        verify_request(env, trusted_roots=[pki.ee.root.cert], now=NOW + 10 * 365 * 86400)
    assert info.value.fault is Fault.PROVIDER_INVALID_SIGNATURE


def test_envelope_in_transit_bytes_tamper(pki: Pki) -> None:
    env = signed_request(pki)
    ctype, data = encode_envelope(env, boundary="fixedboundary")
    assert ctype == 'multipart/mixed; boundary="fixedboundary"'
    assert data.count(b"--fixedboundary") == 2 + 1 + 1 + 1 + 1  # 2 ocsp, head, body, sig, end
    pos = data.index(BODY) + 3
    got = decode_envelope(ctype, flip(data, pos), "request")
    with pytest.raises(XRoadError):
        verify_request(got, trusted_roots=[pki.ee.root.cert], now=NOW)


def test_boundary_collision_is_avoided(pki: Pki) -> None:
    body = b"xx\r\n--fixedboundary\r\n"
    env = sign_envelope("request", rest_request().header_part(), body, signer=pki.client_sign)
    ctype, data = encode_envelope(env, boundary="fixedboundary")
    assert "fixedboundary" not in ctype
    assert decode_envelope(ctype, data, "request").body == body


@pytest.mark.parametrize(
    ("ctype", "data"),
    [
        ("application/json", b"{}"),
        ("multipart/mixed", b"--x\r\n"),
        ('multipart/mixed; boundary="b"', b""),
        ('multipart/mixed; boundary="b"', b"garbage"),
        (
            'multipart/mixed; boundary="b"',
            b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n",
        ),
        ('multipart/mixed; boundary="b"', b"--b--\r\n"),
        (
            'multipart/mixed; boundary="b"',
            b"--b\r\nContent-Type: application/x-road-rest-request\r\n\r\nGET\r\n--b--\r\n",
        ),
        (
            'multipart/mixed; boundary="b"',
            b"--b\r\nContent-Type: application/x-road-rest-request\r\n\r\nGET\r\n--b",
        ),
        (
            'multipart/mixed; boundary="b"',
            b"--b\r\nContent-Type: application/x-road-rest-request\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nR0VU\r\n--b--\r\n",
        ),
    ],
)
def test_decode_garbage(ctype: str, data: bytes) -> None:
    with pytest.raises(XRoadError) as info:
        decode_envelope(ctype, data, "request")
    assert info.value.fault is Fault.PROVIDER_INVALID_MESSAGE


def test_decode_and_verify_fuzz_never_crash(pki: Pki) -> None:
    rng = random.Random(1234)
    env = signed_request(pki)
    ctype, data = encode_envelope(env, boundary="fuzzb")
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            i = rng.randrange(len(mutated))
            if op < 0.5:
                mutated[i] = rng.randrange(256)
            elif op < 0.75:
                del mutated[i : i + rng.randint(1, 50)]
            else:
                mutated[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        try:
            got = decode_envelope(ctype, bytes(mutated), "request")
            verify_request(got, trusted_roots=[pki.ee.root.cert], now=NOW)
        except XRoadError:
            pass


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_cms_verifies_signed_data(pki: Pki, tmp_path: Path) -> None:
    env = signed_request(pki)
    (tmp_path / "signed-data.bin").write_bytes(env.signed_data())
    (tmp_path / "sig.der").write_bytes(env.signature)
    (tmp_path / "root.pem").write_bytes(pki.ee.root.cert.public_bytes(serialization.Encoding.PEM))
    cmd = [
        "openssl", "cms", "-verify", "-binary", "-inform", "DER",
        "-in", str(tmp_path / "sig.der"),
        "-content", str(tmp_path / "signed-data.bin"),
        "-CAfile", str(tmp_path / "root.pem"),
        "-purpose", "any", "-out", "/dev/null",
    ]  # fmt: skip
    ok = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "Verification successful" in ok.stderr
    (tmp_path / "signed-data.bin").write_bytes(flip(env.signed_data(), 3))
    bad = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
