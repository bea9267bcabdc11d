"""The Toxiproxy HTTP API: status codes, bodies, quirks and bad input (server keeps running)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from chaos import ChaosServer


@pytest.fixture
async def api(chaos: ChaosServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=chaos.url, timeout=10) as client:
        yield client


async def make_proxy(
    api: httpx.AsyncClient, name: str = "p", upstream: str = "127.0.0.1:9"
) -> dict:
    r = await api.post(
        "/proxies", json={"name": name, "upstream": upstream, "listen": "127.0.0.1:0"}
    )
    assert r.status_code == 201, r.text
    return r.json()


def error_of(r: httpx.Response) -> tuple[int, str]:
    body = json.loads(r.text)
    assert body["status"] == r.status_code
    assert r.text.endswith("\n")
    return r.status_code, body["error"]


async def test_version_and_routing(api: httpx.AsyncClient) -> None:
    r = await api.get("/version")
    assert r.status_code == 200
    assert r.json()["version"] == "2.12.0"
    r = await api.get("/nope")
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert (await api.get("/proxies/")).status_code == 404  # trailing slash does not match
    r = await api.put("/proxies")
    assert (r.status_code, r.content) == (405, b"")
    assert (await api.delete("/version")).status_code == 405
    r = await api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert (r.status_code, r.text) == (403, "User agent not allowed\n")
    assert "x-toxiproxy-request-id" in r.headers


async def test_proxy_lifecycle_status_codes(api: httpx.AsyncClient) -> None:
    created = await make_proxy(api)
    assert created["listen"].startswith("127.0.0.1:")
    assert not created["listen"].endswith(":0")
    assert created["toxics"] == []
    assert created["stats"]["connections"] == 0
    r = await api.post("/proxies", json={"name": "p", "upstream": "x:1"})
    assert error_of(r) == (409, "proxy already exists")
    assert r.headers["content-type"].startswith("text/plain")
    r = await api.get("/proxies")
    assert list(r.json()) == ["p"]
    assert (await api.get("/proxies/p")).json()["upstream"] == "127.0.0.1:9"
    assert error_of(await api.get("/proxies/q")) == (404, "proxy not found")
    r = await api.patch("/proxies/p", json={"enabled": False})
    assert r.status_code == 200
    assert r.json()["enabled"] is False
    r = await api.post("/proxies/p", json={"Enabled": True})  # keys are case-insensitive
    assert r.json()["enabled"] is True
    assert r.json()["listen"] == created["listen"]  # re-bound on the same port
    r = await api.delete("/proxies/p")
    assert (r.status_code, r.content) == (204, b"")
    assert error_of(await api.delete("/proxies/p")) == (404, "proxy not found")


async def test_disabled_create_keeps_listen_as_sent(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/proxies", json={"name": "d", "upstream": "h:1", "listen": "127.0.0.1:0", "enabled": False}
    )
    assert r.status_code == 201
    assert r.json()["listen"] == "127.0.0.1:0"
    assert r.json()["enabled"] is False


async def test_toxic_crud_and_order(api: httpx.AsyncClient) -> None:
    await make_proxy(api)
    r = await api.post("/proxies/p/toxics", json={"type": "latency", "attributes": {"latency": 5}})
    assert r.status_code == 200
    assert r.text == (
        '{"attributes":{"latency":5,"jitter":0},"name":"latency_downstream",'
        '"type":"latency","stream":"downstream","toxicity":1}'
    )
    r = await api.post(
        "/proxies/p/toxics",
        json={"Type": "slow_close", "Stream": "Upstream", "Toxicity": 0.5, "attributes": None},
    )
    assert r.status_code == 200
    toxic = r.json()
    assert (toxic["name"], toxic["stream"], toxic["toxicity"]) == (
        "slow_close_Upstream",
        "Upstream",
        0.5,
    )
    assert toxic["attributes"] == {"delay": 0}
    r = await api.get("/proxies/p/toxics")
    assert [t["name"] for t in r.json()] == ["slow_close_Upstream", "latency_downstream"]
    r = await api.patch("/proxies/p/toxics/latency_downstream", json={"attributes": {"jitter": 2}})
    assert r.json()["attributes"] == {"latency": 5, "jitter": 2}
    r = await api.post("/proxies/p/toxics/latency_downstream", json={"toxicity": 0.25, "type": "x"})
    assert (r.json()["toxicity"], r.json()["type"]) == (0.25, "latency")
    assert (await api.get("/proxies/p/toxics/latency_downstream")).json()["toxicity"] == 0.25
    assert error_of(await api.get("/proxies/p/toxics/zz")) == (404, "toxic not found")
    assert error_of(await api.get("/proxies/q/toxics/zz")) == (404, "proxy not found")
    r = await api.delete("/proxies/p/toxics/latency_downstream")
    assert (r.status_code, r.content) == (204, b"")
    assert error_of(await api.delete("/proxies/p/toxics/latency_downstream"))[0] == 404
    r = await api.post("/proxies/p/toxics", json={"type": "noop"})
    assert r.json()["attributes"] == {}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "bad request body: EOF"),
        (b"{", 400, "bad request body: unexpected EOF"),
        (b"{nope}", 400, "bad request body: invalid character"),
        (b"[]", 400, "bad request body: json: cannot unmarshal array"),
        (b'{"type": "bogus"}', 400, "invalid toxic type"),
        (b"{}", 400, "invalid toxic type"),
        (b'{"type": "latency", "stream": "sideways"}', 400, "stream was invalid"),
        (b'{"type": "latency", "stream": ""}', 400, "stream was invalid"),
        (b'{"type": 5}', 400, "cannot unmarshal number into Go struct field ToxicWrapper.type"),
        (b'{"type": "latency", "attributes": {"latency": "5"}}', 400, "of type int64"),
        (b'{"type": "latency", "attributes": {"latency": 1.5}}', 400, "number 1.5"),
        (b'{"type": "latency", "attributes": 7}', 400, "cannot unmarshal number"),
        (b'{"type": "latency", "toxicity": "1"}', 400, "of type float32"),
        (b'{"type": "latency", "attributes": {"latency": -1}}', 400, "must not be negative"),
        (b'{"type": "latency", "toxicity": 1.5}', 400, "toxicity must be between 0 and 1"),
        (b'{"type": "bandwidth"}', 400, "rate must be greater than 0"),
        (b'{"type": "bandwidth", "attributes": {"rate": -5}}', 400, "must not be negative"),
        (b'{"type": "slicer", "attributes": {"average_size": 0}}', 400, "at least 1"),
        (
            b'{"type": "slicer", "attributes": {"average_size": 5, "size_variation": 5}}',
            400,
            "smaller than average_size",
        ),
        (b'{"type": "latency", "attributes": {"latency": 1e2}}', 400, "number 1e2"),
        (b'{"type": "latency", "attributes": {"latency": NaN}}', 400, "invalid character"),
        (b"\xff\xfe", 400, "bad request body"),
    ],
)
async def test_bad_toxic_input(
    api: httpx.AsyncClient, body: bytes, status: int, message: str
) -> None:
    await make_proxy(api)
    r = await api.post("/proxies/p/toxics", content=body)
    got_status, got_message = error_of(r)
    assert got_status == status
    assert message in got_message
    assert (await api.get("/version")).status_code == 200


async def test_duplicate_toxic_names_across_streams(api: httpx.AsyncClient) -> None:
    await make_proxy(api)
    body = {"name": "t", "type": "latency", "stream": "upstream"}
    assert (await api.post("/proxies/p/toxics", json=body)).status_code == 200
    body["stream"] = "downstream"
    r = await api.post("/proxies/p/toxics", json=body)
    assert error_of(r) == (409, "toxic already exists")
    # The duplicate check runs before the attributes are decoded, as in Toxiproxy.
    r = await api.post("/proxies/p/toxics", json={**body, "attributes": {"latency": "x"}})
    assert r.status_code == 409
    assert error_of(await api.post("/proxies/q/toxics", json=body)) == (404, "proxy not found")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"upstream": "h:1"}, "missing required field: name"),
        ({"name": "x"}, "missing required field: upstream"),
        ({"name": "", "upstream": "h:1"}, "missing required field: name"),
        ({"name": 3, "upstream": "h:1"}, "cannot unmarshal number into Go struct field Proxy.name"),
        ({"name": "x", "upstream": "h:1", "enabled": "yes"}, "of type bool"),
    ],
)
async def test_bad_proxy_input(api: httpx.AsyncClient, body: dict, message: str) -> None:
    r = await api.post("/proxies", json=body)
    status, got = error_of(r)
    assert status == 400
    assert message in got


async def test_bind_errors_are_500(api: httpx.AsyncClient) -> None:
    taken = (await make_proxy(api, "a"))["listen"]
    r = await api.post("/proxies", json={"name": "b", "upstream": "h:1", "listen": taken})
    status, message = error_of(r)
    assert status == 500
    assert "address already in use" in message.lower()
    r = await api.post("/proxies", json={"name": "c", "upstream": "h:1", "listen": "nocolon"})
    assert error_of(r)[0] == 500
    assert list((await api.get("/proxies")).json()) == ["a"]


async def test_reset_enables_and_clears(api: httpx.AsyncClient) -> None:
    await make_proxy(api)
    await api.post("/proxies/p/toxics", json={"type": "timeout"})
    await api.post("/proxies/p", json={"enabled": False})
    r = await api.post("/reset")
    assert (r.status_code, r.content) == (204, b"")
    proxy = (await api.get("/proxies/p")).json()
    assert (proxy["enabled"], proxy["toxics"]) == (True, [])


async def test_populate(api: httpx.AsyncClient) -> None:
    first = await make_proxy(api, "keep")
    await api.post("/proxies/keep/toxics", json={"type": "noop"})
    entries = [
        {"name": "keep", "upstream": "127.0.0.1:9", "listen": first["listen"]},
        {"name": "new", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0"},
    ]
    r = await api.post("/populate", json=entries)
    assert r.status_code == 201
    proxies = r.json()["proxies"]
    assert [p["name"] for p in proxies] == ["keep", "new"]
    assert len(proxies[0]["toxics"]) == 1  # identical entry: untouched
    r = await api.post("/populate", json=[])
    assert (r.status_code, r.json()) == (201, {"proxies": None})
    r = await api.post("/populate", json=[{"name": "z", "upstream": "h:1"}, {"name": "y"}])
    assert error_of(r) == (400, "missing required field: upstream at proxy 2")
    assert "z" not in (await api.get("/proxies")).json()
    r = await api.post("/populate", json={"name": "z"})
    assert r.status_code == 400
    # Not atomic: the entry before a failing one stays, and the error lists it.
    bad = [
        {"name": "ok", "upstream": "h:1", "listen": "127.0.0.1:0"},
        {"name": "bad", "upstream": "h:1", "listen": first["listen"]},
    ]
    r = await api.post("/populate", json=bad)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert [p["name"] for p in r.json()["proxies"]] == ["ok"]


async def test_malformed_http_keeps_server_running(
    chaos: ChaosServer, api: httpx.AsyncClient
) -> None:
    assert chaos.address is not None
    for garbage in (b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n"):
        stream = await trio.open_tcp_stream("127.0.0.1", chaos.address.port)
        await stream.send_all(garbage)
        reply = await stream.receive_some(4096)
        assert reply.startswith(b"HTTP/1.1 400")
        await stream.aclose()
    stream = await trio.open_tcp_stream("127.0.0.1", chaos.address.port)
    await stream.send_all(
        b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    data = b""
    while data.count(b"2.12.0") < 2:
        data += await stream.receive_some(4096)
    await stream.aclose()
    assert (await api.get("/version")).status_code == 200


async def test_omitted_listen_stays_on_loopback(api: httpx.AsyncClient) -> None:
    r = await api.post("/proxies", json={"name": "l", "upstream": "h:1"})
    assert r.status_code == 201
    assert r.json()["listen"].startswith("127.0.0.1:")


async def test_disabled_proxy_keeps_its_port(api: httpx.AsyncClient) -> None:
    """A disabled proxy refuses connections but no other socket can take its port, so the
    enable that heals a partition never fails with "address already in use"."""
    import socket as stdsocket

    body = await make_proxy(api, "held", "127.0.0.1:9")
    host, port = body["listen"].rsplit(":", 1)
    r = await api.post("/proxies/held", json={"enabled": False})
    assert r.status_code == 200
    with pytest.raises(OSError):
        await trio.open_tcp_stream(host, int(port))
    other = stdsocket.socket()
    other.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
    with pytest.raises(OSError):
        other.bind((host, int(port)))
    other.close()
    r = await api.post("/proxies/held", json={"enabled": True})
    assert r.status_code == 200
    assert r.json()["listen"] == body["listen"]
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.aclose()
    # deleting releases it
    assert (await api.delete("/proxies/held")).status_code == 204
    free = stdsocket.socket()
    free.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
    free.bind((host, int(port)))
    free.close()


LONG_LABEL = "a" * 64  # over DNS's 63-byte label limit: Python's IDNA codec refuses it


@pytest.mark.parametrize("host", [LONG_LABEL, "é\u0000", "a..b"])
async def test_invalid_listen_host_is_500_no_such_host(api: httpx.AsyncClient, host: str) -> None:
    """A listen host that is no valid name is Go's lookup error (500), not an internal error.

    (No DNS query is made: the name is refused while being encoded.)"""
    r = await api.post("/proxies", json={"name": "x", "listen": f"{host}:0", "upstream": "h:1"})
    assert error_of(r) == (500, f"listen tcp: lookup {host}: no such host")
    assert "x" not in (await api.get("/proxies")).json()
    await make_proxy(api, "d")
    r = await api.post("/proxies/d", json={"listen": f"{host}:5"})
    assert error_of(r) == (500, f"listen tcp: lookup {host}: no such host")
    r = await api.post("/populate", json=[{"name": "y", "listen": f"{host}:0", "upstream": "h:1"}])
    assert (r.status_code, r.json()["error"]) == (500, f"listen tcp: lookup {host}: no such host")
    # The server is still serving, and the proxy comes back on a good address.
    r = await api.post("/proxies/d", json={"listen": "127.0.0.1:0", "enabled": True})
    assert r.status_code == 200
    assert r.json()["enabled"] is True


async def test_malformed_listen_is_500_with_gos_text(api: httpx.AsyncClient) -> None:
    r = await api.post("/proxies", json={"name": "x", "listen": "nocolon", "upstream": "h:1"})
    assert error_of(r) == (500, "listen tcp: address nocolon: missing port in address")


@pytest.mark.parametrize("host", [LONG_LABEL, "é\u0000"])
async def test_invalid_upstream_host_is_stored_and_dial_closes_client(
    api: httpx.AsyncClient, host: str
) -> None:
    """Like Toxiproxy, upstream is stored as sent (never resolved on create or update); a
    connection whose dial cannot resolve it is accepted, then closed."""
    # fixed-port-ok: the host cannot be IDNA-encoded, so nothing is ever dialed
    created = await make_proxy(api, "u", upstream=f"{host}:80")  # fixed-port-ok
    assert created["upstream"] == f"{host}:80"  # fixed-port-ok
    r = await api.post("/proxies/u", json={"upstream": f"{host}:81"})
    assert (r.status_code, r.json()["upstream"]) == (200, f"{host}:81")
    port = int(created["listen"].rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    with trio.fail_after(5):
        try:
            assert await stream.receive_some(10) == b""
        except trio.BrokenResourceError:
            pass
    await stream.aclose()
    assert (await api.get("/proxies/u")).status_code == 200
