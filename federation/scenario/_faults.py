"""Fault steps against a running federation: chaos proxies (through the Toxiproxy API with
:class:`chaos.FaultClient`) and certificate revocation (through the OCSP admin interface).

Each applied fault becomes a :class:`FaultWindow` (start, end, what it touched) for the
journal and the shaded windows of the report. ``heal`` undoes faults by name or all of them;
at the end of a run whatever is still active is healed too (``healed_by: "end of run"``).

* ``latency``/``toxic`` on ``link`` or ``between: [A, B]`` (every link with one end in each
  instance, both directions of each link unless ``stream`` says otherwise);
* ``partition``: every proxy leading to the component, or to every component of an
  instance, is disabled (connections refused) -- :meth:`chaos.FaultClient.partition`;
* ``revoke``: the certificate(s) from the manifest are revoked at the issuing instance's
  OCSP responder; healing un-revokes them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from chaos import FaultClient, FaultHandle
from federation.scenario._manifest import ManifestError, ManifestView
from federation.scenario._model import (
    FaultStep,
    LatencyFault,
    PartitionFault,
    RevokeFault,
    ToxicFault,
)

logger = logging.getLogger(__name__)

Revoker = Callable[[str, bytes], Awaitable[Any]]


class FaultApplyError(Exception):
    """Raised when a fault cannot be put in place (chaos API or OCSP admin refused)."""


@dataclass(slots=True)
class FaultWindow:
    name: str
    kind: str
    spec: dict[str, Any]
    step: int
    start: float
    end: float | None = None
    healed_by: str | None = None
    targets: list[str] = field(default_factory=list)
    detail: list[Any] = field(default_factory=list)

    def to_json(self, time_scale: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "spec": self.spec,
            "step": self.step,
            "start": round(self.start, 6),
            "end": None if self.end is None else round(self.end, 6),
            "start_scenario_s": round(self.start * time_scale, 3),
            "end_scenario_s": None if self.end is None else round(self.end * time_scale, 3),
            "healed_by": self.healed_by,
            "targets": self.targets,
            "detail": self.detail,
        }


def describe(step: FaultStep) -> dict[str, Any]:
    f = step.fault
    if isinstance(f, PartitionFault):
        if f.source is not None:
            return {"partition": {"of": f.target, "from": f.source}}
        return {"partition": f.target}
    if isinstance(f, LatencyFault):
        where: dict[str, Any] = {"link": f.link} if f.link else {"between": list(f.between or ())}
        return {"latency": {**where, "ms": f.ms, "jitter_ms": f.jitter_ms, "stream": f.stream}}
    if isinstance(f, RevokeFault):
        return {"revoke": {"instance": f.instance, "cert": f.cert, "of": f.of}}
    where = {"link": f.link} if f.link else {"between": list(f.between or ())}
    return {
        "toxic": {**where, "type": f.type, "attributes": dict(f.attributes), "stream": f.stream}
    }


def _attribute(f: ToxicFault, key: str) -> int:
    """Attribute ``key`` of ``f`` (the loader checked and completed them; no silent 0)."""
    for name, value in f.attributes:
        if name == key:
            return value
    raise FaultApplyError(f"toxic {f.type} needs attribute {key!r}")


async def _toxic(chaos: FaultClient, link: str, f: ToxicFault) -> FaultHandle:
    """The catalogue call for a generic ``toxic`` fault; ``stream: both`` puts one toxic on
    each direction (for ``limit_data``: each direction counts its own bytes)."""
    if f.type == "bandwidth":
        return await chaos.bandwidth(link, _attribute(f, "rate"), stream=f.stream)
    if f.type == "reset_peer":
        return await chaos.reset(link, _attribute(f, "timeout"), stream=f.stream)
    if f.type == "limit_data":
        return await chaos.cut_after(link, _attribute(f, "bytes"), stream=f.stream)
    raise FaultApplyError(f"toxic type {f.type} is not in the fault catalogue")


class FaultRunner:
    """Applies and heals the faults of one run."""

    def __init__(
        self,
        view: ManifestView,
        chaos: FaultClient | None,
        *,
        revoke: Revoker | None = None,
        unrevoke: Revoker | None = None,
    ) -> None:
        self.view = view
        self.chaos = chaos
        self._revoke = revoke
        self._unrevoke = unrevoke
        self.windows: list[FaultWindow] = []
        self._undo: dict[str, list[Callable[[], Awaitable[None]]]] = {}
        self._auto = 0

    @property
    def active(self) -> list[FaultWindow]:
        return [w for w in self.windows if w.end is None]

    def _links(self, link: str | None, between: tuple[str, str] | None) -> list[str]:
        if link is not None:
            if self.view.links and link not in self.view.links:
                raise ManifestError(f"no chaos link named {link}")
            return [link]
        assert between is not None
        names = self.view.links_between(*between)
        if not names:
            raise ManifestError(f"no chaos link runs between {between[0]} and {between[1]}")
        return names

    def _need_chaos(self) -> FaultClient:
        if self.chaos is None:
            raise ManifestError("the manifest has no chaos API (chaos.api_url)")
        return self.chaos

    async def apply(self, step: FaultStep, now: float) -> FaultWindow:
        """Put the fault of ``step`` in place; the window starts at ``now``."""
        if step.name is not None:
            name = step.name
        else:
            self._auto += 1
            name = f"{step.fault_kind}-{self._auto}"
        window = FaultWindow(
            name=name, kind=step.fault_kind, spec=describe(step), step=step.index, start=now
        )
        undo: list[Callable[[], Awaitable[None]]] = []
        f = step.fault
        try:
            if isinstance(f, LatencyFault | ToxicFault):
                chaos = self._need_chaos()
                for link in self._links(f.link, f.between):
                    if isinstance(f, LatencyFault):
                        handle = await chaos.latency(
                            link, f.ms, jitter=f.jitter_ms, stream=f.stream
                        )
                    else:
                        handle = await _toxic(chaos, link, f)
                    undo.append(handle.heal)
                    window.targets.append(link)
            elif isinstance(f, PartitionFault):
                chaos = self._need_chaos()
                if f.source is None:
                    ph: FaultHandle = await chaos.partition(f.target)
                    undo.append(ph.heal)
                    window.targets.extend(self.view.links_to(f.target) or [f.target])
                    window.detail.append(ph.description)
                else:
                    links = self.view.partition_links(f.target, f.source)
                    if not links:
                        raise ManifestError(f"no chaos link leads from {f.source} to {f.target}")
                    for link in links:  # a whole proxy name is a partition target too
                        ph = await chaos.partition(link)
                        undo.append(ph.heal)
                        window.targets.append(link)
            else:
                await self._apply_revoke(f, window, undo)
        except Exception as exc:
            for u in reversed(undo):
                try:
                    await u()
                except Exception:  # best effort rollback
                    logger.exception("rolling back fault %s", name)
            if isinstance(exc, ManifestError | FaultApplyError):
                raise
            raise FaultApplyError(f"fault {name}: {exc}") from exc
        self._undo[name] = undo
        self.windows.append(window)
        return window

    async def _apply_revoke(
        self, f: RevokeFault, window: FaultWindow, undo: list[Callable[[], Awaitable[None]]]
    ) -> None:
        admin = self.view.ocsp_admin_url(f.instance)
        revoke, unrevoke = self._revoke, self._unrevoke
        if revoke is None or unrevoke is None:
            from federation.pki import revoke_remote, unrevoke_remote

            revoke, unrevoke = revoke_remote, unrevoke_remote
        for path in self.view.cert_paths(f.cert, f.of):
            pem = await trio.Path(path).read_bytes()
            answer = await revoke(admin, pem)
            window.targets.append(str(path))
            window.detail.append(answer)

            async def undo_one(pem: bytes = pem, unrevoke: Revoker = unrevoke) -> None:
                await unrevoke(admin, pem)

            undo.append(undo_one)

    async def heal(self, names: list[str] | None, now: float, by: str) -> list[FaultWindow]:
        """Heal the named faults (all active ones when ``names`` is None)."""
        targets = self.active if names is None else [w for w in self.active if w.name in names]
        errors: list[str] = []
        for w in reversed(targets):
            for u in reversed(self._undo.pop(w.name, [])):
                try:
                    await u()
                except Exception as exc:  # report, keep healing the rest
                    errors.append(f"{w.name}: {exc}")
            w.end = now
            w.healed_by = by
        if errors:
            raise FaultApplyError("healing failed: " + "; ".join(errors))
        return targets
