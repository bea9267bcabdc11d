# ruff: noqa: E501  (inline test data)
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from federation.report import render_html, write_report


def synthetic_journal() -> dict[str, Any]:
    rng = random.Random(1)
    reqs = []
    for i in range(600):
        t = i / 20
        cross = i % 2 == 0
        in_fault = 10 <= t < 20 and cross
        reqs.append(
            {
                "t": t,
                "latency_ms": (rng.lognormvariate(1.5, 0.4) + (40 if cross else 0)),
                "client": "EE/GOV/70000001/consumer" if cross else "FI/COM/2908552-1/kyc",
                "service": "FI/GOV/0245437-2/tax/income",
                "direction": "EE->FI" if cross else "FI",
                "status": 500 if in_fault else 200,
                "error": "Server.ClientProxy.NetworkError" if in_fault else None,
                "source": "load",
            }
        )
    return {
        "status": "passed",
        "scenario": {"name": "synthetic", "file": "s.yaml", "instances": ["ee.yaml", "fi.yaml"]},
        "time_scale": 60,
        "duration_s": 30.0,
        "seed": 1,
        "requests": reqs,
        "faults": [
            {"name": "fi-down", "kind": "partition", "spec": {"partition": "FI.fi-ss1"},
             "start": 10.0, "end": 20.0, "start_scenario_s": 600.0, "end_scenario_s": 1200.0,
             "healed_by": "steps[3]", "targets": ["EE.ee-ss1--FI.fi-ss1"]},
            {"name": "wan", "kind": "latency", "spec": {}, "start": 22.0, "end": None,
             "start_scenario_s": 1320.0, "end_scenario_s": None, "healed_by": None, "targets": []},
        ],
        "steps": [
            {"index": 0, "path": "steps[0]", "kind": "expect", "start_scenario_s": 0.0,
             "end_scenario_s": 600.0, "passed": True, "message": "ok", "figures": {}, "note": None},
        ],
        "expectations": [
            {"index": 0, "path": "steps[0]", "kind": "expect", "start_scenario_s": 0.0,
             "end_scenario_s": 600.0, "passed": True, "message": "ok", "figures": {"p99_ms": 9.1}},
        ],
        "checks": [{"name": "no_central_broker", "passed": False, "message": "broker!", "figures": {}}],
        "data_flow": {
            "kinds": {
                "ss-ss": {"bytes": 9_000_000, "bytes_upstream": 4_000_000, "bytes_downstream": 5_000_000, "links": 2},
                "ss-cs": {"bytes": 40_000, "bytes_upstream": 2_000, "bytes_downstream": 38_000, "links": 2},
            },
            "links": {"EE.ee-ss1--FI.fi-ss1": {"kind": "ss-ss", "bytes_upstream": 1, "bytes_downstream": 2}},
        },
        "timers": {"EE": {"conf_expire_s": {"real_s": 10.0, "xroad_s": 600.0}}},
        "settings": {"conf_expire_s": 600.0},
    }  # fmt: skip


def test_report_sections_and_plots() -> None:
    html = render_html(synthetic_journal())
    assert html.count("<svg") == 4  # latency timeline, throughput, CDF, data flow bars
    assert html.count('class="fault"') == 4  # two windows, shaded in both timelines
    assert 'data-fault="fi-down"' in html
    assert html.count('class="err"') == 100
    assert "EE-&gt;FI" in html
    assert "FI (intra)" in html
    assert "SS &lt;-&gt; SS (message exchange)" in html
    assert "conf_expire_s" in html
    assert "FAIL" in html
    # self-contained: no URL, no external resource, no script
    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<script|<link""", html)


def test_report_shows_the_central_links_the_broker_check_judged() -> None:
    j = synthetic_journal()
    j["checks"][0]["figures"] = {
        "links": {
            "EE.ee-ss1--FI.cs": {"kind": "ss-cs", "bytes": 33891, "download_bytes": 2639, "downloads_max": 14,
                                 "expected_max_bytes": 36946, "excess_bytes": -3055, "hidden_exchanges": 0.38},
            "EE.cs--FI.cs": {"kind": "cs-cs", "bytes": 900},
        }
    }  # fmt: skip
    html = render_html(j)
    assert "no_central_broker, per central link" in html
    row = html[html.index("<code>EE.ee-ss1--FI.cs</code>") :].split("</tr>")[0]
    assert "33.9 KB" in row
    assert "36.9 KB" in row
    assert "0.38" in row
    row = html[html.index("<code>EE.cs--FI.cs</code>") :].split("</tr>")[0]
    assert "not judged" in row


def test_report_of_an_empty_interrupted_run() -> None:
    html = render_html({"status": "interrupted", "scenario": {"name": "x"}})
    assert "INTERRUPTED" in html
    assert "No faults injected" in html


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_a_headless_browser(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "Chromium not found: the report screenshot needs Debian's chromium "
            "(`make chromium` installs it)"
        )
    page = write_report(synthetic_journal(), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1050,1400", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # a blank page compresses to a few KB; plots and tables take far more
    assert len(data) > 50_000
