"""Export -> verify round trips, tampering, revocation, pending time-stamps."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from federation.errors import ConfigError
from federation.evidence import (
    Report,
    TrustStore,
    Verdict,
    export_exchange,
    load_ca_option,
    verify_container,
)
from federation.evidence._checks import (
    CheckFailed,
    check_ocsp,
    check_signature_value,
    check_signer_chain,
    check_timestamp,
    parse_signature,
)
from federation.evidence._container import MANIFEST, digests, unpack
from federation.evidence._verify import report_text
from federation.globalconf import ConfigurationAnchor
from federation.identifiers import ClientId, ServiceId
from federation.pki import Credential
from federation.securityserver import Envelope, MessageLog, signed_data
from tests.evidence import fakerun
from tests.evidence.fakerun import EE_CLIENT, EE_SERVICE, FI_CLIENT, FI_SERVICE, FakeRun


def anchors(run: FakeRun) -> list[ConfigurationAnchor]:
    return [ConfigurationAnchor.load(str(k.anchor_path)) for k in run.kits.values()]


def cas(run: FakeRun) -> TrustStore:
    return TrustStore([load_ca_option(str(k.ca_path)) for k in run.kits.values()])


def failed_checks(report: Report) -> set[str]:
    return {v.check for v in report.failed()}


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def rezip(items: dict[str, bytes], *, fix_manifest: bool) -> bytes:
    """Rebuild a container from entries; optionally recompute the manifest digests (a
    forger who updates the manifest too)."""
    if fix_manifest:
        m = json.loads(items[MANIFEST])
        for e in m["entries"]:
            data = items[e["path"]]
            e.update(size=len(data), **digests(data))
        items = {**items, MANIFEST: json.dumps(m).encode()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(("client", "service"), [(EE_CLIENT, FI_SERVICE), (FI_CLIENT, EE_SERVICE)])
@pytest.mark.parametrize("side", ["client", "provider"])
def test_round_trip(run: FakeRun, client: ClientId, service: ServiceId, side: str) -> None:
    xid = run.exchange(client, service)
    run.exchange(client, service, body=None)  # another exchange in the same batch
    run.stamp()
    data, meta = export_exchange(run.run_dir, xid, side=side)
    assert meta["side"] == side
    names = set(entries(data))
    for m in ("request", "response"):
        for f in (
            "header-part.bin",
            "body.bin",
            "signed-data.bin",
            "signature.p7s",
            "signer-chain.pem",
            "ocsp-0.der",
            "hash-chain.json",
            "hash-chain-last-step.bin",
            "timestamp.tst",
        ):
            assert f"{m}/{f}" in names
    assert next(iter(entries(data))) == "mimetype"
    for report in (
        verify_container(data, anchors=anchors(run)),
        verify_container(data, trust=cas(run)),
    ):
        assert report.ok, [v.line() for v in report.failed()]
        assert report.exit_code == 0
        checks = {v.check for v in report.verdicts if v.status == "OK"}
        for m in ("request", "response"):
            for c in ("signature", "certificate", "OCSP", "hash chain", "time-stamp"):
                assert f"{m} {c}" in checks
        assert {"manifest", "exchange"} <= checks


def test_anchor_of_an_uninvolved_instance_is_not_a_failure(run: FakeRun) -> None:
    # one --anchor per instance of the run verifies every exchange of the run, intra-FI
    # ones included; the EE anchor is then only noted
    xid = run.exchange(FI_CLIENT, FI_SERVICE)
    run.stamp()
    # (the fake run has one security server per instance, so both sides of an intra-FI
    # exchange share one log: the provider side holds both OCSP responses)
    data, _ = export_exchange(run.run_dir, xid, side="provider")
    report = verify_container(data, anchors=anchors(run))
    assert report.ok, [v.line() for v in report.failed()]
    (ee,) = [v for v in report.verdicts if v.check == "trust EE"]
    assert ee.status == "INFO"
    assert "involves only FI" in ee.message
    # without FI's anchor nothing vouches for the FI signers
    (ee_anchor,) = [a for a in anchors(run) if a.instance == "EE"]
    alone = verify_container(data, anchors=[ee_anchor])
    assert {"request certificate", "response certificate"} <= failed_checks(alone)


def test_bodyless_exchange_round_trip(run: FakeRun) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE, body=None, response_body=None)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid)
    assert "request/body.bin" not in entries(data)
    assert verify_container(data, trust=cas(run)).ok


TAMPER = [
    ("request/body.bin", {"request signature"}),
    ("response/body.bin", {"response signature"}),
    ("request/header-part.bin", {"request signature"}),
    ("response/header-part.bin", {"response signature"}),
    ("request/signed-data.bin", {"request signed-data"}),
    ("request/signature.p7s", {"request signature", "request certificate"}),
    ("response/signature.p7s", {"response signature", "response certificate"}),
    ("request/signer-chain.pem", {"request certificate"}),
    ("request/ocsp-0.der", {"request OCSP"}),
    ("response/ocsp-0.der", {"response OCSP"}),
    ("request/timestamp.tst", {"request time-stamp"}),
    ("response/timestamp.tst", {"response time-stamp"}),
    ("request/hash-chain.json", {"request hash chain"}),
    ("response/hash-chain.json", {"response hash chain"}),
    ("request/hash-chain-last-step.bin", {"request hash chain"}),
]


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeRun, bytes]]:
    """One stamped EE->FI exchange exported from the client side (read-only tests)."""
    run = FakeRun.create(tmp_path_factory.mktemp("sealed") / "run")
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.exchange(FI_CLIENT, EE_SERVICE)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid, side="client")
    yield run, data
    run.close()


@pytest.mark.parametrize(("path", "checks"), TAMPER)
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("fix_manifest", [False, True])
def test_flipped_byte_fails_the_right_check(
    sealed: tuple[FakeRun, bytes], path: str, checks: set[str], where: float, fix_manifest: bool
) -> None:
    run, stamped = sealed
    items = entries(stamped)
    data = bytearray(items[path])
    pos = min(int(len(data) * where), len(data) - 1)
    data[pos] ^= 0x01
    items[path] = bytes(data)
    report = verify_container(rezip(items, fix_manifest=fix_manifest), trust=cas(run))
    failed = failed_checks(report)
    assert failed & checks, (pos, [v.line() for v in report.verdicts])
    assert ("manifest" in failed) is (not fix_manifest)
    assert report.exit_code == 1
    # unrelated evidence still verifies: the check names the damage, not everything
    other = "response" if path.startswith("request") else "request"
    assert f"{other} signature" not in failed


def _flips(data: bytes) -> Iterator[tuple[int, bytes]]:
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 0x01
        yield pos, bytes(b)


def _fails(check: Callable[[bytes], object], data: bytes) -> bool:
    try:
        check(data)
    except Exception:  # the verifier turns any exception on untrusted bytes into FAIL
        return True
    return False


def test_every_byte_of_the_signature(sealed: tuple[FakeRun, bytes]) -> None:
    """Exhaustive: no flipped byte (xor 0x01) of a CMS signature passes its checks."""
    run, stamped = sealed
    msg = unpack(stamped).evidence.messages["request"]
    trust = cas(run)
    data = signed_data(msg.header_part, msg.body)

    def check(sig: bytes) -> None:
        parsed = parse_signature(sig)
        check_signature_value(parsed, data)
        check_signer_chain(
            parsed, roots=trust.roots("EE"), intermediates=trust.intermediates("EE"), at=run.now
        )

    check(msg.signature)
    passed = [pos for pos, sig in _flips(msg.signature) if not _fails(check, sig)]
    assert passed == []


def test_every_byte_of_the_timestamp_and_ocsp(sealed: tuple[FakeRun, bytes]) -> None:
    """Exhaustive: no flipped byte of a time-stamp token or an OCSP response passes."""
    run, stamped = sealed
    msg = unpack(stamped).evidence.messages["request"]
    chain, token = msg.hash_chain, msg.timestamp
    assert chain is not None
    assert token is not None
    trust = cas(run)
    ee = run.kits["EE"]

    def ts(tok: bytes) -> None:
        check_timestamp(
            tok,
            stamped=chain.stamped,
            roots=trust.roots("EE"),
            intermediates=trust.intermediates("EE"),
            approved_tsas=[ee.tsa.credential.cert],
        )

    def oc(der: bytes) -> None:
        check_ocsp(
            [der],
            cert=ee.sign[EE_CLIENT.member].cert,
            issuer=ee.ca.issuer,
            at=run.now,
            freshness_s=3600,
            approved_responders=[ee.responder.responder.cert],
        )

    ts(token)
    oc(msg.ocsp_responses[0])
    assert [p for p, t in _flips(token) if not _fails(ts, t)] == []
    assert [p for p, d in _flips(msg.ocsp_responses[0]) if not _fails(oc, d)] == []


def test_unlisted_entry_fails_manifest(sealed: tuple[FakeRun, bytes]) -> None:
    run, stamped = sealed
    items = entries(stamped)
    items["request/extra.txt"] = b"hello"
    report = verify_container(rezip(items, fix_manifest=False), trust=cas(run))
    assert failed_checks(report) == {"manifest"}


def test_removed_entry_fails_manifest(sealed: tuple[FakeRun, bytes]) -> None:
    run, stamped = sealed
    items = entries(stamped)
    del items["response/ocsp-0.der"]
    report = verify_container(rezip(items, fix_manifest=False), trust=cas(run))
    assert {"manifest", "response OCSP"} <= failed_checks(report)


def test_wrong_trust_fails(sealed: tuple[FakeRun, bytes], tmp_path: Path) -> None:
    _, stamped = sealed
    other = FakeRun.create(tmp_path / "other")
    try:
        report = verify_container(stamped, trust=cas(other))
        assert {"request certificate", "response certificate", "request time-stamp"} <= (
            failed_checks(report)
        )
        # another federation's anchors do not verify this container's configuration
        report = verify_container(stamped, anchors=anchors(other))
        assert {"trust EE", "trust FI"} <= failed_checks(report)
    finally:
        other.close()


def test_one_instance_trusted_only(sealed: tuple[FakeRun, bytes]) -> None:
    run, stamped = sealed
    ee_only = TrustStore([load_ca_option(f"EE={run.kits['EE'].ca_path}")])
    report = verify_container(stamped, trust=ee_only)
    failed = failed_checks(report)
    assert "request certificate" not in failed  # EE client signed the request
    assert "response certificate" in failed  # the FI signature has no trusted root


def test_revoked_before_signing_fails(run: FakeRun) -> None:
    ee = run.kits["EE"]
    cred = ee.ca.issue_sign(EE_CLIENT.member, now=run.now - 3600)
    ee.responder.revoke(cred.cert, run.now - 600, "keyCompromise")
    revoked = ee.ocsp_for(cred, run.now - 5)
    xid = run.exchange(EE_CLIENT, FI_SERVICE, signer=cred, client_ocsp=revoked)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid)
    report = verify_container(data, anchors=anchors(run))
    assert failed_checks(report) == {"request OCSP"}
    (line,) = report.failed()
    assert "REVOKED" in line.message
    assert "keyCompromise" in line.message


def test_stale_ocsp_fails(run: FakeRun) -> None:
    ee = run.kits["EE"]
    old = ee.ocsp_for(ee.sign[EE_CLIENT.member], run.now - 4000)
    xid = run.exchange(EE_CLIENT, FI_SERVICE, client_ocsp=old)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid)
    report = verify_container(data, anchors=anchors(run))
    assert failed_checks(report) == {"request OCSP"}
    assert "stale" in report.failed()[0].message or "nextUpdate" in report.failed()[0].message


def test_ocsp_of_unapproved_responder_fails_with_anchor(run: FakeRun) -> None:
    """A delegate the CA issued but the shared parameters do not list."""
    from federation.pki import OcspResponder

    ee = run.kits["EE"]
    rogue = OcspResponder(ee.ca, ee.ca.issue_ocsp_responder(now=run.now - 3600))
    from federation.pki import build_ocsp_request

    cred = ee.sign[EE_CLIENT.member]
    der = rogue.respond(build_ocsp_request(cred.cert, ee.ca.issuer), run.now)
    xid = run.exchange(EE_CLIENT, FI_SERVICE, client_ocsp=der)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid)
    assert failed_checks(verify_container(data, anchors=anchors(run))) == {"request OCSP"}
    # a bare --ca cannot tell approved delegates apart: it accepts any delegate of the CA
    assert verify_container(data, trust=cas(run)).ok


def test_not_yet_timestamped_is_pending(run: FakeRun) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    data, _ = export_exchange(run.run_dir, xid)
    report = verify_container(data, trust=cas(run))
    assert report.failed() == []
    pending = [v for v in report.verdicts if v.status == "PENDING"]
    assert {v.check for v in pending} == {"request time-stamp", "response time-stamp"}
    assert report.exit_code == 3
    assert "timestamp.tst" not in " ".join(entries(data))


def test_exchange_mismatch_fails(run: FakeRun) -> None:
    """A response from another exchange swapped in (with a consistent manifest)."""
    a = run.exchange(EE_CLIENT, FI_SERVICE)
    b = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    ea, _ = export_exchange(run.run_dir, a)
    eb, _ = export_exchange(run.run_dir, b)
    items = entries(ea)
    for name, data in entries(eb).items():
        if name.startswith("response/"):
            items[name] = data
    report = verify_container(rezip(items, fix_manifest=True), trust=cas(run))
    assert failed_checks(report) == {"exchange"}


def test_export_errors(run: FakeRun, tmp_path: Path) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE, provider_logs=False)
    with pytest.raises(ConfigError, match="in none of the 2 message log"):
        export_exchange(run.run_dir, "EE-nope")
    with pytest.raises(ConfigError, match="no provider record"):
        export_exchange(run.run_dir, xid, side="provider")
    with pytest.raises(ConfigError, match="not a run directory"):
        export_exchange(tmp_path, xid)
    with pytest.raises(ConfigError, match="client or provider"):
        export_exchange(run.run_dir, xid, side="both")


@pytest.mark.parametrize(
    "data", [b"", b"not a zip", b"PK\x03\x04garbage", b"PK\x05\x06" + bytes(18)]
)
def test_not_a_container(data: bytes, sealed: tuple[FakeRun, bytes]) -> None:
    with pytest.raises(ConfigError, match="not an xfed evidence container"):
        verify_container(data, trust=cas(sealed[0]))


# --- times: what the signer and the manifest assert is not trusted -----------------------


def verdict(report: Report, check: str) -> Verdict:
    (v,) = [v for v in report.verdicts if v.check == check]
    return v


def edit_manifest(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The container with its (unsigned) manifest changed, entries dropped from the
    manifest when they were removed from ``items``."""
    items = entries(data)
    m = json.loads(items[MANIFEST])
    change(m)
    m["entries"] = [e for e in m["entries"] if e["path"] in items]
    items[MANIFEST] = json.dumps(m).encode()
    return rezip(items, fix_manifest=True)


