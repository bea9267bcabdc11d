"""``xfed evidence export``: one exchange of one security server's log -> a container."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from federation.errors import ConfigError, FederationError
from federation.evidence._checks import CheckFailed, parse_signature
from federation.evidence._container import Evidence, HashChain, Message, chain_pem, pack
from federation.evidence._run import (
    LOG_DAMAGED,
    LogRef,
    RunInfo,
    conf_copies,
    load_run,
    unreadable,
)
from federation.securityserver._envelope import signed_data
from federation.securityserver._messagelog import LogRecord, MessageLog

SIDES = ("client", "provider")


def _open(ref: LogRef) -> MessageLog | None:
    if not ref.path.exists():
        return None
    return MessageLog.open_readonly(ref.path)


def _chain_pem(signature: bytes) -> bytes:
    try:
        sig = parse_signature(signature)
    except CheckFailed:
        return b""
    return chain_pem([sig.signer, *(c for c in sig.embedded if c != sig.signer)])


def _message(log: MessageLog, rec: LogRecord, extra_ocsp: list[bytes]) -> Message:
    proof = log.chain_proof(rec.id)
    chain: HashChain | None = None
    token: bytes | None = None
    if proof is not None:
        chain = HashChain(
            record_id=rec.id,
            previous=proof.previous,
            steps=proof.signature_hashes,
            stamped=proof.timestamp.chain,
            batch_first=proof.timestamp.first_record,
            batch_last=proof.timestamp.last_record,
        )
        token = proof.timestamp.token
    ocsp = list(rec.ocsp_responses)
    ocsp += [d for d in extra_ocsp if d not in ocsp]
    meta: dict[str, Any] = {
        "record_id": rec.id,
        "time": rec.time,
        "client_id": rec.client_id,
        "service_id": rec.service_id,
        "request_id": rec.request_id,
        "timestamped": proof is not None,
        "ocsp_from_other_records": len(ocsp) - len(rec.ocsp_responses),
    }
    if proof is not None:
        meta["timestamp"] = {
            "id": proof.timestamp.id,
            "gen_time": proof.timestamp.gen_time,
            "tsa_url": proof.timestamp.tsa_url,
        }
    return Message(
        kind=rec.kind,
        header_part=rec.header_part,
        body=rec.body,
        signed_data=signed_data(rec.header_part, rec.body),
        signature=rec.signature,
        signer_chain_pem=_chain_pem(rec.signature),
        ocsp_responses=tuple(ocsp),
        hash_chain=chain,
        timestamp=token,
        meta=meta,
    )


def _ocsp_elsewhere(
    run: RunInfo, xroad_id: str, skip: Path
) -> dict[tuple[str, bytes], list[bytes]]:
    """OCSP responses logged with the same messages by the other side's server, by
    (kind, signature): a response record often carries only the client's responses."""
    out: dict[tuple[str, bytes], list[bytes]] = {}
    for ref in run.logs:
        if ref.path == skip:
            continue
        try:
            log = _open(ref)
            if log is None:
                continue
            with log:
                recs = log.find(xroad_id)
        except LOG_DAMAGED:
            continue  # a damaged log (already reported by the search) adds nothing
        for rec in recs:
            out.setdefault((rec.kind, rec.signature), []).extend(rec.ocsp_responses)
    return out


def export_exchange(
    run_dir: str | Path, xroad_id: str, *, side: str | None = None, now: float | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The container bytes for ``xroad_id`` from the log of ``side`` (default: the client
    side when it has the exchange, else the provider side) and its manifest metadata.

    A damaged log (not SQLite, truncated) is skipped when the exchange is found in another
    one (``damaged_logs`` in the metadata returned, not in the container); when the
    exchange is found nowhere else, the error names the damaged logs."""
    if side is not None and side not in SIDES:
        raise ConfigError(f"--side must be client or provider, not {side!r}")
    run = load_run(run_dir)
    found: list[tuple[LogRef, str, list[LogRecord]]] = []
    damaged: list[str] = []
    searched = 0
    for ref in run.logs:
        try:
            log = _open(ref)
            if log is None:
                continue
            with log:
                recs = log.find(xroad_id)
        except LOG_DAMAGED as exc:
            damaged.append(unreadable(ref, exc))
            continue
        searched += 1
        for s in SIDES:
            mine = [r for r in recs if r.side == s]
            if mine:
                found.append((ref, s, mine))
    also = f"; {'; '.join(damaged)}" if damaged else ""
    if not found and damaged:
        raise FederationError(
            f"X-Road-Id {xroad_id!r} is in none of the {searched} readable message log(s) of "
            f"the run {run.run_dir}{also}"
        )
    if not found:
        raise ConfigError(
            f"X-Road-Id {xroad_id!r} is in none of the {searched} message log(s) of the run",
            file=str(run.run_dir),
        )
    wanted = [f for f in found if side is None or f[1] == side]
    if not wanted:
        have = ", ".join(sorted({f"{f[1]} ({f[0].server})" for f in found}))
        raise ConfigError(f"X-Road-Id {xroad_id!r} has no {side} record; found: {have}{also}")
    wanted.sort(key=lambda f: SIDES.index(f[1]))
    ref, chosen_side, recs = wanted[0]
    by_kind: dict[str, LogRecord] = {}
    for rec in recs:
        by_kind.setdefault(rec.kind, rec)  # the first of each kind
    elsewhere = _ocsp_elsewhere(run, xroad_id, ref.path)
    try:
        log = _open(ref)
        assert log is not None
        with log:
            messages = {
                kind: _message(log, rec, elsewhere.get((kind, rec.signature), []))
                for kind, rec in by_kind.items()
            }
            if any(m.hash_chain is not None for m in messages.values()):
                # a live log may be stamped between two reads: read again what was
                # unstamped, so a request never looks unstamped beside its stamped response
                for kind, rec in by_kind.items():
                    if messages[kind].hash_chain is None:
                        messages[kind] = _message(
                            log, rec, elsewhere.get((kind, rec.signature), [])
                        )
    except LOG_DAMAGED as exc:
        raise FederationError(unreadable(ref, exc)) from None
    instances = {ref.instance}
    for rec in by_kind.values():
        for text in (rec.client_id, rec.service_id):
            instances.add(text.split("/", 1)[0])
    meta: dict[str, Any] = {
        "instance": ref.instance,
        "security_server": ref.server,
        "exported_at": time.time() if now is None else now,
        "run_dir": str(run.run_dir),
        "note": "metadata is informative; the checks of docs/evidence.md decide",
    }
    timers = run.instance(ref.instance).get("timers")
    period = timers.get("timestamp_failure_period_s") if isinstance(timers, dict) else None
    if isinstance(period, int | float):
        # the (scaled) timer the verifier's time-stamp delay limit may tighten to
        meta["timers"] = {"timestamp_failure_period_s": period}
    ev = Evidence(
        xroad_id=xroad_id,
        side=chosen_side,
        meta=meta,
        messages=messages,
        conf_files=conf_copies(run, instances),
    )
    info = {"xroad_id": xroad_id, "side": chosen_side, **meta}
    if damaged:
        info["damaged_logs"] = damaged
    return pack(ev), info


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_output(xroad_id: str, side: str) -> Path:
    return Path(f"evidence-{_UNSAFE.sub('_', xroad_id)}-{side}.zip")
