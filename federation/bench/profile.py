"""Profile the exchange hot path: ``python -m federation.bench.profile``.

Starts the EE + FI federation **in process** (time scale 1, message log and time-stamping
on), warms one mode up, then runs it under cProfile for ``--seconds`` and prints the top
functions by total and by own time. Everything (load generator, both instances, chaos
proxy) shares one process, so the profile shows the whole CPU cost of a request.

    python -m federation.bench.profile --mode cross --concurrency 8 --seconds 5
    python -m federation.bench.profile --mode cross -o /tmp/cross.pstats   # for snakeviz etc.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from pathlib import Path

import trio

from federation.bench._bench import (
    DEFAULT_INSTANCES,
    MODES,
    CellResult,
    _Wan,
    _Workers,
    endpoints,
    run_segment,
    wan_links,
)
from federation.bench._load import payload


async def _main(args: argparse.Namespace) -> None:
    from chaos import FaultClient
    from federation.topology._runtime import make_plan
    from federation.topology.up import open_federation

    with tempfile.TemporaryDirectory(prefix="xfed-prof-") as tmp:
        plan = make_plan(list(DEFAULT_INSTANCES), Path(tmp) / "run", time_scale=1.0)
        async with open_federation(plan, in_process=True) as fed:
            ep = endpoints(fed.manifest)[args.mode]
            body = payload(args.payload)
            workers = _Workers(30.0)
            async with FaultClient(fed.manifest["chaos"]["api_url"]) as fc:
                wan = _Wan(fc, wan_links(fed.manifest), 10)
                await wan.set(args.mode == "cross_wan")
                await run_segment(ep, body, args.concurrency, 1.0, workers, CellResult(), {})
                cell = CellResult()
                prof = cProfile.Profile()
                prof.enable()
                await run_segment(ep, body, args.concurrency, args.seconds, workers, cell, {})
                prof.disable()
                await wan.set(False)
            await workers.aclose()
    s = cell.summary()
    n = max(s["requests"], 1)
    print(
        f"{args.mode} c={args.concurrency} {args.payload} B: {s['requests']} requests, "
        f"{s['rps']} rps, p50 {s['p50_ms']} ms, errors {s['errors']}"
    )
    if args.output:
        prof.dump_stats(args.output)
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        st = pstats.Stats(prof, stream=out)
        st.sort_stats(key).print_stats(args.top)
        print(f"--- by {key} (per request: divide by {n}) ---")
        print(out.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=MODES, default="cross")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--payload", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("-o", "--output", help="write the raw pstats here")
    trio.run(_main, p.parse_args())


if __name__ == "__main__":
    main()
