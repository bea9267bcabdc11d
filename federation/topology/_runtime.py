"""Starting a federation: PKI, OCSP/TSA, central servers, information systems, security
servers, the chaos links between them, and the run manifest.

Two phases per instance (:class:`InstanceNode`), so that the same code runs in one process
or in a process per instance:

1. ``serve`` binds and serves every listener of the instance (OCSP + admin, TSA, central
   server + management, information systems, each security server's client and server
   proxy) and reports the real addresses;
2. ``connect`` receives the *address map* — for each outbound link of each component, the
   chaos proxy that stands for the real address — and starts everything that talks to
   others (configuration clients, OCSP refresh, time-stamping, the central server's facts).

The coordinator (:func:`open_federation`) creates the chaos proxies between the two phases,
uploads each partner's external anchor to the central servers that trust it, waits until
every security server holds verified configuration, and writes ``manifest.json``.

Component names (also the chaos link ends): ``<INST>.cs``, ``<INST>.ocsp``, ``<INST>.tsa``,
``<INST>.<server code>``. A link is ``<from>--<to>``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import trio

from chaos import FaultClient, link_name
from federation._files import atomic_write
from federation.central import CentralFacts, CentralServer, SecurityServerFacts
from federation.clock import Clock, TrioClock, iso
from federation.errors import FederationError
from federation.globalconf import (
    ApprovedCA,
    ApprovedTSA,
    ConfigurationClient,
    cert_hash,
    cert_to_pem,
)
from federation.globalconf import (
    OcspResponder as OcspInfo,
)
from federation.identifiers import ClientId, SecurityServerId
from federation.infosystems import ServiceSpec, XRoadCaller, serve_infosystem
from federation.pki import KeyType, OcspResponder, TimeStampAuthority, serve_ocsp, serve_tsa
from federation.securityserver import Endpoint
from federation.securityserver._server import SecurityServer
from federation.topology._loader import federation_links, load_instances
from federation.topology._model import InstanceDef
from federation.topology._pki_setup import InstancePki, build_instance_pki, load_instance_pki

logger = logging.getLogger(__name__)

LINK_KINDS = ("ss-ss", "ss-cs", "ss-ocsp", "ss-tsa", "cs-cs")


class StartupError(FederationError):
    """Raised when a federation does not come up (a component failed or never got ready)."""


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What to start: the instance definitions (time scale applied) and the run directory."""

    run_dir: Path
    instances: tuple[InstanceDef, ...]
    instance_files: tuple[Path, ...]
    time_scale: float
    seed: int
    key_type: KeyType = "ec"
    settings: tuple[tuple[str, float], ...] = ()
    """Timer overrides (X-Road seconds) applied to every instance."""

    def instance(self, inst: str) -> InstanceDef:
        for d in self.instances:
            if d.instance == inst:
                return d
        raise KeyError(inst)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "instance_files": [str(p) for p in self.instance_files],
            "time_scale": self.time_scale,
            "seed": self.seed,
            "key_type": self.key_type,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_file(cls, path: Path) -> RunPlan:
        """The plan another process wrote (``plan.json``), re-validated."""
        obj = json.loads(path.read_text())
        return make_plan(
            [Path(p) for p in obj["instance_files"]],
            Path(obj["run_dir"]),
            time_scale=float(obj["time_scale"]),
            seed=int(obj["seed"]),
            key_type=obj["key_type"],
            settings=obj.get("settings") or {},
        )


def default_run_dir() -> Path:
    return Path(".xfed") / time.strftime("run-%Y%m%d-%H%M%S")


