from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
import trio

from federation.clock import FixedClock
from federation.http import HttpClientResponse
from federation.pki import TimeStampAuthority, serve_tsa, verify_ts_token
from federation.securityserver import (
    GENESIS,
    Fault,
    MessageLog,
    XRoadError,
    chain_step,
    run_timestamper,
    sign_envelope,
    timestamp_once,
)
from tests.securityserver.conftest import NOW, Pki


def sha(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def add(log: MessageLog, n: int, *, now: float = NOW, xid: str = "EE-x") -> None:
    for i in range(n):
        log.append(
            side="client",
            kind="request" if i % 2 == 0 else "response",
            xroad_id=f"{xid}{i // 2}",
            client_id="EE/GOV/70000001/consumer",
            service_id="FI/GOV/0245437-2/tax/income",
            header_part=b"GET\r\n/r1/x\r\n",
            body=b"body %d" % i if i % 3 else None,
            signature=b"sig-%d" % i,
            signed_data_digest=sha(b"sd-%d" % i),
            now=now + i,
            request_id=f"r{i}",
            ocsp_responses=[b"ocsp-a", b"ocsp-b"] if i % 2 == 0 else [b"ocsp-a"],
        )


@pytest.fixture
def log(tmp_path: Path) -> MessageLog:
    return MessageLog(tmp_path / "messagelog.sqlite", failure_period_s=100.0)


def test_append_and_chain(log: MessageLog) -> None:
    add(log, 5)
    recs = list(log.records())
    assert [r.id for r in recs] == [1, 2, 3, 4, 5]
    value = GENESIS
    for i, r in enumerate(recs):
        assert r.signature_hash == sha(b"sig-%d" % i)
        value = sha(value + sha(b"sig-%d" % i))
        assert r.chain == value == chain_step(recs[i - 1].chain if i else GENESIS, r.signature_hash)
        assert r.timestamp_id is None
    assert recs[0].ocsp_responses == (b"ocsp-a", b"ocsp-b")
    assert recs[1].ocsp_responses == (b"ocsp-a",)
    assert recs[1].body == b"body 1"
    assert recs[0].body is None
    assert [r.kind for r in log.find("EE-x0")] == ["request", "response"]
    assert log.find("EE-x0", side="provider") == []
    assert log.record(3) == recs[2]
    assert log.count() == 5
    # OCSP responses are stored once
    db = sqlite3.connect(log.path)
    assert db.execute("SELECT COUNT(*) FROM ocsp_responses").fetchone()[0] == 2


def test_chain_survives_reopen(tmp_path: Path) -> None:
    with MessageLog(tmp_path / "m.sqlite") as log:
        add(log, 2)
    with MessageLog(tmp_path / "m.sqlite") as log:
        add(log, 1, xid="EE-y")
        recs = list(log.records())
    assert recs[2].chain == chain_step(recs[1].chain, recs[2].signature_hash)


def test_batches_stamps_and_proofs(log: MessageLog) -> None:
    assert log.next_batch() is None
    add(log, 5)
    assert [r.id for r in log.pending(3)] == [1, 2, 3]
    batch = log.next_batch(limit=3)
    assert batch is not None
    assert (batch.first_record, batch.last_record, batch.count) == (1, 3, 3)
    assert batch.chain == log.record(3).chain  # type: ignore[union-attr]
    ts = log.record_timestamp(3, b"token-1", NOW + 10, now=NOW + 11, tsa_url="http://tsa/")
    assert (ts.first_record, ts.last_record) == (1, 3)
    assert [r.id for r in log.pending()] == [4, 5]
    assert log.record(2).timestamp_id == ts.id  # type: ignore[union-attr]
    proof = log.chain_proof(2)
    assert proof is not None
    assert proof.previous == log.record(1).chain  # type: ignore[union-attr]
    assert len(proof.signature_hashes) == 2
    assert proof.verify()
    assert sha(proof.last_step_data()) == ts.chain
    assert log.chain_proof(1).previous == GENESIS  # type: ignore[union-attr]
    assert log.chain_proof(4) is None
    ts2 = log.record_timestamp(5, b"token-2", NOW + 20, now=NOW + 21)
    assert (ts2.first_record, ts2.last_record) == (4, 5)
    assert log.timestamp(ts2.id) == ts2
    assert [t.id for t in log.timestamps()] == [ts.id, ts2.id]
    assert log.chain_proof(4).verify()  # type: ignore[union-attr]
    assert log.status()["unstamped"] == 0
    with pytest.raises(Exception, match="already"):
        log.record_timestamp(5, b"t", NOW, now=NOW)


def test_storing_a_batch_does_not_rewrite_its_records(tmp_path: Path) -> None:
    # a batch is one ``timestamps`` row over an id range: storing the token of a batch of
    # 200 records changes a handful of rows (the stamp and the failure-clock meta keys),
    # not 200 (version 1 rewrote every record, stalling the server on large batches)
    with MessageLog(tmp_path / "m.sqlite") as log:
        add(log, 200)
        batch = log.next_batch()
        assert batch is not None
        assert batch.count == 200
        db = log._db  # the writer's connection: total_changes counts the rows it wrote
        before = db.total_changes
        log.record_timestamp(batch.last_record, b"tok", NOW, now=NOW)
        assert db.total_changes - before <= 5
        assert log.pending() == []
        assert {r.timestamp_id for r in log.records()} == {1}
        add(log, 2, xid="EE-later")
        assert [r.timestamp_id for r in log.pending()] == [None, None]


def test_tampered_record_breaks_the_proof(log: MessageLog) -> None:
    add(log, 3)
    log.record_timestamp(3, b"t", NOW, now=NOW)
    db = sqlite3.connect(log.path)
    db.execute("UPDATE records SET signature_hash = ? WHERE id = 2", (sha(b"other"),))
    db.commit()
    assert not log.chain_proof(1).verify()  # type: ignore[union-attr]


def test_failure_period_and_reset(log: MessageLog) -> None:
    assert not log.refuse_new(NOW)
    log.record_timestamp_failure(NOW, "tsa down")
    log.record_timestamp_failure(NOW + 50, "tsa still down")  # does not restart the clock
    assert log.failing_since() == NOW
    assert not log.refuse_new(NOW + 100)
    assert log.refuse_new(NOW + 100.5)
    with pytest.raises(XRoadError) as info:
        log.check_can_log(NOW + 101, "client")
    assert info.value.fault is Fault.TIMESTAMPING_FAILED
    assert "tsa still down" in info.value.message
    with pytest.raises(XRoadError) as info:
        log.check_can_log(NOW + 101, "provider")
    assert info.value.type == "Server.ServerProxy.TimestampingFailed"
    add(log, 1)
    log.record_timestamp(1, b"t", NOW + 102, now=NOW + 102)
    assert log.failing_since() is None
    assert not log.refuse_new(NOW + 10_000)
    log.check_can_log(NOW + 10_000, "client")


def test_failure_state_is_persistent_and_zero_disables(tmp_path: Path) -> None:
    with MessageLog(tmp_path / "m.sqlite", failure_period_s=10) as log:
        log.record_timestamp_failure(NOW, "down")
    with MessageLog(tmp_path / "m.sqlite", failure_period_s=10) as log:
        assert log.refuse_new(NOW + 11)
    with MessageLog(tmp_path / "m.sqlite", failure_period_s=0) as log:
        assert not log.refuse_new(NOW + 1e9)


def test_reader_in_another_connection_sees_commits(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    writer = MessageLog(path)
    add(writer, 2)
    reader = MessageLog.open_readonly(path)
    assert reader.count() == 2
    add(writer, 1, xid="EE-z")
    assert reader.count() == 3
    assert reader.find("EE-z0")[0].id == 3
    with pytest.raises(Exception, match=r"readonly|read-only|attempt to write"):
        reader.append(
            side="client", kind="request", xroad_id="a", client_id="c", service_id="s",
            header_part=b"h", body=None, signature=b"s", signed_data_digest=b"d", now=NOW,
        )  # fmt: skip
    reader.close()
    writer.close()


def test_wal_mode(log: MessageLog) -> None:
    db = sqlite3.connect(log.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_append_envelope_stores_digests(log: MessageLog, pki: Pki) -> None:
    env = sign_envelope(
        "request", b"GET\r\n/r1/x\r\n", b"hi", signer=pki.client_sign, ocsp_responses=[b"o"]
    )
    rec = log.append_envelope(
        env, side="provider", xroad_id="EE-1", client_id="c", service_id="s", now=NOW
    )
    assert rec.signed_data_digest == sha(env.signed_data())
    assert rec.signature_hash == sha(env.signature)
    assert log.record(rec.id) == rec


# --- the time-stamper -------------------------------------------------------------------


class FakeTsaHttp:
    """Answers time-stamp queries in memory with a real TimeStampAuthority; can fail."""

    def __init__(self, tsa: TimeStampAuthority, clock: FixedClock) -> None:
        self.tsa = tsa
        self.clock = clock
        self.down: set[str] = set()
        self.calls: list[str] = []

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        timeout_s: float | None = None,
    ) -> HttpClientResponse:
        url = f"{host}:{port}"
        self.calls.append(url)
        if url in self.down:
            from federation.errors import TransportError

            raise TransportError(f"cannot connect to {url}")
        await trio.lowlevel.checkpoint()
        return HttpClientResponse(200, [], self.tsa.respond(body, self.clock.now()))


async def test_timestamp_once_tries_tsas_in_order(log: MessageLog, pki: Pki) -> None:
    clock = FixedClock(NOW)
    http = FakeTsaHttp(pki.tsa, clock)
    http.down.add("tsa1:80")  # fixed-port-ok: a name, never bound
    urls = ["http://tsa1/", "http://tsa2:8080/"]  # fixed-port-ok: a name, never bound
    out = await timestamp_once(log, urls, clock=clock, trusted_roots=[pki.ee.root.cert], http=http)
    assert out.result == "idle"
    add(log, 3)
    out = await timestamp_once(log, urls, clock=clock, trusted_roots=[pki.ee.root.cert], http=http)
    assert out.result == "stamped"
    assert http.calls == ["tsa1:80", "tsa2:8080"]  # fixed-port-ok: a name, never bound
    assert out.record is not None
    assert out.record.tsa_url == "http://tsa2:8080/"  # fixed-port-ok: a name, never bound
    gen = verify_ts_token(
        out.record.token,
        digest=log.record(3).chain,  # type: ignore[union-attr]
        hash_alg="sha512",
        trusted_roots=[pki.ee.root.cert],
    )
    assert gen == out.record.gen_time
    http.down.add("tsa2:8080")  # fixed-port-ok: a name, never bound
    add(log, 1, xid="EE-q")
    out = await timestamp_once(log, urls, clock=clock, trusted_roots=[pki.ee.root.cert], http=http)
    assert out.result == "failed"
    assert len(out.errors) == 2
    assert log.failing_since() == NOW
    # a token from an untrusted TSA is a failure too
    http.down.clear()
    out = await timestamp_once(log, urls, clock=clock, trusted_roots=[pki.fi.root.cert], http=http)
    assert out.result == "failed"


async def test_run_timestamper_refuses_after_failure_period(
    log: MessageLog, pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    clock = FixedClock(NOW)
    http = FakeTsaHttp(pki.tsa, clock)
    http.down.add("tsa:80")  # fixed-port-ok: a name, never bound
    log.failure_period_s = 100.0

    class Advancing:
        def now(self) -> float:
            return NOW + trio.current_time()

    real = Advancing()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_timestamper(
                log,
                ["http://tsa/"],
                interval_s=60,
                retry_s=10,
                clock=real,
                trusted_roots=[pki.ee.root.cert],
                http=http,
                seed=7,
                task_status=task_status,
            )
        )
        await trio.sleep(30)  # nothing pending: no attempts
        assert http.calls == []
        add(log, 2, now=real.now())
        await trio.sleep(60)
        start = log.failing_since()
        assert start is not None
        assert not log.refuse_new(real.now())
        await trio.sleep(100)
        assert log.refuse_new(real.now())
        attempts = len(http.calls)
        assert attempts >= 10  # retried every retry_s
        http.down.clear()
        await trio.sleep(11)
        assert not log.refuse_new(real.now())
        assert log.pending() == []
        nursery.cancel_scope.cancel()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_real_tsa_over_loopback_and_openssl_ts_verify(
    log: MessageLog, pki: Pki, tmp_path: Path, nursery: trio.Nursery
) -> None:
    url = await nursery.start(lambda task_status: serve_tsa(pki.tsa, task_status=task_status))
    from federation.clock import SystemClock
    from federation.http import HttpClient

    add(log, 4)
    http = HttpClient()
    out = await timestamp_once(
        log, [url], clock=SystemClock(), trusted_roots=[pki.ee.root.cert], http=http
    )
    await http.aclose()
    assert out.result == "stamped", out.errors
    assert out.record is not None
    proof = log.chain_proof(2)
    assert proof is not None
    assert proof.verify()
    (tmp_path / "token.der").write_bytes(out.record.token)
    (tmp_path / "step.bin").write_bytes(proof.last_step_data())
    (tmp_path / "ca.pem").write_bytes(pki.ee.ca_bundle_pem())
    cmd = [
        "openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"),
        "-data", str(tmp_path / "step.bin"), "-CAfile", str(tmp_path / "ca.pem"),
    ]  # fmt: skip
    res = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    out = res.stdout.decode() + res.stderr.decode()
    assert res.returncode == 0, out
    assert "Verification: OK" in out