def test_timestamp_long_after_signing_is_reported_and_fails_only_under_a_policy(
    run: FakeRun,
) -> None:
    """A genTime long after the (signer-asserted) signingTime: honest after a long
    time-stamping outage (the backlog is stamped when the TSA is back), or a backdated
    signingTime. Reported by default; a failure under --max-timestamp-delay."""
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp(now=run.now + 18000)  # well past the 14400 s default
    data, _ = export_exchange(run.run_dir, xid)
    report = verify_container(data, trust=cas(run))
    assert report.ok
    v = verdict(report, "request time-stamp delay")
    assert v.status == "INFO"
    assert "more than 14400 s" in v.message
    assert "outage" in v.message
    assert "backdated" in v.message
    strict = verify_container(data, trust=cas(run), max_timestamp_delay_s=600)
    assert failed_checks(strict) == {"request time-stamp delay", "response time-stamp delay"}
    assert "backdated" in verdict(strict, "request time-stamp delay").message
    assert strict.exit_code == 1
    assert verify_container(data, trust=cas(run), max_timestamp_delay_s=20000).ok
    # an unsigned manifest cannot loosen the reported limit
    loose = edit_manifest(data, lambda m: m.update(timers={"timestamp_failure_period_s": 1e9}))
    assert verdict(verify_container(loose, trust=cas(run)), "request time-stamp delay").status == (
        "INFO"
    )


