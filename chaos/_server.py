"""The chaos server: the Toxiproxy API plus its proxies, in-process or standalone.

In-process (how ``federation`` embeds it)::

    async with open_chaos_server(seed=42) as chaos:
        faults = FaultClient(chaos.url)
        ...

or ``address = await nursery.start(serve_chaos, "127.0.0.1", 0)``. Standalone:
:func:`main_serve` (``python -m chaos serve``).
"""

from __future__ import annotations

import logging
import secrets
import signal
import socket as stdsocket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from ._api import ToxiproxyApi
from ._collection import ProxyCollection
from ._errors import ChaosError, ProxyStartError
from ._http import serve_http
from ._proxy import ProxyStats, bind_listener, format_address, split_host_port

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiAddress:
    """Where the API listens (the bound port, never 0)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL of the API, e.g. ``http://127.0.0.1:8474``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class ChaosServer:
    """A Toxiproxy-compatible server. Run :meth:`serve` in a nursery (or use
    :func:`open_chaos_server`); ``seed`` makes toxicity, jitter and slicer sizes reproducible
    (a random seed is drawn and logged when it is None)."""

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed if seed is not None else secrets.randbits(32)
        self.address: ApiAddress | None = None
        self._collection: ProxyCollection | None = None

    @property
    def url(self) -> str:
        """The API base URL (only once serving)."""
        if self.address is None:
            raise ChaosError("the chaos server is not serving yet")
        return self.address.url

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[ApiAddress] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the API on ``host:port`` until cancelled; reports the bound :class:`ApiAddress`.

        Raises:
            ProxyStartError: the API address cannot be bound.
        """
        if self._collection is not None:
            raise ChaosError("this ChaosServer is already serving")
        family = stdsocket.AF_INET6 if ":" in host else stdsocket.AF_INET
        listen = format_address(family, host, port)
        sock, bound = await bind_listener(listen)
        bound_host, bound_port = split_host_port(bound)
        self.address = ApiAddress(bound_host, bound_port)
        logger.info("chaos API on %s (seed %d)", self.address.url, self.seed)
        try:
            async with trio.open_nursery() as nursery:
                self._collection = ProxyCollection(nursery, self.seed)
                api = ToxiproxyApi(self._collection)
                nursery.start_soon(serve_http, trio.SocketListener(sock), api)
                task_status.started(self.address)
        finally:
            sock.close()
            self._collection = None

    # ------------------------------------------------------------------ in-process views

    def proxy_names(self) -> list[str]:
        """Names of the proxies, sorted."""
        return self._require().names()

    def stats(self, name: str) -> ProxyStats:
        """Live counters of proxy ``name``.

        Raises:
            ApiError: 404 when there is no such proxy.
        """
        return self._require().get(name).stats()

    def _require(self) -> ProxyCollection:
        if self._collection is None:
            raise ChaosError("the chaos server is not serving")
        return self._collection


async def serve_chaos(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int | None = None,
    task_status: trio.TaskStatus[ApiAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a new :class:`ChaosServer` until cancelled; ``nursery.start`` returns its address."""
    await ChaosServer(seed=seed).serve(host, port, task_status=task_status)


@asynccontextmanager
async def open_chaos_server(
    host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None
) -> AsyncIterator[ChaosServer]:
    """A serving :class:`ChaosServer` for the duration of the block (in its own nursery)."""
    server = ChaosServer(seed=seed)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, host, port)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def main_serve(host: str = "127.0.0.1", port: int = 8474, seed: int | None = None) -> int:
    """Run the server until Ctrl-C or SIGTERM, printing the API address; the exit code."""

    async def run() -> int:
        server = ChaosServer(seed=seed)
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                try:
                    address = await nursery.start(server.serve, host, port)
                except ProxyStartError as exc:
                    print(f"chaos: cannot serve the API: {exc}", file=sys.stderr)
                    return 1
                print(
                    f"chaos: Toxiproxy-compatible API on {address.url} (seed {server.seed})",
                    flush=True,
                )
                async for signum in signals:
                    logger.info("chaos: got signal %d, stopping", signum)
                    break
                nursery.cancel_scope.cancel()
        return 0

    try:
        return trio.run(run)
    except KeyboardInterrupt:
        return 0
