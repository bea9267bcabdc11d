"""Test helpers: instance definitions, an in-process network of central servers, facts."""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path

from federation.central import CentralFacts, CentralServer, SecurityServerFacts
from federation.clock import Clock
from federation.errors import TransportError
from federation.globalconf import FetchResult
from federation.http import Handler, Request
from federation.topology import InstanceDef, load_instances

ROOT = Path(__file__).resolve().parents[2]
WALL0 = 1_700_000_000.0
"""A wall-clock origin that keeps float sums of whole seconds exact."""


def shipped() -> dict[str, InstanceDef]:
    defs = load_instances([ROOT / "instances" / f"{n}.yaml" for n in ("ee", "fi", "lv")])
    return {d.instance: d for d in defs}


def with_trusts(d: InstanceDef, *trusts: str) -> InstanceDef:
    return dataclasses.replace(d, trusts=tuple(trusts))


def facts_for(d: InstanceDef) -> CentralFacts:
    return CentralFacts(
        security_servers={
            ss.code: SecurityServerFacts(
                address=f"{ss.code}.test:5500",  # fixed-port-ok: a name, never bound
                auth_cert_hashes=(f"hash-of-{ss.code}",),
            )
            for ss in d.security_servers
        }
    )


class LocalNet:
    """A fetcher that routes ``http://name`` URLs to handlers in the same process.

    Deterministic under ``autojump_clock`` (no sockets); ``down`` holds partitioned origins.
    """

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.down: set[str] = set()
        self.requests: list[str] = []

    def add(self, origin: str, handler: Handler) -> None:
        self.handlers[origin] = handler

    async def __call__(self, url: str) -> FetchResult:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        self.requests.append(url)
        if origin in self.down or origin not in self.handlers:
            raise TransportError(f"cannot connect to {parts.netloc}: connection refused")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        resp = await self.handlers[origin](Request("GET", target, [], b""))
        ctype = next((v for k, v in resp.headers if k.lower() == "content-type"), "")
        return FetchResult(resp.status, ctype, resp.body)


def central(d: InstanceDef, net: LocalNet, clock: Clock) -> CentralServer:
    """A central server on ``http://<inst>-cs.test`` inside ``net`` (not listening)."""
    origin = f"http://{d.instance.lower()}-cs.test"
    cs = CentralServer(d, facts_for(d), clock=clock, public_url=origin, fetcher=net)
    net.add(origin, cs.handle)
    return cs
