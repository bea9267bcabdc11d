"""``xfed up``, ``xfed status``, ``xfed revoke``, ``xfed serve-instance``: the commands that
start a federation and look at a running one through its run directory."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from federation.errors import ConfigError, FederationError, TransportError
from federation.topology._runtime import Federation, RunPlan, make_plan, open_federation_in_process


@asynccontextmanager
async def open_federation(
    plan: RunPlan, *, in_process: bool = False, ready_timeout_s: float = 120.0
) -> AsyncIterator[Federation]:
    """Start the federation of ``plan`` in one process or in a process per instance."""
    if in_process:
        async with open_federation_in_process(plan, ready_timeout_s=ready_timeout_s) as fed:
            yield fed
    else:
        from federation.topology._processes import open_federation_processes

        async with open_federation_processes(plan, ready_timeout_s=ready_timeout_s) as fed:
            yield fed


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run, or a clear error."""
    path = run_dir / "manifest.json"
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "no manifest.json: is this the run directory of an `xfed up` or `xfed run`?",
            file=str(run_dir),
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable manifest: {exc}", file=str(path)) from None
    if not isinstance(obj, dict):
        raise ConfigError("manifest is not a JSON object", file=str(path))
    return obj


def summary(manifest: dict[str, Any]) -> str:
    """A short human summary of where everything is."""
    lines = [
        f"run directory   {manifest['run_dir']}",
        f"manifest        {manifest['run_dir']}/manifest.json",
        f"mode            {manifest.get('mode')}, time scale {manifest['time_scale']:g}",
        f"chaos API       {manifest['chaos']['api_url']}"
        f"  ({len(manifest['chaos']['links'])} links)",
    ]
    for inst, info in manifest["instances"].items():
        lines.append(f"instance {inst}")
        lines.append(f"  central server {info['central_server']['url']}")
        lines.append(f"  OCSP responder {info['ocsp']['url']}")
        lines.append(f"  TSA            {info['tsa']['url']}")
        for sid, ss in info["security_servers"].items():
            lines.append(
                f"  {sid:<28} client proxy {ss['client_url']}  server {ss['server_address']}"
            )
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    plan = make_plan(
        list(args.instances),
        args.run_dir,
        time_scale=args.time_scale,
        seed=args.seed,
        key_type=args.key_type,
    )

    async def main() -> int:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            started = time.monotonic()
            async with open_federation(plan, in_process=args.in_process) as fed:
                print(f"xfed: federation ready in {time.monotonic() - started:.1f} s", flush=True)
                print(summary(fed.manifest), flush=True)
                with trio.move_on_after(args.duration if args.duration else float("inf")):
                    async for _ in signals:
                        break
                print("xfed: stopping", flush=True)
        return 0

    return trio.run(main)


def cmd_status(args: argparse.Namespace) -> int:
    from federation.globalconf import collect_status, render_status

    if not (args.run_dir / "manifest.json").exists() and not args.run_dir.is_dir():
        raise ConfigError("no such run directory", file=str(args.run_dir))
    status = collect_status(args.run_dir)
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
    else:
        print(render_status(status))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from cryptography import x509

    from federation.pki._server import revoke_remote, unrevoke_remote

    manifest = read_manifest(args.run_dir)
    try:
        pem = args.cert.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except OSError as exc:
        raise ConfigError(f"cannot read the certificate: {exc}", file=str(args.cert)) from None
    except ValueError:
        raise ConfigError("not a PEM certificate", file=str(args.cert)) from None
    for inst, info in manifest["instances"].items():
        bundle = Path(info["ca_cert"]).read_bytes()
        issuers = x509.load_pem_x509_certificates(bundle)
        if any(c.subject == cert.issuer for c in issuers):
            admin = info["ocsp"]["admin_url"]
            if args.undo:
                result = trio.run(unrevoke_remote, admin, pem)
            else:
                result = trio.run(revoke_remote, admin, pem, args.reason)
            print(f"{inst} OCSP responder: {json.dumps(result)}")
            return 0
    raise FederationError(
        f"{args.cert}: issued by {cert.issuer.rfc4514_string()}, "
        "which is no instance CA of this run"
    )