def test_timestamp_delay_limit_is_the_runs_scaled_failure_period(run: FakeRun) -> None:
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    manifest["instances"]["EE"]["timers"] = {"timestamp_failure_period_s": 240.0}
    (run.run_dir / "manifest.json").write_text(json.dumps(manifest))
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp(now=run.now + 600)
    data, meta = export_exchange(run.run_dir, xid)
    assert meta["timers"] == {"timestamp_failure_period_s": 240.0}
    report = verify_container(data, trust=cas(run))
    v = verdict(report, "request time-stamp delay")
    assert v.status == "INFO"  # a backlog after an outage looks the same: reported
    assert "more than 240 s (the run's acceptable time-stamp failure period)" in v.message
    ok = verify_container(data, trust=cas(run), max_timestamp_delay_s=900)
    assert verdict(ok, "request time-stamp delay").status == "OK"


def test_timestamp_delay_ok_line(sealed: tuple[FakeRun, bytes]) -> None:
    run, data = sealed
    report = verify_container(data, trust=cas(run))
    v = verdict(report, "request time-stamp delay")
    assert v.status == "OK"
    assert "limit 14400 s" in v.message


def _sign_without_attributes(
    kind: Literal["request", "response"],
    header_part: bytes,
    body: bytes | None,
    *,
    signer: Credential,
    ocsp_responses: Sequence[bytes] = (),
) -> Envelope:
    """A valid CMS signature without signed attributes, so without signingTime."""
    body = body or None
    builder = pkcs7.PKCS7SignatureBuilder().set_data(signed_data(header_part, body))
    builder = builder.add_signer(signer.cert, signer.key, hashes.SHA512())
    for c in signer.chain:
        builder = builder.add_certificate(c)
    sig = builder.sign(
        serialization.Encoding.DER,
        [
            pkcs7.PKCS7Options.DetachedSignature,
            pkcs7.PKCS7Options.Binary,
            pkcs7.PKCS7Options.NoAttributes,
        ],
    )
    return Envelope(
        kind=kind,
        header_part=header_part,
        body=body,
        signature=sig,
        ocsp_responses=tuple(ocsp_responses),
    )


