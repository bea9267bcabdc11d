# ruff: noqa: E501  (inline test data)
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from federation.errors import ScenarioError
from federation.scenario import Scenario, parse_scenario
from federation.scenario._interpreter import run_scenario

from .fakefed import FakeFederation

HEAD = """\
name: {name}
instances: [ee.yaml, fi.yaml]
time_scale: 60
seed: 3
load:
  rate: 20/s
  workers: 8
  calls:
    - {{client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income,
       path: /persons/1/income}}
    - {{client: FI/COM/2908552-1/kyc, service: FI/GOV/0245437-2/tax/income,
       path: /persons/2/income}}
"""


def make(tmp_path: Path, body: str, name: str = "test") -> Scenario:
    for inst in ("ee.yaml", "fi.yaml"):
        (tmp_path / inst).write_text("instance: X\n")
    return parse_scenario(HEAD.format(name=name) + body, file=tmp_path / "s.yaml")


def journal_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "journal.json").read_text())
    return data


PARTITION = """\
steps:
  - request: {client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income,
              path: /persons/1/income, status: 200, body_contains: income}
  - request: {client: EE/GOV/70000001/consumer, url: /listClients, body_contains: [FI, EE]}
  - expect: {window: 60s, error_rate: 0, p99_ms: 1000, min_requests: 10}
  - fault: {name: fi-down, partition: FI.fi-ss1}
  - wait_until: {error: Server.ClientProxy.NetworkError, within: 60s, direction: EE->FI}
  - expect: {window: 60s, direction: FI, error_rate: 0}
  - expect: {window: 30s, direction: EE->FI, min_error_rate: 1,
             errors_seen: [Server.ClientProxy.NetworkError]}
  - heal: fi-down
  - wait_until: {error_rate: 0, within: 120s, window: 30s}
checks: [steady_state, no_central_broker]
"""


