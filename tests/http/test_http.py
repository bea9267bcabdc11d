from __future__ import annotations

import trio

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
