"""The unmodified PyPI ``toxiproxy-python`` 0.1.1 client drives our server through every call.

The client is synchronous (requests), so the server and an echo server run in a background
thread with their own ``trio.run``; everything binds 127.0.0.1 port 0.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos import serve_chaos

from .conftest import SEED, echo_handler


@dataclass
class Background:
    api_port: int
    echo_port: int


@pytest.fixture
def background() -> Iterator[Background]:
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(partial(serve_chaos, "127.0.0.1", 0, seed=SEED))
            listeners = await nursery.start(
                partial(trio.serve_tcp, echo_handler, 0, host="127.0.0.1")
            )
            state["ports"] = (address.port, listeners[0].socket.getsockname()[1])
            state["token"] = trio.lowlevel.current_trio_token()
            state["cancel"] = nursery.cancel_scope.cancel
            ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield Background(*state["ports"])
    state["token"].run_sync_soon(state["cancel"])
    thread.join(10)
    assert not thread.is_alive()


def roundtrip(listen: str, payload: bytes = b"ping") -> bytes:
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


def refused(listen: str) -> bool:
    host, port = listen.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


TOXICS: list[tuple[str, dict[str, int]]] = [
    ("latency", {"latency": 10, "jitter": 2}),
    ("bandwidth", {"rate": 1000}),
    ("slow_close", {"delay": 10}),
    ("timeout", {"timeout": 100}),
    ("reset_peer", {"timeout": 0}),
    ("slicer", {"average_size": 8, "size_variation": 2, "delay": 10}),
    ("limit_data", {"bytes": 100}),
    ("noop", {}),
]


def test_every_client_call(background: Background) -> None:
    tp = Toxiproxy()
    tp.update_api_consumer("127.0.0.1", background.api_port)
    assert tp.running()
    assert json.loads(tp.version())["version"] == "2.12.0"
    upstream = f"127.0.0.1:{background.echo_port}"

    proxy = tp.create(upstream=upstream, name="echo")
    assert proxy.listen.startswith("127.0.0.1:")
    assert not proxy.listen.endswith(":0")
    assert roundtrip(proxy.listen) == b"ping"
    with pytest.raises(ProxyExists):
        tp.create(upstream=upstream, name="echo")
    assert set(tp.proxies()) == {"echo"}
    assert tp.get_proxy("echo").upstream == upstream
    assert tp.get_proxy("absent") is None

    for toxic_type, attributes in TOXICS:
        for stream in ("upstream", "downstream"):
            proxy.add_toxic(type=toxic_type, stream=stream, attributes=attributes)
            toxic = proxy.get_toxic(f"{toxic_type}_{stream}")
            assert (toxic.type, toxic.stream, toxic.attributes) == (toxic_type, stream, attributes)
            assert proxy.destroy_toxic(f"{toxic_type}_{stream}")
    assert proxy.toxics() == {}

    proxy.add_toxic(type="latency", name="lat", toxicity=0.5, attributes={"latency": 1})
    assert proxy.get_toxic("lat").toxicity == 0.5
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency", name="lat")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", stream="sideways")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    assert proxy.get_toxic("missing") is None
    assert proxy.destroy_toxic("lat")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("lat")

    proxy.disable()
    assert refused(proxy.listen)
    assert tp.get_proxy("echo").enabled is False
    proxy.enable()
    assert roundtrip(proxy.listen) == b"ping"
    with proxy.down():
        assert refused(proxy.listen)
    assert roundtrip(proxy.listen) == b"ping"

    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    proxy.disable()
    assert tp.reset()
    assert proxy.toxics() == {}
    assert tp.get_proxy("echo").enabled is True
    assert roundtrip(proxy.listen) == b"ping"

    entry = {"name": "second", "upstream": upstream, "listen": "127.0.0.1:0"}
    created = tp.populate([entry])
    assert [p.name for p in created] == ["second"]
    listen = created[0].listen
    assert tp.populate([{**entry, "listen": listen}]) == []  # identical: kept
    assert roundtrip(listen, b"two") == b"two"

    assert tp.destroy(proxy)
    with pytest.raises(NotFound):
        proxy.destroy()
    assert set(tp.proxies()) == {"second"}
    tp.destroy_all()
    assert tp.proxies() == {}
    assert refused(listen)
