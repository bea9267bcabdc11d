"""Fixtures for the chaos tests: an in-process chaos server, a TCP echo server, helpers.

Everything binds 127.0.0.1 port 0; randomness is seeded.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import trio

from chaos import ChaosServer, ToxicSpec, open_chaos_server
from chaos._model import decode_attributes, parse_stream

SEED = 1234


def make_spec(
    type_: str,
    stream: str = "downstream",
    *,
    name: str | None = None,
    toxicity: float = 1.0,
    **attributes: int,
) -> ToxicSpec:
    """A validated toxic spec, as the API would build it."""
    return ToxicSpec(
        name=name or f"{type_}_{stream}",
        type=type_,
        stream=stream,
        direction=parse_stream(stream),
        toxicity=toxicity,
        attributes=decode_attributes(type_, dict(attributes)),
    )


def rng(tag: str = "") -> random.Random:
    return random.Random(f"{SEED}/{tag}")


async def echo_handler(stream: trio.SocketStream) -> None:
    """Echo everything back; half-close when the client half-closes."""
    try:
        async for data in stream:
            await stream.send_all(data)
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


@pytest.fixture
async def echo_port(nursery: trio.Nursery) -> int:
    listeners: list[Any] = await nursery.start(
        partial(trio.serve_tcp, echo_handler, 0, host="127.0.0.1")
    )
    port: int = listeners[0].socket.getsockname()[1]
    return port


@pytest.fixture
async def chaos() -> AsyncIterator[ChaosServer]:
    async with open_chaos_server(seed=SEED) as server:
        yield server