def cmd_serve_instance(args: argparse.Namespace) -> int:
    from federation.topology._processes import serve_instance_main

    return serve_instance_main(args.plan, args.instance)


def _client_url(manifest: dict[str, Any], client: str, server: str | None) -> str:
    """The client proxy of the security server that hosts ``client`` (or ``server``)."""
    inst = client.split("/", 1)[0]
    info = manifest["instances"].get(inst)
    if info is None:
        known = ", ".join(sorted(manifest["instances"]))
        raise ConfigError(f"no instance {inst!r} in this run (have: {known})", path="--client")
    for sid, ss in info["security_servers"].items():
        if server is not None and sid != server:
            continue
        if server is not None or client in ss["clients"]:
            return str(ss["client_url"])
    raise ConfigError(
        f"{client} is not a client of any security server of {inst}"
        + (f" (or {server} is unknown)" if server else ""),
        path="--client",
    )


def cmd_request(args: argparse.Namespace) -> int:
    """One X-Road REST call through the client's own security server; prints the answer."""
    from federation.identifiers import ClientId, IdentifierError, ServiceId
    from federation.infosystems import xroad_call

    manifest = read_manifest(args.run_dir)
    try:
        client = ClientId.parse(args.client)
        parts = args.target.lstrip("/").split("/")
        service = ServiceId.parse("/".join(parts[:5]))
    except IdentifierError as exc:
        raise ConfigError(str(exc)) from None
    path = "/" + "/".join(parts[5:]) if len(parts) > 5 else ""
    url = _client_url(manifest, str(client), args.via)
    headers = []
    for h in args.header or []:
        name, sep, value = h.partition(":")
        if not sep:
            raise ConfigError(f"expected NAME: VALUE, found {h!r}", path="--header")
        headers.append((name.strip(), value.strip()))
    body = args.data.encode() if args.data is not None else None

    async def call() -> Any:
        return await xroad_call(
            url, client, service, path, method=args.method, headers=headers, body=body
        )

    try:
        resp = trio.run(call)
    except (OSError, httpx.HTTPError) as exc:
        raise TransportError(
            f"cannot reach the client proxy {url} ({exc}): is the `xfed up` of "
            f"{args.run_dir} still running?"
        ) from None
    print(f"HTTP {resp.status}")
    for k, v in resp.headers:
        if k.lower().startswith("x-road-") or k.lower() == "content-type":
            print(f"{k}: {v}")
    print()
    text = resp.body.decode("utf-8", "replace")
    print(text)
    return 0 if resp.status < 400 else 1


def federation_starter(*, in_process: bool = False) -> Any:
    """``start_federation`` for the scenario runner: instance files, run dir, time scale,
    seed (and timer ``settings``) -> an async context manager yielding the manifest."""

    @asynccontextmanager
    async def start(
        instance_paths: list[Path],
        run_dir: Path,
        time_scale: float | None,
        seed: int,
        settings: dict[str, float] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        plan = make_plan(
            list(instance_paths), run_dir, time_scale=time_scale, seed=seed, settings=settings
        )
        async with open_federation(plan, in_process=in_process) as fed:
            yield fed.manifest

    return start


def cmd_run(args: argparse.Namespace) -> int:
    from federation.scenario import run_scenario_cli

    return run_scenario_cli(
        args.scenario,
        args.run_dir,
        args.time_scale,
        start_federation=federation_starter(in_process=args.in_process),
    )


DEMO_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "tour.yaml"


def cmd_demo(args: argparse.Namespace) -> int:
    """``make demo``: the tour scenario (federation, one fault, recovery) and its report."""
    from federation.scenario import run_scenario_cli

    run_dir = args.run_dir or Path(".xfed") / time.strftime("demo-%Y%m%d-%H%M%S")
    print(f"xfed demo: running {DEMO_SCENARIO} (report in {run_dir}/report.html)", flush=True)
    code = run_scenario_cli(
        DEMO_SCENARIO,
        run_dir,
        None,
        start_federation=federation_starter(in_process=args.in_process),
    )
    report = Path(run_dir).absolute() / "report.html"
    if report.exists():
        print(f"xfed demo: report {report}", flush=True)
    return code
