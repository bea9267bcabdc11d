"""``xfed run SCENARIO.yaml``: the command-line shell around :func:`run_scenario`.

Exit codes: 0 every expectation and check held; 1 one failed, the run broke or was
interrupted; 2 the scenario is invalid (one error line, no traceback). Ctrl-C (or SIGTERM)
stops the run cleanly: faults are healed, the federation stopped, and the journal and
report are still written. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import signal
import sys
from pathlib import Path
from typing import IO, Any

import trio

from federation.errors import FederationError, ScenarioError, leaf_errors
from federation.scenario._interpreter import Auditor, StartFederation, run_scenario
from federation.scenario._loader import load_scenario


def default_auditor() -> Auditor | None:
    """``federation.evidence.audit_run`` when the evidence package provides it."""
    try:
        mod = importlib.import_module("federation.evidence")
    except ImportError:
        return None
    for name in ("audit_run", "audit"):
        audit = getattr(mod, name, None)
        if callable(audit):
            return audit
    return None


def default_run_dir() -> Path:
    return Path(".xfed") / _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")


def run_scenario_cli(
    path: str | Path,
    run_dir: str | Path | None = None,
    time_scale_override: float | None = None,
    *,
    start_federation: StartFederation,
    auditor: Auditor | None = None,
    out: IO[str] | None = None,
    progress: bool = True,
) -> int:
    """Load, run and report one scenario; returns the process exit code (0, 1 or 2).

    ``start_federation(instance_paths, run_dir, time_scale, seed[, settings=dict])`` is an
    async context manager yielding the manifest dict (see ``docs/scenarios.md``).
    ``auditor`` defaults to ``federation.evidence.audit`` when it exists.
    """
    stream = out if out is not None else sys.stderr
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        print(f"error: {exc}", file=stream)
        return 2
    if time_scale_override is not None and time_scale_override <= 0:
        print(f"error: --time-scale must be > 0, not {time_scale_override:g}", file=stream)
        return 2
    rd = Path(run_dir) if run_dir is not None else default_run_dir()
    audit = auditor if auditor is not None else default_auditor()

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    state: dict[str, Any] = {}

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def watch_signals() -> None:
                    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                        async for _ in sigs:
                            if state.get("interrupted"):
                                raise KeyboardInterrupt
                            state["interrupted"] = True
                            say(
                                "interrupted: healing faults, writing the journal "
                                "(Ctrl-C again to abort)"
                            )
                            scope.cancel()

                nursery.start_soon(watch_signals)
                try:
                    result = await run_scenario(
                        scenario,
                        start_federation,
                        rd,
                        time_scale=time_scale_override,
                        auditor=audit,
                        progress=say if progress else None,
                    )
                    state["code"] = result.exit_code
                except ScenarioError as exc:
                    say(f"error: {exc}")
                    state["code"] = 2
                nursery.cancel_scope.cancel()

    say(f"xfed run: {scenario.name} ({path}) -> {rd}")
    try:
        trio.run(main)
    except KeyboardInterrupt:
        say("aborted")
        return 1
    except Exception as exc:
        # trio wraps what broke the run in exception groups: name the leaves, not the group
        # (a federation error, e.g. an instance process that died, says what and where)
        what = "; ".join(
            str(e) if isinstance(e, FederationError) else repr(e) for e in leaf_errors(exc)
        )
        say(f"error: the run broke: {what} (details in {rd / 'journal.json'})")
        state["code"] = 1
    code = int(state.get("code", 1))
    _summary(rd, say)
    return code


def _summary(run_dir: Path, say: Any) -> None:
    path = run_dir / "journal.json"
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for e in journal.get("expectations", []):
        mark = "PASS" if e["passed"] else "FAIL"
        say(f"{mark}  {e['path']} {e['kind']}: {e['message']}")
    for c in journal.get("checks", []):
        mark = {True: "PASS", False: "FAIL"}.get(c["passed"], "----")
        say(f"{mark}  check {c['name']}: {c['message']}")
    say(f"status: {journal.get('status')}")
    say(f"journal: {path}")
    report = run_dir / "report.html"
    if report.exists():
        say(f"report:  {report}")