def test_no_signing_time_uses_gen_time_not_the_manifest(
    run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fakerun, "sign_envelope", _sign_without_attributes)
    ee = run.kits["EE"]
    # GOOD, but its nextUpdate passed before the time-stamp: only an earlier check time,
    # such as the manifest's unsigned record time, would accept it
    old = ee.ocsp_for(ee.sign[EE_CLIENT.member], run.now - 3500)
    xid = run.exchange(EE_CLIENT, FI_SERVICE, client_ocsp=old)
    pending, _ = export_exchange(run.run_dir, xid)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid)
    sig = parse_signature(unpack(data).evidence.messages["request"].signature)
    assert sig.signing_time is None

    report = verify_container(data, trust=cas(run))
    cert = verdict(report, "request certificate")
    assert cert.status == "OK"
    assert "genTime: the signature has no signingTime" in cert.message
    assert failed_checks(report) == {"request OCSP"}

    def backdate(m: dict[str, Any]) -> None:
        m["messages"]["request"]["time"] = run.now - 3400

    report = verify_container(edit_manifest(data, backdate), trust=cas(run))
    assert failed_checks(report) == {"request OCSP"}

    # not stamped: nothing signed gives a time, so the signer is not checked at all
    report = verify_container(edit_manifest(pending, backdate), trust=cas(run))
    assert {"request certificate", "request OCSP"} <= failed_checks(report)
    assert (
        "no signingTime and no verified time-stamp"
        in verdict(report, "request certificate").message
    )


