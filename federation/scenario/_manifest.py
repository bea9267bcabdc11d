"""Reading a running federation's ``manifest.json`` (ARCHITECTURE.md, "run directory").

The runner talks to a federation only through the manifest and HTTP, so the same code works
whether the instances run in this process or in others. :class:`ManifestView` answers the
questions the interpreter asks: which client proxy serves a client, which chaos links run
between two instances or lead to a component, where a certificate is, where an instance's
OCSP admin interface listens.

Component names: ``<INST>.cs``, ``<INST>.ocsp``, ``<INST>.tsa``, ``<INST>.<server code>``;
links are named ``<from>--<to>`` and carry a ``kind`` (``ss-ss``, ``ss-cs``, ``ss-ocsp``,
``ss-tsa``, ``cs-cs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LINK_KINDS: tuple[str, ...] = ("ss-ss", "ss-cs", "ss-ocsp", "ss-tsa", "cs-cs")
CENTRAL_KINDS: frozenset[str] = frozenset({"ss-cs", "cs-cs"})
_SPECIAL = {"cs": "cs", "ocsp": "ocsp", "tsa": "tsa"}


class ManifestError(Exception):
    """Raised when the scenario asks for something the manifest does not have."""


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    kind: str
    source: str
    target: str

    def instances(self) -> tuple[str, str]:
        return self.source.split(".", 1)[0], self.target.split(".", 1)[0]


def component_role(component: str) -> str:
    """``cs``, ``ocsp``, ``tsa`` or ``ss`` for a component name."""
    tail = component.split(".", 1)[1] if "." in component else ""
    return _SPECIAL.get(tail, "ss")


class ManifestView:
    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.raw = manifest
        self.instances: Mapping[str, Any] = manifest.get("instances", {})
        chaos = manifest.get("chaos") or {}
        self.chaos_url: str | None = chaos.get("api_url")
        self.links: dict[str, Link] = {}
        for name, info in (chaos.get("links") or {}).items():
            src, _, dst = name.partition("--")
            src = info.get("from", src)
            dst = info.get("to", dst)
            kind = info.get("kind") or f"{component_role(src)}-{component_role(dst)}"
            self.links[name] = Link(name, kind, src, dst)

    @property
    def time_scale(self) -> float | None:
        ts = self.raw.get("time_scale")
        return float(ts) if ts is not None else None

    # ---- security servers and clients --------------------------------------------
    def servers(self) -> list[tuple[str, str, Mapping[str, Any]]]:
        """``(instance, server id, server info)`` for every security server."""
        out = []
        for inst, info in sorted(self.instances.items()):
            for sid, ss in sorted((info.get("security_servers") or {}).items()):
                out.append((inst, sid, ss))
        return out

    def component_of_server(self, inst: str, ss: Mapping[str, Any], sid: str) -> str:
        return f"{inst}.{ss.get('code') or sid.rsplit('/', 1)[-1]}"

    def client_url(self, client: str, via: str | None = None) -> tuple[str, str]:
        """``(client proxy URL, component)`` of the security server that serves ``client``."""
        candidates = []
        for inst, sid, ss in self.servers():
            comp = self.component_of_server(inst, ss, sid)
            if via is not None and comp != via:
                continue
            clients = ss.get("clients") or []
            owner = sid.rsplit("/", 1)[0]
            if client in clients or client == owner:
                candidates.append((str(ss["client_url"]), comp))
        if not candidates:
            if via is not None:
                raise ManifestError(f"security server {via} does not serve client {client}")
            raise ManifestError(f"no security server in the federation serves client {client}")
        return candidates[0]

    def has_instance(self, inst: str) -> bool:
        return inst in self.instances

    def components(self) -> set[str]:
        out: set[str] = set()
        for inst, info in self.instances.items():
            out.add(inst)
            for key, role in (("central_server", "cs"), ("ocsp", "ocsp"), ("tsa", "tsa")):
                if info.get(key):
                    out.add(f"{inst}.{role}")
        for inst, sid, ss in self.servers():
            out.add(self.component_of_server(inst, ss, sid))
        for link in self.links.values():
            out.update((link.source, link.target))
        return out

    # ---- links --------------------------------------------------------------------
    def links_between(self, a: str, b: str) -> list[str]:
        """Every link with one end in instance ``a`` and the other in ``b``."""
        return sorted(n for n, lk in self.links.items() if set(lk.instances()) == {a, b})

    def links_to(self, target: str) -> list[str]:
        """Every link leading to ``target`` (a component, or every component of an instance)."""
        return sorted(
            n
            for n, lk in self.links.items()
            if lk.target == target or lk.target.startswith(target + ".")
        )

    def partition_links(self, target: str, source: str) -> list[str]:
        """Links leading to ``target`` whose source is ``source`` or lies under it."""
        return sorted(
            n
            for n in self.links_to(target)
            if self.links[n].source == source or self.links[n].source.startswith(source + ".")
        )

    # ---- certificates and PKI endpoints --------------------------------------------
    def cert_paths(self, cert: str, of: str) -> list[Path]:
        """Certificate files for ``revoke``: ``auth`` of a server (``FI.fi-ss1``) or of every
        server a member owns; ``sign`` of a member (``FI/GOV/0245437-2``) or of a server's
        members."""
        out: list[Path] = []
        for inst, sid, ss in self.servers():
            comp = self.component_of_server(inst, ss, sid)
            owner = sid.rsplit("/", 1)[0]
            if cert == "auth":
                if of in (comp, owner) and ss.get("auth_cert"):
                    out.append(Path(ss["auth_cert"]))
            else:
                signs: Mapping[str, str] = ss.get("sign_certs") or {}
                for member, path in signs.items():
                    if of in (member, comp):
                        out.append(Path(path))
        seen: list[Path] = []
        for p in out:
            if p not in seen:
                seen.append(p)
        if not seen:
            raise ManifestError(f"the manifest has no {cert} certificate of {of}")
        return seen

    def ocsp_admin_url(self, inst: str) -> str:
        ocsp = (self.instances.get(inst) or {}).get("ocsp") or {}
        url = ocsp.get("admin_url")
        if not url:
            raise ManifestError(f"the manifest has no OCSP admin URL for instance {inst}")
        return str(url)

    def timers(self) -> dict[str, dict[str, float]]:
        """Per instance, the scaled timers in force (as the manifest states them)."""
        return {
            inst: {k: float(v) for k, v in (info.get("timers") or {}).items()}
            for inst, info in sorted(self.instances.items())
        }
