"""The configuration client's trio shell: download, verify, keep, persist (xroad.md 4).

Every ``conf_update_s`` (scaled) it downloads the own instance's internal directory, then
every admitted partner's external directory, each through ``url_map`` (so a chaos proxy can
sit on the link). Verified copies and ``status.json`` are written under ``state_dir`` with
atomic replaces, so other processes (``xfed status``) can read them at any time.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import trio

from federation._files import atomic_write
from federation.clock import Clock, iso
from federation.errors import ConfigError, GlobalConfError, ProtocolError, TransportError
from federation.globalconf._client_core import ConfClientCore, Fetch, HeldConf
from federation.globalconf._directory import SignedDirectory
from federation.globalconf._model import (
    ApprovedCA,
    ApprovedTSA,
    ConfigurationAnchor,
    PrivateParameters,
    SharedParameters,
    download_url_problem,
)
from federation.globalconf._status import conf_client_dir
from federation.http import HttpClient
from federation.settings import Timers
from federation.topology import InstanceDef

logger = logging.getLogger(__name__)

UrlMap: TypeAlias = Callable[[str], str] | Mapping[str, str] | None
"""Rewrites a URL before it is fetched: a callable, or a mapping from URL prefixes
(``http://127.0.0.1:4001``) to replacements (the longest matching prefix wins)."""


def map_url(url_map: UrlMap, url: str) -> str:
    """Apply a :data:`UrlMap` to ``url``."""
    if url_map is None:
        return url
    if callable(url_map):
        return url_map(url)
    best = ""
    for prefix in url_map:
        if url.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return url_map[best] + url[len(best) :] if best else url


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    content_type: str
    body: bytes


Fetcher: TypeAlias = Callable[[str], Awaitable[FetchResult]]
"""Downloads a URL (already mapped); raises TransportError when it cannot."""


class HttpFetcher:
    """:data:`Fetcher` over :class:`~federation.http.HttpClient` (plain HTTP, keep-alive)."""

    def __init__(self, *, timeout_s: float = 30.0, connect_timeout_s: float = 10.0) -> None:
        self._client = HttpClient(connect_timeout_s=connect_timeout_s, read_timeout_s=timeout_s)

    async def __call__(self, url: str) -> FetchResult:
        problem = download_url_problem(url)
        if problem is not None:
            raise TransportError(
                f"unsupported configuration URL {url!r}: {problem} (expected http://HOST[:PORT]/PATH)"
            )
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        resp = await self._client.request(parts.hostname, parts.port or 80, "GET", target)
        return FetchResult(resp.status, resp.header("content-type") or "", resp.body)

    async def aclose(self) -> None:
        await self._client.aclose()


class ConfigurationClient:
    """One security server's configuration client.

    Args:
        anchor: the own instance's internal configuration anchor.
        admits: ``allowed-federations`` as a predicate (``AllowedFederations.admits``).
        timers: the instance's timers, already scaled by ``time_scale``.
        clock: the clock every expiry decision reads (``TrioClock`` in runs and tests).
        server_id: ``INST/CLASS/CODE/SERVERCODE``, for logs and status.
        url_map: rewrites download URLs (chaos proxies).
        state_dir: where verified copies and ``status.json`` go (None: memory only).
        fetcher: how URLs are downloaded (default: plain HTTP); tests pass fakes.
    """

    def __init__(
        self,
        *,
        anchor: ConfigurationAnchor,
        admits: Callable[[str], bool],
        timers: Timers,
        clock: Clock,
        server_id: str | None = None,
        url_map: UrlMap = None,
        state_dir: str | os.PathLike[str] | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.core = ConfClientCore(anchor=anchor, admits=admits, server_id=server_id)
        self.timers = timers
        self.clock = clock
        self.url_map = url_map
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._own_fetcher = fetcher is None
        self._fetcher: Fetcher = fetcher or HttpFetcher(
            timeout_s=min(30.0, max(timers.conf_update_s, 1.0)),
            connect_timeout_s=min(10.0, max(timers.conf_update_s, 1.0)),
        )
        self.updated = trio.Event()
        """Set after the first update round (successful or not)."""
        self._started = 0
        self._finished = 0
        self._round_done = trio.Condition()
        self._label = server_id or f"{anchor.instance} configuration client"

    @classmethod
    def for_security_server(
        cls,
        definition: InstanceDef,
        server_code: str,
        *,
        anchor: ConfigurationAnchor,
        clock: Clock,
        url_map: UrlMap = None,
        run_dir: str | os.PathLike[str] | None = None,
        fetcher: Fetcher | None = None,
    ) -> ConfigurationClient:
        """The client of ``definition``'s server ``server_code``: its allowed-federations,
        the scaled timers, and state under ``<run_dir>/<INST>/ss/<code>/globalconf``."""
        ss = definition.security_server(server_code)
        if ss is None:
            raise ConfigError(
                f"no security server {server_code!r} in instance {definition.instance}",
                file=definition.source,
            )
        if anchor.instance != definition.instance:
            raise ConfigError(
                f"security server {ss.id} of instance {definition.instance} was given the "
                f"configuration anchor of instance {anchor.instance}; its configuration client "
                "needs its own instance's internal anchor",
                file=definition.source,
            )
        return cls(
            anchor=anchor,
            admits=ss.allowed_federations.admits,
            timers=definition.scaled_timers,
            clock=clock,
            server_id=str(ss.id),
            url_map=url_map,
            state_dir=(
                conf_client_dir(run_dir, definition.instance, server_code)
                if run_dir is not None
                else None
            ),
            fetcher=fetcher,
        )

    # -- loop ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Update now, report started, then update every ``conf_update_s`` until cancelled."""
        try:
            await self.update_once()
            task_status.started()
            while True:
                await trio.sleep(self.timers.conf_update_s)
                await self.update_once()
        finally:
            if self._own_fetcher and isinstance(self._fetcher, HttpFetcher):
                with trio.CancelScope(shield=True):
                    await self._fetcher.aclose()

    async def update_once(self) -> None:
        """One round: own configuration first, then every admitted partner concurrently."""
        self._started += 1
        this_round = self._started
        await self._update(self.core.own_fetch())
        async with trio.open_nursery() as nursery:
            for fetch in self.core.partner_fetches():
                nursery.start_soon(self._update, fetch)
        self._write_status()
        self._finished = max(self._finished, this_round)
        self.updated.set()
        async with self._round_done:
            self._round_done.notify_all()

    async def wait_round(self) -> None:
        """Wait until a round that starts after this call has completed."""
        target = self._started + 1
        async with self._round_done:
            while self._finished < target:
                await self._round_done.wait()

    async def _download(self, url: str) -> FetchResult:
        result = await self._fetcher(map_url(self.url_map, url))
        if result.status != 200:
            raise TransportError(f"GET {url} answered HTTP {result.status}")
        return result

    async def _update(self, fetch: Fetch) -> None:
        core = self.core
        errors: list[str] = []
        for url in fetch.urls:
            try:
                got = await self._download(url)
            except TransportError as exc:
                errors.append(str(exc))
                continue
            now = self.clock.now()
            try:
                directory = core.check_directory(
                    fetch, got.content_type, got.body, now=now, source=url
                )
                files = await self._files(fetch, directory, url)
                held = core.accept(
                    fetch,
                    directory,
                    files,
                    content_type=got.content_type,
                    body=got.body,
                    now=self.clock.now(),
                    source=url,
                )
            except (GlobalConfError, ProtocolError) as exc:
                msg = str(exc) if fetch.instance in str(exc) else f"{fetch.instance}: {exc}"
                logger.warning("%s: rejected configuration from %s: %s", self._label, url, msg)
                core.fail(fetch, msg, now=self.clock.now(), rejected=True)
                return
            except TransportError as exc:
                errors.append(str(exc))
                continue
            logger.debug(
                "%s: %s configuration serial %d verified, expires %s",
                self._label,
                fetch.instance,
                directory.serial,
                iso(directory.expire_date),
            )
            self._persist(held)
            return
        msg = f"{fetch.instance}: download failed: " + "; ".join(errors or ["no source"])
        logger.info("%s: %s", self._label, msg)
        core.fail(fetch, msg, now=self.clock.now(), rejected=False)

    async def _files(self, fetch: Fetch, directory: SignedDirectory, url: str) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for entry in self.core.wanted_entries(fetch, directory):
            data = self.core.cached_file(fetch, entry)
            if data is None:
                got = await self._download(urllib.parse.urljoin(url, entry.location))
                data = got.body
            out[entry.content_identifier] = data
        return out

    # -- persistence ---------------------------------------------------------------------

    def _persist(self, held: HeldConf) -> None:
        if self.state_dir is None:
            return
        d = self.state_dir / held.instance
        try:
            atomic_write(d / "directory.bin", held.body)
            for ident, data in held.files.items():
                atomic_write(d / f"{ident.lower()}.json", data)
            meta = {
                "instance": held.instance,
                "kind": held.kind,
                "content_type": held.content_type,
                "serial": held.directory.serial,
                "expires": iso(held.expires),
                "downloaded_at": iso(held.downloaded_at),
                "source": held.source,
            }
            atomic_write(d / "directory.json", (json.dumps(meta, indent=2) + "\n").encode())
        except OSError as exc:
            logger.warning("%s: cannot write %s: %s", self._label, d, exc)

    def _write_status(self) -> None:
        if self.state_dir is None:
            return
        try:
            atomic_write(
                self.state_dir / "status.json",
                (json.dumps(self.status(), indent=2) + "\n").encode(),
            )
        except OSError as exc:
            logger.warning("%s: cannot write status: %s", self._label, exc)

    # -- queries for the security server -------------------------------------------------

    @property
    def instance(self) -> str:
        return self.core.instance

    def is_outdated(self) -> bool:
        """Own configuration missing or expired: the exchange answers OutdatedGlobalConf."""
        return self.core.is_outdated(self.clock.now())

    def own_expires(self) -> float | None:
        return self.core.own_expires()

    def shared_parameters(self, instance: str) -> SharedParameters | None:
        """``instance``'s shared parameters; None if not held or expired."""
        return self.core.shared_parameters(instance, self.clock.now())

    def instances(self) -> list[str]:
        return self.core.instances(self.clock.now())

    def private_parameters(self) -> PrivateParameters | None:
        return self.core.private_parameters(self.clock.now())

    def approved_cas(self, instance: str) -> tuple[ApprovedCA, ...]:
        return self.core.approved_cas(instance, self.clock.now())

    def approved_tsas(self) -> tuple[ApprovedTSA, ...]:
        return self.core.approved_tsas(self.clock.now())

    def ocsp_freshness_s(self) -> float | None:
        return self.core.ocsp_freshness_s(self.clock.now())

    def timestamping_interval_s(self) -> float | None:
        return self.core.timestamping_interval_s(self.clock.now())

    def status(self) -> dict[str, Any]:
        return self.core.status(self.clock.now())
