"""audit_run over a run's message logs: clean runs, pending stamps, deletions, tampering."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.evidence import audit_run, cmd_audit
from federation.evidence._audit import audit_text
from federation.securityserver._messagelog import LogRecord, MessageLog, MessageLogError
from tests.evidence.fakerun import EE_CLIENT, EE_SERVICE, FI_CLIENT, FI_SERVICE, FakeRun

KEYS = {
    "records",
    "verified",
    "awaiting_timestamp",
    "unanswered",
    "incomplete",
    "orphaned",
    "failed",
}


def counts(result: dict[str, object]) -> dict[str, object]:
    return {k: result[k] for k in KEYS}


def test_clean_run(run: FakeRun) -> None:
    for _ in range(3):
        run.exchange(EE_CLIENT, FI_SERVICE)
        run.exchange(FI_CLIENT, EE_SERVICE, body=None)
    run.stamp()
    result = audit_run(run.run_dir)
    assert KEYS <= set(result)
    assert counts(result) == {
        "records": 24,
        "verified": 24,
        "awaiting_timestamp": 0,
        "unanswered": 0,
        "incomplete": 0,
        "orphaned": 0,
        "failed": 0,
    }
    assert result["exchanges"] == result["complete_exchanges"] == 6
    assert len(result["complete_ids"]) == 6
    assert result["not_clean"] == []


def test_pending_is_not_failed(run: FakeRun) -> None:
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    run.exchange(EE_CLIENT, FI_SERVICE)  # after the stamp: waits for the next batch
    result = audit_run(run.run_dir)
    assert result["verified"] == 4
    assert result["awaiting_timestamp"] == 4
    assert result["failed"] == result["orphaned"] == 0
    assert result["complete_exchanges"] == 2


def test_deleted_row_on_one_side_is_orphaned(run: FakeRun) -> None:
    xids = [run.exchange(EE_CLIENT, FI_SERVICE) for _ in range(3)]
    run.stamp()
    victim = xids[2]
    fi = run.kits["FI"].log.path
    db = sqlite3.connect(fi)
    with db:
        db.execute(
            "DELETE FROM record_ocsp WHERE record_id IN "
            "(SELECT id FROM records WHERE xroad_id = ? AND kind = 'response')",
            (victim,),
        )
        db.execute("DELETE FROM records WHERE xroad_id = ? AND kind = 'response'", (victim,))
    db.close()
    result = audit_run(run.run_dir)
    assert result["orphaned"] == 1
    (orphan,) = [p for p in result["problems"] if p["status"] == "orphaned"]
    assert orphan["xroad_id"] == victim
    assert orphan["side"] == "client"
    assert orphan["kind"] == "response"
    assert victim in result["not_clean"]
    assert result["records"] == 11
    # the provider's last record was in the time-stamped batch: the chain to the stamped
    # value now misses a link, so the records before it in that batch lose their coverage
    assert result["failed"] >= 1
    assert result["logs"]["FI/GOV/0245437-2/fi-ss1"]["records"] == 5


def test_exchanges_that_failed_in_transit_are_not_orphaned(run: FakeRun) -> None:
    ok = run.exchange(EE_CLIENT, FI_SERVICE)
    refused = run.exchange(EE_CLIENT, FI_SERVICE, stop="client request")
    backend = run.exchange(EE_CLIENT, FI_SERVICE, stop="provider request")
    cut = run.exchange(FI_CLIENT, EE_SERVICE, stop="provider response")
    run.stamp()
    result = audit_run(run.run_dir)
    assert counts(result) == {
        "records": 4 + 1 + 2 + 3,
        "verified": 4,
        "awaiting_timestamp": 0,
        "unanswered": 1 + 2,
        "incomplete": 3,
        "orphaned": 0,
        "failed": 0,
    }
    assert result["complete_ids"] == [ok]
    assert result["unanswered_ids"] == sorted([refused, backend])
    assert result["incomplete_ids"] == [cut]
    assert result["unanswered_exchanges"] == 2
    assert result["incomplete_exchanges"] == 1
    assert result["not_clean"] == []
    assert result["problems"] == []
    assert result["unstamped"] == 0


def test_unstamped_counts_records_of_failed_exchanges(run: FakeRun) -> None:
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    run.exchange(EE_CLIENT, FI_SERVICE, stop="client request")
    result = audit_run(run.run_dir)
    assert result["unanswered"] == 1
    assert result["awaiting_timestamp"] == 0
    assert result["unstamped"] == 1


def test_provider_records_without_the_client_request_are_orphaned(run: FakeRun) -> None:
    """The client logs its request before sending it: a provider's record without it
    means a client row was lost, even when the exchange did not complete."""
    xids = [run.exchange(EE_CLIENT, FI_SERVICE, stop="provider response") for _ in range(2)]
    db = sqlite3.connect(run.kits["EE"].log.path)
    with db:
        db.execute(
            "DELETE FROM record_ocsp WHERE record_id IN "
            "(SELECT id FROM records WHERE xroad_id = ?)",
            (xids[1],),
        )
        db.execute("DELETE FROM records WHERE xroad_id = ?", (xids[1],))
    db.close()
    result = audit_run(run.run_dir)
    assert result["orphaned"] == 2  # the provider's request and response
    assert result["incomplete"] == 3  # xids[0], intact
    assert result["not_clean"] == [xids[1]]


def test_deleted_row_in_the_middle_breaks_the_chain(run: FakeRun) -> None:
    xids = [run.exchange(EE_CLIENT, FI_SERVICE) for _ in range(3)]
    run.stamp()
    db = sqlite3.connect(run.kits["EE"].log.path)
    with db:
        db.execute("DELETE FROM record_ocsp WHERE record_id = 3")
        db.execute("DELETE FROM records WHERE id = 3")  # xids[1]'s client request
    db.close()
    result = audit_run(run.run_dir)
    assert result["logs"]["EE/GOV/70000001/ee-ss1"]["missing_ids"] == [[3, 3]]
    assert result["orphaned"] == 1  # the provider's copy of that request
    assert xids[1] in result["not_clean"]
    reasons = [r for p in result["problems"] for r in p["reasons"]]
    assert any("record(s) 3..3" in r for r in reasons)
    # records 1 and 2 were stamped in the same batch: their chain passed through record 3
    covered = {p["record_id"]: p["reasons"] for p in result["problems"] if p["side"] == "client"}
    assert "link into record 4" in covered[1][0]
    assert "link into record 4" in covered[2][0]


def test_tampered_body_fails(run: FakeRun) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    db = sqlite3.connect(run.kits["FI"].log.path)
    with db:
        db.execute(
            "UPDATE records SET body = ? WHERE xroad_id = ? AND kind = 'request'",
            (b'{"q": 2}', xid),
        )
    db.close()
    result = audit_run(run.run_dir)
    assert result["failed"] == 1
    (p,) = result["problems"]
    assert p["side"] == "provider"
    assert any("signature" in r for r in p["reasons"])


def test_tampered_chain_and_token_fail(run: FakeRun) -> None:
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    db = sqlite3.connect(run.kits["EE"].log.path)
    with db:
        token = db.execute("SELECT token FROM timestamps").fetchone()[0]
        db.execute("UPDATE timestamps SET token = ?", (token[:-1] + bytes([token[-1] ^ 1]),))
    db.close()
    result = audit_run(run.run_dir)
    assert result["failed"] == 2  # both EE records are covered by the broken token
    assert all("time-stamp 1" in p["reasons"][0] for p in result["problems"])


def test_deleted_timestamp_row_is_not_awaiting_but_failed(run: FakeRun) -> None:
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    db = sqlite3.connect(run.kits["EE"].log.path)
    with db:
        db.execute("DELETE FROM timestamps WHERE id = 1")  # the first batch's token
    db.close()
    result = audit_run(run.run_dir)
    # the two EE records of the first exchange lost their time-stamp: they do not wait for
    # one (no batch will ever cover them again), they fail
    assert result["failed"] == 2
    assert result["awaiting_timestamp"] == 0
    ee = [p for p in result["problems"] if p["server"] == "EE/GOV/70000001/ee-ss1"]
    assert sorted(p["record_id"] for p in ee) == [1, 2]
    assert all("a time-stamp is missing" in p["reasons"][0] for p in ee)


def test_pairing_mismatch_fails(run: FakeRun) -> None:
    a = run.exchange(EE_CLIENT, FI_SERVICE)
    b = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    # the provider's record of b's response claims to be a's: same id, other signature
    db = sqlite3.connect(run.kits["FI"].log.path)
    with db:
        db.execute(
            "UPDATE records SET xroad_id = ? WHERE xroad_id = ? AND kind = 'response'", (a, b)
        )
    db.close()
    result = audit_run(run.run_dir)
    reasons = [r for p in result["problems"] for r in p["reasons"]]
    assert any("different response signature" in r for r in reasons)


def test_missing_log_file_is_empty(run: FakeRun) -> None:
    run.kits["FI"].log.close()
    run.kits["FI"].log.path.unlink()
    for suffix in ("-wal", "-shm"):
        run.kits["FI"].log.path.with_name(run.kits["FI"].log.path.name + suffix).unlink(
            missing_ok=True
        )
    result = audit_run(run.run_dir)
    assert result["records"] == 0
    assert result["logs"]["FI/GOV/0245437-2/fi-ss1"]["missing"] is True


def damage(path: Path, how: str) -> None:
    """A log file that is not SQLite at all, or a SQLite file cut in half."""
    if how == "garbage":
        path.write_bytes(b"this is not a message log\n" * 200)
    else:
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.truncate(size // 2)


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_damaged_log_fails_the_audit(
    run: FakeRun, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = run.exchange(EE_CLIENT, EE_SERVICE)  # intra-EE: all four records in the EE log
    for _ in range(5):
        run.exchange(FI_CLIENT, FI_SERVICE)
    run.stamp()
    fi = run.kits["FI"].log
    fi.close()  # checkpoints the WAL into the file
    damage(fi.path, how)
    result = audit_run(run.run_dir)  # no traceback
    server = "FI/GOV/0245437-2/fi-ss1"
    assert result["damaged_logs"] == [server]
    assert str(fi.path) in result["logs"][server]["error"]
    assert result["complete_ids"] == [ok]  # the healthy log is still audited
    assert f"records (DAMAGED: cannot read the message log {fi.path}: " in audit_text(result)
    assert cmd_audit(argparse.Namespace(run_dir=run.run_dir, json=False)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(fi.path) in err


@pytest.mark.parametrize("error", [sqlite3.DatabaseError, MessageLogError])
def test_log_damaged_partway_fails_the_audit(
    run: FakeRun, error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that fails after some records: those are audited, the audit still fails
    (they alone look like an exchange that failed in transit, which is not a failure)."""
    run.exchange(FI_CLIENT, FI_SERVICE)  # not stamped: a stamp would fail the record
    fi_path = run.kits["FI"].log.path
    records = MessageLog.records

    def failing(self: MessageLog, start: int = 1, batch: int = 500) -> Iterator[LogRecord]:
        for rec in records(self, start, batch):
            yield rec
            if self.path == fi_path:
                raise error("database disk image is malformed")

    monkeypatch.setattr(MessageLog, "records", failing)
    result = audit_run(run.run_dir)
    server = "FI/GOV/0245437-2/fi-ss1"
    assert result["logs"][server]["records"] == 1
    assert result["failed"] == result["orphaned"] == 0
    assert result["unanswered"] == 1
    assert result["damaged_logs"] == [server]
    assert "database disk image is malformed" in result["logs"][server]["error"]
    assert cmd_audit(argparse.Namespace(run_dir=run.run_dir, json=True)) == 1


