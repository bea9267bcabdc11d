"""The time-stamping backlog of a TSA outage: counted when the fault is healed, and the
``timestamped`` check fails unless all of it was stamped afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from federation.scenario._interpreter import run_scenario

from .fakefed import FakeFederation
from .test_interpreter import make

TSA = """\
steps:
  - fault: {name: fi-tsa-down, partition: FI.tsa}
  - wait: 60s
  - heal: fi-tsa-down
  - wait: 30s
checks: [timestamped]
"""


class Auditor:
    """Records pile up unstamped until the heal; afterwards ``left`` stay unstamped."""

    def __init__(self, backlog: int, left: int) -> None:
        self.backlog, self.left = backlog, left
        self.calls = 0

    def __call__(self, run_dir: Path) -> dict[str, Any]:
        self.calls += 1
        unstamped = self.backlog if self.calls == 1 else self.left
        return {"records": 500, "verified": 500 - unstamped, "awaiting_timestamp": unstamped,
                "unstamped": unstamped, "orphaned": 0, "failed": 0}  # fmt: skip


async def test_the_backlog_at_the_heal_is_counted_and_stamped(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    audit = Auditor(backlog=180, left=0)
    res = await run_scenario(make(tmp_path, TSA), FakeFederation().start, tmp_path / "run",
                             auditor=audit)  # fmt: skip
    j = res.journal
    assert res.exit_code == 0, j["checks"]
    heal = j["steps"][2]
    assert heal["figures"]["awaiting_timestamp"] == 180
    assert "180 records were awaiting a time-stamp" in heal["message"]
    (c,) = j["checks"]
    assert c["figures"]["backlog_at_heal"] == {"fi-tsa-down": 180}
    assert c["figures"]["backlog_stamped"] is True
    assert "stamped after the heal" in c["message"]


@pytest.mark.parametrize("left", [1, 180])
async def test_a_backlog_left_unstamped_fails(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, left: int
) -> None:
    audit = Auditor(backlog=180, left=left)
    res = await run_scenario(make(tmp_path, TSA), FakeFederation().start, tmp_path / "run",
                             auditor=audit)  # fmt: skip
    (c,) = res.journal["checks"]
    assert res.exit_code == 1
    assert not c["passed"]
    assert "was not all stamped" in c["message"]
    assert c["figures"]["backlog_stamped"] is False


async def test_no_audit_at_heals_of_other_faults(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    audit = Auditor(backlog=0, left=0)
    body = TSA.replace("partition: FI.tsa", "partition: FI.fi-ss1")
    res = await run_scenario(make(tmp_path, body), FakeFederation().start, tmp_path / "run",
                             auditor=audit)  # fmt: skip
    assert res.exit_code == 0
    assert audit.calls == 1  # only the final check
    assert "awaiting_timestamp" not in res.journal["steps"][2]["figures"]
    assert "backlog_at_heal" not in res.journal["checks"][0]["figures"]
