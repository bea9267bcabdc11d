"""The trio shell over memory streams with a virtual clock (``autojump_clock``): pump timing,
toxic changes on live connections, aborts and counters, exactly and without real sleeps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from chaos._proxy import Connection, ProxyRuntime

from .conftest import SEED, make_spec


@dataclass
class Wired:
    proxy: ProxyRuntime
    conn: Connection
    client: trio.abc.HalfCloseableStream  # the test's end of the client connection
    server: trio.abc.HalfCloseableStream  # the test's end of the upstream connection


@pytest.fixture
async def wired(nursery: trio.Nursery) -> Wired:
    proxy = ProxyRuntime(name="p", listen="127.0.0.1:0", upstream="127.0.0.1:1", seed=SEED)
    client, proxy_client_side = trio.testing.memory_stream_pair()
    proxy_upstream_side, server = trio.testing.memory_stream_pair()
    proxy.live += 1
    conn = Connection(proxy, proxy_client_side, 1)
    nursery.start_soon(conn.relay, proxy_upstream_side)
    await trio.testing.wait_all_tasks_blocked()
    return Wired(proxy, conn, client, server)


async def receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        assert chunk, "unexpected EOF"
        data += chunk
    return data


async def test_latency_is_exact_on_the_virtual_clock(autojump_clock: object, wired: Wired) -> None:
    wired.proxy.set_toxics([make_spec("latency", latency=100)])
    start = trio.current_time()
    await wired.client.send_all(b"hello")
    await wired.server.send_all(b"back")  # upstream direction has no toxic
    assert await receive_exactly(wired.server, 5) == b"hello"
    assert trio.current_time() == pytest.approx(start)
    assert await receive_exactly(wired.client, 4) == b"back"
    assert trio.current_time() == pytest.approx(start + 0.1)


async def test_stats_are_live(autojump_clock: object, wired: Wired) -> None:
    await wired.client.send_all(b"12345")
    assert await receive_exactly(wired.server, 5) == b"12345"
    await wired.server.send_all(b"678")
    assert await receive_exactly(wired.client, 3) == b"678"
    stats = wired.proxy.stats()
    assert (stats.connections, stats.bytes_upstream, stats.bytes_downstream) == (1, 5, 3)


async def test_timeout_closes_after_silence(autojump_clock: object, wired: Wired) -> None:
    wired.proxy.set_toxics([make_spec("timeout", "upstream", timeout=2000)])
    start = trio.current_time()
    await wired.client.send_all(b"dropped")
    assert await wired.client.receive_some(10) == b""  # closed by the proxy
    assert trio.current_time() == pytest.approx(start + 2.0)
    assert await wired.server.receive_some(10) == b""  # nothing got through
    assert wired.proxy.stats().connections == 0


async def test_removing_timeout_closes_held_connection(
    autojump_clock: object, wired: Wired
) -> None:
    spec = make_spec("timeout", "upstream", timeout=0)
    wired.proxy.set_toxics([spec])
    await wired.client.send_all(b"dropped")
    await trio.sleep(3600)
    assert wired.proxy.stats().connections == 1
    wired.proxy.set_toxics([])
    assert await wired.client.receive_some(10) == b""


async def test_toxic_added_mid_connection_wakes_the_pump(
    autojump_clock: object, wired: Wired
) -> None:
    await wired.client.send_all(b"a")
    assert await receive_exactly(wired.server, 1) == b"a"
    wired.proxy.set_toxics([make_spec("timeout", "upstream", timeout=500)])
    start = trio.current_time()
    assert await wired.client.receive_some(10) == b""  # the idle timer ran out
    assert trio.current_time() == pytest.approx(start + 0.5)


async def test_half_close_is_forwarded(autojump_clock: object, wired: Wired) -> None:
    await wired.client.send_all(b"req")
    await wired.client.send_eof()
    assert await receive_exactly(wired.server, 3) == b"req"
    assert await wired.server.receive_some(10) == b""
    await wired.server.send_all(b"resp")  # the other direction still flows
    assert await receive_exactly(wired.client, 4) == b"resp"
    await wired.server.send_eof()
    assert await wired.client.receive_some(10) == b""


async def test_abort_closes_both_sides(autojump_clock: object, wired: Wired) -> None:
    wired.conn.abort(reset=False)
    assert await wired.client.receive_some(10) == b""
    assert await wired.server.receive_some(10) == b""
    await trio.testing.wait_all_tasks_blocked()
    assert wired.proxy.stats().connections == 0


async def test_bandwidth_paces_on_the_virtual_clock(autojump_clock: object, wired: Wired) -> None:
    wired.proxy.set_toxics([make_spec("bandwidth", rate=10)])  # 10 bytes per ms
    start = trio.current_time()
    await wired.server.send_all(b"x" * 5000)
    assert await receive_exactly(wired.client, 5000) == b"x" * 5000
    assert trio.current_time() == pytest.approx(start + 0.5)