def _strip_stamp(data: bytes, *kinds: str) -> bytes:
    """Remove the time-stamp and hash chain of ``kinds`` and claim, in the unsigned
    manifest, that they were never stamped."""
    items = entries(data)
    for kind in kinds:
        for name in ("timestamp.tst", "hash-chain.json", "hash-chain-last-step.bin"):
            del items[f"{kind}/{name}"]
    m = json.loads(items[MANIFEST])
    for kind in kinds:
        m["messages"][kind]["timestamped"] = False
        m["messages"][kind].pop("timestamp", None)
    m["entries"] = [e for e in m["entries"] if e["path"] in items]
    items[MANIFEST] = json.dumps(m).encode()
    return rezip(items, fix_manifest=True)


def test_removed_request_timestamp_is_not_pending(sealed: tuple[FakeRun, bytes]) -> None:
    """The response is stamped, so its request (logged before it) was stamped too."""
    run, data = sealed
    report = verify_container(_strip_stamp(data, "request"), trust=cas(run))
    assert failed_checks(report) == {"request time-stamp"}
    assert "time-stamp was removed" in verdict(report, "request time-stamp").message
    assert report.exit_code == 1


def test_pending_that_cannot_be_told_from_removal_says_incomplete(
    sealed: tuple[FakeRun, bytes],
) -> None:
    run, data = sealed
    for kinds in (("response",), ("request", "response")):
        report = verify_container(_strip_stamp(data, *kinds), trust=cas(run))
        assert report.failed() == []
        assert report.exit_code == 3
        for kind in kinds:
            v = verdict(report, f"{kind} time-stamp")
            assert v.status == "PENDING"
            assert "evidence incomplete" in v.message
            assert "unverifiable" in v.message
        assert report_text(report).splitlines()[-1].startswith("INCOMPLETE")


