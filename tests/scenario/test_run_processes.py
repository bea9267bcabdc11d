"""``xfed run`` with a process per instance: killing one instance process mid-run makes
the run report which process died, exit non-zero, still write the journal, and leave no
orphan processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests._poll import wait_for
from tests.topology.test_up_e2e import ROOT, _alive

pytestmark = pytest.mark.slow

XFED = [sys.executable, "-m", "federation.cli"]


def _scenario(tmp_path: Path) -> Path:
    inst = ROOT / "instances"
    p = tmp_path / "long.yaml"
    p.write_text(
        f"""\
name: load long enough to kill an instance under it
instances: [{inst / "ee.yaml"}, {inst / "fi.yaml"}]
time_scale: 60
seed: 3
load:
  rate: 10/s
  calls:
    - {{client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income,
        path: /persons/38001010000/income}}
steps:
  - wait: 3600s
checks: [no_lost_messages]
"""
    )
    return p


def _records(path: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def test_killing_an_instance_process_ends_the_run_with_a_report(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*XFED, "run", str(_scenario(tmp_path)), "--run-dir", str(run_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        manifest = run_dir / "manifest.json"
        processes: dict[str, dict[str, object]] = {}

        def started() -> bool:
            nonlocal processes
            try:
                processes = json.loads(manifest.read_text()).get("processes", {})
            except (OSError, ValueError):  # not written yet, or being replaced
                processes = {}
            return bool(processes) or proc.poll() is not None

        wait_for(started, 90)
        assert set(processes) == {"chaos", "EE", "FI"}, proc.poll()
        pids = [int(str(p["pid"])) for p in processes.values()]
        # kill only once the load has gone through: EE's client-side log holds records
        ee_log = Path(
            json.loads(manifest.read_text())["instances"]["EE"]["security_servers"][
                "EE/GOV/70000001/ee-ss1"
            ]["message_log"]
        )
        assert wait_for(lambda: _records(ee_log) > 0, 60)
        os.kill(int(str(processes["FI"]["pid"])), signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out
    assert "error: the run broke: process FI was killed by SIGKILL" in out, out
    assert "ExceptionGroup" not in out, out
    assert "Traceback" not in out, out
    assert "status: error" in out, out
    data = json.loads((run_dir / "journal.json").read_text())
    assert data["status"] == "error"
    assert (run_dir / "report.html").exists()
    wait_for(lambda: not any(_alive(p) for p in pids), 10)
    assert not [p for p in pids if _alive(p)]
