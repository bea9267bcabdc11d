from __future__ import annotations

import io
from pathlib import Path

from federation.scenario import run_scenario_cli

from .fakefed import FakeFederation


def test_bad_scenario_one_line_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ninstances: [a.yaml]\nsteps:\n  - wait: 30\n")
    out = io.StringIO()
    fed = FakeFederation()
    code = run_scenario_cli(p, tmp_path / "run", start_federation=fed.start, out=out)
    assert code == 2
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.startswith(f"error: {p}:2: instances[0]: instance file")
    assert "Traceback" not in text
    assert fed.calls == []


def test_good_scenario_runs_and_reports(tmp_path: Path) -> None:
    for inst in ("ee.yaml", "fi.yaml"):
        (tmp_path / inst).write_text("instance: X\n")
    p = tmp_path / "tour.yaml"
    p.write_text(
        """\
name: tiny tour
instances: [ee.yaml, fi.yaml]
time_scale: 600
load:
  rate: 20/s
  calls:
    - {client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income, path: /persons/1}
steps:
  - expect: {window: 120s, error_rate: 0}
checks: [steady_state]
"""
    )
    out = io.StringIO()
    fed = FakeFederation()
    code = run_scenario_cli(p, tmp_path / "run", 120, start_federation=fed.start, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert fed.calls[0][2] == 120  # --time-scale wins over the file
    assert "PASS  steps[0] expect" in text
    assert "PASS  check steady_state" in text
    assert f"report:  {tmp_path / 'run' / 'report.html'}" in text
    assert (tmp_path / "run" / "journal.json").exists()