def make_plan(
    instance_files: list[Path],
    run_dir: Path | None = None,
    *,
    time_scale: float | None = None,
    seed: int = 0,
    key_type: KeyType = "ec",
    settings: Mapping[str, float] | None = None,
) -> RunPlan:
    """Load and cross-check the instance files; ``time_scale`` (and ``settings``, timer
    overrides in X-Road seconds) override every file's own."""
    defs = load_instances(instance_files)
    if time_scale is not None or settings:
        defs = [
            replace(
                d,
                time_scale=time_scale if time_scale is not None else d.time_scale,
                timers=replace(d.timers, **dict(settings or {})),
            )
            for d in defs
        ]
    scales = {d.time_scale for d in defs}
    if len(scales) > 1:
        raise StartupError(
            "the instances have different time_scale values "
            f"({', '.join(f'{d.instance}: {d.time_scale:g}' for d in defs)}); "
            "pass --time-scale to run them together"
        )
    run_dir = (run_dir or default_run_dir()).absolute()
    return RunPlan(
        run_dir,
        tuple(defs),
        tuple(p.absolute() for p in instance_files),
        scales.pop(),
        seed,
        key_type,
        tuple(sorted((settings or {}).items())),
    )


def _pki_subjects(d: InstanceDef) -> tuple[list[SecurityServerId], list[ClientId]]:
    servers = [ss.id for ss in d.security_servers]
    members: list[ClientId] = []
    for ss in d.security_servers:
        for cid in (ss.owner, *ss.clients):
            if cid.member not in members:
                members.append(cid.member)
    return servers, members


def prepare_pki(plan: RunPlan, now: float) -> dict[str, InstancePki]:
    """Issue every instance's certificates into the run directory."""
    out = {}
    for d in plan.instances:
        servers, members = _pki_subjects(d)
        out[d.instance] = build_instance_pki(
            d.instance,
            plan.run_dir / d.instance / "pki",
            servers=servers,
            members=members,
            now=now,
            key_type=plan.key_type,
        )
    return out


def write_plan(plan: RunPlan, now: float) -> None:
    """Create the run directory, ``plan.json`` and every certificate."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    (plan.run_dir / "logs").mkdir(exist_ok=True)
    (plan.run_dir / "plan.json").write_text(json.dumps(plan.to_json(), indent=2) + "\n")
    prepare_pki(plan, now)


def load_pki(plan: RunPlan, inst: str) -> InstancePki:
    d = plan.instance(inst)
    servers, members = _pki_subjects(d)
    return load_instance_pki(inst, plan.run_dir / inst / "pki", servers=servers, members=members)


def plan_links(plan: RunPlan) -> dict[str, dict[str, str]]:
    """Every chaos link: name -> ``{"kind", "from", "to"}``."""
    links: dict[str, dict[str, str]] = {}

    def add(kind: str, a: str, b: str) -> None:
        links[link_name(a, b)] = {"kind": kind, "from": a, "to": b}

    all_ss = [f"{d.instance}.{ss.code}" for d in plan.instances for ss in d.security_servers]
    loaded = {d.instance for d in plan.instances}
    for d in plan.instances:
        for ss in d.security_servers:
            me = f"{d.instance}.{ss.code}"
            add("ss-cs", me, f"{d.instance}.cs")
            add("ss-ocsp", me, f"{d.instance}.ocsp")
            add("ss-tsa", me, f"{d.instance}.tsa")
            for partner in d.trusts:
                if partner in loaded and ss.allowed_federations.admits(partner):
                    add("ss-cs", me, f"{partner}.cs")
            for other in all_ss:
                if other != me:
                    add("ss-ss", me, other)
    for inst, partner in federation_links(plan.instances):
        add("cs-cs", f"{inst}.cs", f"{partner}.cs")
    return links


# --------------------------------------------------------------------------- one instance


@dataclass(slots=True)
class InstanceAddresses:
    """What phase 1 reports: real listening addresses of an instance's components."""

    instance: str
    ocsp_url: str = ""
    ocsp_admin_url: str = ""
    tsa_url: str = ""
    cs_url: str = ""
    cs_management_url: str = ""
    infosystem_url: str = ""
    security_servers: dict[str, dict[str, str]] = field(default_factory=dict)
    """server code -> ``{"client_url", "server_address"}``."""

    def targets(self) -> dict[str, str]:
        """Component name -> ``host:port`` that links to it must reach."""
        out = {
            f"{self.instance}.cs": _hostport(self.cs_url),
            f"{self.instance}.ocsp": _hostport(self.ocsp_url),
            f"{self.instance}.tsa": _hostport(self.tsa_url),
        }
        for code, a in self.security_servers.items():
            out[f"{self.instance}.{code}"] = a["server_address"]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "ocsp_url": self.ocsp_url,
            "ocsp_admin_url": self.ocsp_admin_url,
            "tsa_url": self.tsa_url,
            "cs_url": self.cs_url,
            "cs_management_url": self.cs_management_url,
            "infosystem_url": self.infosystem_url,
            "security_servers": self.security_servers,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> InstanceAddresses:
        return cls(
            instance=str(obj["instance"]),
            ocsp_url=str(obj["ocsp_url"]),
            ocsp_admin_url=str(obj["ocsp_admin_url"]),
            tsa_url=str(obj["tsa_url"]),
            cs_url=str(obj["cs_url"]),
            cs_management_url=str(obj["cs_management_url"]),
            infosystem_url=str(obj["infosystem_url"]),
            security_servers={k: dict(v) for k, v in obj["security_servers"].items()},
        )


