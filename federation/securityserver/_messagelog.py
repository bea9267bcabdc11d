"""The message log of one security server: SQLite (WAL), a hash chain, batch time-stamps.

Every request and response a security server signs or verifies is one record (both sides
log both messages, as X-Road does; reference xroad.md section 6). docs/messagelog.md
describes the schema, the durability policy and how to check a record with openssl.

**Hash chain.** Records are numbered 1, 2, 3 ... in append order (``records.id``)::

    chain_0 = 64 zero bytes
    chain_i = SHA-512( chain_{i-1} || SHA-512(signature_i) )

where ``signature_i`` is the record's DER CMS signature (which covers the header part and
the body digest, see :mod:`._envelope`). Each record stores ``chain_i``.

**Batch time-stamps.** The time-stamper takes the un-stamped records ``k..n``
(:meth:`MessageLog.next_batch`) and asks the TSA for an RFC 3161 token whose message
imprint is ``chain_n`` itself, as a SHA-512 ``hashedMessage``. Batches are consecutive:
a stored token covers exactly the id range ``first_record..last_record`` of its
``timestamps`` row (``first_record`` = the previous batch's ``last_record`` + 1), so
storing one is a single insert however large the batch (records are never rewritten), and
a record's time-stamp is the row whose range holds its id. ``chain_n`` is by definition
SHA-512 of the 128 bytes ``chain_{n-1} || SHA-512(signature_n)``, so ``openssl ts -verify
-data step.bin`` checks it directly. A record ``j`` of the batch is proven by the chain
steps from ``chain_{j-1}`` through the signature hashes ``j..n`` to the stamped value
(:meth:`MessageLog.chain_proof`).

**Failure period.** A failed time-stamping attempt (with records waiting) starts the
failure clock; once it has run longer than ``failure_period_s`` (X-Road's
``acceptable-timestamp-failure-period``; 0 disables), :meth:`MessageLog.refuse_new` is True
and the exchange answers ``TimestampingFailed``. A successful stamp resets it. The failure
start is persisted, so a restart does not forgive an outage.

The class is synchronous (a core with ``now`` passed in); the trio time-stamper is
:func:`federation.securityserver.run_timestamper`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from federation.errors import FederationError
from federation.securityserver.errors import Fault, XRoadError

if TYPE_CHECKING:
    from federation.securityserver._envelope import Envelope

__all__ = [
    "GENESIS",
    "ChainProof",
    "LogRecord",
    "MessageLog",
    "MessageLogError",
    "Side",
    "TimestampBatch",
    "TimestampRecord",
    "chain_step",
]

Side = Literal["client", "provider"]
MessageKind = Literal["request", "response"]

GENESIS = bytes(64)
"""``chain_0``: the chain value before the first record."""

SCHEMA_VERSION = 2
"""2: records no longer carry ``timestamp_id`` (a record's time-stamp is the
``timestamps`` row whose id range holds it). A version-1 file still reads and writes:
its ``timestamp_id`` column is simply no longer used."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS timestamps (
    id            INTEGER PRIMARY KEY,
    first_record  INTEGER NOT NULL,
    last_record   INTEGER NOT NULL,
    chain         BLOB    NOT NULL,
    token         BLOB    NOT NULL,
    gen_time      REAL    NOT NULL,
    tsa_url       TEXT,
    stored_at     REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id                  INTEGER PRIMARY KEY,
    xroad_id            TEXT    NOT NULL,
    side                TEXT    NOT NULL CHECK (side IN ('client', 'provider')),
    kind                TEXT    NOT NULL CHECK (kind IN ('request', 'response')),
    time                REAL    NOT NULL,
    client_id           TEXT    NOT NULL,
    service_id          TEXT    NOT NULL,
    request_id          TEXT,
    header_part         BLOB    NOT NULL,
    body                BLOB,
    signature           BLOB    NOT NULL,
    signed_data_digest  BLOB    NOT NULL,
    signature_hash      BLOB    NOT NULL,
    chain               BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_xroad_id ON records (xroad_id, side, kind);
