"""``xfed evidence audit``: every record of every message log of a run.

Per record: the CMS signature over its header part and body (signer = the client's member
for a request, the provider's member for a response, chained to its instance's CA at the
record's time), the stored digests, the hash-chain link to the previous record, the
time-stamp coverage (the chain from the record to its batch's stamped value is unbroken and
the token verifies against the instance's TSA), and pairing: the client's and the
provider's records of the same message carry the same signature and signed-data digest.

The records of one X-Road id tell how its exchange ended. The client's security server
logs the request before sending it and the response only after verifying it, and the
provider's logs the request before calling its information system and the response before
replying. So an exchange **succeeded** when the client logged the response; then all four
records (request and response on each side) must be there. One that failed in transit
leaves a prefix of that order: the client's request alone, or with the provider's request
(``unanswered``: the provider never answered), or with the provider's request and response
(``incomplete``: the answer never reached the client, or the client rejected it).

Each record gets exactly one status, first that applies: ``failed`` (a check failed),
``orphaned`` (its counterpart on the other side is missing although the exchange
succeeded, or a provider's record whose client request is missing: a lost row),
``unanswered`` / ``incomplete`` (the exchange failed in transit, as above; not a lost
message), ``awaiting_timestamp``, ``verified``. Read-only (SQLite ``mode=ro``, WAL): safe
while the run is live; a message that is mid-flight may show as unanswered, incomplete or
awaiting for a moment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from federation.clock import iso
from federation.errors import FederationError
from federation.evidence._checks import (
    CheckFailed,
    check_expected_signer,
    check_signature_value,
    check_signer_chain,
    check_timestamp,
    failure_text,
    parse_signature,
    signer_member,
)
from federation.evidence._run import (
    LOG_DAMAGED,
    LogRef,
    RunInfo,
    load_run,
    read_certs,
    unreadable,
)
from federation.identifiers import ClientId, ServiceId
from federation.securityserver._envelope import signed_data
from federation.securityserver._messagelog import (
    GENESIS,
    LogRecord,
    MessageLog,
    TimestampRecord,
    chain_step,
)

COUNT_KEYS = (
    "records",
    "verified",
    "awaiting_timestamp",
    "unanswered",
    "incomplete",
    "orphaned",
    "failed",
)
# statuses of records that belong to an exchange which failed in transit
IN_TRANSIT = ("unanswered", "incomplete")
CLEAN = ("verified", "awaiting_timestamp")
_ALL_FOUR = frozenset(
    {
        ("client", "request"),
        ("client", "response"),
        ("provider", "request"),
        ("provider", "response"),
    }
)
MAX_PROBLEMS = 200


@dataclass(frozen=True, slots=True)
class _Trust:
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    tsas: tuple[x509.Certificate, ...]


@dataclass(slots=True)
class _Rec:
    server: str
    id: int
    xroad_id: str
    side: str
    kind: str
    time: float
    signature_hash: bytes
    signed_data_digest: bytes
    timestamp_id: int | None
    link_ok: bool
    problems: list[str] = field(default_factory=list)
    status: str = ""


def _run_trust(run: RunInfo) -> dict[str, _Trust]:
    out: dict[str, _Trust] = {}
    for inst in run.instances():
        obj = run.instance(inst)
        certs = read_certs(obj.get("ca_cert"))
        roots = tuple(c for c in certs if c.issuer == c.subject)
        tsa = obj.get("tsa") if isinstance(obj.get("tsa"), dict) else {}
        out[inst] = _Trust(
            roots=roots,
            intermediates=tuple(c for c in certs if c not in roots),
            tsas=tuple(read_certs(tsa.get("cert") if tsa else None)),
        )
    return out


def _expected(rec: LogRecord) -> ClientId | None:
    try:
        if rec.kind == "request":
            return ClientId.parse(rec.client_id)
        return ServiceId.parse(rec.service_id).client
    except (FederationError, ValueError):
        return None


def _check_record(rec: LogRecord, trust: dict[str, _Trust]) -> list[str]:
    problems: list[str] = []
    if hashlib.sha512(rec.signature).digest() != rec.signature_hash:
        problems.append("stored signature hash is not SHA-512 of the signature")
    data = signed_data(rec.header_part, rec.body)
    if hashlib.sha512(data).digest() != rec.signed_data_digest:
        problems.append("stored signed-data digest does not match the header part and body")
    try:
        sig = parse_signature(rec.signature)
        check_signature_value(sig, data)
        member = signer_member(sig)
        check_expected_signer(rec.kind, member, _expected(rec))
        t = trust.get(member.instance)
        if t is None:
            raise CheckFailed(f"signer instance {member.instance} is not in the run")
        at = sig.signing_time if sig.signing_time is not None else rec.time
        check_signer_chain(sig, roots=t.roots, intermediates=t.intermediates, at=at)
    except Exception as exc:  # a trust boundary: any parse error is a failure
        problems.append(f"signature: {failure_text(exc)}")
    return problems


def _open(ref: LogRef) -> MessageLog | None:
    if not ref.path.exists():
        return None
    return MessageLog.open_readonly(ref.path)


def _audit_log(ref: LogRef, trust: dict[str, _Trust], recs: list[_Rec]) -> dict[str, Any]:
    info: dict[str, Any] = {"path": str(ref.path), "instance": ref.instance}
    try:
        log = _open(ref)
    except LOG_DAMAGED as exc:  # a damaged file: not SQLite, truncated
        info.update(error=unreadable(ref, exc), records=0)
        return info
    if log is None:
        info.update(missing=True, records=0)
        return info
    mine: dict[int, _Rec] = {}
    chains: dict[int, bytes] = {}
    stamps: dict[int, TimestampRecord] = {}
    missing: list[list[int]] = []
    stamped_up_to = 0
    last_success: float | None = None
    with log:
        prev: LogRecord | None = None
        try:
            # when the newest stamp was stored (kept in the log's meta, written with the
            # stamp's row), read before the stamps: that row must be among them
            last = log.status()["last_success"]
            last_success = float(last) if isinstance(last, int | float) else None
            # the time-stamps first: a live log only gains stamps, so a record read after
            # this snapshot that none covers, below the end of its last batch, lost its stamp
            for stamp in log.timestamps():
                stamps[stamp.id] = stamp
            stamped_up_to = max((ts.last_record for ts in stamps.values()), default=0)
            for rec in log.records():
                problems = _check_record(rec, trust)
                expected_prev: bytes | None
                if rec.id == 1:
                    expected_prev = GENESIS
                elif prev is not None and prev.id == rec.id - 1:
                    expected_prev = prev.chain
                else:
                    expected_prev = None
                    first_missing = 1 if prev is None else prev.id + 1
                    missing.append([first_missing, rec.id - 1])
                    problems.append(
                        f"hash chain: record(s) {first_missing}..{rec.id - 1} before this one "
                        "are missing"
                    )
                link_ok = expected_prev is not None and (
                    chain_step(expected_prev, rec.signature_hash) == rec.chain
                )
                if expected_prev is not None and not link_ok:
                    problems.append("hash chain: the link from the previous record is broken")
                r = _Rec(
                    server=ref.server,
                    id=rec.id,
                    xroad_id=rec.xroad_id,
                    side=rec.side,
                    kind=rec.kind,
                    time=rec.time,
                    signature_hash=rec.signature_hash,
                    signed_data_digest=rec.signed_data_digest,
                    timestamp_id=rec.timestamp_id,
                    link_ok=link_ok,
                    problems=problems,
                )
                mine[rec.id] = r
                chains[rec.id] = rec.chain
                if rec.timestamp_id is not None and rec.timestamp_id not in stamps:
                    ts = log.timestamp(rec.timestamp_id)  # stored since the snapshot
                    if ts is not None:
                        stamps[ts.id] = ts
                prev = rec
        except LOG_DAMAGED as exc:
            # the records read so far are still audited; the log itself fails the audit
            info["error"] = unreadable(ref, exc)
    lost_stamp = last_success
    if any(ts.stored_at == last_success for ts in stamps.values()):
        lost_stamp = None
    _check_stamps(ref, trust, mine, chains, stamps, stamped_up_to, lost_stamp)
    recs.extend(mine.values())
    info.update(
        records=len(mine),
        timestamps=len(stamps),
        last_id=max(mine) if mine else 0,
        missing_ids=missing,
    )
    return info


def _check_stamps(
    ref: LogRef,
    trust: dict[str, _Trust],
    mine: dict[int, _Rec],
    chains: dict[int, bytes],
    stamps: dict[int, TimestampRecord],
    stamped_up_to: int,
    lost_stamp: float | None,
) -> None:
    """``lost_stamp``: when the newest time-stamp was stored, if its row is gone."""
    t = trust.get(ref.instance)
    for ts in stamps.values():
        token_problem: str | None = None
        try:
            if t is None:
                raise CheckFailed(f"instance {ref.instance} is not in the run")
            check_timestamp(
                ts.token,
                stamped=ts.chain,
                roots=t.roots,
                intermediates=t.intermediates,
                approved_tsas=t.tsas or None,
            )
        except Exception as exc:
            token_problem = f"time-stamp {ts.id}: {failure_text(exc)}"
        if chains.get(ts.last_record) != ts.chain:
            token_problem = token_problem or (
                f"time-stamp {ts.id}: the stamped value is not the chain value of record "
                f"{ts.last_record}"
            )
        # a record is covered when every link from it to the stamped value holds
        broken_at: int | None = None
        for i in range(ts.last_record, ts.first_record - 1, -1):
            r = mine.get(i)
            if r is None:
                broken_at = broken_at or i
                continue
            if r.timestamp_id == ts.id:
                if token_problem:
                    r.problems.append(token_problem)
                elif broken_at is not None:
                    r.problems.append(
                        f"time-stamp {ts.id}: the chain to the stamped value is broken at the "
                        f"link into record {broken_at}"
                    )
            if not r.link_ok and broken_at is None:
                broken_at = i
    # batches are consecutive: a record below the end of the last batch (as first read)
    # that no batch covers lost its time-stamp (a deleted ``timestamps`` row), it does not
    # await one. When the newest batch's row is deleted, its records lie above the end of
    # the last batch left, but the log's meta still says when the newest stamp was stored:
    # a record logged before that lost its stamp too
    for r in mine.values():
        if r.timestamp_id is None and r.id <= stamped_up_to:
            r.problems.append(
                f"no time-stamp covers this record, though time-stamps cover records up to "
                f"{stamped_up_to} (a time-stamp is missing)"
            )
        elif r.timestamp_id is None and lost_stamp is not None and r.time <= lost_stamp:
            r.problems.append(
                f"no time-stamp covers this record, logged before the newest time-stamp was "
                f"stored ({iso(lost_stamp)}), whose row is missing (a time-stamp is missing)"
            )


def _pair(recs: list[_Rec]) -> None:
    """Match each record with the other side's record of the same message, and tell from
    the records of each X-Road id how its exchange ended (see the module docstring)."""
    by_key: dict[tuple[str, str, str], list[_Rec]] = {}
    by_id: dict[str, set[tuple[str, str]]] = {}
    for r in recs:
        by_key.setdefault((r.xroad_id, r.side, r.kind), []).append(r)
        by_id.setdefault(r.xroad_id, set()).add((r.side, r.kind))
    for r in recs:
        other = "provider" if r.side == "client" else "client"
        peers = by_key.get((r.xroad_id, other, r.kind), [])
        if not peers:
            r.status = _unpaired(r, by_id[r.xroad_id])
            continue
        match = [p for p in peers if p.signature_hash == r.signature_hash]
        if not match:
            r.problems.append(f"pairing: the {other} side logged a different {r.kind} signature")
        elif all(p.signed_data_digest != r.signed_data_digest for p in match):
            r.problems.append(f"pairing: the {other} side's {r.kind} digest differs")
    for r in recs:
        if r.status:
            continue
        present = by_id[r.xroad_id]
        if ("client", "response") in present or ("client", "request") not in present:
            continue  # succeeded (pairing decides), or a lost client row (orphaned above)
        r.status = _in_transit(present)


def _unpaired(r: _Rec, present: set[tuple[str, str]]) -> str:
    """Status of a record whose counterpart on the other side is missing."""
    if ("client", "response") in present or ("client", "request") not in present:
        # the exchange succeeded, so its counterpart was lost; or a provider's record
        # without the client's request, which the client logs before sending: a lost row
        return "orphaned"
    return _in_transit(present)


def _in_transit(present: set[tuple[str, str]]) -> str:
    """How an exchange that the client sent but never completed ended."""
    return "incomplete" if ("provider", "response") in present else "unanswered"


def _classify(r: _Rec) -> str:
    if r.problems:
        return "failed"
    if r.status in ("orphaned", *IN_TRANSIT):
        return r.status
    if r.timestamp_id is None:
        return "awaiting_timestamp"
    return "verified"


def audit_run(run_dir: str | Path, *, max_problems: int = MAX_PROBLEMS) -> dict[str, Any]:
    """Audit every message log of the run in ``run_dir`` (see the module docstring).

    Returns the record counts ``records``, ``verified``, ``awaiting_timestamp``,
    ``unanswered``, ``incomplete``, ``orphaned``, ``failed`` (each record counted once under
    its status; the six statuses sum to ``records``) and ``unstamped`` (records of any
    status not yet covered by a time-stamp), plus ``exchanges`` (distinct X-Road ids),
    ``complete_exchanges`` and ``complete_ids`` (ids with a clean request and response on
    both sides: the exchanges that succeeded), ``unanswered_exchanges`` and
    ``incomplete_exchanges`` (ids that failed in transit), ``timestamps``, ``not_clean``
    (sorted ids with a failed or orphaned record), ``problems`` (up to ``max_problems``
    records with reasons), ``logs`` (per security server: path, records, timestamps,
    missing id ranges, ``error`` when the file cannot be read to its end) and
    ``damaged_logs`` (the servers whose log has an ``error``: the audit fails; the records
    read before the error are still audited).
    """
    run = load_run(run_dir)
    trust = _run_trust(run)
    recs: list[_Rec] = []
    logs: dict[str, Any] = {}
    for ref in run.logs:
        logs[ref.server] = _audit_log(ref, trust, recs)
    _pair(recs)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["records"] = len(recs)
    by_id: dict[str, list[_Rec]] = {}
    for r in recs:
        r.status = _classify(r)
        counts[r.status] += 1
        by_id.setdefault(r.xroad_id, []).append(r)
    not_clean = sorted(
        xid for xid, rs in by_id.items() if any(r.status in ("failed", "orphaned") for r in rs)
    )
    complete_ids: list[str] = []
    in_transit: dict[str, list[str]] = {k: [] for k in IN_TRANSIT}
    for xid, rs in by_id.items():
        keys = {(r.side, r.kind) for r in rs if r.status in CLEAN}
        if keys == _ALL_FOUR and all(r.status in CLEAN for r in rs):
            complete_ids.append(xid)
        elif xid not in not_clean:
            ended = {r.status for r in rs} & set(IN_TRANSIT)
            if ended:
                in_transit["incomplete" if "incomplete" in ended else "unanswered"].append(xid)
    problems = [
        {
            "xroad_id": r.xroad_id,
            "server": r.server,
            "record_id": r.id,
            "side": r.side,
            "kind": r.kind,
            "status": r.status,
            "reasons": r.problems
            or (["the other side has no record of this message"] if r.status == "orphaned" else []),
        }
        for r in _not_clean(recs)
    ]
    return {
        **counts,
        "exchanges": len(by_id),
        "unstamped": sum(1 for r in recs if r.timestamp_id is None),
        "complete_exchanges": len(complete_ids),
        "unanswered_exchanges": len(in_transit["unanswered"]),
        "incomplete_exchanges": len(in_transit["incomplete"]),
        "complete_ids": sorted(complete_ids),
        "unanswered_ids": sorted(in_transit["unanswered"]),
        "incomplete_ids": sorted(in_transit["incomplete"]),
        "timestamps": sum(int(v.get("timestamps", 0)) for v in logs.values()),
        "not_clean": not_clean,
        "problems": problems[:max_problems],
        "problems_truncated": len(problems) > max_problems,
        "logs": logs,
        "damaged_logs": sorted(server for server, info in logs.items() if info.get("error")),
    }


def _not_clean(recs: list[_Rec]) -> Iterator[_Rec]:
    for r in sorted(recs, key=lambda r: (r.server, r.id)):
        if r.status in ("failed", "orphaned"):
            yield r


def audit_text(result: dict[str, Any]) -> str:
    lines = [
        f"records {result['records']}: verified {result['verified']}, awaiting time-stamp "
        f"{result['awaiting_timestamp']}, unanswered {result['unanswered']}, incomplete "
        f"{result['incomplete']}, orphaned {result['orphaned']}, failed {result['failed']}",
        f"exchanges {result['exchanges']}: complete on both sides {result['complete_exchanges']}, "
        f"failed in transit {result['unanswered_exchanges']} unanswered + "
        f"{result['incomplete_exchanges']} incomplete; time-stamps {result['timestamps']}",
    ]
    for server, info in result["logs"].items():
        extra = " (no log yet)" if info.get("missing") else ""
        if info.get("error"):
            extra = f" (DAMAGED: {info['error']})"
        gaps = info.get("missing_ids") or []
        if gaps:
            extra += " missing ids " + ", ".join(f"{a}..{b}" for a, b in gaps)
        lines.append(f"  {server}: {info.get('records', 0)} records{extra}")
    for kind in IN_TRANSIT:
        ids = result.get(f"{kind}_ids") or []
        if ids:
            more = f" (+{len(ids) - 5} more)" if len(ids) > 5 else ""
            lines.append(f"{kind}: {', '.join(ids[:5])}{more}")
    for p in result["problems"]:
        lines.append(
            f"{p['status'].upper():<8} {p['xroad_id']} {p['side']} {p['kind']} "
            f"({p['server']} #{p['record_id']}): {'; '.join(p['reasons'])}"
        )
    if result.get("problems_truncated"):
        lines.append("... (more problems; use --json)")
    return "\n".join(lines)


def audit_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
