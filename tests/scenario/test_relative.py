"""Relative latency expectations: the rise of a window's p50 over an earlier window's.

The interpreter judges ``vs`` / ``min_p50_rise_ms`` / ``max_p50_rise_ms`` of an ``expect``
step (the loader's side is in test_loader.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import trio
import trio.testing

from federation.scenario._history import p50_rise_problems
from federation.scenario._interpreter import run_scenario
from federation.scenario._model import ExpectStep, Scenario

from .fakefed import FakeFederation
from .test_interpreter import make


def relative(sc: Scenario, index: int, **kw: float | int) -> Scenario:
    old = sc.steps[index]
    assert isinstance(old, ExpectStep)
    steps = list(sc.steps)
    steps[index] = dataclasses.replace(old, **kw)  # type: ignore[arg-type]
    return dataclasses.replace(sc, steps=tuple(steps))


def test_p50_rise_rule() -> None:
    assert p50_rise_problems(50.0, 10.0, base="steps[0]") == []
    assert p50_rise_problems(50.0, 10.0, base="steps[0]", min_rise=30, max_rise=60) == []
    assert p50_rise_problems(15.0, 10.0, base="steps[0]", min_rise=30) == [
        "p50 rose 5.0 ms over steps[0] (10.0 ms) < 30"
    ]
    assert p50_rise_problems(100.0, 10.0, base="steps[0]", max_rise=60) == [
        "p50 rose 90.0 ms over steps[0] (10.0 ms) > 60"
    ]
    assert p50_rise_problems(None, 10.0, base="steps[0]", max_rise=60)
    assert p50_rise_problems(10.0, None, base="steps[0]", max_rise=60)


WAN = """\
steps:
  - expect: {window: 90s, direction: EE->FI, p50_ms: 1000, min_requests: 10}
  - expect: {window: 90s, direction: FI, p50_ms: 1000, min_requests: 10}
  - fault: {name: wan, latency: {between: [EE, FI], ms: 20, jitter_ms: 5}}
  - expect: {window: 90s, direction: EE->FI, p50_ms: 1000, min_requests: 10}
  - expect: {window: 90s, direction: FI, p50_ms: 1000, min_requests: 10}
  - heal: wan
"""


async def test_rise_over_a_named_window(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sc = make(tmp_path, WAN)
    # one round trip more (2 x 20 +/- 5 ms) across the border, nothing inside FI
    sc = relative(sc, 3, vs=0, min_p50_rise_ms=30, max_p50_rise_ms=60)
    sc = relative(sc, 4, vs=1, max_p50_rise_ms=10)
    res = await run_scenario(sc, FakeFederation().start, tmp_path / "run")
    j = res.journal
    assert res.exit_code == 0, json.dumps(j["expectations"], indent=1)
    cross, intra = j["steps"][3]["figures"], j["steps"][4]["figures"]
    assert cross["p50_vs"]["step"] == "steps[0]"
    assert 30 <= cross["p50_vs"]["rise_ms"] <= 60
    assert intra["p50_vs"]["step"] == "steps[1]"
    assert intra["p50_vs"]["rise_ms"] <= 10


async def test_too_small_or_too_large_a_rise_fails(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sc = make(tmp_path, WAN)
    sc = relative(sc, 3, vs=0, min_p50_rise_ms=70)  # would need almost two round trips
    sc = relative(sc, 4, vs=0, max_p50_rise_ms=-10)  # FI's own calls vs EE->FI's baseline
    res = await run_scenario(sc, FakeFederation().start, tmp_path / "run")
    j = res.journal
    assert res.exit_code == 1
    assert "< 70" in j["steps"][3]["message"]
    assert "over steps[0]" in j["steps"][4]["message"]


async def test_figure_against_the_latest_window_with_the_same_filter(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    res = await run_scenario(make(tmp_path, WAN), FakeFederation().start, tmp_path / "run")
    j = res.journal
    assert res.exit_code == 0
    assert "p50_vs" not in j["steps"][0]["figures"]
    assert j["steps"][3]["figures"]["p50_vs"]["step"] == "steps[0]"
    assert j["steps"][4]["figures"]["p50_vs"]["step"] == "steps[1]"
    assert j["steps"][3]["figures"]["p50_vs"]["rise_ms"] >= 30
