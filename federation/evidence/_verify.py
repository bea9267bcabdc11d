"""Offline verification of an evidence container (``xfed evidence verify``).

Every check yields one :class:`Verdict` line. Trust comes only from the user: ``--ca``
bundles and ``--anchor`` files (an anchor makes the container's embedded verification
configuration trusted once its signature verifies, see :mod:`._trust`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from federation.errors import ConfigError, FederationError
from federation.evidence._checks import (
    TIME_SKEW_S,
    CheckFailed,
    check_expected_signer,
    check_hash_chain,
    check_ocsp,
    check_signature_value,
    check_signer_chain,
    check_timestamp,
    failure_text,
    parse_signature,
    signer_member,
)
from federation.evidence._container import (
    MANIFEST,
    MIMETYPE,
    Message,
    Unpacked,
    chain_pem,
    digests,
    hash_chain_bytes,
    unpack,
)
from federation.evidence._trust import TrustStore, trust_from_anchor
from federation.globalconf import ConfigurationAnchor
from federation.identifiers import ClientId
from federation.pki import load_certs_pem
from federation.securityserver._envelope import signed_data
from federation.securityserver._rest import (
    RestRequest,
    RestResponse,
    check_response_matches,
    parse_request_header_part,
    parse_response_header_part,
)

Status = Literal["OK", "FAIL", "PENDING", "INFO"]
DEFAULT_OCSP_FRESHNESS_S = 3600.0
DEFAULT_MAX_TIMESTAMP_DELAY_S = 14400.0
"""X-Road's ``acceptable-timestamp-failure-period``: the longest a security server keeps
logging while time-stamping fails, so the longest a record normally waits for its stamp."""

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_PENDING = 3


@dataclass(frozen=True, slots=True)
class Verdict:
    """One line of the verdict: ``OK request signature: ...``."""

    status: Status
    check: str
    message: str

    def line(self) -> str:
        return f"{self.status:<7} {self.check}: {self.message}"


@dataclass(slots=True)
class Report:
    verdicts: list[Verdict] = field(default_factory=list)

    def add(self, status: Status, check: str, message: str) -> None:
        self.verdicts.append(Verdict(status, check, message))

    def failed(self, check: str | None = None) -> list[Verdict]:
        return [
            v for v in self.verdicts if v.status == "FAIL" and (check is None or v.check == check)
        ]

    @property
    def ok(self) -> bool:
        return not self.failed()

    @property
    def exit_code(self) -> int:
        if self.failed():
            return EXIT_FAIL
        if any(v.status == "PENDING" for v in self.verdicts):
            return EXIT_PENDING
        return EXIT_OK

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "verdicts": [
                {"status": v.status, "check": v.check, "message": v.message} for v in self.verdicts
            ],
        }


def _check_manifest(u: Unpacked, r: Report) -> None:
    names = list(u.entries)
    if not names or names[0] != "mimetype" or u.mimetype != MIMETYPE.encode():
        r.add("FAIL", "container", f"first entry must be 'mimetype' = {MIMETYPE}")
    else:
        r.add("OK", "container", f"mimetype {MIMETYPE}")
    listed = u.manifest.get("entries")
    if not isinstance(listed, list):
        r.add("FAIL", "manifest", "no entry list")
        return
    seen: set[str] = set()
    bad = 0
    for e in listed:
        if not isinstance(e, dict) or not isinstance(e.get("path"), str):
            r.add("FAIL", "manifest", f"malformed entry {e!r:.80}")
            bad += 1
            continue
        path = e["path"]
        seen.add(path)
        data = u.entries.get(path)
        if data is None:
            r.add("FAIL", "manifest", f"{path} is listed but missing")
            bad += 1
            continue
        got = digests(data)
        wrong = [alg for alg in ("sha256", "sha512") if e.get(alg) != got[alg]]
        if wrong or e.get("size") != len(data):
            r.add("FAIL", "manifest", f"{path}: {'/'.join(wrong) or 'size'} does not match")
            bad += 1
    for name in names:
        if name not in seen and name not in ("mimetype", MANIFEST):
            r.add("FAIL", "manifest", f"{name} is in the zip but not in the manifest")
            bad += 1
    if not bad:
        r.add("OK", "manifest", f"{len(listed)} entries, SHA-256 and SHA-512 match")


def _expected_signer(
    kind: str, req: RestRequest | None, resp: RestResponse | None
) -> ClientId | None:
    if kind == "request":
        return req.client if req else None
    if resp is not None:
        return resp.service.client
    return req.service.client if req else None


def _parse_headers(m: Message | None, r: Report) -> tuple[RestRequest | None, RestResponse | None]:
    if m is None:
        return None, None
    try:
        if m.kind == "request":
            return parse_request_header_part(m.header_part), None
        return None, parse_response_header_part(m.header_part)
    except FederationError as exc:
        r.add("FAIL", f"{m.kind} headers", f"header part does not parse: {exc}")
        return None, None


def _check_message(
    m: Message,
    *,
    expected: ClientId | None,
    log_instance: str,
    trust: TrustStore,
    freshness_override: float | None,
    max_delay: tuple[float, str],
    later_stamped: bool,
    r: Report,
) -> None:
    k = m.kind
    body = m.body if m.body else None
    data = signed_data(m.header_part, body)
    if m.signed_data == data:
        r.add("OK", f"{k} signed-data", "matches the header part and the body digest")
    else:
        r.add("FAIL", f"{k} signed-data", "does not match the header part and body")

    try:
        sig = parse_signature(m.signature)
        check_signature_value(sig, data)
    except Exception as exc:  # a trust boundary: any parse error is a failure
        r.add("FAIL", f"{k} signature", failure_text(exc))
        sig = None
    if sig is None:
        r.add("FAIL", f"{k} certificate", "not checked: the signature does not parse/verify")
        r.add("FAIL", f"{k} OCSP", "not checked: no verified signer")
        return
    r.add(
        "OK",
        f"{k} signature",
        f"CMS signature over header part and body verifies ({_subj(sig.signer)})",
    )

    # the time-stamp first: without a signingTime its verified genTime is the check time
    stamp = Report()
    gen_time = _check_stamp(
        m,
        sig_time=sig.signing_time,
        log_instance=log_instance,
        trust=trust,
        max_delay=max_delay,
        later_stamped=later_stamped,
        r=stamp,
    )
    # never the manifest's unsigned record time: the signer's signingTime, else genTime
    at = sig.signing_time if sig.signing_time is not None else gen_time
    at_note = "" if sig.signing_time is not None else " (genTime: the signature has no signingTime)"
    chain = None
    try:
        if at is None:
            raise CheckFailed(
                "the signature has no signingTime and no verified time-stamp gives a time "
                "to check it at"
            )
        member = signer_member(sig)
        check_expected_signer(k, member, expected)
        inst = member.instance
        chain = check_signer_chain(
            sig, roots=trust.roots(inst), intermediates=trust.intermediates(inst), at=at
        )
        _check_chain_file(m, chain)
        src = "; ".join(trust.sources(inst))
        r.add(
            "OK",
            f"{k} certificate",
            f"signed by member {member}; chain to '{_subj(chain[-1])}' valid at {_iso(at)}"
            f"{at_note} [{src}]",
        )
    except Exception as exc:  # a trust boundary: any parse error is a failure
        r.add("FAIL", f"{k} certificate", failure_text(exc))

    if chain is None or at is None or len(chain) < 2:
        r.add("FAIL", f"{k} OCSP", "not checked: the signer certificate is not trusted")
    else:
        inst = signer_member(sig).instance
        freshness = (
            freshness_override
            if freshness_override is not None
            else trust.ocsp_freshness_s(inst) or DEFAULT_OCSP_FRESHNESS_S
        )
        try:
            what = check_ocsp(
                m.ocsp_responses,
                cert=sig.signer,
                issuer=chain[1],
                at=at,
                freshness_s=freshness,
                approved_responders=trust.ocsp_responders(inst),
            )
            r.add("OK", f"{k} OCSP", what)
        except Exception as exc:  # a trust boundary: any parse error is a failure
            r.add("FAIL", f"{k} OCSP", failure_text(exc))

    r.verdicts.extend(stamp.verdicts)


def _check_chain_file(m: Message, chain: Sequence[object]) -> None:
    try:
        certs = load_certs_pem(m.signer_chain_pem)
    except FederationError as exc:
        raise CheckFailed(f"signer-chain.pem: {exc}") from None
    if not certs or certs[0] != chain[0] or any(c not in chain for c in certs):
        raise CheckFailed("signer-chain.pem is not the signer's certificate chain")
    if m.signer_chain_pem != chain_pem(certs):
        raise CheckFailed("signer-chain.pem is not in canonical PEM form")


def _check_stamp(
    m: Message,
    *,
    sig_time: float | None,
    log_instance: str,
    trust: TrustStore,
    max_delay: tuple[float, str],
    later_stamped: bool,
    r: Report,
) -> float | None:
    """The hash chain and time-stamp verdicts; returns genTime when both verify.

    ``later_stamped``: a message logged after this one in the same log (the request's
    response) carries a time-stamp or hash chain."""
    k = m.kind
    if m.hash_chain_raw is None and m.timestamp is None:
        if later_stamped:
            # batches are consecutive id ranges and a log's request precedes its response:
            # a stamped response means the request was stamped too
            r.add(
                "FAIL",
                f"{k} time-stamp",
                "no time-stamp token and no hash chain, but the response, logged after this "
                "request in the same log, is time-stamped: this request's time-stamp was removed",
            )
        elif m.meta.get("timestamped") is False:
            # only the unsigned manifest says so: a removed token looks the same
            rid = m.meta.get("record_id")
            r.add(
                "PENDING",
                f"{k} time-stamp",
                f"no time-stamp: evidence incomplete. The manifest says record {rid} was not "
                "yet time-stamped when exported; nothing signed confirms it (a removed "
                "time-stamp looks the same), so this is unverifiable: export it again once "
                "stamped",
            )
        else:
            r.add("FAIL", f"{k} time-stamp", "no time-stamp token and no hash chain")
        return None
    hc = m.hash_chain
    chain_ok = False
    if hc is None:
        r.add("FAIL", f"{k} hash chain", "hash-chain.json is missing or malformed")
    elif m.hash_chain_raw != hash_chain_bytes(hc):
        r.add("FAIL", f"{k} hash chain", "hash-chain.json is not in canonical form")
    else:
        try:
            check_hash_chain(m.signature, hc.previous, hc.steps, hc.stamped)
            if hc.batch_last - hc.record_id + 1 != len(hc.steps):
                raise CheckFailed("the number of steps does not match the batch")
            if m.last_step is not None and m.last_step != hc.last_step_data():
                raise CheckFailed("hash-chain-last-step.bin is not the last link")
            if m.last_step is not None and hashlib.sha512(m.last_step).digest() != hc.stamped:
                raise CheckFailed("SHA-512 of hash-chain-last-step.bin is not the stamped value")
            r.add(
                "OK",
                f"{k} hash chain",
                f"record {hc.record_id} -> {len(hc.steps)} step(s) -> stamped chain value of "
                f"record {hc.batch_last}",
            )
            chain_ok = True
        except Exception as exc:  # a trust boundary: any parse error is a failure
            r.add("FAIL", f"{k} hash chain", failure_text(exc))
    if m.timestamp is None:
        r.add("FAIL", f"{k} time-stamp", "timestamp.tst is missing")
        return None
    if hc is None:
        r.add("FAIL", f"{k} time-stamp", "not checked: no hash chain gives the stamped value")
        return None
    try:
        gen_time = check_timestamp(
            m.timestamp,
            stamped=hc.stamped,
            roots=trust.roots(log_instance),
            intermediates=trust.intermediates(log_instance),
            approved_tsas=trust.tsas(log_instance),
        )
        if sig_time is not None and gen_time + TIME_SKEW_S < sig_time:
            raise CheckFailed(
                f"genTime {_iso(gen_time)} is before the signing time {_iso(sig_time)}"
            )
        r.add(
            "OK",
            f"{k} time-stamp",
            f"RFC 3161 token over the chain value, genTime {_iso(gen_time)}, TSA of {log_instance}",
        )
    except Exception as exc:  # a trust boundary: any parse error is a failure
        r.add("FAIL", f"{k} time-stamp", failure_text(exc))
        return None
    if sig_time is not None:
        _check_delay(k, gen_time - sig_time, max_delay, r)
    return gen_time if chain_ok else None


def _check_delay(k: str, delay: float, max_delay: tuple[float, str], r: Report) -> None:
    """The signer asserts signingTime, at which the certificate and OCSP are judged; the
    TSA's genTime is the first time the evidence proves. A record logged early in a
    time-stamping outage is stamped only when the TSA is back, however long that takes
    (the failure period stops *new* messages, not the stamping of old ones), so a long gap
    is honest after an outage and the default limit only reports it (INFO); a limit the
    user sets with --max-timestamp-delay is a policy and fails the check."""
    limit, source = max_delay
    enforced = source == "--max-timestamp-delay"
    if delay <= limit:
        r.add(
            "OK",
            f"{k} time-stamp delay",
            f"genTime {delay:.0f} s after the signing time (limit {limit:.0f} s, {source})",
        )
    elif enforced:
        r.add(
            "FAIL",
            f"{k} time-stamp delay",
            f"genTime is {delay:.0f} s after the signing time, more than {limit:.0f} s "
            f"({source}): the signingTime may be backdated",
        )
    else:
        r.add(
            "INFO",
            f"{k} time-stamp delay",
            f"genTime is {delay:.0f} s after the signing time, more than {limit:.0f} s "
            f"({source}): the record waited out a time-stamping outage, or its signingTime "
            "is backdated. The certificate and OCSP checks hold at the signingTime the signer "
            "asserts; the time-stamp proves the signature only from genTime on "
            "(--max-timestamp-delay S makes a limit fail)",
        )


def _subj(cert: object) -> str:
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "(malformed subject)"


def _iso(ts: float) -> str:
    from federation.clock import iso

    return iso(ts)


def _check_seconds(value: float | None, option: str) -> float | None:
    """A user's duration option: None (the default applies) or a finite number > 0;
    ConfigError otherwise (``nan`` would disable a check, 0 and less make no sense)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{option} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{option} must be a finite number of seconds > 0, not {value!r}")
    return float(value)


