"""The ``xfed`` command.

Each sub-command imports its implementation lazily, so ``xfed --help`` stays fast. User
mistakes (:class:`~federation.errors.FederationError`) print one line and no traceback:
exit code 2 for bad input files, 1 for a failed run.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from federation import __version__
from federation.errors import ConfigError, FederationError

Command = Callable[[argparse.Namespace], int]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, found {text!r}")
    return value


def _cmd_chaos_serve(args: argparse.Namespace) -> int:
    from chaos import main_serve

    return main_serve(host=args.host, port=args.port, seed=args.seed)


def _cmd_up(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_up

    return cmd_up(args)


def _cmd_status(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_status

    return cmd_status(args)


def _cmd_serve_chaos(args: argparse.Namespace) -> int:
    from federation.topology._processes import serve_chaos_main

    return serve_chaos_main(args.seed)


def _cmd_serve_instance(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_serve_instance

    return cmd_serve_instance(args)


def _evidence(name: str) -> Command:
    def run(args: argparse.Namespace) -> int:
        from federation.evidence import _cli

        func: Command = getattr(_cli, name)
        return func(args)

    return run


def _cmd_run(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_run

    return cmd_run(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_demo

    return cmd_demo(args)


def _cmd_generate(args: argparse.Namespace) -> int:
    from federation.topology._generate import write_instances

    for path in write_instances(args.count, args.topology, args.out):
        print(path)
    return 0


def _cmd_request(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_request

    return cmd_request(args)


def _cmd_revoke(args: argparse.Namespace) -> int:
    from federation.topology.up import cmd_revoke

    return cmd_revoke(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from federation.bench._bench import cmd_bench

    return cmd_bench(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xfed",
        description="Federated X-Road instances on one machine: run, break, measure.",
    )
    p.add_argument("--version", action="version", version=f"xfed {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="start X-Road instances and federate them; runs until Ctrl-C")
    up.add_argument("instances", nargs="+", type=Path, help="instance files (instances/*.yaml)")
    up.add_argument("--run-dir", type=Path, help="run directory (default ./.xfed/run-<time>)")
    up.add_argument("--time-scale", type=_positive_float, help="divide every X-Road timer by N")
    up.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    up.add_argument(
        "--duration", type=_positive_float, help="stop after S seconds (default: run until Ctrl-C)"
    )
    up.add_argument(
        "--key-type",
        choices=["ec", "rsa"],
        default="ec",
        help="key algorithm of all issued certificates",
    )
    up.add_argument(
        "--in-process",
        action="store_true",
        help="run every instance in this process (default: a process per instance)",
    )
    up.set_defaults(func=_cmd_up)

    si = sub.add_parser("serve-instance")
    si.add_argument("--plan", type=Path, required=True)
    si.add_argument("--instance", required=True)
    si.set_defaults(func=_cmd_serve_instance)

    sc = sub.add_parser("serve-chaos")
    sc.add_argument("--seed", type=int, default=None)
    sc.set_defaults(func=_cmd_serve_chaos)

    st = sub.add_parser("status", help="configuration held by each security server of a run")
    st.add_argument("--run-dir", type=Path, required=True)
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=_cmd_status)

    rv = sub.add_parser(
        "revoke", help="revoke a certificate at its instance's running OCSP responder"
    )
    rv.add_argument("--run-dir", type=Path, required=True)
    rv.add_argument("cert", type=Path, help="certificate (PEM) to revoke")
    rv.add_argument("--reason", default="keyCompromise", help="revocation reason (RFC 5280 name)")
    rv.add_argument("--undo", action="store_true", help="restore the certificate instead")
    rv.set_defaults(func=_cmd_revoke)

    run = sub.add_parser(
        "run", help="run a scenario (YAML): federation, load, faults, checks, report"
    )
    run.add_argument("scenario", type=Path)
    run.add_argument("--run-dir", type=Path, help="run directory (default ./.xfed/run-<time>)")
    run.add_argument("--time-scale", type=float, help="override the scenario's time_scale")
    run.add_argument("--in-process", action="store_true", help="one process for everything")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="the default tour: federation, a fault, recovery, report")
    demo.add_argument("--run-dir", type=Path)
    demo.add_argument("--in-process", action="store_true", help="one process for everything")
    demo.set_defaults(func=_cmd_demo)

    gen = sub.add_parser("generate", help="write instance files for N federated instances")
    gen.add_argument("count", type=int, help="number of instances")
    gen.add_argument("--topology", choices=["mesh", "hub"], default="mesh")
    gen.add_argument("-o", "--out", type=Path, default=Path("generated"), help="output directory")
    gen.set_defaults(func=_cmd_generate)

    rq = sub.add_parser("request", help="make one X-Road REST call and print status, headers, body")
    rq.add_argument("--run-dir", type=Path, required=True)
    rq.add_argument("--client", required=True, help="INSTANCE/CLASS/CODE/SUBSYSTEM of the caller")
    rq.add_argument("target", help="INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/path...]")
    rq.add_argument("-X", "--method", default="GET")
    rq.add_argument("-d", "--data", help="request body")
    rq.add_argument("-H", "--header", action="append", help="extra header NAME: VALUE")
    rq.add_argument("--via", help="security server id to use (default: the one hosting --client)")
    rq.set_defaults(func=_cmd_request)

    be = sub.add_parser(
        "bench", help="latency/throughput: direct vs intra vs cross vs cross_wan, side by side"
    )
    be.add_argument(
        "--duration", type=_positive_float, default=10.0, help="measured seconds per cell (10)"
    )
    be.add_argument("--concurrency", default="1,16", help="in-flight requests, N,... (1,16)")
    be.add_argument(
        "--rate",
        help="also fixed-rate cells: requests per second offered, R,... (latency from the "
        "intended send time: coordinated omission corrected)",
    )
    be.add_argument("--payload", default="1024,102400", help="payload bytes, N,... (1024,102400)")
    be.add_argument("--modes", default="direct,intra,cross,cross_wan", help="modes to measure")
    be.add_argument("--rounds", type=int, default=5, help="interleaved rounds per cell (5)")
    be.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per mode (1)")
    be.add_argument("--json", type=Path, help="write the full result as JSON")
    be.add_argument("--plot", type=Path, help="write latency CDFs as PNG (needs matplotlib)")
    be.add_argument("--in-process", action="store_true", help="one process for everything")
    be.add_argument("--run-dir", type=Path, help="keep the run directory here (default: temp)")
    be.add_argument("--seed", type=int, default=0)
    be.add_argument(
        "--instances", nargs=2, type=Path, help="EE and FI instance files (default: shipped)"
    )
    be.set_defaults(func=_cmd_bench)

    ev = sub.add_parser("evidence", help="export, verify and audit message-log evidence")
    evsub = ev.add_subparsers(dest="evidence_command", metavar="COMMAND")
    ex = evsub.add_parser("export", help="one exchange as a zip container (ASiC-E style)")
    ex.add_argument("--run-dir", type=Path, required=True)
    ex.add_argument("--id", required=True, help="the X-Road-Id of the exchange")
    ex.add_argument("--side", choices=["client", "provider"], help="whose log (default client)")
    ex.add_argument("-o", "--output", type=Path, help="output file (- for stdout)")
    ex.set_defaults(func=_evidence("cmd_export"))
    ve = evsub.add_parser("verify", help="verify a container offline")
    ve.add_argument("file", type=Path)
    ve.add_argument("--anchor", action="append", help="configuration anchor (repeatable)")
    ve.add_argument("--ca", action="append", help="CA bundle PEM, [INST=]FILE (repeatable)")
    ve.add_argument(
        "--ocsp-freshness",
        type=float,
        help="seconds > 0 (default: from conf or 3600; 0 is refused)",
    )
    ve.add_argument(
        "--max-timestamp-delay",
        type=float,
        help="largest genTime - signingTime, seconds > 0 (default: the run's acceptable "
        "time-stamp failure period if stricter, else 14400)",
    )
    ve.add_argument("--json", action="store_true")
    ve.set_defaults(func=_evidence("cmd_verify"))
    au = evsub.add_parser("audit", help="check every record of every message log of a run")
    au.add_argument("--run-dir", type=Path, required=True)
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=_evidence("cmd_audit"))

    ch = sub.add_parser("chaos", help="the Toxiproxy-compatible fault-injection proxy")
    chsub = ch.add_subparsers(dest="chaos_command", metavar="COMMAND")
    serve = chsub.add_parser("serve", help="run the proxy and its HTTP API standalone")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8474)
    serve.add_argument("--seed", type=int, default=None, help="seed for jitter and toxicity draws")
    serve.set_defaults(func=_cmd_chaos_serve)
    # internal commands of the process-per-instance mode: callable, not listed
    sub._choices_actions = [
        a for a in sub._choices_actions if a.dest not in ("serve-instance", "serve-chaos")
    ]
    return p


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    try:
        return func(args)
    except ConfigError as exc:
        print(f"xfed: error: {exc}", file=sys.stderr)
        return 2
    except FederationError as exc:
        print(f"xfed: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xfed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
