"""``python -m chaos serve [--host H] [--port P] [--seed S]``: run the chaos server standalone."""

from __future__ import annotations

import argparse
import logging
import sys

from ._server import main_serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the Toxiproxy-compatible server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8474)
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return main_serve(args.host, args.port, args.seed)


if __name__ == "__main__":
    sys.exit(main())
