"""The proxy collection: every API operation on proxies and toxics, as Toxiproxy does it.

Operations raise :class:`~chaos._errors.ApiError` carrying Toxiproxy's status and message.
Mutations are serialised by one lock, so an API call never sees another half-applied.
No operation waits on traffic: toxic changes are applied to live links synchronously and
stopping a proxy only cancels its tasks (the hang of Toxiproxy issue #558 cannot happen).
"""

from __future__ import annotations

import socket as stdsocket
from dataclasses import dataclass
from typing import Any

import trio

from ._errors import ApiError, ProxyStartError
from ._model import (
    ProxyInput,
    ToxicSpec,
    decode_attributes,
    decode_proxy,
    decode_toxic_header,
    decode_toxic_update,
)
from ._proxy import ProxyRuntime, split_host_port

DEFAULT_LISTEN = "127.0.0.1:0"


class PopulateError(ApiError):
    """Raised when ``/populate`` fails part-way; ``proxies`` are the entries already handled."""

    def __init__(self, status: int, message: str, proxies: list[dict[str, Any]]) -> None:
        super().__init__(status, message)
        self.proxies = proxies


@dataclass(frozen=True, slots=True)
class _Endpoint:
    ip: str
    port: int


async def _resolve(address: str) -> _Endpoint | None:
    """The numeric endpoint of a listen address, for "same address" comparisons."""
    try:
        host, port = ("", 0) if address == "" else split_host_port(address)
    except ValueError:
        return None
    if host in ("", "::", "0.0.0.0"):
        return _Endpoint("*", port)
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=stdsocket.SOCK_STREAM)
    except (OSError, UnicodeError):  # does not resolve / not a valid host name (IDNA)
        return None
    infos.sort(key=lambda info: info[0] != stdsocket.AF_INET)
    return _Endpoint(str(infos[0][4][0]), port)


async def _same_listen(current: str, wanted: str) -> bool:
    if current == wanted:
        return not wanted.endswith(":0")
    a, b = await _resolve(current), await _resolve(wanted)
    return a is not None and a == b and b.port != 0


