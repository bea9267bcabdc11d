"""Issue every certificate an instance needs and lay it out in the run directory.

Layout under ``<run_dir>/<INST>/pki/``::

    root.pem intermediate.pem ca-bundle.pem (+ .key files, 0600)   the instance CA
    ocsp.pem ocsp.key ocsp-chain.pem                                 delegated OCSP responder
    tsa.pem tsa.key tsa-chain.pem                                    time-stamping authority
    ss/<server code>/auth.pem auth.key auth-chain.pem               security server auth cert
    members/<CLASS>.<CODE>/sign.pem sign.key sign-chain.pem          member signing cert
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from federation.identifiers import ClientId, SecurityServerId
from federation.pki import CertificateAuthority, Credential, KeyType


@dataclass(slots=True)
class InstancePki:
    """Every credential of one instance, and where it is on disk."""

    instance: str
    directory: Path
    ca: CertificateAuthority
    ocsp: Credential
    tsa: Credential
    auth: dict[SecurityServerId, Credential] = field(default_factory=dict)
    sign: dict[ClientId, Credential] = field(default_factory=dict)

    @property
    def ca_bundle_path(self) -> Path:
        return self.directory / "ca-bundle.pem"

    def auth_path(self, server: SecurityServerId) -> Path:
        return self.directory / "ss" / server.code / "auth.pem"

    def sign_path(self, member: ClientId) -> Path:
        return (
            self.directory / "members" / f"{member.member_class}.{member.member_code}" / "sign.pem"
        )

    def save(self) -> None:
        self.ca.save(self.directory)
        self.ocsp.save(self.directory, "ocsp")
        self.tsa.save(self.directory, "tsa")
        for server, cred in self.auth.items():
            cred.save(self.auth_path(server).parent, "auth")
        for member, cred in self.sign.items():
            cred.save(self.sign_path(member).parent, "sign")
        # the CA's record of issued serials changes with every leaf: save it last
        self.ca.save(self.directory)


def build_instance_pki(
    instance: str,
    directory: Path,
    *,
    servers: list[SecurityServerId],
    members: list[ClientId],
    now: float,
    key_type: KeyType = "ec",
) -> InstancePki:
    """A CA for ``instance`` and every leaf certificate its components need, saved."""
    ca = CertificateAuthority.create(instance, now=now, key_type=key_type)
    pki = InstancePki(
        instance,
        directory,
        ca,
        ocsp=ca.issue_ocsp_responder(now=now),
        tsa=ca.issue_tsa(now=now),
    )
    for server in servers:
        pki.auth[server] = ca.issue_auth(server, now=now)
    for member in members:
        pki.sign[member.member] = ca.issue_sign(member.member, now=now)
    pki.save()
    return pki


def load_instance_pki(
    instance: str,
    directory: Path,
    *,
    servers: list[SecurityServerId],
    members: list[ClientId],
) -> InstancePki:
    """Read back what :func:`build_instance_pki` saved (another process's view)."""
    ca = CertificateAuthority.load(directory)
    pki = InstancePki(
        instance,
        directory,
        ca,
        ocsp=Credential.load(directory, "ocsp"),
        tsa=Credential.load(directory, "tsa"),
    )
    for server in servers:
        pki.auth[server] = Credential.load(pki.auth_path(server).parent, "auth")
    for member in members:
        pki.sign[member.member] = Credential.load(pki.sign_path(member.member).parent, "sign")
    return pki
