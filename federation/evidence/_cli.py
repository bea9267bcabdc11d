"""CLI entry points of ``xfed evidence`` (argparse Namespace in, exit code out).

Arguments (attribute names on the Namespace):

* ``export``: ``run_dir`` (Path), ``id`` (str), ``side`` ("client" | "provider" | None),
  ``output`` (Path | None; default ``./evidence-<id>-<side>.zip``, ``-`` for stdout).
* ``verify``: ``file`` (Path), ``anchor`` (list[str] | None), ``ca`` (list[str] | None,
  each ``FILE`` or ``INST=FILE``), ``ocsp_freshness`` and ``max_timestamp_delay`` (float |
  None: seconds > 0, None for the default), ``json`` (bool).
* ``audit``: ``run_dir`` (Path), ``json`` (bool).

User mistakes raise ConfigError/FederationError (the CLI prints one line, no traceback).
Exit codes: verify 0 all OK, 1 a check failed, 3 nothing failed but a message awaits its
time-stamp; audit 0 when nothing failed or is orphaned and every log reads to its end, 1
otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from federation.errors import ConfigError
from federation.evidence._audit import audit_json, audit_run, audit_text
from federation.evidence._export import default_output, export_exchange
from federation.evidence._trust import TrustStore, load_anchor_option, parse_ca_specs
from federation.evidence._verify import report_json, report_text, verify_container


def cmd_export(args: argparse.Namespace) -> int:
    data, meta = export_exchange(args.run_dir, args.id, side=getattr(args, "side", None))
    for text in meta.get("damaged_logs", ()):
        print(f"xfed: warning: skipped a damaged log: {text}", file=sys.stderr)
    out = getattr(args, "output", None)
    if out is not None and str(out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    path = Path(out) if out is not None else default_output(args.id, meta["side"])
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the container: {exc.strerror or exc}", file=str(path)
        ) from None
    n = len(meta.get("messages", {})) if isinstance(meta.get("messages"), dict) else None
    print(
        f"{path}: {meta['side']} side of {args.id} from {meta['security_server']}"
        + (f" ({n} messages)" if n else "")
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    anchors = [load_anchor_option(a) for a in getattr(args, "anchor", None) or ()]
    cas = parse_ca_specs(getattr(args, "ca", None))
    if not anchors and not cas:
        raise ConfigError(
            "give the root of trust: --anchor ANCHOR.json or --ca CA.pem (one per instance)"
        )
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the container: {exc.strerror or exc}", file=str(path)
        ) from None
    report = verify_container(
        data,
        anchors=anchors,
        trust=TrustStore(cas),
        ocsp_freshness_s=getattr(args, "ocsp_freshness", None),
        max_timestamp_delay_s=getattr(args, "max_timestamp_delay", None),
        source=str(path),
    )
    print(report_json(report) if getattr(args, "json", False) else report_text(report))
    return report.exit_code


def cmd_audit(args: argparse.Namespace) -> int:
    result = audit_run(args.run_dir)
    print(audit_json(result) if getattr(args, "json", False) else audit_text(result))
    bad = result["failed"] or result["orphaned"] or result["damaged_logs"]
    for server in result["damaged_logs"]:
        print(f"xfed: error: {result['logs'][server]['error']}", file=sys.stderr)
    return 1 if bad else 0
