from __future__ import annotations

from pathlib import Path

import pytest

from federation.scenario import load_scenario
from federation.scenario._model import FaultStep

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))
EXPECTED = {
    "tour", "ee-fi-federation", "central-server-partition", "partner-conf-expiry",
    "certificate-revocation", "ocsp-outage", "tsa-outage", "wan-latency", "once-only",
    "three-instances",
}  # fmt: skip


def test_library_is_complete() -> None:
    assert EXPECTED <= {p.stem for p in LIBRARY}


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_loads(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.description
    assert all(p.is_file() for p in sc.instances)
    assert sc.load is not None
    # every fault a scenario injects is healed by a later step
    names = [s.name for s in sc.steps if isinstance(s, FaultStep)]
    healed = {n for s in sc.steps if s.kind == "heal" for n in getattr(s, "names", ())}
    assert set(names) <= healed, path


def test_tour_fits_in_a_minute() -> None:
    sc = load_scenario(ROOT / "scenarios" / "tour.yaml")
    budget = 0.0
    for s in sc.steps:
        budget += (getattr(s, "window_s", 0) or 0) + (getattr(s, "within_s", 0) or 0)
        budget += getattr(s, "duration_s", 0) or 0
    assert budget / sc.time_scale < 30  # worst case of every step; plus federation start
