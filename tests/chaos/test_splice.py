"""The passthrough relay over real loopback sockets (``splice(2)`` on Linux): toxics set and
removed mid-transfer lose and reorder nothing, counters stay exact, no descriptor leaks,
and TCP urgent data neither spins the relay nor passes for EOF.

Bounded (``fail_after``); no test sleeps: progress is waited for on events and sockets.
"""

from __future__ import annotations

import errno
import os
import random
import socket as stdsocket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from chaos import ToxicSpec
from chaos._model import DOWNSTREAM, UPSTREAM
from chaos._proxy import SPLICE_AVAILABLE, ProxyRuntime

from .conftest import SEED, make_spec

MB = 1024 * 1024
PIECE = 64 * 1024
WINDOW = 1 * MB  # bytes the client lets be in flight (so toxics meet bytes still to come)
LINGER_RST = struct.pack("ii", 1, 0)


@pytest.fixture
async def proxy(nursery: trio.Nursery, echo_port: int) -> AsyncIterator[ProxyRuntime]:
    runtime = ProxyRuntime(
        name="p", listen="127.0.0.1:0", upstream=f"127.0.0.1:{echo_port}", seed=SEED
    )
    await runtime.start(nursery)
    yield runtime
    await runtime.stop()


def port_of(proxy: ProxyRuntime) -> int:
    return int(proxy.listen.rsplit(":", 1)[1])


async def wait_closed(proxy: ProxyRuntime) -> None:
    """Until every proxied connection has been closed (and its pumps have finished)."""
    while proxy.live:
        await trio.testing.wait_all_tasks_blocked()


def open_fds() -> list[str]:
    """This process's descriptors as ``fd:target`` (pipes show as ``pipe:[inode]``)."""
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    return sorted(fds)


@pytest.mark.parametrize(
    ("toxic", "direction"),
    [
        (make_spec("latency", "upstream", latency=1), UPSTREAM),
        (make_spec("limit_data", "downstream", bytes=1 << 40), DOWNSTREAM),
    ],
    ids=["latency-upstream", "limit_data-downstream"],
)
async def test_toxic_set_and_removed_mid_transfer_loses_nothing(
    proxy: ProxyRuntime, toxic: ToxicSpec, direction: str
) -> None:
    """8 MB each way; the client keeps at most 1 MB in flight, so the toxic (set at 2 MB
    received, removed at 5 MB) meets bytes still to come, some maybe in a pump's pipe."""
    total = 8 * MB
    data = random.Random(f"{SEED}/splice").randbytes(total)
    received = bytearray()
    progress = [trio.Event()]
    spliced: dict[str, int] = {}  # the toxic direction's spliced bytes at each step
    pumps: list[Any] = []

    def relayed() -> int:
        if not pumps:
            (conn,) = proxy.connections
            pumps.append(conn.pumps[direction])
        return pumps[0].spliced

    async def send(stream: trio.SocketStream) -> None:
        sent = 0
        while sent < total:
            while sent - len(received) > WINDOW:
                await progress[0].wait()
            await stream.send_all(data[sent : sent + PIECE])
            sent += PIECE
        await stream.send_eof()

    with trio.fail_after(30):
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(proxy))
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(send, stream)
            while chunk := await stream.receive_some(PIECE):
                received += chunk
                relayed()  # the first chunk: the connection has been accepted
                progress[0].set()
                progress[0] = trio.Event()
                if len(received) >= 2 * MB and "added" not in spliced:
                    spliced["added"] = relayed()
                    proxy.set_toxics([toxic])
                elif len(received) >= 5 * MB and "removed" not in spliced:
                    spliced["removed"] = relayed()
                    proxy.set_toxics([])
            spliced["end"] = relayed()
        await wait_closed(proxy)

    assert len(received) == total
    assert bytes(received) == data  # every byte, in order
    stats = proxy.stats()
    assert (stats.bytes_upstream, stats.bytes_downstream) == (total, total)
    assert (stats.connections, stats.connections_total) == (0, 1)
    if SPLICE_AVAILABLE:
        assert spliced["added"] > 0  # spliced before the toxic
        assert spliced["removed"] == spliced["added"]  # the toxic's bytes went through the core
        assert spliced["end"] > spliced["removed"]  # and splice again once it was removed
        assert spliced["end"] < total