CREATE INDEX IF NOT EXISTS timestamps_by_last_record ON timestamps (last_record);
CREATE TABLE IF NOT EXISTS ocsp_responses (
    id      INTEGER PRIMARY KEY,
    sha256  BLOB NOT NULL UNIQUE,
    der     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS record_ocsp (
    record_id  INTEGER NOT NULL REFERENCES records(id),
    position   INTEGER NOT NULL,
    ocsp_id    INTEGER NOT NULL REFERENCES ocsp_responses(id),
    PRIMARY KEY (record_id, position)
);
"""

# The time-stamp of a record: the first batch that ends at or after it, if it starts at
# or before it (an index lookup on ``timestamps.last_record``).
_TIMESTAMP_OF_RECORD = (
    "(SELECT CASE WHEN t.first_record <= records.id THEN t.id END FROM timestamps t"
    " WHERE t.last_record >= records.id ORDER BY t.last_record LIMIT 1)"
)
_RECORD_COLUMNS = (
    "id, xroad_id, side, kind, time, client_id, service_id, request_id, header_part, body, "
    f"signature, signed_data_digest, signature_hash, chain, {_TIMESTAMP_OF_RECORD}"
)
_STAMPED_UP_TO = "(SELECT COALESCE(MAX(last_record), 0) FROM timestamps)"


class MessageLogError(FederationError):
    """Raised when the message log database cannot be opened, read or written."""


def chain_step(previous: bytes, signature_hash: bytes) -> bytes:
    """``SHA-512(previous || signature_hash)``: one link of the hash chain."""
    return hashlib.sha512(previous + signature_hash).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One logged message."""

    id: int
    xroad_id: str
    side: Side
    kind: MessageKind
    time: float
    client_id: str
    service_id: str
    request_id: str | None
    header_part: bytes
    body: bytes | None
    signature: bytes
    signed_data_digest: bytes
    signature_hash: bytes
    chain: bytes
    timestamp_id: int | None
    ocsp_responses: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TimestampRecord:
    """One RFC 3161 token over the chain value of ``last_record``."""

    id: int
    first_record: int
    last_record: int
    chain: bytes
    token: bytes
    gen_time: float
    tsa_url: str | None
    stored_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TimestampBatch:
    """What the time-stamper stamps next: records ``first_record..last_record``."""

    first_record: int
    last_record: int
    count: int
    chain: bytes
    """``chain_{last_record}``: the SHA-512 message imprint of the time-stamp query."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainProof:
    """The links from one record to the time-stamped chain value of its batch.

    ``previous`` is ``chain_{record_id-1}``; folding ``signature_hashes`` (of records
    ``record_id..timestamp.last_record``) with :func:`chain_step` gives ``timestamp.chain``.
    """

    record_id: int
    previous: bytes
    signature_hashes: tuple[bytes, ...]
    timestamp: TimestampRecord

    def chain_values(self) -> list[bytes]:
        """``chain_j`` for each step, ending with the stamped value."""
        out = []
        value = self.previous
        for h in self.signature_hashes:
            value = chain_step(value, h)
            out.append(value)
        return out

    def verify(self) -> bool:
        """Whether the steps lead to the stamped value (the token itself is not checked)."""
        values = self.chain_values()
        return bool(values) and values[-1] == self.timestamp.chain

    def last_step_data(self) -> bytes:
        """The 128 bytes whose SHA-512 is the stamped value (``openssl ts -verify -data``)."""
        values = [self.previous, *self.chain_values()]
        return values[-2] + self.signature_hashes[-1]


class MessageLog:
    """The SQLite message log of one security server (one writer process, many readers).

    ``failure_period_s`` is the (scaled) acceptable time-stamp failure period.
    ``synchronous`` is SQLite's ``PRAGMA synchronous``: ``"NORMAL"`` (default; see
    docs/messagelog.md) or ``"FULL"`` (fsync on every commit).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        failure_period_s: float = 14400.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.failure_period_s = failure_period_s
        self.readonly = readonly
        self._lock = threading.Lock()
        # the writer's memory of what it wrote (one writer per file): the last chain value
        # and the ids of stored OCSP responses, so an append reads nothing back
        self._last_chain: bytes | None = None
        self._ocsp_ids: dict[bytes, int] = {}
        try:
            if readonly:
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._db.execute("PRAGMA query_only=ON")
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
                )
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise MessageLogError(f"{self.path}: cannot switch to WAL (got {mode})")
                self._db.execute(f"PRAGMA synchronous={synchronous}")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self._db.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise MessageLogError(f"cannot open message log {self.path}: {exc}") from None

    @classmethod
    def open_readonly(cls, path: str | Path) -> MessageLog:
        """A reader (another process may be writing; WAL gives it a consistent snapshot
        per query)."""
        return cls(path, readonly=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> MessageLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- meta ---------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- writing ------------------------------------------------------------------------

    def append(
        self,
        *,
        side: Side,
        kind: MessageKind,
        xroad_id: str,
        client_id: str,
        service_id: str,
        header_part: bytes,
        body: bytes | None,
        signature: bytes,
        signed_data_digest: bytes,
        now: float,
        request_id: str | None = None,
        ocsp_responses: Sequence[bytes] = (),
    ) -> LogRecord:
        """Store one message and extend the chain; committed when this returns."""
        if side not in ("client", "provider") or kind not in ("request", "response"):
            raise ValueError(f"bad side/kind {side!r}/{kind!r}")
        sig_hash = hashlib.sha512(signature).digest()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                new_ocsp: dict[bytes, int] = {}
                try:
                    previous = self._last_chain
                    if previous is None:
                        row = self._db.execute(
                            "SELECT chain FROM records ORDER BY id DESC LIMIT 1"
                        ).fetchone()
                        previous = bytes(row[0]) if row else GENESIS
                    chain = chain_step(previous, sig_hash)
                    cur = self._db.execute(
                        "INSERT INTO records (xroad_id, side, kind, time, client_id, service_id,"
                        " request_id, header_part, body, signature, signed_data_digest,"
                        " signature_hash, chain) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            xroad_id,
                            side,
                            kind,
                            now,
                            client_id,
                            service_id,
                            request_id,
                            header_part,
                            body,
                            signature,
                            signed_data_digest,
                            sig_hash,
                            chain,
                        ),
                    )
                    rid = int(cur.lastrowid or 0)
                    for pos, der in enumerate(ocsp_responses):
                        oid = self._ocsp_id(der, new_ocsp)
                        self._db.execute(
                            "INSERT INTO record_ocsp(record_id, position, ocsp_id) VALUES (?,?,?)",
                            (rid, pos, oid),
                        )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                # only what was committed is remembered
                self._last_chain = chain
                self._ocsp_ids.update(new_ocsp)
            except sqlite3.Error as exc:
                raise MessageLogError(f"{self.path}: cannot append a record: {exc}") from None
        return LogRecord(
            id=rid,
            xroad_id=xroad_id,
            side=side,
            kind=kind,
            time=now,
            client_id=client_id,
            service_id=service_id,
            request_id=request_id,
            header_part=header_part,
            body=body,
            signature=signature,
            signed_data_digest=signed_data_digest,
            signature_hash=sig_hash,
            chain=chain,
            timestamp_id=None,
            ocsp_responses=tuple(ocsp_responses),
        )

    def append_envelope(
        self,
        envelope: Envelope,
        *,
        side: Side,
        xroad_id: str,
        client_id: str,
        service_id: str,
        now: float,
        request_id: str | None = None,
        ocsp_responses: Sequence[bytes] | None = None,
    ) -> LogRecord:
        """:meth:`append` for a signed envelope (its OCSP responses unless given)."""
        return self.append(
            side=side,
            kind=envelope.kind,
            xroad_id=xroad_id,
            client_id=client_id,
            service_id=service_id,
            header_part=envelope.header_part,
            body=envelope.body,
            signature=envelope.signature,
            signed_data_digest=envelope.signed_data_digest(),
            now=now,
            request_id=request_id,
            ocsp_responses=envelope.ocsp_responses if ocsp_responses is None else ocsp_responses,
        )

    def _ocsp_id(self, der: bytes, new: dict[bytes, int]) -> int:
        """The id of a stored OCSP response, storing it first if needed (``new`` collects
        the ids stored by the current transaction)."""
        digest = hashlib.sha256(der).digest()
        known = self._ocsp_ids.get(digest) or new.get(digest)
        if known is not None:
            return known
        row = self._db.execute(
            "SELECT id FROM ocsp_responses WHERE sha256 = ?", (digest,)
        ).fetchone()
        if row:
            new[digest] = int(row[0])
            return new[digest]
        cur = self._db.execute(
            "INSERT INTO ocsp_responses(sha256, der) VALUES (?, ?)", (digest, der)
        )
        new[digest] = int(cur.lastrowid or 0)
        return new[digest]

    # --- time-stamping ------------------------------------------------------------------

    def pending(self, limit: int = 10000) -> list[LogRecord]:
        """Un-stamped records, oldest first, at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE id > {_STAMPED_UP_TO} "
                "ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
            return [self._record(r) for r in rows]

    def next_batch(self, limit: int = 10000) -> TimestampBatch | None:
        """The next batch to stamp (X-Road's ``timestamp-records-limit``), or None."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, chain FROM records WHERE id > {_STAMPED_UP_TO} ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        if not rows:
            return None
        return TimestampBatch(
            first_record=int(rows[0][0]),
            last_record=int(rows[-1][0]),
            count=len(rows),
            chain=bytes(rows[-1][1]),
        )

    def record_timestamp(
        self,
        up_to_record: int,
        token_der: bytes,
        gen_time: float,
        *,
        now: float,
        tsa_url: str | None = None,
    ) -> TimestampRecord:
        """Store a token over ``chain_{up_to_record}``, covering every un-stamped record up
        to it (one insert: records are not rewritten); resets the failure clock."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute(
                        "SELECT chain FROM records WHERE id = ?", (up_to_record,)
                    ).fetchone()
                    if row is None:
                        raise MessageLogError(f"no record {up_to_record} to time-stamp")
                    first = int(self._db.execute(f"SELECT {_STAMPED_UP_TO}").fetchone()[0]) + 1
                    if first > up_to_record:
                        raise MessageLogError(f"record {up_to_record} is already time-stamped")
                    cur = self._db.execute(
                        "INSERT INTO timestamps(first_record, last_record, chain, token, gen_time,"
                        " tsa_url, stored_at) VALUES (?,?,?,?,?,?,?)",
                        (first, up_to_record, row[0], token_der, gen_time, tsa_url, now),
                    )
                    ts_id = int(cur.lastrowid or 0)
                    self._set_meta("ts_failing_since", None)
                    self._set_meta("ts_last_error", None)
                    self._set_meta("ts_last_success", repr(now))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise MessageLogError(f"{self.path}: cannot store a time-stamp: {exc}") from None
        return TimestampRecord(
            id=ts_id,
            first_record=int(first),
            last_record=up_to_record,
            chain=bytes(row[0]),
            token=token_der,
            gen_time=gen_time,
            tsa_url=tsa_url,
            stored_at=now,
        )

    def record_timestamp_failure(self, now: float, error: str) -> None:
        """A time-stamping attempt failed at ``now`` (starts the failure clock if idle)."""
        with self._lock:
            try:
                if self._meta("ts_failing_since") is None:
                    self._set_meta("ts_failing_since", repr(now))
                self._set_meta("ts_last_error", error[:1000])
            except sqlite3.Error as exc:
                raise MessageLogError(f"{self.path}: cannot record a failure: {exc}") from None

    def failing_since(self) -> float | None:
        """When time-stamping started failing (None when the last attempt succeeded)."""
        with self._lock:
            value = self._meta("ts_failing_since")
        return None if value is None else float(value)

    def last_timestamp_error(self) -> str | None:
        with self._lock:
            return self._meta("ts_last_error")

    def refuse_new(self, now: float) -> bool:
        """True when time-stamping has failed for longer than the failure period."""
        if self.failure_period_s <= 0:
            return False
        since = self.failing_since()
        return since is not None and now - since > self.failure_period_s

    def check_can_log(self, now: float, side: Side) -> None:
        """Raise ``XRoadError(TimestampingFailed)`` (ClientProxy or ServerProxy by ``side``)
        when :meth:`refuse_new` is True."""
        if self.refuse_new(now):
            since = self.failing_since()
            fault = (
                Fault.TIMESTAMPING_FAILED
                if side == "client"
                else Fault.PROVIDER_TIMESTAMPING_FAILED
            )
            raise XRoadError(
                fault,
                f"time-stamping has failed for {now - (since or now):.0f} s (longer than the "
                f"acceptable {self.failure_period_s:.0f} s): {self.last_timestamp_error() or ''}",
            )

    # --- reading ------------------------------------------------------------------------

    def _record(self, row: tuple[Any, ...]) -> LogRecord:
        rid = int(row[0])
        ocsp = tuple(
            bytes(r[0])
            for r in self._db.execute(
                "SELECT o.der FROM record_ocsp ro JOIN ocsp_responses o ON o.id = ro.ocsp_id "
                "WHERE ro.record_id = ? ORDER BY ro.position",
                (rid,),
            )
        )
        body = row[9]
        ts = row[14]
        return LogRecord(
            id=rid,
            xroad_id=str(row[1]),
            side=row[2],
            kind=row[3],
            time=float(row[4]),
            client_id=str(row[5]),
            service_id=str(row[6]),
            request_id=None if row[7] is None else str(row[7]),
            header_part=bytes(row[8]),
            body=None if body is None else bytes(body),
            signature=bytes(row[10]),
            signed_data_digest=bytes(row[11]),
            signature_hash=bytes(row[12]),
            chain=bytes(row[13]),
            timestamp_id=None if ts is None else int(ts),
            ocsp_responses=ocsp,
        )

    def record(self, record_id: int) -> LogRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE id = ?", (record_id,)
            ).fetchone()
            return None if row is None else self._record(row)

    def find(self, xroad_id: str, side: Side | None = None) -> list[LogRecord]:
        """Records of one exchange (request first), optionally of one side."""
        sql = f"SELECT {_RECORD_COLUMNS} FROM records WHERE xroad_id = ?"
        args: tuple[object, ...] = (xroad_id,)
        if side is not None:
            sql += " AND side = ?"
            args += (side,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
            return [self._record(r) for r in rows]

    def records(self, start: int = 1, batch: int = 500) -> Iterator[LogRecord]:
        """Every record from id ``start`` on, in order (read in batches)."""
        next_id = start
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_RECORD_COLUMNS} FROM records WHERE id >= ? ORDER BY id LIMIT ?",
                    (next_id, batch),
                ).fetchall()
                out = [self._record(r) for r in rows]
            if not out:
                return
            yield from out
            next_id = out[-1].id + 1

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def timestamp(self, timestamp_id: int) -> TimestampRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, first_record, last_record, chain, token, gen_time, tsa_url, stored_at"
                " FROM timestamps WHERE id = ?",
                (timestamp_id,),
            ).fetchone()
        if row is None:
            return None
        return TimestampRecord(
            id=int(row[0]),
            first_record=int(row[1]),
            last_record=int(row[2]),
            chain=bytes(row[3]),
            token=bytes(row[4]),
            gen_time=float(row[5]),
            tsa_url=row[6],
            stored_at=float(row[7]),
        )

    def timestamps(self) -> Iterator[TimestampRecord]:
        with self._lock:
            ids = [int(r[0]) for r in self._db.execute("SELECT id FROM timestamps ORDER BY id")]
        for i in ids:
            ts = self.timestamp(i)
            if ts is not None:
                yield ts

    def chain_proof(self, record_id: int) -> ChainProof | None:
        """The chain steps from ``record_id`` to its batch's stamp (None if not stamped)."""
        rec = self.record(record_id)
        if rec is None or rec.timestamp_id is None:
            return None
        ts = self.timestamp(rec.timestamp_id)
        if ts is None:  # pragma: no cover - foreign key
            return None
        with self._lock:
            prev = self._db.execute(
                "SELECT chain FROM records WHERE id = ?", (record_id - 1,)
            ).fetchone()
            hashes = tuple(
                bytes(r[0])
                for r in self._db.execute(
                    "SELECT signature_hash FROM records WHERE id >= ? AND id <= ? ORDER BY id",
                    (record_id, ts.last_record),
                )
            )
        previous = GENESIS if record_id == 1 else (bytes(prev[0]) if prev else b"")
        return ChainProof(
            record_id=record_id, previous=previous, signature_hashes=hashes, timestamp=ts
        )

    def status(self) -> dict[str, object]:
        """Counts and time-stamping state (for logs, the manifest, tests)."""
        with self._lock:
            total = int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
            unstamped = int(
                self._db.execute(
                    f"SELECT COUNT(*) FROM records WHERE id > {_STAMPED_UP_TO}"
                ).fetchone()[0]
            )
            stamps = int(self._db.execute("SELECT COUNT(*) FROM timestamps").fetchone()[0])
            since = self._meta("ts_failing_since")
            last_ok = self._meta("ts_last_success")
            err = self._meta("ts_last_error")
        return {
            "records": total,
            "unstamped": unstamped,
            "timestamps": stamps,
            "failing_since": None if since is None else float(since),
            "last_success": None if last_ok is None else float(last_ok),
            "last_error": err,
        }
