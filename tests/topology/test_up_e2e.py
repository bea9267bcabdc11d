"""``xfed up`` end to end, process per instance: the manifest contract checked with the
openssl command line, ``xfed revoke``, ``xfed status --json``, a crashed child reported, and
no orphan processes after stop or crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._poll import wait_for

ROOT = Path(__file__).resolve().parents[2]
XFED = [sys.executable, "-m", "federation.cli"]
READY_TIMEOUT_S = 90.0

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not a running orphan
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


class Up:
    """A running ``xfed up`` process and its manifest."""

    def __init__(self, run_dir: Path, *instances: str, extra: tuple[str, ...] = ()) -> None:
        self.run_dir = run_dir
        cmd = [*XFED, "up", *(str(ROOT / "instances" / i) for i in instances)]
        cmd += ["--run-dir", str(run_dir), "--time-scale", "60", *extra]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.output: list[str] = []
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "federation ready" in line:
                break
        else:  # pragma: no cover - diagnostic
            pass
        if not self.output or "federation ready" not in self.output[-1]:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"xfed up did not get ready:\n{''.join(self.output)}\n{err}")
        self.manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())

    def child_pids(self) -> list[int]:
        return [int(p["pid"]) for p in self.manifest.get("processes", {}).values()]

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    run = Up(tmp_path_factory.mktemp("up") / "run", "ee.yaml", "fi.yaml")
    yield run
    run.stop()


def _openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, timeout=30, cwd=cwd, check=False
    )


def test_manifest_contract(up: Up) -> None:
    m = up.manifest
    assert m["run_dir"] == str(up.run_dir)
    assert m["mode"] == "process-per-instance"
    assert set(m["processes"]) == {"chaos", "EE", "FI"}
    for inst in ("EE", "FI"):
        info = m["instances"][inst]
        for key in ("ca_cert",):
            assert Path(info[key]).is_absolute()
            assert Path(info[key]).exists()
        assert info["ocsp"]["url"].startswith("http://127.0.0.1:")
        assert info["tsa"]["url"].startswith("http://127.0.0.1:")
        assert Path(info["ocsp"]["cert"]).exists()
        assert Path(info["tsa"]["cert"]).exists()
        assert Path(info["central_server"]["anchor"]).exists()
        for ss in info["security_servers"].values():
            assert ss["client_url"].startswith("http://127.0.0.1:")
            assert Path(ss["auth_cert"]).exists()
            assert ss["server_address"].startswith("127.0.0.1:")
    assert {v["kind"] for v in m["chaos"]["links"].values()} == {
        "ss-ss",
        "ss-cs",
        "ss-ocsp",
        "ss-tsa",
        "cs-cs",
    }


def test_openssl_verifies_issued_chains(up: Up) -> None:
    info = up.manifest["instances"]["EE"]
    pki = Path(info["ca_cert"]).parent
    root, inter = pki / "root.pem", pki / "intermediate.pem"
    for ss in info["security_servers"].values():
        r = _openssl("verify", "-CAfile", str(root), "-untrusted", str(inter), ss["auth_cert"])
        assert r.returncode == 0, r.stderr
        assert ": OK" in r.stdout


def test_openssl_ocsp_good_then_revoked_by_xfed_revoke(up: Up) -> None:
    info = up.manifest["instances"]["FI"]
    pki = Path(info["ca_cert"]).parent
    cert = info["security_servers"]["FI/GOV/0245439-9/fi-ss2"]["auth_cert"]
    args = (
        "ocsp",
        "-url",
        info["ocsp"]["url"],
        "-issuer",
        str(pki / "intermediate.pem"),
        "-cert",
        cert,
        "-CAfile",
        info["ca_cert"],
    )
    r = _openssl(*args)
    assert r.returncode == 0, r.stderr
    assert "Response verify OK" in r.stderr + r.stdout
    assert f"{cert}: good" in r.stdout
    rv = subprocess.run(
        [*XFED, "revoke", "--run-dir", str(up.run_dir), cert],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert rv.returncode == 0, rv.stderr
    assert "revoked" in rv.stdout
    r = _openssl(*args)
    assert r.returncode == 0, r.stderr
    assert f"{cert}: revoked" in r.stdout
    subprocess.run(
        [*XFED, "revoke", "--undo", "--run-dir", str(up.run_dir), cert],
        check=True,
        capture_output=True,
        timeout=30,
    )
    assert f"{cert}: good" in _openssl(*args).stdout


def test_openssl_ts_verifies_a_token_from_the_tsa(up: Up, tmp_path: Path) -> None:
    info = up.manifest["instances"]["EE"]
    data = tmp_path / "data.bin"
    data.write_bytes(b"evidence \x00 bytes\r\n")
    q = _openssl(
        "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", "req.tsq", cwd=tmp_path
    )
    assert q.returncode == 0, q.stderr
    reply = subprocess.run(
        [
            "curl",
            "-sS",
            "--data-binary",
            "@req.tsq",
            "-H",
            "Content-Type: application/timestamp-query",
            "-o",
            "resp.tsr",
            info["tsa"]["url"],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert reply.returncode == 0, reply.stderr
    v = _openssl(
        "ts",
        "-verify",
        "-data",
        str(data),
        "-in",
        "resp.tsr",
        "-CAfile",
        str(Path(info["ca_cert"]).parent / "root.pem"),
        "-untrusted",
        str(Path(info["ca_cert"]).parent / "intermediate.pem"),
        cwd=tmp_path,
    )
    assert "Verification: OK" in v.stdout, v.stdout + v.stderr


def test_status_json_shows_verified_configuration(up: Up) -> None:
    r = subprocess.run(
        [*XFED, "status", "--run-dir", str(up.run_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    status = json.loads(r.stdout)["security_servers"]
    assert set(status) == {
        "EE/GOV/70000001/ee-ss1",
        "EE/GOV/74000091/ee-ss2",
        "FI/GOV/0245437-2/fi-ss1",
        "FI/GOV/0245439-9/fi-ss2",
    }
    for sid, st in status.items():
        held = st["globalconf"]
        assert set(held) == {"EE", "FI"}, sid
        assert all(h["verified"] for h in held.values())
        # expiry = download time + 600 s / 60 (time scale)
        for h in held.values():
            from federation.clock import parse_iso

            assert parse_iso(h["expires"]) > parse_iso(h["downloaded_at"])
            assert parse_iso(h["expires"]) - parse_iso(h["downloaded_at"]) <= 10.0


def test_a_cross_border_request_with_xfed_request(up: Up) -> None:
    r = subprocess.run(
        [
            *XFED,
            "request",
            "--run-dir",
            str(up.run_dir),
            "--client",
            "EE/GOV/70000001/consumer",
            "FI/GOV/0245437-2/tax/income/persons/38001010000/income",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("HTTP 200")
    assert "x-road-request-hash" in r.stdout.lower()


def test_stop_leaves_no_orphans(tmp_path: Path) -> None:
    run = Up(tmp_path / "run", "ee.yaml", "fi.yaml")
    pids = run.child_pids()
    assert len(pids) == 3
    code, _ = run.stop()
    assert code == 0
    wait_for(lambda: not any(_alive(p) for p in pids), 10)
    assert not [p for p in pids if _alive(p)]


def test_a_crashed_instance_is_reported_without_orphans(tmp_path: Path) -> None:
    run = Up(tmp_path / "run", "ee.yaml", "fi.yaml")
    pids = run.child_pids()
    fi = int(run.manifest["processes"]["FI"]["pid"])
    os.kill(fi, signal.SIGKILL)
    _out, err = run.proc.communicate(timeout=30)
    assert run.proc.returncode != 0
    assert "process FI was killed by SIGKILL" in err
    wait_for(lambda: not any(_alive(p) for p in pids), 10)
    assert not [p for p in pids if _alive(p)]