async def test_no_descriptor_leak(proxy: ProxyRuntime, nursery: trio.Nursery) -> None:
    """Normal ends, client resets mid-transfer and a disable: every pipe is closed."""
    port = port_of(proxy)
    payload = b"z" * (300 * 1024)

    async def echo_once(stream: trio.SocketStream) -> None:
        async with trio.open_nursery() as inner:
            inner.start_soon(stream.send_all, payload)
            got = 0
            while got < len(payload):
                got += len(await stream.receive_some(PIECE))

    with trio.fail_after(30):
        warm = await trio.open_tcp_stream("127.0.0.1", port)
        await echo_once(warm)
        await warm.aclose()
        await wait_closed(proxy)
        await trio.testing.wait_all_tasks_blocked()
        before = open_fds()

        for _ in range(20):  # send, echo, half-close, EOF back
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await echo_once(stream)
            await stream.send_eof()
            assert await stream.receive_some(10) == b""
            await stream.aclose()
        for _ in range(10):  # the client resets with bytes in flight
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(payload)
            assert await stream.receive_some(10)
            stream.socket.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, LINGER_RST)
            stream.socket.close()
        await wait_closed(proxy)
        await trio.testing.wait_all_tasks_blocked()
        assert open_fds() == before

        streams = []
        for _ in range(10):  # live, with bytes flowing, when the proxy is disabled
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(payload)
            assert await stream.receive_some(10)
            streams.append(stream)
        assert proxy._listener is not None
        listener = f"{proxy._listener.fileno()}:"
        await proxy.stop()
        assert proxy.live == 0
        await trio.testing.wait_all_tasks_blocked()
        for stream in streams:
            await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert open_fds() == [fd for fd in before if not fd.startswith(listener)]
        await proxy.start(nursery)
    assert proxy.stats().connections_total == 41


@pytest.mark.parametrize("half_close", [False, True], ids=["open", "half-closed"])
async def test_urgent_data_neither_spins_nor_ends_the_stream(
    proxy: ProxyRuntime, monkeypatch: pytest.MonkeyPatch, half_close: bool
) -> None:
    """splice stops at TCP urgent data; the relay steps over it with recv (as the copying
    path does: the urgent byte is not passed on), without spinning or seeing EOF."""
    calls = [0]
    splice = os.splice

    def counting(*args: int, **kwargs: int) -> int:
        calls[0] += 1
        return splice(*args, **kwargs)

    monkeypatch.setattr(os, "splice", counting, raising=False)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(proxy))
        await stream.send_all(b"abc")
        await stream.socket.send(b"!", stdsocket.MSG_OOB)
        await stream.send_all(b"def")
        if half_close:
            await stream.send_eof()
        received = b""
        while len(received) < 6:
            chunk = await stream.receive_some(10)
            assert chunk, f"EOF after {received!r}"
            received += chunk
        assert received == b"abcdef"
        if not half_close:
            await stream.send_eof()
        assert await stream.receive_some(10) == b""
        await stream.aclose()
        await wait_closed(proxy)
    assert calls[0] < 50
    stats = proxy.stats()
    assert (stats.bytes_upstream, stats.bytes_downstream) == (6, 6)


async def test_splice_refused_falls_back_to_copying(
    proxy: ProxyRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel that will not splice these sockets (EINVAL before any byte): copy instead."""

    def refuse(*args: int, **kwargs: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "splice", refuse, raising=False)
    payload = bytes(range(256)) * 1024
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(proxy))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, payload)
            received = b""
            while len(received) < len(payload):
                received += await stream.receive_some(PIECE)
        assert received == payload
        await stream.send_eof()
        assert await stream.receive_some(10) == b""
        await stream.aclose()
        await wait_closed(proxy)
    stats = proxy.stats()
    assert (stats.bytes_upstream, stats.bytes_downstream) == (len(payload), len(payload))