def test_export_reads_again_what_was_stamped_meanwhile(
    run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time-stamper of a live log stores a batch between the exporter's reads of the
    request and the response: the container still shows both stamped."""
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    proof = MessageLog.chain_proof
    calls: list[int] = []

    def stamped_after_first_read(self: MessageLog, record_id: int) -> Any:
        out = proof(self, record_id)
        calls.append(record_id)
        if len(calls) == 1:
            run.stamp("EE")
        return out

    monkeypatch.setattr(MessageLog, "chain_proof", stamped_after_first_read)
    data, _ = export_exchange(run.run_dir, xid, side="client")
    assert verify_container(data, trust=cas(run)).exit_code == 0


# --- duration options ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.0, 0])
@pytest.mark.parametrize("option", ["ocsp_freshness_s", "max_timestamp_delay_s"])
def test_bad_duration_options_are_refused(
    sealed: tuple[FakeRun, bytes], option: str, value: float
) -> None:
    run, data = sealed
    kwargs: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=r"must be a finite number of seconds > 0"):
        verify_container(data, trust=cas(run), **kwargs)


def test_ocsp_freshness_option_is_honoured(run: FakeRun) -> None:
    ee = run.kits["EE"]
    older = ee.ocsp_for(ee.sign[EE_CLIENT.member], run.now - 600)
    xid = run.exchange(EE_CLIENT, FI_SERVICE, client_ocsp=older)
    run.stamp()
    data, _ = export_exchange(run.run_dir, xid)
    assert verify_container(data, trust=cas(run)).ok
    strict = verify_container(data, trust=cas(run), ocsp_freshness_s=60)
    assert failed_checks(strict) == {"request OCSP"}


# --- OCSP: a revocation anywhere in the container wins over a GOOD answer ---------------------


def test_revoked_response_beside_a_good_one_fails(run: FakeRun) -> None:
    ee = run.kits["EE"]
    cred = ee.ca.issue_sign(EE_CLIENT.member, now=run.now - 3600)
    good = ee.ocsp_for(cred, run.now - 900)  # fresh at signing, from before the revocation
    ee.responder.revoke(cred.cert, run.now - 600, "keyCompromise")
    revoked = ee.ocsp_for(cred, run.now - 5)
    revoked_later = ee.ocsp_for(cred, run.now + 3000)  # produced long after signing

    def check(responses: list[bytes], at: float = run.now) -> str:
        return check_ocsp(
            responses,
            cert=cred.cert,
            issuer=ee.ca.issuer,
            at=at,
            freshness_s=3600,
            approved_responders=[ee.responder.responder.cert],
        )

    assert check([good]).startswith("GOOD")
    for responses in ([good, revoked], [revoked, good], [good, revoked_later]):
        with pytest.raises(CheckFailed, match=r"REVOKED since .*keyCompromise.* at or before"):
            check(responses)
    # signed before the revocation: the later REVOKED answers do not change that
    assert check([good, revoked, revoked_later], at=run.now - 700).startswith("GOOD")
    # a REVOKED answer from a responder the instance does not list proves nothing
    from federation.pki import OcspResponder, build_ocsp_request

    rogue = OcspResponder(ee.ca, ee.ca.issue_ocsp_responder(now=run.now - 3600))
    rogue.revoke(cred.cert, run.now - 600, "keyCompromise")
    rogue_says = rogue.respond(build_ocsp_request(cred.cert, ee.ca.issuer), run.now - 5)
    assert check([good, rogue_says]).startswith("GOOD")