def test_deleted_newest_timestamp_row_is_not_awaiting_but_failed(run: FakeRun) -> None:
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp(now=run.now + 2)
    run.exchange(EE_CLIENT, FI_SERVICE, now=run.now + 3)  # after the newest stamp: awaits
    db = sqlite3.connect(run.kits["EE"].log.path)
    with db:
        db.execute("DELETE FROM timestamps WHERE id = 2")  # the newest batch's token
    db.close()
    result = audit_run(run.run_dir)
    ee = [p for p in result["problems"] if p["server"] == "EE/GOV/70000001/ee-ss1"]
    assert sorted(p["record_id"] for p in ee) == [3, 4]
    assert all("whose row is missing (a time-stamp is missing)" in p["reasons"][0] for p in ee)
    assert result["failed"] == 2
    assert result["awaiting_timestamp"] == 4  # the third exchange's records, both sides


def test_deleted_last_client_response_fails_once_stamped(run: FakeRun) -> None:
    """The client's response is its log's last row: deleted, the exchange looks as if it
    failed in transit, but the stamp over that row no longer matches the chain."""
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    db = sqlite3.connect(run.kits["EE"].log.path)
    with db:
        db.execute("DELETE FROM records WHERE xroad_id = ? AND kind = 'response'", (xid,))
    db.close()
    result = audit_run(run.run_dir)
    assert result["incomplete_ids"] == []
    assert xid in result["not_clean"]
    (p,) = [p for p in result["problems"] if p["server"] == "EE/GOV/70000001/ee-ss1"]
    assert "the stamped value is not the chain value of record 2" in p["reasons"][0]