def _hostport(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


class InstanceNode:
    """Every component of one X-Road instance, run inside one trio nursery."""

    def __init__(self, plan: RunPlan, inst: str, *, clock: Clock | None = None) -> None:
        self.plan = plan
        self.definition = plan.instance(inst)
        self.inst = inst
        self.dir = plan.run_dir / inst
        self.clock: Clock | None = clock
        self.pki: InstancePki | None = None
        self.addresses = InstanceAddresses(inst)
        self.central: CentralServer | None = None
        self.security_servers: dict[str, SecurityServer] = {}
        self.conf_clients: dict[str, ConfigurationClient] = {}
        self._connected = trio.Event()
        self.phase2_done = trio.Event()
        self._addr_map: dict[str, dict[str, str]] = {}

    @property
    def timers(self) -> Any:
        return self.definition.scaled_timers

    def _services(self) -> list[ServiceSpec]:
        return [
            ServiceSpec(
                service=s.id,
                endpoints=tuple(Endpoint(e.method, e.path) for e in s.endpoints),
                backend=s.backend,
                options=dict(s.options),
            )
            for s in self.definition.services
        ]

    async def serve(self, *, task_status: trio.TaskStatus[InstanceAddresses]) -> None:
        """Phase 1, then (after :meth:`connect`) phase 2; runs until cancelled."""
        clock = self.clock = self.clock or TrioClock()
        pki = self.pki = load_pki(self.plan, self.inst)
        timers = self.timers
        a = self.addresses
        # one HTTP client for the information system's outbound X-Road calls (once-only):
        # creating one per call costs tens of milliseconds of CPU
        async with (
            httpx.AsyncClient(timeout=60.0, trust_env=False) as caller_http,
            trio.open_nursery() as nursery,
        ):
            responder = OcspResponder(pki.ca, pki.ocsp, validity_s=timers.ocsp_validity_s)
            ep = await nursery.start(
                lambda task_status: serve_ocsp(responder, clock=clock, task_status=task_status)
            )
            a.ocsp_url, a.ocsp_admin_url = ep.url, ep.admin_url
            tsa = TimeStampAuthority(pki.tsa)
            a.tsa_url = await nursery.start(
                lambda task_status: serve_tsa(tsa, clock=clock, task_status=task_status)
            )
            # backends that consume (once-only) call as their provider subsystem through
            # its security server's client proxy; filled in as the servers come up
            callers: dict[ClientId, XRoadCaller] = {}
            host, port = await nursery.start(
                lambda task_status: serve_infosystem(
                    self._services(), caller=callers, task_status=task_status
                )
            )
            a.infosystem_url = f"http://{host}:{port}"
            central = self.central = CentralServer(
                self.definition, clock=clock, state_dir=self.dir / "cs"
            )
            cs_addr = await nursery.start(lambda task_status: central.run(task_status=task_status))
            a.cs_url, a.cs_management_url = cs_addr.public_url, cs_addr.management_url
            internal_anchor = central.internal_anchor()
            for ssdef in self.definition.security_servers:
                conf = ConfigurationClient(
                    anchor=internal_anchor,
                    admits=ssdef.allowed_federations.admits,
                    timers=timers,
                    clock=clock,
                    server_id=str(ssdef.id),
                    state_dir=self.dir / "ss" / ssdef.code / "globalconf",
                )
                self.conf_clients[ssdef.code] = conf
                sign = {
                    m: c
                    for m, c in pki.sign.items()
                    if m in {x.member for x in (ssdef.owner, *ssdef.clients)}
                }
                ss = SecurityServer(
                    definition=self.definition,
                    server=ssdef,
                    auth=pki.auth[ssdef.id],
                    sign=sign,
                    conf=conf,
                    infosystem_url=a.infosystem_url,
                    state_dir=self.dir / "ss" / ssdef.code,
                    clock=clock,
                    timers=timers,
                )
                self.security_servers[ssdef.code] = ss
                ss_addr = await nursery.start(ss.serve)
                for client in ssdef.clients:
                    callers.setdefault(
                        client, XRoadCaller(ss_addr.client_url, client, http=caller_http)
                    )
                a.security_servers[ssdef.code] = {
                    "client_url": ss_addr.client_url,
                    "server_address": ss_addr.server_address,
                }
            task_status.started(a)
            await self._connected.wait()
            await self._phase2(nursery)

    def connect(self, addr_map: Mapping[str, Mapping[str, str]]) -> None:
        """Phase 2: ``addr_map[component][real host:port] = proxy host:port``."""
        self._addr_map = {k: dict(v) for k, v in addr_map.items()}
        self._connected.set()

    def _map_for(self, component: str) -> dict[str, str]:
        return self._addr_map.get(component, {})

    async def _phase2(self, nursery: trio.Nursery) -> None:
        assert self.pki is not None
        assert self.central is not None
        pki, a = self.pki, self.addresses
        cas = (
            ApprovedCA(
                name=f"xfed {self.inst} CA",
                top_ca_pem=cert_to_pem(pki.ca.root.cert),
                intermediate_pems=(cert_to_pem(pki.ca.intermediate.cert),),
                ocsp=(OcspInfo(url=a.ocsp_url, cert_pem=cert_to_pem(pki.ocsp.cert)),),
            ),
        )
        tsas = (
            ApprovedTSA(
                name=f"xfed {self.inst} TSA", url=a.tsa_url, cert_pem=cert_to_pem(pki.tsa.cert)
            ),
        )
        servers = {
            code: SecurityServerFacts(
                address=addr["server_address"],
                auth_cert_hashes=(cert_hash(pki.auth[self.definition_ss(code)].cert),),
            )
            for code, addr in a.security_servers.items()
        }
        self.central.url_map = _url_mapper(self._map_for(f"{self.inst}.cs"))
        self.central.update_facts(
            CentralFacts(approved_cas=cas, approved_tsas=tsas, security_servers=servers)
        )
        for code, ss in self.security_servers.items():
            amap = self._map_for(f"{self.inst}.{code}")
            self.conf_clients[code].url_map = _url_mapper(amap)
            await nursery.start(self.conf_clients[code].run)
            await ss.connect(nursery, amap)
        self.phase2_done.set()

    async def refresh(self) -> None:
        """Run one configuration download round on every security server now (after the
        federation's anchors were uploaded, rather than waiting for the update interval)."""
        await self.phase2_done.wait()
        async with trio.open_nursery() as nursery:
            for conf in self.conf_clients.values():
                nursery.start_soon(conf.update_once)

    def definition_ss(self, code: str) -> SecurityServerId:
        ss = self.definition.security_server(code)
        assert ss is not None
        return ss.id


def _url_mapper(amap: Mapping[str, str]) -> Any:
    """A URL rewriter for ``http://host:port/...`` through the address map."""
    frozen = dict(amap)

    def rewrite(url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return url
        hostport, slash, path = rest.partition("/")
        target = frozen.get(hostport)
        return f"{scheme}://{target}{slash}{path}" if target else url

    return rewrite


# --------------------------------------------------------------------------- coordinator


@dataclass(slots=True)
class Federation:
    """A running federation: its plan, where everything is, and the manifest."""

    plan: RunPlan
    addresses: dict[str, InstanceAddresses]
    links: dict[str, dict[str, str]]
    chaos_url: str
    manifest: dict[str, Any]
    nodes: dict[str, InstanceNode] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.plan.run_dir / "manifest.json"


async def create_links(
    chaos_url: str,
    links: dict[str, dict[str, str]],
    addresses: Mapping[str, InstanceAddresses],
) -> dict[str, dict[str, str]]:
    """Create one chaos proxy per link; returns ``addr_map[component][real] = proxy``."""
    targets: dict[str, str] = {}
    for a in addresses.values():
        targets.update(a.targets())
    addr_map: dict[str, dict[str, str]] = {}
    async with FaultClient(chaos_url) as fc:
        for name, link in links.items():
            upstream = targets[link["to"]]
            proxy = await fc.ensure_proxy(name, "127.0.0.1:0", upstream)
            link["listen"] = str(proxy["listen"])
            link["upstream"] = upstream
            addr_map.setdefault(link["from"], {})[upstream] = link["listen"]
    return addr_map


async def federate(plan: RunPlan, addresses: Mapping[str, InstanceAddresses]) -> None:
    """Upload each partner's external anchor to every central server that trusts it."""
    async with httpx.AsyncClient(timeout=60.0) as client:
        for inst, partner in federation_links(plan.instances):
            anchor = (plan.run_dir / partner / "cs" / "external-anchor.json").read_bytes()
            url = addresses[inst].cs_management_url.rstrip("/") + "/trusted-anchors"
            resp = await client.post(url, content=anchor)
            if resp.status_code != 200:
                raise StartupError(
                    f"{inst} central server refused {partner}'s anchor: {resp.text.strip()}"
                )


def expected_instances(plan: RunPlan) -> dict[str, set[str]]:
    """Security server id -> instances whose configuration it should hold."""
    loaded = {d.instance for d in plan.instances}
    out: dict[str, set[str]] = {}
    for d in plan.instances:
        for ss in d.security_servers:
            want = {d.instance} | {
                p for p in d.trusts if p in loaded and ss.allowed_federations.admits(p)
            }
            # the partner must also trust back for its configuration to include our anchor;
            # downloading external conf needs only our CS to trust the partner
            out[str(ss.id)] = want
    return out


async def wait_ready(plan: RunPlan, *, timeout_s: float) -> None:
    """Until every security server holds verified configuration of every expected instance."""
    from federation.globalconf import collect_status

    want = expected_instances(plan)
    missing: dict[str, set[str]] = dict(want)
    with trio.move_on_after(timeout_s):
        while True:
            status = collect_status(plan.run_dir).get("security_servers", {})
            missing = {}
            for sid, insts in want.items():
                held = status.get(sid, {}).get("globalconf", {})
                lack = {i for i in insts if not held.get(i, {}).get("verified")}
                if lack:
                    missing[sid] = lack
            if not missing:
                return
            await trio.sleep(0.05)
    raise StartupError(
        "security servers lack verified configuration after "
        f"{timeout_s:g} s: "
        + "; ".join(f"{sid}: {', '.join(sorted(i))}" for sid, i in sorted(missing.items()))
    )


def build_manifest(
    plan: RunPlan,
    addresses: Mapping[str, InstanceAddresses],
    links: Mapping[str, Mapping[str, str]],
    chaos_url: str,
    *,
    mode: str,
) -> dict[str, Any]:
    """The run manifest (documented in README.md: keys are added, never renamed)."""
    rd = plan.run_dir
    instances: dict[str, Any] = {}
    for d in plan.instances:
        a = addresses[d.instance]
        pki_dir = rd / d.instance / "pki"
        sss: dict[str, Any] = {}
        for ss in d.security_servers:
            sa = a.security_servers[ss.code]
            members = sorted({c.member for c in (ss.owner, *ss.clients)})
            sss[str(ss.id)] = {
                "code": ss.code,
                "client_url": sa["client_url"],
                "server_address": sa["server_address"],
                "auth_cert": str(pki_dir / "ss" / ss.code / "auth.pem"),
                "auth_key": str(pki_dir / "ss" / ss.code / "auth.key"),
                "sign_certs": {
                    str(m): str(
                        pki_dir / "members" / f"{m.member_class}.{m.member_code}" / "sign.pem"
                    )
                    for m in members
                },
                "message_log": str(rd / d.instance / "ss" / ss.code / "messagelog.sqlite"),
                "globalconf_dir": str(rd / d.instance / "ss" / ss.code / "globalconf"),
                "clients": [str(c) for c in ss.clients],
                "allowed_federations": str(ss.allowed_federations),
            }
        instances[d.instance] = {
            "ca_cert": str(pki_dir / "ca-bundle.pem"),
            "ca_root": str(pki_dir / "root.pem"),
            "ocsp": {
                "url": a.ocsp_url,
                "cert": str(pki_dir / "ocsp.pem"),
                "admin_url": a.ocsp_admin_url,
            },
            "tsa": {"url": a.tsa_url, "cert": str(pki_dir / "tsa.pem")},
            "central_server": {
                "url": a.cs_url,
                "management_url": a.cs_management_url,
                "anchor": str(rd / d.instance / "cs" / "external-anchor.json"),
                "internal_anchor": str(rd / d.instance / "cs" / "internal-anchor.json"),
            },
            "trusts": list(d.trusts),
            "timers": d.scaled_timers.to_json(),
            "timers_unscaled": d.timers.to_json(),
            "security_servers": sss,
            "infosystems": {"url": a.infosystem_url},
            "definition": str(d.source) if d.source else None,
        }
    return {
        "run_dir": str(rd),
        "created": iso(time.time()),
        "mode": mode,
        "time_scale": plan.time_scale,
        "seed": plan.seed,
        "chaos": {"api_url": chaos_url, "links": {k: dict(v) for k, v in links.items()}},
        "instances": instances,
    }


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> Path:
    path = run_dir / "manifest.json"
    atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


@asynccontextmanager
async def open_federation_in_process(
    plan: RunPlan, *, ready_timeout_s: float = 120.0
) -> AsyncIterator[Federation]:
    """Every component of every instance and the chaos proxy in this trio run."""
    from chaos import ChaosServer

    clock = TrioClock()
    write_plan(plan, clock.now())
    async with trio.open_nursery() as nursery:
        chaos = ChaosServer(seed=plan.seed)
        chaos_addr = await nursery.start(chaos.serve)
        nodes = {d.instance: InstanceNode(plan, d.instance, clock=clock) for d in plan.instances}
        addresses: dict[str, InstanceAddresses] = {}
        for inst, node in nodes.items():
            addresses[inst] = await nursery.start(node.serve)
        links = plan_links(plan)
        addr_map = await create_links(chaos_addr.url, links, addresses)
        for node in nodes.values():
            node.connect(addr_map)
        await federate(plan, addresses)
        for node in nodes.values():
            await node.refresh()
        await wait_ready(plan, timeout_s=ready_timeout_s)
        manifest = build_manifest(plan, addresses, links, chaos_addr.url, mode="in-process")
        write_manifest(plan.run_dir, manifest)
        try:
            yield Federation(plan, addresses, links, chaos_addr.url, manifest, nodes)
        finally:
            nursery.cancel_scope.cancel()
