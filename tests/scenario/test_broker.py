"""``no_central_broker``: every central link may carry its configuration downloads and
nothing else; a few message-sized transfers through one central server fail the check, and
a measurement that cannot tell fails as inconclusive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from federation.scenario._checks import CentralLink, Sample, check_no_central_broker
from federation.scenario._interpreter import run_scenario

from .fakefed import FakeFederation
from .test_interpreter import make

EXCHANGE = 7000  # bytes between security servers per exchange (real runs: 7-8 KB)
OWN, PARTNER = 2987, 2607  # one directory download (real runs: own and partner instance)
RATE = 30  # exchanges per second


def synthetic(
    *,
    until: float = 16.0,
    baseline: tuple[float, float] = (0.0, 2.75),
    period: float = 1.0,
    phase: float = 0.31,
    leaks: dict[str, list[tuple[float, int]]] | None = None,
    down: dict[str, tuple[float, float]] | None = None,
    cs_cs_baseline: int = 0,
    sizes: dict[str, int] | None = None,
) -> tuple[list[Sample], int]:
    """Counters sampled every 50 ms in the baseline and every second after it: downloads on
    each ss-cs link once per ``period`` (none while ``down``), exchanges during the load,
    and ``leaks``: (time, bytes) added to a link."""
    sizes = sizes or {"EE.ee-ss1--EE.cs": OWN, "EE.ee-ss1--FI.cs": PARTNER}
    leaks = leaks or {}
    down = down or {}
    times = [round(i * 0.05, 3) for i in range(int(baseline[1] / 0.05) + 1)]
    times += [baseline[1] + k for k in range(1, int(until - baseline[1]) + 1)]
    samples: list[Sample] = []
    exchanges = 0
    for t in times:
        by_link: dict[str, int] = {}
        for link, size in sizes.items():
            d0, d1 = down.get(link, (-1.0, -1.0))
            n = 0
            k = 0
            while phase + k * period <= t:
                at = phase + k * period
                if not d0 <= at < d1:
                    n += 1
                k += 1
            by_link[link] = n * size + sum(b for at, b in leaks.get(link, []) if at <= t)
        by_link["EE.cs--FI.cs"] = (cs_cs_baseline if t >= 1.0 else 0) + sum(
            b for at, b in leaks.get("EE.cs--FI.cs", []) if at <= t
        )
        load_s = max(0.0, t - baseline[1])
        exchanges = int(load_s * RATE)
        ss = exchanges * EXCHANGE
        by_kind = {"ss-ss": ss, "ss-cs": sum(by_link[k] for k in sizes)}
        samples.append(Sample(t, by_kind, by_link))
    return samples, exchanges


def links(
    period: float = 1.0, down: dict[str, tuple[float, float]] | None = None
) -> list[CentralLink]:
    down = down or {}
    return [
        CentralLink("EE.cs--FI.cs", "cs-cs", None),
        *(
            CentralLink(n, "ss-cs", period, (down[n],) if n in down else ())
            for n in ("EE.ee-ss1--EE.cs", "EE.ee-ss1--FI.cs")
        ),
    ]


def judge(samples: list[Sample], exchanges: int, **kw: Any) -> Any:
    kw.setdefault("links", links())
    return check_no_central_broker(
        samples,
        baseline=kw.pop("baseline", (0.0, 2.75)),
        load=kw.pop("load", (2.75, samples[-1].t)),
        exchanges=exchanges,
        **kw,
    )


def test_configuration_downloads_alone_pass() -> None:
    samples, n = synthetic()
    r = judge(samples, n)
    assert r.passed, r.message
    figs = r.figures
    assert figs["conclusive"]
    own = figs["links"]["EE.ee-ss1--EE.cs"]
    assert own["download_bytes"] == OWN + 32
    assert own["baseline_downloads"] >= 1
    # 13 s of load at one download a second: 13 made, at most 15 allowed
    assert own["bytes"] == 13 * OWN
    assert own["downloads_max"] == 15
    assert figs["worst_hidden_exchanges"] < 1.5
    assert figs["links"]["EE.cs--FI.cs"]["expected_max_bytes"] == 0


def test_a_few_exchanges_through_one_central_link_fail() -> None:
    # two message-sized transfers through EE's link to FI's central server, out of ~400
    leak = {"EE.ee-ss1--FI.cs": [(8.5, EXCHANGE), (9.5, EXCHANGE)]}
    samples, n = synthetic(leaks=leak)
    assert n > 350
    r = judge(samples, n)
    assert not r.passed
    assert "EE.ee-ss1--FI.cs" in r.message
    assert "EE.ee-ss1--EE.cs" not in r.message  # judged per link
    assert r.figures["links"]["EE.ee-ss1--FI.cs"]["excess_bytes"] > 0
    # one percent of the exchanges through the partner central server fails too
    leak = {"EE.ee-ss1--FI.cs": [(3.0 + i, EXCHANGE) for i in range(n // 100)]}
    samples, n = synthetic(leaks=leak)
    assert not judge(samples, n).passed


def test_message_bytes_between_central_servers_fail() -> None:
    samples, n = synthetic(leaks={"EE.cs--FI.cs": [(6.0, 2000)]})
    r = judge(samples, n)
    assert not r.passed
    assert "EE.cs--FI.cs" in r.message


def test_a_partitioned_link_is_expected_to_carry_nothing() -> None:
    cut = {"EE.ee-ss1--FI.cs": (4.0, 12.0)}
    samples, n = synthetic(down=cut)
    r = judge(samples, n, links=links(down=cut))
    assert r.passed, r.message
    row = r.figures["links"]["EE.ee-ss1--FI.cs"]
    assert row["up_s"] == 5.0  # 2.75-4 and 12-15.75
    # 2 + 4 in the intervals, one straddling the start, one for the partition's edges;
    # 15 if the link counted as up
    assert row["downloads_max"] == 8
    # the central server leaks while its link counts as down: the partition's idle
    # allowance must not hide it
    samples, n = synthetic(down=cut, leaks={"EE.ee-ss1--FI.cs": [(6.0, EXCHANGE), (7.0, EXCHANGE)]})
    assert not judge(samples, n, links=links(down=cut)).passed


def test_inconclusive_measurements_fail() -> None:
    samples, n = synthetic()
    # no baseline: downloads cannot be sized
    r = judge(samples, n, baseline=None)
    assert not r.passed
    assert r.message.startswith("inconclusive")
    # a baseline too short to hold a whole download
    r = judge(samples, n, baseline=(0.0, 0.4))
    assert not r.passed
    assert "inconclusive" in r.message
    # downloads so large that several exchanges could hide in the allowance
    samples, n = synthetic(sizes={"EE.ee-ss1--EE.cs": 20_000, "EE.ee-ss1--FI.cs": PARTNER})
    r = judge(samples, n)
    assert not r.passed
    assert "could hide" in r.message
    assert not r.figures["conclusive"]
    # a central-server link that moves bytes with no load breaks the model
    samples, n = synthetic(cs_cs_baseline=500)
    r = judge(samples, n)
    assert not r.passed
    assert "inconclusive" in r.message
    # no exchanges
    samples, _ = synthetic()
    assert not judge(samples, 0).passed


def test_tolerance_admits_a_fraction_of_the_exchanges() -> None:
    leak = {"EE.ee-ss1--FI.cs": [(8.5, EXCHANGE), (9.5, EXCHANGE)]}
    samples, n = synthetic(leaks=leak)
    assert judge(samples, n, tolerance=0.01).passed
    assert not judge(samples, n, tolerance=0.001).passed


BROKER = """\
steps:
  - expect: {window: 300s, error_rate: 0, min_requests: 20}
checks: [no_central_broker]
"""


async def test_fake_federation_clean_run_passes(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    res = await run_scenario(make(tmp_path, BROKER), FakeFederation().start, tmp_path / "run")
    (c,) = res.journal["checks"]
    assert c["passed"], c["message"]
    assert c["figures"]["conclusive"]
    assert all(r["excess_bytes"] < 0 for r in c["figures"]["links"].values())


@pytest.mark.parametrize("leaks", [1, 3])
async def test_fake_federation_broker_leaking_a_few_exchanges_fails(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, leaks: int
) -> None:
    fed = FakeFederation(broker_leaks=leaks, leak_after=3.0)
    res = await run_scenario(make(tmp_path, BROKER), fed.start, tmp_path / "run")
    assert fed.leaked == leaks
    (c,) = res.journal["checks"]
    assert not c["passed"]
    assert res.exit_code == 1
    assert c["message"].startswith("message-sized traffic through a central server")
    assert "EE.ee-ss1--EE.cs" in c["message"]
    assert "FI.fi-ss1--FI.cs" not in c["message"]
    assert c["figures"]["exchanges"] > 60, json.dumps(c["figures"])