def _max_delay(meta: object, override: float | None) -> tuple[float, str]:
    """The largest genTime - signingTime accepted, and where it comes from. The container's
    record of the run's (scaled) timers is unsigned, so it may only make the limit
    stricter than X-Road's default."""
    if override is not None:
        return override, "--max-timestamp-delay"
    timers = meta.get("timers") if isinstance(meta, dict) else None
    recorded = timers.get("timestamp_failure_period_s") if isinstance(timers, dict) else None
    if (
        isinstance(recorded, int | float)
        and not isinstance(recorded, bool)
        and math.isfinite(recorded)
        and 0 < recorded < DEFAULT_MAX_TIMESTAMP_DELAY_S
    ):
        return float(recorded), "the run's acceptable time-stamp failure period"
    return DEFAULT_MAX_TIMESTAMP_DELAY_S, "X-Road's default acceptable time-stamp failure period"


def verify_unpacked(
    u: Unpacked,
    *,
    anchors: Sequence[ConfigurationAnchor] = (),
    trust: TrustStore | None = None,
    ocsp_freshness_s: float | None = None,
    max_timestamp_delay_s: float | None = None,
) -> Report:
    """Every check of docs/evidence.md on a parsed container. ``ocsp_freshness_s`` and
    ``max_timestamp_delay_s`` override the defaults (ConfigError unless finite and > 0)."""
    ocsp_freshness_s = _check_seconds(ocsp_freshness_s, "--ocsp-freshness")
    max_delay = _max_delay(
        u.evidence.meta, _check_seconds(max_timestamp_delay_s, "--max-timestamp-delay")
    )
    r = Report()
    store = TrustStore(trust.trusts if trust else ())
    _check_manifest(u, r)
    ev = u.evidence
    log_instance = str(ev.meta.get("instance") or "")
    req_m = ev.messages.get("request")
    resp_m = ev.messages.get("response")
    headers = Report()  # header verdicts come after the trust lines
    req, _ = _parse_headers(req_m, headers)
    _, resp = _parse_headers(resp_m, headers)
    # the instances the signed header parts name (the signers are members of these)
    involved = {log_instance}
    for h in (req, resp):
        if h is not None:
            involved |= {h.client.instance, h.service.instance}
    for anchor in anchors:
        t, verdict = trust_from_anchor(anchor, u.evidence.conf_files)
        parsed = req is not None or resp is not None
        if verdict.missing and parsed and anchor.instance not in involved:
            # one --anchor per instance of a run works for every exchange of the run
            r.add(
                "INFO",
                f"trust {anchor.instance}",
                f"not needed: the exchange involves only {', '.join(sorted(involved - {''}))}",
            )
            continue
        r.add("OK" if verdict.ok else "FAIL", f"trust {anchor.instance}", verdict.message)
        if t is not None:
            store.add(t)
    r.verdicts.extend(headers.verdicts)
    if req_m is None and resp_m is None:
        r.add("FAIL", "exchange", "the container holds no message")
        return r
    for m in (req_m, resp_m):
        if m is None:
            continue
        _check_message(
            m,
            expected=_expected_signer(m.kind, req, resp),
            log_instance=log_instance,
            trust=store,
            freshness_override=ocsp_freshness_s,
            max_delay=max_delay,
            later_stamped=m is req_m
            and resp_m is not None
            and (resp_m.timestamp is not None or resp_m.hash_chain_raw is not None),
            r=r,
        )
    _check_exchange(ev.xroad_id, req_m, resp_m, req, resp, r)
    return r


