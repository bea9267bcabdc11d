"""The CLI entry points and the openssl commands of docs/evidence.md."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from federation.cli import build_parser
from federation.errors import ConfigError, FederationError
from federation.evidence import cmd_audit, cmd_export, cmd_verify
from tests.evidence.fakerun import EE_CLIENT, EE_SERVICE, FI_CLIENT, FI_SERVICE, FakeRun


def parse(*argv: str) -> argparse.Namespace:
    """The real ``xfed`` parser (its commands import their implementation lazily)."""
    return build_parser().parse_args(["evidence", *argv])


def test_export_verify_audit(
    run: FakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.exchange(FI_CLIENT, EE_SERVICE)
    run.stamp()
    out = tmp_path / "ev.zip"
    args = parse("export", "--run-dir", str(run.run_dir), "--id", xid, "-o", str(out))
    assert cmd_export(args) == 0
    assert "client side" in capsys.readouterr().out

    ee, fi = run.kits["EE"], run.kits["FI"]
    args = parse(
        "verify", str(out), "--anchor", str(ee.anchor_path), "--anchor", str(fi.anchor_path)
    )
    assert cmd_verify(args) == 0
    text = capsys.readouterr().out
    assert text.rstrip().endswith("VERIFIED")
    assert all(line.split()[0] in ("OK", "INFO", "VERIFIED") for line in text.splitlines())

    args = parse("verify", str(out), "--ca", f"EE={ee.ca_path}", "--ca", str(fi.ca_path), "--json")
    assert cmd_verify(args) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    # default output name, provider side
    args = parse("export", "--run-dir", str(run.run_dir), "--id", xid, "--side", "provider")
    args.output = tmp_path / "p.zip"
    assert cmd_export(args) == 0

    assert cmd_audit(parse("audit", "--run-dir", str(run.run_dir))) == 0
    assert "records 8: verified 8" in capsys.readouterr().out
    assert cmd_audit(parse("audit", "--run-dir", str(run.run_dir), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["verified"] == 8


def test_verify_failure_exit_code(
    run: FakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    out = tmp_path / "ev.zip"
    cmd_export(parse("export", "--run-dir", str(run.run_dir), "--id", xid, "-o", str(out)))
    capsys.readouterr()
    # only EE is trusted: the FI signature and its chain cannot verify
    assert cmd_verify(parse("verify", str(out), "--ca", f"EE={run.kits['EE'].ca_path}")) == 1
    text = capsys.readouterr().out
    assert "FAIL    response certificate" in text
    assert "FAILED" in text.splitlines()[-1]


def test_pending_exit_code(
    run: FakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    out = tmp_path / "ev.zip"
    cmd_export(parse("export", "--run-dir", str(run.run_dir), "--id", xid, "-o", str(out)))
    args = parse(
        "verify", str(out), "--ca", str(run.kits["EE"].ca_path), "--ca", str(run.kits["FI"].ca_path)
    )
    assert cmd_verify(args) == 3
    assert "PENDING request time-stamp" in capsys.readouterr().out


def test_user_mistakes_are_config_errors(run: FakeRun, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give the root of trust"):
        cmd_verify(parse("verify", str(tmp_path / "x.zip")))
    with pytest.raises(ConfigError, match="cannot read the container"):
        cmd_verify(parse("verify", str(tmp_path / "x.zip"), "--ca", str(run.kits["EE"].ca_path)))
    with pytest.raises(ConfigError, match="cannot read CA bundle"):
        cmd_verify(parse("verify", str(tmp_path / "x.zip"), "--ca", str(tmp_path / "nope.pem")))
    with pytest.raises(ConfigError, match="root"):
        cmd_verify(parse("verify", "x.zip", "--ca", str(run.kits["EE"].dir / "pki" / "ocsp.pem")))
    with pytest.raises(ConfigError, match="anchor"):
        cmd_verify(parse("verify", "x.zip", "--anchor", str(tmp_path / "nope.json")))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not an xfed evidence container"):
        cmd_verify(parse("verify", str(bad), "--ca", str(run.kits["EE"].ca_path)))
    with pytest.raises(ConfigError, match="in none of"):
        cmd_export(parse("export", "--run-dir", str(run.run_dir), "--id", "EE-unknown"))
    with pytest.raises(ConfigError, match="not a run directory"):
        cmd_audit(parse("audit", "--run-dir", str(tmp_path)))


# --- without xfed: the openssl commands of docs/evidence.md ----------------------------

OPENSSL = shutil.which("openssl")


def _shell(cwd: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    def sh(cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, check=False)

    return sh


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
@pytest.mark.parametrize("side", ["client", "provider"])
def test_openssl_commands(run: FakeRun, tmp_path: Path, side: str) -> None:
    xid = run.exchange(FI_CLIENT, EE_SERVICE)
    run.stamp()
    out = tmp_path / "ev.zip"
    cmd_export(
        parse("export", "--run-dir", str(run.run_dir), "--id", xid, "--side", side, "-o", str(out))
    )
    d = tmp_path / "ev"
    with zipfile.ZipFile(out) as z:
        z.extractall(d)
    signer_ca = {"request": run.kits["FI"].ca_path, "response": run.kits["EE"].ca_path}
    tsa_ca = run.kits["FI" if side == "client" else "EE"].ca_path
    for m in ("request", "response"):
        sh = _shell(d / m)
        inter = Path(signer_ca[m]).parent / "intermediate.pem"

        # the signature over the signed-data document
        r = sh(
            f"openssl cms -verify -binary -inform DER -in signature.p7s -content signed-data.bin "
            f"-CAfile {signer_ca[m]} -purpose any -out /dev/null"
        )
        assert r.returncode == 0, r.stderr
        assert "Verification successful" in r.stderr
        # the signed-data document is the header part plus the body digest line
        r = sh(
            "{ cat header-part.bin; printf '\\r\\nbody-digest:sha-512:';"
            " openssl dgst -sha512 -r body.bin | cut -c1-128 | tr -d '\\n'; printf '\\r\\n'; }"
            " | cmp - signed-data.bin"
        )
        assert r.returncode == 0, r.stdout + r.stderr
        # the time-stamp over the last hash-chain step
        r = sh(
            f"openssl ts -verify -data hash-chain-last-step.bin -in timestamp.tst -token_in "
            f"-CAfile {tsa_ca}"
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Verification: OK" in r.stdout
        # the hash chain, step by step (python only for reading the JSON)
        chain = json.loads((d / m / "hash-chain.json").read_text())
        r = sh("openssl dgst -sha512 -r signature.p7s | cut -c1-128")
        assert r.stdout.strip() == chain["steps"][0]
        # the OCSP response about the signer
        (d / m / "signer.pem").write_text(
            (d / m / "signer-chain.pem").read_text().split("-----END CERTIFICATE-----")[0]
            + "-----END CERTIFICATE-----\n"
        )
        r = sh(
            f"openssl ocsp -respin ocsp-0.der -issuer {inter}"
            f" -cert signer.pem -CAfile {signer_ca[m]} -no_nonce"
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "signer.pem: good" in r.stdout
        assert "Response verify OK" in r.stderr

        # tampering is seen by openssl too
        body = (d / m / "body.bin").read_bytes()
        (d / m / "header-part.bin").write_bytes((d / m / "header-part.bin").read_bytes() + b"x")
        r = sh(
            "{ cat header-part.bin; printf '\\r\\nbody-digest:sha-512:';"
            " openssl dgst -sha512 -r body.bin | cut -c1-128 | tr -d '\\n'; printf '\\r\\n'; }"
            f" > tampered.bin; openssl cms -verify -binary -inform DER -in signature.p7s"
            f" -content tampered.bin -CAfile {signer_ca[m]} -purpose any -out /dev/null"
        )
        assert r.returncode != 0
        assert body


def test_export_skips_a_damaged_log(
    run: FakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The other side's log is not SQLite: the healthy side still exports, and asking for
    the damaged side is a one-line error naming the file."""
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    fi = run.kits["FI"].log
    fi.close()
    fi.path.write_bytes(b"this is not a message log\n" * 200)
    out = tmp_path / "ev.zip"
    args = parse("export", "--run-dir", str(run.run_dir), "--id", xid, "-o", str(out))
    assert cmd_export(args) == 0
    captured = capsys.readouterr()
    assert "client side" in captured.out
    assert f"skipped a damaged log: cannot read the message log {fi.path}: " in captured.err
    assert zipfile.is_zipfile(out)
    with pytest.raises(ConfigError, match=f"no provider record.*{fi.path}"):
        cmd_export(
            parse("export", "--run-dir", str(run.run_dir), "--id", xid, "--side", "provider")
        )
    with pytest.raises(FederationError, match=f"none of the 1 readable.*{fi.path}"):
        cmd_export(parse("export", "--run-dir", str(run.run_dir), "--id", "EE-unknown"))


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0"])
@pytest.mark.parametrize("option", ["--ocsp-freshness", "--max-timestamp-delay"])
def test_duration_options_out_of_range(
    run: FakeRun, tmp_path: Path, option: str, value: str
) -> None:
    xid = run.exchange(EE_CLIENT, FI_SERVICE)
    run.stamp()
    out = tmp_path / "ev.zip"
    cmd_export(parse("export", "--run-dir", str(run.run_dir), "--id", xid, "-o", str(out)))
    args = parse("verify", str(out), "--ca", str(run.kits["EE"].ca_path), option, value)
    with pytest.raises(ConfigError, match=f"^{option} must be a finite number of seconds > 0"):
        cmd_verify(args)


def test_xfed_evidence_verify_takes_every_option(tmp_path: Path) -> None:
    # the options cmd_verify reads are on the real `xfed evidence verify` command
    args = parse(
        "verify", str(tmp_path / "x.zip"), "--ocsp-freshness", "60",
        "--max-timestamp-delay", "120", "--anchor", "a.json", "--ca", "EE=ca.pem", "--json",
    )  # fmt: skip
    assert (args.ocsp_freshness, args.max_timestamp_delay) == (60.0, 120.0)
    assert (args.anchor, args.ca, args.json) == (["a.json"], ["EE=ca.pem"], True)
