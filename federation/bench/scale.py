"""Scale: time-to-ready and memory of ``xfed up`` with N generated instances.

    python -m federation.bench.scale --count 10 --topology mesh,hub [--json out.json]

For each topology: ``xfed generate N --topology T`` into a temporary directory, start the
federation as ``xfed up`` does (a process per instance plus the chaos proxy; time scale 1),
and report the time until every security server holds verified configuration of every
instance it federates with (``xfed up``'s "federation ready"), the resident memory (RSS)
of each process after ``--settle`` seconds, the idle CPU, the number of chaos links, one
cross-instance echo call as a check, and the time to stop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from federation.bench._bench import cpu_seconds, machine_info
from federation.http import HttpClient
from federation.identifiers import ServiceId


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (``VmRSS``), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _echo_check(manifest: dict[str, Any]) -> dict[str, Any]:
    """One call from the first instance's consumer to a federated partner's echo."""
    insts = list(manifest["instances"])
    first = manifest["instances"][insts[0]]
    partner = next(i for i in insts[1:] if i in first["trusts"])
    consumer = ss_client = None
    for ss in first["security_servers"].values():
        for c in ss["clients"]:
            if c.endswith("/consumer"):
                consumer, ss_client = c, ss["client_url"]
    provider = None
    for ss in manifest["instances"][partner]["security_servers"].values():
        for c in ss["clients"]:
            if c.endswith("/bench"):
                provider = c
    if consumer is None or ss_client is None or provider is None:
        raise RuntimeError("generated instances lack a consumer or an echo provider")
    service = ServiceId.parse(f"{provider}/echo")
    host, _, port = ss_client.split("://", 1)[1].rpartition(":")
    client = HttpClient()
    t0 = time.perf_counter()
    try:
        resp = await client.request(
            host,
            int(port),
            "GET",
            service.rest_path() + "/echo?size=16",
            headers=[("X-Road-Client", consumer)],
        )
    finally:
        await client.aclose()
    return {
        "from": consumer,
        "to": str(service),
        "status": resp.status,
        "error": resp.header("x-road-error"),
        "first_call_ms": round(1000 * (time.perf_counter() - t0), 1),
    }


async def measure_topology(count: int, topology: str, settle_s: float) -> dict[str, Any]:
    from federation.topology._generate import write_instances
    from federation.topology._runtime import make_plan
    from federation.topology.up import open_federation

    with tempfile.TemporaryDirectory(prefix=f"xfed-scale-{topology}-") as tmp:
        files = list(write_instances(count, topology, Path(tmp) / "instances"))
        plan = make_plan(files, Path(tmp) / "run", time_scale=1.0)
        t0 = time.perf_counter()
        stopped_at = 0.0
        async with open_federation(plan, in_process=False, ready_timeout_s=600) as fed:
            ready_s = time.perf_counter() - t0
            pids = {k: int(v["pid"]) for k, v in fed.manifest["processes"].items()}
            cpu0 = {k: cpu_seconds(p) or 0.0 for k, p in pids.items()}
            await trio.sleep(settle_s)
            rss = {k: rss_mb(p) for k, p in pids.items()}
            idle = {k: ((cpu_seconds(p) or 0.0) - cpu0[k]) / settle_s for k, p in pids.items()}
            check = await _echo_check(fed.manifest)
            links = fed.manifest["chaos"]["links"]
            kinds: dict[str, int] = {}
            for link in links.values():
                kinds[link["kind"]] = kinds.get(link["kind"], 0) + 1
            stopped_at = time.perf_counter()
        stop_s = time.perf_counter() - stopped_at
    inst_rss = [v for k, v in rss.items() if k != "chaos" and v is not None]
    return {
        "instances": count,
        "topology": topology,
        "ready_s": round(ready_s, 2),
        "stop_s": round(stop_s, 2),
        "rss_mb": {k: None if v is None else round(v, 1) for k, v in rss.items()},
        "rss_mb_per_instance_median": round(statistics.median(inst_rss), 1) if inst_rss else None,
        "rss_mb_total": round(sum(v for v in rss.values() if v is not None), 1),
        "idle_cpu_cores": {k: round(v, 4) for k, v in idle.items()},
        "chaos_links": len(links),
        "chaos_links_by_kind": kinds,
        "check": check,
    }


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'topology':<8} {'N':>3} {'ready s':>8} {'stop s':>7} {'RSS/inst MB':>12} "
        f"{'chaos MB':>9} {'total MB':>9} {'links':>6} {'idle CPU':>9}  check"
    ]
    for r in results:
        idle = sum(r["idle_cpu_cores"].values())
        c = r["check"]
        lines.append(
            f"{r['topology']:<8} {r['instances']:>3} {r['ready_s']:>8.1f} {r['stop_s']:>7.1f} "
            f"{r['rss_mb_per_instance_median']:>12.1f} {r['rss_mb'].get('chaos') or 0:>9.1f} "
            f"{r['rss_mb_total']:>9.1f} {r['chaos_links']:>6} {idle:>9.3f}  "
            f"{c['from']} -> {c['to']}: HTTP {c['status']} {c['error'] or ''}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--topology", default="mesh,hub")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before sampling RSS")
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    async def run() -> list[dict[str, Any]]:
        out = []
        for topo in [t.strip() for t in args.topology.split(",") if t.strip()]:
            out.append(await measure_topology(args.count, topo, args.settle))
            print(render(out[-1:]).splitlines()[-1], flush=True)
        return out

    results = trio.run(run)
    print(render(results))
    if args.json:
        doc = {"machine": machine_info(), "pid": os.getpid(), "results": results}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
