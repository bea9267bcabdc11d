"""End to end: real exchanges EE -> FI and FI -> EE through a running federation, then
export + verify (with the run's anchors and CA bundles) and audit the whole run."""

from __future__ import annotations

from pathlib import Path

import trio

from federation.evidence import (
    TrustStore,
    audit_run,
    export_exchange,
    load_ca_option,
    verify_container,
)
from federation.globalconf import ConfigurationAnchor
from tests.securityserver.exchange_helpers import EE_PERSON, FI_KYC, Caller, federation, ss


async def test_exchanges_export_verify_and_audit(tmp_path: Path) -> None:
    async with federation(tmp_path, timestamping_interval_s=0.2) as fed:
        caller = Caller(fed)
        try:
            ee_fi = await caller.call()  # EE consumer -> FI income
            assert ee_fi.status == 200, ee_fi.body
            fi_ee = await caller.call(
                FI_KYC, EE_PERSON, "/persons/38001010000", via=("FI", "fi-ss2")
            )
            assert fi_ee.status == 200, fi_ee.body
        finally:
            await caller.aclose()
        ids = [r.header("x-road-id") for r in (ee_fi, fi_ee)]
        logs = [
            ss(fed, i, c).log for i, c in (("EE", "ee-ss1"), ("FI", "fi-ss1"), ("FI", "fi-ss2"))
        ]
        with trio.fail_after(30):
            while any(log.status()["unstamped"] for log in logs):  # noqa: ASYNC110
                await trio.sleep(0.05)  # the time-stamper runs in another task every 0.2 s

        run_dir = fed.plan.run_dir
        inst = fed.manifest["instances"]
        anchors = [ConfigurationAnchor.load(inst[i]["central_server"]["anchor"]) for i in inst]
        cas = TrustStore([load_ca_option(f"{i}={inst[i]['ca_cert']}") for i in inst])
        for xid in ids:
            assert xid
            for side in ("client", "provider"):
                data, _ = export_exchange(run_dir, xid, side=side)
                for report in (
                    verify_container(data, anchors=anchors),
                    verify_container(data, trust=cas),
                ):
                    assert report.exit_code == 0, [v.line() for v in report.verdicts]

        result = audit_run(run_dir)  # the run is still live: read-only connections
        assert result["failed"] == 0, result["problems"]
        assert result["orphaned"] == 0, result["problems"]
        assert result["complete_exchanges"] == 2
        assert result["records"] == result["verified"] == 8
