"""``xfed bench`` orchestration, in process and tiny: every mode measured, the JSON contract,
no errors, the text table. Speed is reported, never asserted."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from federation.bench._bench import (
    MODES,
    BenchConfig,
    BenchError,
    cmd_bench,
    cpu_seconds,
    render_table,
    run_bench,
)

pytestmark = pytest.mark.slow

CONTRACT_CELL = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "rps", "errors")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import trio

    config = BenchConfig(
        duration_s=0.3,
        concurrency=(1, 2),
        rates=(20.0,),
        payloads=(1024,),
        rounds=1,
        warmup_s=0.2,
        in_process=True,
        run_dir=tmp_path_factory.mktemp("bench") / "run",
    )
    return trio.run(run_bench, config)


def test_json_contract(result: dict[str, Any]) -> None:
    assert {"cores", "cpu_model", "python", "packages"} <= set(result["machine"])
    assert set(result["modes"]) == set(MODES)
    for mode in MODES:
        for cell in ("c1", "csat"):
            got = result["modes"][mode][cell]
            assert set(CONTRACT_CELL) <= set(got), (mode, cell)
            assert got["errors"] == 0, (mode, cell, got)
            assert got["rps"] > 0
        per_payload = result["modes"][mode]["payloads"]["1024"]
        assert set(per_payload) == {"c1", "c2", "r20"}
        assert per_payload["c2"]["requests"] > 0
        fixed = per_payload["r20"]  # 20/s over one 0.3 s segment: 6 requests, all answered
        assert fixed["offered_rps"] == 20.0
        assert fixed["requests"] == 6, (mode, fixed)
        assert fixed["errors"] == 0, (mode, fixed)
        assert fixed["connections"] >= 1
        assert fixed["service_ms"]["p50_ms"] <= fixed["p50_ms"]
    ratios = result["ratios"]
    assert ratios["cross_rps_over_direct"] > 0
    assert isinstance(ratios["cross_p50_minus_direct_ms"], float)
    assert result["errors_total"] == 0
    assert result["targets"]["errors"]["met"] is True
    json.dumps(result)  # serialisable as is


def test_every_security_server_logged_and_cpu_was_counted(result: dict[str, Any]) -> None:
    logs = result["message_log"]
    # intra: ee-ss2 -> ee-ss1; cross: ee-ss1 -> fi-ss1
    for sid in ("EE/GOV/74000091/ee-ss2", "EE/GOV/70000001/ee-ss1", "FI/GOV/0245437-2/fi-ss1"):
        assert logs[sid]["records"] > 0, sid
    cell = result["modes"]["cross"]["c1"]
    assert cell["cpu_ms_per_req"]["runner"] > 0  # in process: everything is the runner


def test_cross_wan_is_slower_than_cross(result: dict[str, Any]) -> None:
    # 10 ms each way on the EE -> FI links: at least one added round trip (20 ms); a loose
    # bound, not a speed assertion
    m = result["modes"]
    assert m["cross_wan"]["c1"]["p50_ms"] > m["cross"]["c1"]["p50_ms"] + 10


def test_table_names_every_mode_and_target(result: dict[str, Any]) -> None:
    text = render_table(result)
    for mode in MODES:
        assert mode in text
    assert "cross_rps_over_direct" in text
    assert "   r20 cross" in text  # the fixed-rate row


def test_cpu_seconds_of_this_process() -> None:
    import os

    assert (cpu_seconds(os.getpid()) or 0) > 0
    assert cpu_seconds(2**22 + 12345) is None


def _args(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "duration": 1.0,
        "concurrency": "1",
        "rate": None,
        "payload": "1024",
        "modes": "direct",
        "rounds": 1,
        "warmup": 0.0,
        "in_process": True,
        "run_dir": None,
        "seed": 0,
        "instances": None,
        "json": None,
        "plot": None,
    }
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"concurrency": "1,x"}, "--concurrency"),
        ({"concurrency": "0"}, "--concurrency"),
        ({"modes": "direct,warp"}, "unknown mode"),
        ({"rounds": 0}, "--rounds"),
        ({"rate": "10,x"}, "--rate"),
        ({"rate": "-5"}, "--rate"),
        ({"json": Path("/nonexistent-dir/out.json")}, "does not exist"),
    ],
)
def test_bad_options_are_one_line_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        cmd_bench(_args(**kw))


def test_plot_without_matplotlib_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *a: Any, **k: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(BenchError, match="matplotlib"):
        cmd_bench(_args(plot=tmp_path / "x.png"))


def test_plot_writes_a_png(result: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from federation.bench._bench import write_plot

    out = tmp_path / "cdf.png"
    write_plot(result, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
