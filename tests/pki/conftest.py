"""Session-wide test PKIs (keys are made once: RSA keygen is ~50 ms each) and openssl helpers.

``pki_ec`` (instance EE) and ``pki_rsa`` (instance FI) each hold a CA and one certificate of
every profile, also written as PEM files into ``Pki.dir``. ``pki_foreign`` is an unrelated
CA for "wrong trust anchor" tests.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from federation.identifiers import ClientId, SecurityServerId
from federation.pki import CertificateAuthority, Credential, KeyType

MEMBER = "GOV/70000001"


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    auth: Credential
    sign: Credential
    ocsp: Credential
    tsa: Credential
    server_id: SecurityServerId
    member_id: ClientId
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


def build_pki(instance: str, key_type: KeyType, now: float, directory: Path) -> Pki:
    ca = CertificateAuthority.create(instance, now=now, key_type=key_type)
    server_id = SecurityServerId.parse(f"{instance}/{MEMBER}/ss1")
    member_id = ClientId.parse(f"{instance}/{MEMBER}")
    pki = Pki(
        ca=ca,
        auth=ca.issue_auth(server_id, now=now),
        sign=ca.issue_sign(member_id, now=now),
        ocsp=ca.issue_ocsp_responder(now=now),
        tsa=ca.issue_tsa(now=now),
        server_id=server_id,
        member_id=member_id,
        dir=directory,
    )
    ca.save(directory)
    for name in ("auth", "sign", "ocsp", "tsa"):
        getattr(pki, name).save(directory, name)
    return pki


@pytest.fixture(scope="session")
def now() -> float:
    """The wall-clock time the session's certificates were issued at."""
    return time.time()


@pytest.fixture(scope="session")
def pki_ec(now: float, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki("EE", "ec", now, tmp_path_factory.mktemp("pki-ee"))


@pytest.fixture(scope="session")
def pki_rsa(now: float, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki("FI", "rsa", now, tmp_path_factory.mktemp("pki-fi"))


@pytest.fixture(scope="session")
def pki_foreign(now: float, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki("LV", "ec", now, tmp_path_factory.mktemp("pki-lv"))


@pytest.fixture(params=["ec", "rsa"])
def pki(request: pytest.FixtureRequest) -> Pki:
    """Both key types, for tests that must hold for EC and RSA."""
    value: Pki = request.getfixturevalue(f"pki_{request.param}")
    return value


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the openssl command line (the independent verifier); stdout+stderr as text."""
    return subprocess.run(
        ["openssl", *args],
        input=input.decode("latin-1") if input is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def aopenssl(*args: str) -> tuple[int, str]:
    """openssl from inside a trio test (the servers keep running): (returncode, output)."""
    proc = await trio.run_process(
        ["openssl", *args], capture_stdout=True, capture_stderr=True, check=False
    )
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()