async def test_partition_run_passes_and_records_fault_window(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fed = FakeFederation()
    sc = make(tmp_path, PARTITION)
    lines: list[str] = []
    res = await run_scenario(sc, fed.start, tmp_path / "run", progress=lines.append)
    j = res.journal
    assert res.status == "passed", json.dumps(j["expectations"] + j["checks"], indent=1)
    assert res.exit_code == 0
    assert fed.calls[0][2:4] == (60.0, 3)
    # the fault window: named, on the one link leading to FI.fi-ss1, closed by the heal step
    (w,) = j["faults"]
    assert w["name"] == "fi-down"
    assert w["targets"] == ["EE.ee-ss1--FI.fi-ss1"]
    assert 0 < w["start"] < w["end"]
    assert w["healed_by"] == "steps[7]"
    # the history: both directions; errors only cross-border and only inside the window
    reqs = [r for r in j["requests"] if r["source"] == "load"]
    assert {r["direction"] for r in reqs} == {"EE->FI", "FI"}
    errs = [r for r in reqs if r["error"]]
    assert errs
    assert {r["error"] for r in errs} == {"Server.ClientProxy.NetworkError"}
    assert all(r["direction"] == "EE->FI" for r in errs)
    assert all(w["start"] <= r["t"] + r["latency_ms"] / 1000 <= w["end"] + 0.5 for r in errs)
    # time to effect measured in scenario time
    wu = j["steps"][4]
    assert wu["passed"]
    assert wu["figures"]["since_fault_s"] >= 0
    # timers and data flow
    assert j["timers"]["FI"]["conf_expire_s"] == {"real_s": 2.0, "xroad_s": 120.0}
    kinds = j["data_flow"]["kinds"]
    assert kinds["ss-ss"]["bytes"] > 0
    assert kinds["ss-cs"]["bytes"] > 0
    assert [c["name"] for c in j["checks"]] == ["steady_state", "no_central_broker"]
    assert all(c["passed"] for c in j["checks"])
    # journal and report on disk
    assert journal_of(tmp_path / "run")["status"] == "passed"
    html = (tmp_path / "run" / "report.html").read_text()
    assert 'data-fault="fi-down"' in html
    assert any("req/s" in line for line in lines)


async def test_central_server_partition_outdated_conf(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    body = """\
steps:
  - fault: {name: cs, partition: FI.cs}
  - expect: {window: 60s, error_rate: 0}
  - wait_until: {error: Server.ClientProxy.OutdatedGlobalConf, within: 300s, direction: FI}
  - expect: {window: 30s, direction: EE->FI, error_rate: 0}
  - heal: all
  - wait_until: {error_rate: 0, within: 120s}
checks: [steady_state]
"""
    res = await run_scenario(make(tmp_path, body), FakeFederation().start, tmp_path / "run")
    j = res.journal
    assert res.exit_code == 0, json.dumps(j["expectations"], indent=1)
    tte = j["steps"][2]["figures"]["since_fault_s"]
    # conf_expire 120 s scenario time (2 s real), downloads every 30 s: effect within ~120-150 s
    assert 90 <= tte <= 180


async def test_failed_expectation_gives_exit_1(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fed = FakeFederation()
    fed.rules.append(("EE", "FI", "Server.ServerProxy.AccessDenied"))
    body = """\
steps:
  - expect: {window: 30s, error_rate: 0}
  - expect: {window: 30s, direction: FI, error_rate: 0}
  - request: {client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income,
              path: /persons/1/income, error: Server.ServerProxy.AccessDenied, status: 500}
  - wait_until: {error: Server.ClientProxy.CertValidation, within: 10s}
"""
    res = await run_scenario(make(tmp_path, body), fed.start, tmp_path / "run")
    assert res.exit_code == 1
    assert res.status == "failed"
    passed = [e["passed"] for e in res.journal["expectations"]]
    assert passed == [False, True, True, False]
    msg = res.journal["expectations"][0]["message"]
    assert "Server.ServerProxy.AccessDenied" in msg
    assert "not reached within 10 s" in res.journal["expectations"][3]["message"]


async def test_cancel_still_writes_journal_and_heals(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    body = """\
steps:
  - fault: {latency: {between: [EE, FI], ms: 20, jitter_ms: 5}}
  - wait: 1h
"""
    with trio.move_on_after(5.0):
        await run_scenario(make(tmp_path, body), FakeFederation().start, tmp_path / "run")
    j = journal_of(tmp_path / "run")
    assert j["status"] == "interrupted"
    (w,) = j["faults"]
    assert w["name"] == "latency-1"
    assert w["healed_by"] == "end of run"
    assert sorted(w["targets"]) == ["EE.ee-ss1--FI.fi-ss1", "FI.fi-ss1--EE.ee-ss1"]
    assert j["requests"]
    assert (tmp_path / "run" / "report.html").exists()


async def test_scenario_not_fitting_the_federation_is_invalid(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    body = """\
steps:
  - request: {client: EE/GOV/70000001/nobody, service: FI/GOV/0245437-2/tax/income, path: /x}
"""
    with pytest.raises(ScenarioError) as info:
        await run_scenario(make(tmp_path, body), FakeFederation().start, tmp_path / "run")
    assert info.value.path == "steps[0].request"
    assert "no security server in the federation serves client EE/GOV/70000001/nobody" in str(
        info.value
    )
    assert journal_of(tmp_path / "run")["status"] == "invalid"


async def test_revocation_through_ocsp_admin(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[tuple[str, str, bytes]] = []

    async def revoke(url: str, pem: bytes) -> dict[str, Any]:
        calls.append(("revoke", url, pem))
        return {"status": "revoked", "serial": "01"}

    async def unrevoke(url: str, pem: bytes) -> dict[str, Any]:
        calls.append(("unrevoke", url, pem))
        return {"status": "good"}

    body = """\
steps:
  - fault: {name: rv, revoke: {instance: FI, cert: auth, of: FI.fi-ss1}}
  - fault: {revoke: {cert: sign, of: EE/GOV/70000001}}
  - wait: 10s
  - heal: rv
"""
    res = await run_scenario(
        make(tmp_path, body),
        FakeFederation().start,
        tmp_path / "run",
        revoke=revoke,
        unrevoke=unrevoke,
    )
    assert res.exit_code == 0
    assert calls == [
        ("revoke", "http://admin.FI/", b"FI auth cert\n"),
        ("revoke", "http://admin.EE/", b"EE sign cert\n"),
        ("unrevoke", "http://admin.FI/", b"FI auth cert\n"),
        ("unrevoke", "http://admin.EE/", b"EE sign cert\n"),
    ]
    by_name = {w["name"]: w for w in res.journal["faults"]}
    assert by_name["rv"]["healed_by"] == "steps[3]"
    assert by_name["revoke-1"]["healed_by"] == "end of run"


async def test_evidence_checks_use_the_auditor(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[Path] = []

    def audit(run_dir: Path) -> dict[str, Any]:
        seen.append(run_dir)
        j = journal_ids(run_dir)
        return {
            "records": 4 * len(j),
            "verified": 4 * len(j),
            "awaiting_timestamp": 0,
            "orphaned": 0,
            "failed": 0,
        }

    def journal_ids(run_dir: Path) -> list[str]:
        return ["x"] * 10_000  # plenty: every exchange accounted for

    body = """\
steps:
  - wait: 30s
checks: [no_lost_messages, timestamped, evidence_verifies]
"""
    res = await run_scenario(
        make(tmp_path, body), FakeFederation().start, tmp_path / "run", auditor=audit
    )
    assert res.exit_code == 0, res.journal["checks"]
    assert seen == [tmp_path / "run"]
    assert [c["passed"] for c in res.journal["checks"]] == [True, True, True]

    # without an auditor the evidence checks cannot hold
    res = await run_scenario(make(tmp_path, body), FakeFederation().start, tmp_path / "run2")
    assert res.exit_code == 1
    assert "no message-log auditor" in res.journal["checks"][0]["message"]


def test_report_is_self_contained(tmp_path: Path) -> None:
    from federation.report import render_html

    journal = {
        "status": "failed",
        "scenario": {"name": "x", "file": "s.yaml", "instances": ["ee.yaml"]},
        "time_scale": 60,
        "duration_s": 3.0,
        "requests": [
            {"t": i / 10, "latency_ms": 5 + i % 7, "client": "EE/A/1/c", "service": "FI/A/2/s/x",
             "direction": "EE->FI", "status": 200 if i % 9 else 500,
             "error": None if i % 9 else "Server.ClientProxy.NetworkError", "source": "load"}
            for i in range(30)
        ],
        "faults": [{"name": "p1", "kind": "partition", "spec": {"partition": "FI"}, "start": 1.0,
                    "end": 2.0, "start_scenario_s": 60.0, "end_scenario_s": 120.0,
                    "healed_by": "steps[2]", "targets": ["EE.a--FI.b"]}],
        "steps": [], "expectations": [], "checks": [],
        "data_flow": {"kinds": {"ss-ss": {"bytes": 1000, "bytes_upstream": 400, "bytes_downstream": 600, "links": 1}},
                      "links": {}},
        "timers": {"EE": {"conf_expire_s": {"real_s": 10.0, "xroad_s": 600.0}}},
    }  # fmt: skip
    html = render_html(journal)
    assert html.count("<svg") >= 4  # timeline, throughput, CDF, data flow
    assert 'class="fault"' in html
    assert 'class="err"' in html
    assert "Server.ClientProxy.NetworkError" in html
    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<script|<link""", html)


def test_every_evidence_check_fails_on_a_damaged_log() -> None:
    from federation.scenario._checks import check_audit

    audit = {"records": 40, "verified": 40, "awaiting_timestamp": 0, "orphaned": 0,
             "failed": 0, "exchanges": 10, "complete_exchanges": 10, "not_clean": [],
             "damaged_logs": ["FI/GOV/0245437-2/fi-ss1"]}  # fmt: skip
    for name in ("no_lost_messages", "evidence_verifies", "timestamped"):
        res = check_audit(name, audit, ok_ids=[], exchanges=10)
        assert not res.passed, name
        assert "FI/GOV/0245437-2/fi-ss1" in res.message
        assert check_audit(name, {**audit, "damaged_logs": []}, ok_ids=[], exchanges=10).passed


def test_check_audit_with_complete_exchanges() -> None:
    from federation.scenario._checks import check_audit

    # FI-3 failed in transit: its client request is "unanswered", not orphaned
    audit = {"records": 41, "verified": 36, "awaiting_timestamp": 4, "unanswered": 1,
             "orphaned": 0, "failed": 0, "exchanges": 11, "complete_exchanges": 10,
             "not_clean": []}  # fmt: skip
    ok = check_audit("no_lost_messages", audit, ok_ids=["EE-1", "EE-2"], exchanges=10)
    assert ok.passed
    assert not check_audit("no_lost_messages", audit, ok_ids=[], exchanges=11).passed
    # a record that breaks the pairing of an exchange that succeeded
    orphan = {**audit, "orphaned": 1, "not_clean": ["FI-3"]}
    lost = check_audit("no_lost_messages", orphan, ok_ids=["FI-3"], exchanges=10)
    assert not lost.passed
    assert lost.figures["not_clean"] == ["FI-3"]
    assert not check_audit("no_lost_messages", orphan, ok_ids=["EE-1"], exchanges=10).passed
    assert check_audit("evidence_verifies", audit, ok_ids=[], exchanges=10).passed
    ts = check_audit("timestamped", audit, ok_ids=[], exchanges=10)
    assert not ts.passed
    assert "4 records still await" in ts.message
    assert not check_audit(
        "evidence_verifies", {**audit, "failed": 1}, ok_ids=[], exchanges=10
    ).passed


def test_check_audit_with_complete_ids() -> None:
    from federation.scenario._checks import check_audit

    audit = {"records": 10, "verified": 8, "awaiting_timestamp": 0, "unanswered": 1,
             "incomplete": 1, "orphaned": 0, "failed": 0, "unstamped": 2,
             "complete_ids": ["A", "B"], "unanswered_exchanges": 1,
             "incomplete_exchanges": 1}  # fmt: skip
    ok = check_audit("no_lost_messages", audit, ok_ids=["A", "B"], exchanges=2)
    assert ok.passed, ok.message
    assert "2 exchanges failed in transit" in ok.message
    missing = check_audit("no_lost_messages", audit, ok_ids=["A", "C"], exchanges=2)
    assert not missing.passed
    assert missing.figures["missing"] == ["C"]
    # the records of the failed exchanges still wait for their time-stamp
    ts = check_audit("timestamped", audit, ok_ids=[], exchanges=2)
    assert not ts.passed
    assert "2 records still await" in ts.message


def test_default_auditor_is_the_evidence_audit() -> None:
    from federation.evidence import audit_run
    from federation.scenario._cli import default_auditor

    assert default_auditor() is audit_run


async def test_latency_between_instances_and_partition_from(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    body = """\
steps:
  - fault: {name: wan, latency: {between: [EE, FI], ms: 20, jitter_ms: 5}}
  - expect: {window: 30s, direction: EE->FI, min_p50_ms: 30, p99_ms: 200}
  - expect: {window: 30s, direction: FI, p99_ms: 5}
  - heal: wan
  - fault: {name: ee-cs, partition: {of: EE.cs, from: EE.ee-ss1}}
  - wait_until: {min_error_rate: 1, within: 400s, direction: EE->FI}
  - expect: {window: 30s, direction: FI, error_rate: 0}
"""
    res = await run_scenario(make(tmp_path, body), FakeFederation().start, tmp_path / "run")
    j = res.journal
    assert res.exit_code == 0, json.dumps(j["expectations"], indent=1)
    assert j["expectations"][0]["figures"]["p50_ms"] >= 30
    wan, cs = j["faults"]
    assert sorted(wan["targets"]) == ["EE.ee-ss1--FI.fi-ss1", "FI.fi-ss1--EE.ee-ss1"]
    assert cs["targets"] == ["EE.ee-ss1--EE.cs"]
    assert cs["spec"] == {"partition": {"of": "EE.cs", "from": "EE.ee-ss1"}}
    assert "error rate >= 1 after" in j["expectations"][2]["message"]
