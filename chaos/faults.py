"""The fault catalogue: named faults on links, each with a handle that heals it.

It speaks only the Toxiproxy HTTP API, so it works against our embedded server
(:func:`chaos.open_chaos_server`) and a real Toxiproxy alike.

**Link naming.** A *link* is one proxy, named ``<from>--<to>`` after the two components it
connects, e.g. ``EE.ss1--FI.ss1`` (security server to security server) or ``EE.ss1--EE.cs``
(security server to its central server). Component names never contain ``--``.
:func:`link_name` builds such a name; :func:`link_targets` tells whether a link leads to a
target: the ``to`` side equals the target or lies under it (``EE`` matches ``EE.cs`` and
``EE.ss1``), or the whole proxy name equals the target.

Usage::

    faults = FaultClient(chaos.url)
    await faults.ensure_proxy("EE.ss1--FI.ss1", "127.0.0.1:0", "127.0.0.1:5500")
    slow = await faults.latency("EE.ss1--FI.ss1", 80, jitter=10)
    down = await faults.partition("EE.cs")
    ...
    await slow.heal()
    await faults.heal_all()
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import httpx

from ._errors import FaultError

logger = logging.getLogger(__name__)

LINK_SEPARATOR = "--"
STREAMS = ("upstream", "downstream")


def link_name(source: str, target: str) -> str:
    """The proxy name of the link from component ``source`` to component ``target``."""
    for part in (source, target):
        if not part or LINK_SEPARATOR in part:
            raise ValueError(f"component name {part!r} is empty or contains {LINK_SEPARATOR!r}")
    return f"{source}{LINK_SEPARATOR}{target}"


def parse_link(name: str) -> tuple[str, str] | None:
    """``(from, to)`` of a link name, or None when ``name`` does not follow the convention."""
    source, sep, target = name.partition(LINK_SEPARATOR)
    if not sep or not source or not target or LINK_SEPARATOR in target:
        return None
    return source, target


def link_targets(name: str, target: str) -> bool:
    """Whether proxy ``name`` leads to ``target`` (see the module docstring)."""
    if name == target:
        return True
    parsed = parse_link(name)
    if parsed is None:
        return False
    to = parsed[1]
    return to == target or to.startswith(target + ".")


def _streams(stream: str) -> tuple[str, ...]:
    if stream == "both":
        return STREAMS
    if stream in STREAMS:
        return (stream,)
    raise ValueError(f"stream must be upstream, downstream or both, not {stream!r}")


class FaultHandle:
    """One injected fault; :meth:`heal` undoes it (idempotent)."""

    def __init__(self, kind: str, description: str, undo: Callable[[], Awaitable[None]]) -> None:
        self.kind = kind
        self.description = description
        self._undo = undo
        self.healed = False

    async def heal(self) -> None:
        """Remove the fault. A second call does nothing."""
        if self.healed:
            return
        self.healed = True
        await self._undo()

    def __repr__(self) -> str:
        state = "healed" if self.healed else "active"
        return f"<FaultHandle {self.kind} {self.description} ({state})>"


class FaultClient:
    """Injects faults through a Toxiproxy-compatible API at ``url``.

    Args:
        url: the API base URL, e.g. ``http://127.0.0.1:8474``.
        tag: prefix of the toxic names this client creates (``<tag>.<kind>.<n>.<stream>``).
        client: an ``httpx.AsyncClient`` to use (for tests); one is created otherwise.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8474",
        *,
        tag: str = "xfed",
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tag = tag
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._counter = itertools.count(1)
        self._active: list[FaultHandle] = []
        self._disabled: Counter[str] = Counter()

    async def aclose(self) -> None:
        """Close the HTTP client (faults stay in place; heal them first if needed)."""
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> FaultClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ HTTP

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._client.request(method, self.url + path, json=body)
        except httpx.HTTPError as exc:
            raise FaultError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 300:
            try:
                message = str(response.json().get("error", response.text))
            except (ValueError, AttributeError):
                message = response.text.strip()
            raise FaultError(
                f"{method} {path}: {response.status_code} {message}",
                status=response.status_code,
                body=response.text,
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # ------------------------------------------------------------------ proxies

    async def proxies(self) -> dict[str, Any]:
        """Every proxy on the server, by name."""
        result: dict[str, Any] = await self._call("GET", "/proxies")
        return result

    async def ensure_proxy(
        self, name: str, listen: str, upstream: str, *, enabled: bool = True
    ) -> dict[str, Any]:
        """Create proxy ``name`` or bring an existing one to ``listen``/``upstream``/``enabled``.

        Returns the proxy object; its ``listen`` holds the bound address (port 0 resolved).
        An existing proxy whose ``listen`` ends in ``:0`` keeps its current port.
        """
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        try:
            created: dict[str, Any] = await self._call("POST", "/proxies", body)
            return created
        except FaultError as exc:
            if exc.status != 409:
                raise
        update: dict[str, Any] = {"upstream": upstream, "enabled": enabled}
        if not listen.endswith(":0"):
            update["listen"] = listen
        updated: dict[str, Any] = await self._call("POST", f"/proxies/{name}", update)
        return updated

    async def delete_proxy(self, name: str) -> None:
        """Delete proxy ``name`` (its connections close)."""
        await self._call("DELETE", f"/proxies/{name}")

    async def reset_server(self) -> None:
        """``POST /reset``: every toxic removed and every proxy enabled, ours or not."""
        await self._call("POST", "/reset")
        self._disabled.clear()
        for handle in self._active:
            handle.healed = True
        self._active.clear()

    # ------------------------------------------------------------------ toxic faults

    async def _toxics(
        self, kind: str, link: str, toxic_type: str, stream: str, attributes: dict[str, int]
    ) -> FaultHandle:
        number = next(self._counter)
        created: list[str] = []
        try:
            for direction in _streams(stream):
                name = f"{self.tag}.{kind}.{number}.{direction}"
                body = {
                    "name": name,
                    "type": toxic_type,
                    "stream": direction,
                    "toxicity": 1.0,
                    "attributes": attributes,
                }
                await self._call("POST", f"/proxies/{link}/toxics", body)
                created.append(name)
        except FaultError:
            for name in created:
                await self._remove_toxic(link, name)
            raise

        async def undo() -> None:
            for name in created:
                await self._remove_toxic(link, name)

        return self._track(kind, f"{link} {toxic_type} {attributes} ({stream})", undo)

    async def _remove_toxic(self, link: str, name: str) -> None:
        try:
            await self._call("DELETE", f"/proxies/{link}/toxics/{name}")
        except FaultError as exc:
            if exc.status != 404:  # already gone (proxy reset or deleted): healed anyway
                raise

    def _track(
        self, kind: str, description: str, undo: Callable[[], Awaitable[None]]
    ) -> FaultHandle:
        handle: FaultHandle

        async def undo_and_forget() -> None:
            if handle in self._active:
                self._active.remove(handle)
            await undo()

        handle = FaultHandle(kind, description, undo_and_forget)
        self._active.append(handle)
        logger.info("fault injected: %s %s", kind, description)
        return handle

    async def latency(
        self, link: str, ms: int, jitter: int = 0, stream: str = "both"
    ) -> FaultHandle:
        """Delay every chunk by ``ms`` ± ``jitter`` milliseconds, one way, in each ``stream``
        (``"both"`` adds ``2*ms`` to a round trip)."""
        return await self._toxics(
            "latency", link, "latency", stream, {"latency": ms, "jitter": jitter}
        )

    async def bandwidth(self, link: str, rate_kbps: int, stream: str = "both") -> FaultHandle:
        """Limit each connection to ``rate_kbps`` KB/s (1 KB = 1000 bytes) per ``stream``."""
        return await self._toxics("bandwidth", link, "bandwidth", stream, {"rate": rate_kbps})

    async def reset(self, link: str, after_ms: int = 0, stream: str = "both") -> FaultHandle:
        """Reset (TCP RST) every connection of ``link`` when its next data passes, after
        ``after_ms``; new connections too, until healed. Idle connections are left alone."""
        return await self._toxics("reset", link, "reset_peer", stream, {"timeout": after_ms})

    async def cut_after(self, link: str, nbytes: int, stream: str = "downstream") -> FaultHandle:
        """Close each connection of ``link`` once ``nbytes`` bytes have passed in ``stream``."""
        return await self._toxics("cut", link, "limit_data", stream, {"bytes": nbytes})

    # ------------------------------------------------------------------ partitions

    async def partition(self, target: str) -> FaultHandle:
        """Take down every proxy leading to ``target`` (listener closed, connections dropped).

        Overlapping partitions are counted: a proxy comes back when the last one heals.
        """
        names = sorted(n for n in await self.proxies() if link_targets(n, target))
        if not names:
            raise FaultError(f"partition {target}: no proxy leads to {target!r}")
        for name in names:
            if self._disabled[name] == 0:
                await self._call("POST", f"/proxies/{name}", {"enabled": False})
            self._disabled[name] += 1

        async def undo() -> None:
            for name in names:
                self._disabled[name] -= 1
                if self._disabled[name] <= 0:
                    del self._disabled[name]
                    try:
                        await self._call("POST", f"/proxies/{name}", {"enabled": True})
                    except FaultError as exc:
                        if exc.status != 404:
                            raise

        return self._track("partition", f"{target} ({', '.join(names)})", undo)

    async def heal_all(self) -> None:
        """Heal every fault this client injected and has not healed yet (newest first)."""
        while self._active:
            await self._active[-1].heal()

    @property
    def active(self) -> list[FaultHandle]:
        """The faults injected and not yet healed, oldest first."""
        return list(self._active)
