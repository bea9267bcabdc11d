"""The OCSP responder and TSA over HTTP, checked with openssl (run while the trio servers
keep serving in the same test)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from pathlib import Path

import httpx
import pytest
import trio
from asn1crypto import tsp
from cryptography.x509 import ocsp

from federation.clock import FixedClock
from federation.errors import PkiError, TransportError
from federation.pki import (
    OcspEndpoints,
    OcspResponder,
    OcspStaleError,
    TimeStampAuthority,
    build_ocsp_request,
    build_ts_query,
    check_ocsp_response,
    parse_ts_reply,
    revoke_remote,
    serve_ocsp,
    serve_tsa,
    unrevoke_remote,
    verify_ts_token,
)

from .conftest import Pki, aopenssl

OCSP_REQ = {"Content-Type": "application/ocsp-request"}
TS_QUERY = {"Content-Type": "application/timestamp-query"}


async def start_ocsp(
    nursery: trio.Nursery, pki: Pki, clock: FixedClock | None = None
) -> tuple[OcspResponder, OcspEndpoints]:
    responder = OcspResponder(pki.ca, pki.ocsp)
    endpoints: OcspEndpoints = await nursery.start(
        lambda task_status: serve_ocsp(responder, clock=clock, task_status=task_status)
    )
    return responder, endpoints


async def openssl_ocsp(pki: Pki, url: str, cert: str = "sign.pem") -> str:
    rc, out = await aopenssl(
        "ocsp", "-url", url, "-issuer", pki.path("intermediate.pem"),
        "-cert", pki.path(cert), "-CAfile", pki.path("root.pem"),
    )  # fmt: skip
    assert rc == 0, out
    assert "Response verify OK" in out
    return out


def ocsp_status(der: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(der).response_status


async def test_openssl_ocsp_good_then_revoked_then_good(nursery: trio.Nursery, pki: Pki) -> None:
    _, ep = await start_ocsp(nursery, pki)
    assert ep.url != ep.admin_url
    out = await openssl_ocsp(pki, ep.url)
    assert f"{pki.path('sign.pem')}: good" in out
    answer = await revoke_remote(ep.admin_url, pki.sign.cert_pem())
    assert answer["serial"] == f"{pki.sign.cert.serial_number:X}"
    out = await openssl_ocsp(pki, ep.url)
    assert f"{pki.path('sign.pem')}: revoked" in out
    assert "Reason: keyCompromise" in out
    assert f"{pki.path('auth.pem')}: good" in await openssl_ocsp(pki, ep.url, "auth.pem")
    await unrevoke_remote(ep.admin_url, pki.sign.cert_pem().decode())
    assert f"{pki.path('sign.pem')}: good" in await openssl_ocsp(pki, ep.url)


async def test_admin_interface(nursery: trio.Nursery, pki_ec: Pki, pki_foreign: Pki) -> None:
    responder, ep = await start_ocsp(nursery, pki_ec)
    serial = pki_ec.auth.cert.serial_number
    async with httpx.AsyncClient() as client:
        r = await client.post(
            ep.admin_url + "revoke",
            content=json.dumps({"serial": f"0x{serial:x}", "reason": "superseded", "time": 1e9}),
        )
        assert r.status_code == 200, r.text
        assert r.json()["reason"] == "superseded"
        assert responder.status_of(serial) == "revoked"
        r = await client.post(ep.admin_url + "revoke", content=json.dumps({"serial": 99}))
        assert r.status_code == 200
        status = (await client.get(ep.admin_url + "status")).json()
        assert [x["serial"] for x in status["revoked"]] == [f"{serial:X}", "63"]
        assert status["revoked"][0]["time"] == "2001-09-09T01:46:40.000Z"
        assert status["issued"] == len(pki_ec.ca.issued_serials)
        r = await client.post(ep.admin_url + "unrevoke", content=json.dumps({"serial": serial}))
        assert r.json() == {"serial": f"{serial:X}", "status": "good", "was_revoked": True}
        for body, why in [
            (b"nonsense", "PEM certificate or a JSON object"),
            (b"[1]", "PEM certificate or a JSON object"),
            (b"{}", '"serial" or "cert"'),
            (b'{"serial": "xyz"}', "hex string"),
            (b'{"serial": 1, "reason": "bored"}', "unknown revocation reason"),
        ]:
            r = await client.post(ep.admin_url + "revoke", content=body)
            assert r.status_code == 400
            assert why in r.json()["error"]
        assert (await client.get(ep.admin_url + "nothing")).status_code == 404
    with pytest.raises(PkiError, match="was not issued by"):
        await revoke_remote(ep.admin_url, pki_foreign.sign.cert_pem())
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(TransportError, match="cannot reach the OCSP admin"):
        await revoke_remote(f"http://127.0.0.1:{port}/", pki_ec.sign.cert_pem())


@pytest.mark.parametrize(
    "time_json",
    ['"nan"', '"inf"', "1e400", "-1e400", "1e300", "-1e300", "253402300800", "true", "[1]"],
)
async def test_admin_rejects_a_revocation_time_it_cannot_represent(
    pki_ec: Pki, now: float, time_json: str
) -> None:
    """400 saying so, and nothing stored: a stored 1e300 once made GET /status answer 500
    and every OCSP request for that serial internalError."""
    from federation.http import Request
    from federation.pki._server import ocsp_admin_handler

    responder = OcspResponder(pki_ec.ca, pki_ec.ocsp)
    handle = ocsp_admin_handler(responder, FixedClock(now))
    serial = pki_ec.sign.cert.serial_number
    body = f'{{"serial": {serial}, "time": {time_json}}}'.encode()
    r = await handle(Request("POST", "/revoke", [], body))
    assert r.status == 400, r.body
    error = json.loads(r.body)["error"]
    assert "POSIX" in error
    assert responder.revocations() == []
    r = await handle(Request("GET", "/status", [], b""))
    assert r.status == 200
    assert json.loads(r.body)["revoked"] == []
    # the last representable second is fine, and OCSP still answers for it
    r = await handle(
        Request("POST", "/revoke", [], f'{{"serial": {serial}, "time": 253402300799}}'.encode())
    )
    assert r.status == 200, r.body
    assert json.loads(r.body)["time"] == "9999-12-31T23:59:59.000Z"
    resp = responder.respond(build_ocsp_request(pki_ec.sign.cert, pki_ec.ca.issuer), now)
    assert ocsp_status(resp) == ocsp.OCSPResponseStatus.SUCCESSFUL


def test_revoke_rejects_a_time_it_cannot_represent(pki_ec: Pki) -> None:
    responder = OcspResponder(pki_ec.ca, pki_ec.ocsp)
    for when in (float("nan"), float("inf"), 1e300, -1e300):
        with pytest.raises(PkiError, match="not a POSIX time of the years 1 to 9999"):
            responder.revoke(pki_ec.sign.cert, when)
    assert responder.revocations() == []


async def test_admin_is_not_reachable_through_the_ocsp_url(
    nursery: trio.Nursery, pki_ec: Pki
) -> None:
    responder, ep = await start_ocsp(nursery, pki_ec)
    pem = pki_ec.sign.cert_pem()
    async with httpx.AsyncClient() as client:
        r = await client.post(ep.url + "revoke", content=pem)
        assert r.status_code == 400
        r = await client.post(ep.url + "revoke", content=pem, headers=OCSP_REQ)
        assert ocsp_status(r.content) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        r = await client.get(ep.url + "status")
        assert ocsp_status(r.content) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert responder.status_of(pki_ec.sign.cert.serial_number) == "good"


async def test_get_form(nursery: trio.Nursery, pki: Pki, now: float, tmp_path: Path) -> None:
    _, ep = await start_ocsp(nursery, pki)
    der = build_ocsp_request(pki.sign.cert, pki.ca.issuer)
    std = base64.b64encode(der).decode()
    forms = [
        urllib.parse.quote(std, safe=""),  # RFC 6960 A.1: url-encoded base64
        base64.urlsafe_b64encode(der).decode().rstrip("="),
        std,
    ]
    async with httpx.AsyncClient() as client:
        for form in forms:
            r = await client.get(ep.url + form)
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/ocsp-response"
            st = check_ocsp_response(r.content, pki.sign.cert, pki.ca.issuer, now=now)
            assert st.status == "good"
    (tmp_path / "resp.der").write_bytes(r.content)
    rc, out = await aopenssl(
        "ocsp", "-issuer", pki.path("intermediate.pem"), "-cert", pki.path("sign.pem"),
        "-no_nonce", "-respin", str(tmp_path / "resp.der"), "-CAfile", pki.path("root.pem"),
    )  # fmt: skip
    assert rc == 0, out
    assert "Response verify OK" in out
    assert ": good" in out


async def test_bad_ocsp_requests_and_server_keeps_serving(
    nursery: trio.Nursery, pki_ec: Pki
) -> None:
    _, ep = await start_ocsp(nursery, pki_ec)
    good = build_ocsp_request(pki_ec.sign.cert, pki_ec.ca.issuer)
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    async with httpx.AsyncClient() as client:
        for body in (b"", b"garbage", good[:-5], good + b"\x00"):
            r = await client.post(ep.url, content=body, headers=OCSP_REQ)
            assert r.status_code == 200
            assert ocsp_status(r.content) is malformed, body
        r = await client.post(ep.url, content=good, headers={"Content-Type": "text/plain"})
        assert r.status_code == 400
        assert "application/ocsp-request" in r.text
        assert ocsp_status((await client.get(ep.url + "%%%not-base64!!")).content) is malformed
        assert (await client.get(ep.url)).status_code == 400
        assert (await client.put(ep.url, content=good)).status_code == 405
        r = await client.post(ep.url, content=good, headers=OCSP_REQ)
        assert ocsp_status(r.content) is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert ": good" in await openssl_ocsp(pki_ec, ep.url)


async def test_server_clock_drives_this_update(nursery: trio.Nursery, pki_ec: Pki) -> None:
    clock = FixedClock(float(int(pki_ec.sign.cert.not_valid_before_utc.timestamp()) + 600))
    _, ep = await start_ocsp(nursery, pki_ec, clock)
    req = build_ocsp_request(pki_ec.sign.cert, pki_ec.ca.issuer)
    async with httpx.AsyncClient() as client:
        old = (await client.post(ep.url, content=req, headers=OCSP_REQ)).content
        clock.advance(3601)
        new = (await client.post(ep.url, content=req, headers=OCSP_REQ)).content
    args = (pki_ec.sign.cert, pki_ec.ca.issuer)
    with pytest.raises(OcspStaleError, match="stale"):
        check_ocsp_response(old, *args, now=clock.now(), freshness_s=3600)
    st = check_ocsp_response(new, *args, now=clock.now(), freshness_s=3600)
    assert st.this_update == clock.now()


async def start_tsa(nursery: trio.Nursery, pki: Pki, clock: FixedClock | None = None) -> str:
    tsa = TimeStampAuthority(pki.tsa)
    url: str = await nursery.start(
        lambda task_status: serve_tsa(tsa, clock=clock, task_status=task_status)
    )
    return url


@pytest.mark.parametrize("hash_flag", ["-sha256", "-sha512"])
async def test_openssl_ts_over_http(
    nursery: trio.Nursery, pki: Pki, tmp_path: Path, hash_flag: str
) -> None:
    url = await start_tsa(nursery, pki)
    data, query, reply = tmp_path / "data", tmp_path / "q.tsq", tmp_path / "r.tsr"
    data.write_bytes(b"message log batch\n")
    rc, out = await aopenssl(
        "ts", "-query", "-data", str(data), hash_flag, "-cert", "-out", str(query)
    )
    assert rc == 0, out  # openssl adds a nonce by default
    async with httpx.AsyncClient() as client:
        r = await client.post(url, content=query.read_bytes(), headers=TS_QUERY)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/timestamp-reply"
    reply.write_bytes(r.content)
    rc, out = await aopenssl(
        "ts", "-verify", "-data", str(data), "-in", str(reply),
        "-CAfile", pki.path("root.pem"), "-untrusted", pki.path("intermediate.pem"),
    )  # fmt: skip
    assert rc == 0, out
    assert "Verification: OK" in out
    rc, out = await aopenssl(
        "ts", "-verify", "-queryfile", str(query), "-in", str(reply),
        "-CAfile", pki.path("root.pem"), "-untrusted", pki.path("intermediate.pem"),
    )  # fmt: skip
    assert "Verification: OK" in out


async def test_bad_ts_queries_and_server_keeps_serving(nursery: trio.Nursery, pki_ec: Pki) -> None:
    clock = FixedClock(pki_ec.tsa.cert.not_valid_before_utc.timestamp() + 1000.25)
    url = await start_tsa(nursery, pki_ec, clock)
    good = build_ts_query(data=b"x", hash_alg="sha256")
    md5 = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "md5"},
                "hashed_message": hashlib.md5(b"x").digest(),
            },
        }
    ).dump()
    async with httpx.AsyncClient() as client:
        r = await client.post(url, content=good, headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert (await client.get(url)).status_code == 405
        for body, fail in [
            (b"garbage", "badDataFormat"),
            (good[:-3], "badDataFormat"),
            (md5, "badAlg"),
        ]:
            r = await client.post(url, content=body, headers=TS_QUERY)
            assert r.status_code == 200
            with pytest.raises(PkiError, match=f"failInfo {fail}"):
                parse_ts_reply(r.content)
        r = await client.post(url, content=good, headers=TS_QUERY)
    gen_time = verify_ts_token(
        parse_ts_reply(r.content),
        digest=hashlib.sha256(b"x").digest(),
        hash_alg="sha256",
        trusted_roots=[pki_ec.ca.root.cert],
    )
    assert gen_time == clock.now()  # genTime comes from the server's clock
