"""``wait_until: {error: Server.ClientProxy.OutdatedGlobalConf}`` holds only when the
first such error came once the configuration its security server held had expired."""

from __future__ import annotations

import json
import time
from pathlib import Path

from federation.bench import RequestRecord
from federation.clock import iso
from federation.scenario._interpreter import OUTDATED_CONF, StepResult, _Run
from federation.scenario._manifest import ManifestView
from federation.scenario._model import WaitUntilStep

from .test_interpreter import make

CLIENT = "FI/COM/2908552-1/kyc"


def run_with_status(tmp_path: Path, *, expires: float, downloaded: float) -> _Run:
    gdir = tmp_path / "globalconf"
    gdir.mkdir(exist_ok=True)
    status = {"globalconf": {"FI": {"expires": iso(expires), "downloaded_at": iso(downloaded)}}}
    (gdir / "status.json").write_text(json.dumps(status))
    manifest = {
        "instances": {
            "FI": {
                "security_servers": {
                    "FI/COM/2908552-1/fi-ss2": {
                        "code": "fi-ss2",
                        "client_url": "http://127.0.0.1:9",
                        "clients": [CLIENT],
                        "globalconf_dir": str(gdir),
                    }
                }
            }
        }
    }
    run = _Run(
        make(tmp_path, "steps: []\n"), tmp_path, time_scale=60.0, auditor=None, progress=None,
        client_factory=None, revoke=None, unrevoke=None, sample_interval_real_s=1.0,
    )  # fmt: skip
    run.view = ManifestView(manifest)
    return run


def judged(run: _Run) -> StepResult:
    rec = RequestRecord(
        t=run.now(), sent=run.now(), latency_s=0.0, service_s=0.0, client=CLIENT,
        service="FI/GOV/0245437-2/tax/income", direction="FI", method="GET", status=500,
        error=OUTDATED_CONF, xroad_id=None,
    )  # fmt: skip
    step = WaitUntilStep(index=0, path="steps[0]", within_s=60.0, error=OUTDATED_CONF)
    res = StepResult(step, 0.0, passed=True, message=f"{OUTDATED_CONF} seen after 1.0 s")
    run._judge_expiry(rec, res)
    return res


async def test_after_the_expiry_passes(tmp_path: Path) -> None:
    now = time.time()
    res = judged(run_with_status(tmp_path, expires=now - 0.5, downloaded=now - 10.5))
    assert res.passed
    assert res.figures["server"] == "FI.fi-ss2"
    assert 29 <= res.figures["since_expiry_s"] <= 33  # 0.5 s x60
    assert "after FI.fi-ss2's configuration expired" in res.message


async def test_before_the_expiry_fails(tmp_path: Path) -> None:
    now = time.time()
    res = judged(run_with_status(tmp_path, expires=now + 2.0, downloaded=now - 8.0))
    assert not res.passed
    assert res.figures["since_expiry_s"] < -100
    assert "before FI.fi-ss2's configuration expired" in res.message


async def test_a_newer_download_or_no_status_is_unknown_not_judged(tmp_path: Path) -> None:
    now = time.time()
    res = judged(run_with_status(tmp_path, expires=now + 10.0, downloaded=now + 1.0))
    assert res.passed
    assert res.figures["since_expiry_s"] is None
    assert "unknown" in res.message
    run = run_with_status(tmp_path, expires=now - 1, downloaded=now - 2)
    (tmp_path / "globalconf" / "status.json").unlink()
    res = judged(run)
    assert res.figures["since_expiry_s"] is None
