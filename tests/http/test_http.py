from __future__ import annotations

import time
from pathlib import Path

import trio
import trio.testing

from federation.http import HttpClient, Request, Response, json_response, serve_http


async def echo(req: Request) -> Response:
    if req.path == "/boom":
        raise RuntimeError("handler bug")
    return json_response({"method": req.method, "target": req.target, "len": len(req.body)})


async def test_keep_alive_and_errors(nursery: trio.Nursery) -> None:
    host, port = await nursery.start(serve_http, echo)
    client = HttpClient()
    for i in range(3):
        r = await client.request(host, port, "POST", f"/x?i={i}", body=b"abc")
        assert r.status == 200
        assert b'"len":3' in r.body
    assert len(client._idle[(host, port)]) == 1  # one connection reused
    r = await client.request(host, port, "GET", "/boom")
    assert r.status == 500
    r = await client.request(host, port, "GET", "/ok")
    assert r.status == 200
    await client.aclose()


async def test_garbage_gets_400_and_server_survives(nursery: trio.Nursery) -> None:
    host, port = await nursery.start(serve_http, echo)
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
    data = await stream.receive_some(4096)
    assert data.startswith(b"HTTP/1.1 400")
    await stream.aclose()
    client = HttpClient()
    assert (await client.request(host, port, "GET", "/")).status == 200
    await client.aclose()


async def test_body_limit(nursery: trio.Nursery) -> None:
    host, port = await nursery.start(
        lambda task_status: serve_http(echo, max_body=10, task_status=task_status)
    )
    client = HttpClient()
    r = await client.request(host, port, "POST", "/", body=b"x" * 100)
    assert r.status == 413
    await client.aclose()


async def _raw_exchange(host: str, port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(request)
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    await stream.aclose()
    return data


async def mirror(req: Request) -> Response:
    """Echo every request header back as a response header (what a security server does
    with headers it relays)."""
    return Response(200, [(f"got-{k}", v) for k, v in req.headers], b"body")


async def test_octets_beyond_ascii_in_headers_pass_unchanged(nursery: trio.Nursery) -> None:
    # h11 accepts octets 0x80-0xFF in a header value; answering with them must neither
    # crash the server (it used to stop the whole listener) nor alter them
    host, port = await nursery.start(serve_http, mirror)
    raw = "Jüri".encode()  # UTF-8, as real clients send non-ASCII file names
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: " + raw + b"\r\nConnection: close\r\n\r\n"
    data = await _raw_exchange(host, port, request)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"got-X-Name: " + raw + b"\r\n" in data
    # the same through our client, both ways: the value it sends and the one it reads
    client = HttpClient()
    value = raw.decode("latin-1")  # how the server hands it to handlers
    r = await client.request(host, port, "GET", "/", headers=[("X-Name", value)])
    assert r.status == 200
    assert r.header("got-x-name") == value
    await client.aclose()


async def test_a_response_h11_refuses_is_a_500_and_the_server_survives(
    nursery: trio.Nursery,
) -> None:
    async def bad(req: Request) -> Response:
        if req.path == "/crlf":
            return Response(200, [("X-Bad", "a\r\nInjected: yes")], b"")
        if req.path == "/wide":
            return Response(200, [("X-Wide", "€: text beyond latin-1")], b"")
        return Response(200, [], b"ok")

    host, port = await nursery.start(serve_http, bad)
    client = HttpClient()
    r = await client.request(host, port, "GET", "/crlf")
    assert r.status == 500
    assert r.header("injected") is None
    r = await client.request(host, port, "GET", "/wide")
    assert r.status == 200
    assert r.header("x-wide") == "€: text beyond latin-1".encode().decode("latin-1")
    assert (await client.request(host, port, "GET", "/ok")).body == b"ok"
    await client.aclose()


async def test_head_gets_headers_without_a_body(nursery: trio.Nursery) -> None:
    host, port = await nursery.start(serve_http, echo)
    data = await _raw_exchange(
        host, port, b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: " in head  # what a GET would carry
    assert rest == b""
    client = HttpClient()
    assert (await client.request(host, port, "GET", "/")).status == 200  # still serving
    await client.aclose()


async def test_a_silent_tls_peer_is_dropped_after_the_handshake_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    import ssl

    from federation.identifiers import SecurityServerId
    from federation.pki import CertificateAuthority

    del autojump_clock
    now = time.time()
    auth = CertificateAuthority.create("EE", now=now).issue_auth(
        SecurityServerId.parse("EE/GOV/70000001/ss1"), now=now
    )
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(auth.fullchain_pem())
    key.write_bytes(auth.key_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    host, port = await nursery.start(
        lambda task_status: serve_http(echo, ssl_context=ctx, task_status=task_status)
    )
    stream = await trio.open_tcp_stream(host, port)  # connects, never says ClientHello
    with trio.fail_after(60):
        assert await stream.receive_some(10) == b""  # the server gave up and closed
    await stream.aclose()


async def test_client_refuses_a_header_it_cannot_send(nursery: trio.Nursery) -> None:
    import pytest

    from federation.errors import TransportError

    host, port = await nursery.start(serve_http, echo)
    client = HttpClient()
    with pytest.raises(TransportError, match="cannot be sent"):
        await client.request(host, port, "GET", "/", headers=[("X-Bad", "a\r\nb: c")])
    await client.aclose()


async def test_a_host_name_that_cannot_be_encoded_is_a_transport_error() -> None:
    import pytest

    from federation.errors import TransportError

    client = HttpClient()
    for host in ("a" * 64 + ".example", "\u00e9\u0000x"):
        with pytest.raises(TransportError, match="cannot connect"):
            await client.request(host, 80, "GET", "/")  # fixed-port-ok: never connects
    await client.aclose()