class ProxyCollection:
    """All proxies of one server; proxy tasks run in ``nursery``."""

    def __init__(self, nursery: trio.Nursery, seed: int) -> None:
        self._nursery = nursery
        self._seed = seed
        self._proxies: dict[str, ProxyRuntime] = {}
        self.lock = trio.Lock()

    # ------------------------------------------------------------------ lookups

    def names(self) -> list[str]:
        return sorted(self._proxies)

    def get(self, name: str) -> ProxyRuntime:
        try:
            return self._proxies[name]
        except KeyError:
            raise ApiError(404, "proxy not found") from None

    @staticmethod
    def find_toxic(proxy: ProxyRuntime, name: str) -> ToxicSpec:
        for toxic in proxy.toxics:
            if toxic.name == name:
                return toxic
        raise ApiError(404, "toxic not found")

    @staticmethod
    def proxy_json(proxy: ProxyRuntime) -> dict[str, Any]:
        stats = proxy.stats()
        return {
            "name": proxy.name,
            "listen": proxy.listen,
            "upstream": proxy.upstream,
            "enabled": proxy.enabled,
            "toxics": [t.to_json() for t in proxy.ordered_toxics()],
            "stats": {
                "connections": stats.connections,
                "connections_total": stats.connections_total,
                "bytes_upstream": stats.bytes_upstream,
                "bytes_downstream": stats.bytes_downstream,
            },
        }

    def all_json(self) -> dict[str, Any]:
        return {name: self.proxy_json(self._proxies[name]) for name in self.names()}

    # ------------------------------------------------------------------ proxies

    async def _start(self, proxy: ProxyRuntime) -> None:
        try:
            await proxy.start(self._nursery)
        except ProxyStartError as exc:
            raise ApiError(500, str(exc)) from None

    async def create(self, body: Any) -> ProxyRuntime:
        """``POST /proxies``: 409 before any bind, then bind when enabled (500 on failure)."""
        wanted = decode_proxy(body, ProxyInput(name="", listen="", upstream="", enabled=True))
        if not wanted.name:
            raise ApiError(400, "missing required field: name")
        if not wanted.upstream:
            raise ApiError(400, "missing required field: upstream")
        async with self.lock:
            return await self._create(wanted)

    async def _create(self, wanted: ProxyInput) -> ProxyRuntime:
        if wanted.name in self._proxies:
            raise ApiError(409, "proxy already exists")
        # Deviation: Toxiproxy binds every interface when listen is omitted; we stay on
        # loopback (say "[::]:0" or "0.0.0.0:0" to listen everywhere).
        proxy = ProxyRuntime(
            name=wanted.name,
            listen=wanted.listen or DEFAULT_LISTEN,
            upstream=wanted.upstream,
            seed=self._seed,
        )
        if wanted.enabled:
            await self._start(proxy)
        self._proxies[proxy.name] = proxy
        return proxy

    async def update(self, name: str, body: Any) -> ProxyRuntime:
        """``POST``/``PATCH /proxies/{p}``: a new address restarts it; then ``enabled``."""
        async with self.lock:
            proxy = self.get(name)
            current = ProxyInput(
                name=proxy.name,
                listen=proxy.listen,
                upstream=proxy.upstream,
                enabled=proxy.enabled,
            )
            wanted = decode_proxy(body, current)
            if wanted.upstream != proxy.upstream or not await _same_listen(
                proxy.listen, wanted.listen
            ):
                await proxy.stop()
                proxy.listen = wanted.listen
                proxy.upstream = wanted.upstream
            if wanted.enabled and not proxy.enabled:
                await self._start(proxy)
            elif not wanted.enabled and proxy.enabled:
                await proxy.stop(keep_port=True)
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            del self._proxies[name]
            await proxy.stop()

    async def populate(self, body: Any) -> list[ProxyRuntime]:
        """``POST /populate``: validate every entry, then create/replace/keep in order."""
        if not isinstance(body, list):
            raise ApiError(
                400,
                "bad request body: json: cannot unmarshal object into Go value of type "
                "[]struct { proxy.Proxy; Enabled *bool }",
            )
        entries: list[ProxyInput] = []
        for index, item in enumerate(body, start=1):
            entry = decode_proxy(item, ProxyInput(name="", listen="", upstream="", enabled=True))
            if not entry.name:
                raise ApiError(400, f"missing required field: name at proxy {index}")
            if not entry.upstream:
                raise ApiError(400, f"missing required field: upstream at proxy {index}")
            entries.append(entry)
        done: list[ProxyRuntime] = []
        async with self.lock:
            for entry in entries:
                existing = self._proxies.get(entry.name)
                try:
                    if existing is not None:
                        if existing.upstream == entry.upstream and await _same_listen(
                            existing.listen, entry.listen
                        ):
                            done.append(existing)
                            continue
                        del self._proxies[entry.name]
                        await existing.stop()
                    done.append(await self._create(entry))
                except ApiError as exc:
                    raise PopulateError(
                        exc.status, exc.message, [self.proxy_json(p) for p in done]
                    ) from None
        return done

    async def reset(self) -> None:
        """``POST /reset``: remove every toxic and start every disabled proxy."""
        async with self.lock:
            for name in self.names():
                proxy = self._proxies[name]
                proxy.set_toxics([])
                if not proxy.enabled:
                    await self._start(proxy)

    # ------------------------------------------------------------------ toxics

    async def add_toxic(self, proxy_name: str, body: Any) -> ToxicSpec:
        async with self.lock:
            proxy = self.get(proxy_name)
            header = decode_toxic_header(body)
            if any(t.name == header.name for t in proxy.toxics):
                raise ApiError(409, "toxic already exists")
            spec = ToxicSpec(
                name=header.name,
                type=header.type,
                stream=header.stream,
                direction=header.direction,
                toxicity=header.toxicity,
                attributes=decode_attributes(header.type, header.raw_attributes),
            )
            proxy.set_toxics([*proxy.toxics, spec])
            return spec

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: Any) -> ToxicSpec:
        async with self.lock:
            proxy = self.get(proxy_name)
            current = self.find_toxic(proxy, toxic_name)
            updated = decode_toxic_update(body, current)
            proxy.set_toxics([updated if t is current else t for t in proxy.toxics])
            return updated

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        async with self.lock:
            proxy = self.get(proxy_name)
            current = self.find_toxic(proxy, toxic_name)
            proxy.set_toxics([t for t in proxy.toxics if t is not current])

    async def aclose(self) -> None:
        """Stop every proxy (used at server shutdown)."""
        for proxy in list(self._proxies.values()):
            await proxy.stop()