def _check_exchange(
    xroad_id: str,
    req_m: Message | None,
    resp_m: Message | None,
    req: RestRequest | None,
    resp: RestResponse | None,
    r: Report,
) -> None:
    if req_m is None or resp_m is None:
        which = "request" if req_m is not None else "response"
        r.add("INFO", "exchange", f"the container holds only the {which}")
        return
    if req is None or resp is None:
        r.add("FAIL", "exchange", "not checked: a header part does not parse")
        return
    try:
        check_response_matches(req, resp, req_m.body or b"")
        if req.xroad_id != xroad_id:
            raise FederationError(f"X-Road-Id {req.xroad_id} is not the manifest's {xroad_id}")
    except FederationError as exc:
        msg = getattr(exc, "message", None) or str(exc)
        r.add("FAIL", "exchange", str(msg))
        return
    r.add(
        "OK",
        "exchange",
        f"response answers the request (X-Road-Id {xroad_id}, client, service, request hash)",
    )


def verify_container(
    data: bytes,
    *,
    anchors: Sequence[ConfigurationAnchor] = (),
    trust: TrustStore | None = None,
    ocsp_freshness_s: float | None = None,
    max_timestamp_delay_s: float | None = None,
    source: str = "container",
) -> Report:
    """Unpack and verify; ConfigError when ``data`` is not a container at all or an
    option is out of range."""
    return verify_unpacked(
        unpack(data, source=source),
        anchors=anchors,
        trust=trust,
        ocsp_freshness_s=ocsp_freshness_s,
        max_timestamp_delay_s=max_timestamp_delay_s,
    )


def report_text(report: Report) -> str:
    lines = [v.line() for v in report.verdicts]
    n_fail = len(report.failed())
    if n_fail:
        lines.append(f"FAILED: {n_fail} check(s) failed")
    elif report.exit_code == EXIT_PENDING:
        lines.append(
            "INCOMPLETE: nothing failed, but a time-stamp is missing (PENDING is unverifiable)"
        )
    else:
        lines.append("VERIFIED")
    return "\n".join(lines)


def report_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2)
