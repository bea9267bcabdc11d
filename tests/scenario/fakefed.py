"""A fake two-instance federation for interpreter tests.

Each instance has one security server (a client proxy and a server proxy on
``federation.http.serve_http``) and a central server serving a 2 KB "configuration". Every
SS->SS and SS->CS connection goes through the real chaos proxy (``chaos.ChaosServer``), so
partitions, latency and byte counters are real. The client proxy answers:

* ``/listClients``: the members of both instances;
* ``/r1/<service>/...``: locally when the provider is in its own instance, else forwarded
  over the chaos link to the partner's server proxy (``Server.ClientProxy.NetworkError``
  when that fails); ``Server.ClientProxy.OutdatedGlobalConf`` once its configuration,
  downloaded through the SS->CS link every ``conf_update_s``, is older than
  ``conf_expire_s``; any error scripted in ``FakeFederation.rules``.

Answers carry a ~6 KB filler, so an exchange is message-sized next to a configuration
download, as in X-Road. ``FakeFederation(broker_leaks=N)`` makes EE's server a broker for
its first N cross-border exchanges after ``leak_after`` (real seconds since start): it
also sends the request through its central-server link and the central server echoes it
back, as a central broker would carry the message.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from chaos import ChaosServer, FaultClient
from federation.http import Request, Response, json_response, serve_http

CLIENTS = {
    "EE": ["EE/GOV/70000001/consumer"],
    "FI": ["FI/COM/2908552-1/kyc", "FI/GOV/0245437-2/tax"],
}
OWNERS = {"EE": "EE/GOV/70000001", "FI": "FI/GOV/0245437-2"}
CODES = {"EE": "ee-ss1", "FI": "fi-ss1"}
CONF = b"x" * 2000
FILLER = "f" * 6000


def xroad_error(kind: str, status: int = 500) -> Response:
    body = {"type": kind, "message": kind, "detail": "fake"}
    return json_response(body, status, [("X-Road-Error", kind)])


class FakeSS:
    def __init__(self, fed: FakeFederation, inst: str) -> None:
        self.fed = fed
        self.inst = inst
        self.conf_until = trio.current_time() + fed.conf_expire_s
        self.peer_url: str = ""  # partner server proxy through the chaos link
        self.cs_url: str = ""  # own CS through the chaos link
        self.http = httpx.AsyncClient(timeout=5.0)
        self.ids = itertools.count(1)

    async def client_proxy(self, req: Request) -> Response:
        if req.path == "/listClients":
            members = [{"id": {"xroad_instance": i, "member_code": o}} for i, o in OWNERS.items()]
            return json_response({"member": members})
        if trio.current_time() > self.conf_until:
            return xroad_error("Server.ClientProxy.OutdatedGlobalConf")
        parts = req.path.split("/")
        client = req.header("X-Road-Client") or ""
        svc_inst = parts[2] if len(parts) > 2 else ""
        for c_inst, s_inst, error in self.fed.rules:
            if c_inst in (client.split("/")[0], "*") and s_inst in (svc_inst, "*"):
                return xroad_error(error)
        if svc_inst == self.inst:
            return await self.server_proxy(req)
        fed = self.fed
        if (
            self.inst == "EE"
            and fed.broker_leaks > fed.leaked
            and trio.current_time() - fed.started >= fed.leak_after
        ):
            fed.leaked += 1
            body = json.dumps({"relay": req.target, "message": FILLER}).encode()
            try:
                await self.http.post(self.cs_url + "/relay", content=body)
            except httpx.HTTPError:
                pass
        try:
            r = await self.http.request(req.method, self.peer_url + req.target, content=req.body)
        except httpx.HTTPError:
            return xroad_error("Server.ClientProxy.NetworkError")
        headers = [(k, v) for k, v in r.headers.items() if k.lower().startswith("x-road")]
        return Response(r.status_code, [("Content-Type", "application/json"), *headers], r.content)

    async def server_proxy(self, req: Request) -> Response:
        xid = f"{self.inst}-{next(self.ids)}"
        body = {"income": 42, "served_by": self.inst, "filler": FILLER}
        return json_response(body, headers=[("X-Road-Id", xid)])

    async def conf_poller(self) -> None:
        while True:
            try:
                r = await self.http.get(self.cs_url + "/conf")
                if r.status_code == 200:
                    self.conf_until = trio.current_time() + self.fed.conf_expire_s
            except httpx.HTTPError:
                pass
            await trio.sleep(self.fed.conf_update_s)


class FakeFederation:
    def __init__(
        self,
        *,
        conf_update_s: float = 0.5,
        conf_expire_s: float = 2.0,
        broker_leaks: int = 0,
        leak_after: float = 0.0,
    ) -> None:
        self.conf_update_s = conf_update_s
        self.conf_expire_s = conf_expire_s
        self.broker_leaks = broker_leaks
        self.leak_after = leak_after
        self.leaked = 0
        self.started = 0.0
        self.rules: list[tuple[str, str, str]] = []  # (client inst, service inst, error)
        self.calls: list[Any] = []

    @asynccontextmanager
    async def start(
        self, instance_paths: list[Path], run_dir: Path, time_scale: float, seed: int, **kw: Any
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls.append((instance_paths, run_dir, time_scale, seed, kw))
        self.started = trio.current_time()
        async with trio.open_nursery() as nursery:
            chaos = ChaosServer(seed=seed)
            await nursery.start(chaos.serve, "127.0.0.1", 0)
            faults = FaultClient(chaos.url)
            sss = {i: FakeSS(self, i) for i in ("EE", "FI")}
            manifest: dict[str, Any] = {
                "run_dir": str(run_dir),
                "time_scale": time_scale,
                "seed": seed,
                "chaos": {"api_url": chaos.url, "links": {}},
                "instances": {},
            }
            addr: dict[str, dict[str, str]] = {}
            for inst, ss in sss.items():
                h, p = await nursery.start(serve_http, ss.client_proxy)
                sh, sp = await nursery.start(serve_http, ss.server_proxy)

                async def cs(req: Request) -> Response:
                    if req.path == "/relay":  # a broker: the message comes back out
                        return Response(200, [("Content-Type", "application/json")], req.body)
                    return Response(200, [("Content-Type", "application/octet-stream")], CONF)

                ch, cp = await nursery.start(serve_http, cs)

                async def tsa(req: Request) -> Response:
                    return Response(200, [("Content-Type", "application/timestamp-reply")], b"")

                th, tp = await nursery.start(serve_http, tsa)
                addr[inst] = {
                    "client": f"http://{h}:{p}",
                    "server": f"{sh}:{sp}",
                    "cs": f"{ch}:{cp}",
                    "tsa": f"{th}:{tp}",
                }
            links = manifest["chaos"]["links"]
            for inst, ss in sss.items():
                other = "FI" if inst == "EE" else "EE"
                me, peer = f"{inst}.{CODES[inst]}", f"{other}.{CODES[other]}"
                name = f"{me}--{peer}"
                px = await faults.ensure_proxy(name, "127.0.0.1:0", addr[other]["server"])
                links[name] = {
                    "kind": "ss-ss",
                    "from": me,
                    "to": peer,
                    "listen": px["listen"],
                    "upstream": addr[other]["server"],
                }
                ss.peer_url = f"http://{px['listen']}"
                name = f"{me}--{inst}.cs"
                px = await faults.ensure_proxy(name, "127.0.0.1:0", addr[inst]["cs"])
                links[name] = {
                    "kind": "ss-cs",
                    "from": me,
                    "to": f"{inst}.cs",
                    "listen": px["listen"],
                    "upstream": addr[inst]["cs"],
                }
                ss.cs_url = f"http://{px['listen']}"
                name = f"{me}--{inst}.tsa"  # nothing uses it: a target for TSA partitions
                px = await faults.ensure_proxy(name, "127.0.0.1:0", addr[inst]["tsa"])
                links[name] = {
                    "kind": "ss-tsa",
                    "from": me,
                    "to": f"{inst}.tsa",
                    "listen": px["listen"],
                    "upstream": addr[inst]["tsa"],
                }
                pki = run_dir / inst
                pki.mkdir(parents=True, exist_ok=True)
                (pki / "auth.pem").write_text(f"{inst} auth cert\n")
                (pki / "sign.pem").write_text(f"{inst} sign cert\n")
                manifest["instances"][inst] = {
                    "ocsp": {"url": "http://127.0.0.1:9/", "admin_url": f"http://admin.{inst}/"},
                    "central_server": {"url": f"http://{addr[inst]['cs']}/"},
                    "timers": {
                        "conf_update_s": self.conf_update_s,
                        "conf_expire_s": self.conf_expire_s,
                        "timestamping_interval_s": 1.0,
                        "timestamp_retry_delay_s": 1.0,
                    },
                    "security_servers": {
                        f"{OWNERS[inst]}/{CODES[inst]}": {
                            "code": CODES[inst],
                            "client_url": addr[inst]["client"],
                            "server_address": addr[inst]["server"],
                            "auth_cert": str(pki / "auth.pem"),
                            "sign_certs": {OWNERS[inst]: str(pki / "sign.pem")},
                            "clients": CLIENTS[inst],
                        }
                    },
                }
                nursery.start_soon(ss.conf_poller)
            await faults.aclose()
            (run_dir / "manifest.json").write_text(json.dumps(manifest))
            try:
                yield manifest
            finally:
                nursery.cancel_scope.cancel()
                for ss in sss.values():
                    with trio.CancelScope(shield=True):
                        await ss.http.aclose()
