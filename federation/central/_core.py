"""A central server's registry and configuration generation, sans-IO (xroad.md 4 and 5).

The registry is the instance definition plus the facts only a running testbed knows
(:class:`CentralFacts`: approved CAs with OCSP responders, TSAs, security server addresses
and auth-certificate hashes). :meth:`ConfGenerator.generate` turns it into one generation:
an internal directory (private + shared parameters, internal key) and an external one
(shared parameters only, external key), both with ``Expire-date = now + conf_expire``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from federation.errors import GlobalConfError
from federation.globalconf import (
    PRIVATE_PARAMETERS,
    SHARED_PARAMETERS,
    AnchorSource,
    ApprovedCA,
    ApprovedTSA,
    ConfFile,
    ConfigurationAnchor,
    ConfSigningKey,
    ConfSource,
    GlobalSettings,
    MemberInfo,
    PrivateParameters,
    SecurityServerInfo,
    SharedParameters,
    SignedDirectory,
    SubsystemInfo,
    build_signed_directory,
    cert_hash,
    parse_signed_directory,
    verify_signed_directory,
)
from federation.topology import InstanceDef

INTERNAL_PATH = "/internalconf"
EXTERNAL_PATH = "/externalconf"
FILES_PREFIX = "/V5/"

_MEMBER_CLASS_NAMES = {
    "GOV": "Government",
    "COM": "Commercial",
    "MUN": "Municipality",
    "NGO": "Non-governmental organisation",
    "NEE": "Non-Estonian entity",
    "EDU": "Education",
    "ORG": "Organisation",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityServerFacts:
    """What the central server knows about a running security server."""

    address: str
    """``host:port`` where other security servers reach it (xfed adds the port; X-Road
    keeps the port in local configuration)."""
    auth_cert_hashes: tuple[str, ...] = ()
    """Registered auth certificates, base64 SHA-256 of the DER (see ``cert_hash``)."""
    maintenance_mode: bool = False

    @classmethod
    def from_certs(
        cls, address: str, auth_certs: Sequence[x509.Certificate | bytes] = ()
    ) -> SecurityServerFacts:
        """Facts with the hashes of the given auth certificates (objects or DER)."""
        return cls(address=address, auth_cert_hashes=tuple(cert_hash(c) for c in auth_certs))


@dataclass(frozen=True, slots=True, kw_only=True)
class CentralFacts:
    """Runtime facts the central server publishes alongside its definition."""

    approved_cas: tuple[ApprovedCA, ...] = ()
    approved_tsas: tuple[ApprovedTSA, ...] = ()
    security_servers: Mapping[str, SecurityServerFacts] = field(default_factory=dict)
    """By server code (``ee-ss1``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    """One signed generation of an instance's configuration."""

    serial: int
    generated_at: float
    expire_date: float
    internal: tuple[str, bytes]
    """Content-Type and body of ``/internalconf``."""
    external: tuple[str, bytes]
    files: Mapping[str, bytes]
    """File bytes by ``Content-location``."""


class ConfGenerator:
    """Builds and signs an instance's configuration (no I/O, time passed in)."""

    def __init__(
        self,
        definition: InstanceDef,
        facts: CentralFacts,
        *,
        internal_key: ConfSigningKey,
        external_key: ConfSigningKey,
        public_url: str,
    ) -> None:
        self.definition = definition
        self.facts = facts
        self.internal_key = internal_key
        self.external_key = external_key
        self.public_url = public_url.rstrip("/")
        self.trusted: dict[str, ConfigurationAnchor] = {}
        self.last: Generation | None = None

    @property
    def instance(self) -> str:
        return self.definition.instance

    def shared_parameters(self) -> SharedParameters:
        d = self.definition
        timers = d.scaled_timers
        servers = []
        for ss in d.security_servers:
            f = self.facts.security_servers.get(ss.code)
            servers.append(
                SecurityServerInfo(
                    id=ss.id,
                    address=f.address if f else "",
                    auth_cert_hashes=f.auth_cert_hashes if f else (),
                    clients=ss.clients,
                    maintenance_mode=f.maintenance_mode if f else False,
                )
            )
        return SharedParameters(
            instance=d.instance,
            sources=(
                ConfSource(
                    address=self.public_url,
                    internal_verification_certs=(self.internal_key.cert_pem,),
                    external_verification_certs=(self.external_key.cert_pem,),
                ),
            ),
            approved_cas=self.facts.approved_cas,
            approved_tsas=self.facts.approved_tsas,
            members=tuple(
                MemberInfo(
                    id=m.id,
                    name=m.name,
                    subsystems=tuple(SubsystemInfo(code=s.code, name=s.name) for s in m.subsystems),
                )
                for m in d.members
            ),
            security_servers=tuple(servers),
            global_settings=GlobalSettings(
                member_classes=tuple((c, _MEMBER_CLASS_NAMES.get(c, c)) for c in d.member_classes),
                ocsp_freshness_s=timers.ocsp_freshness_s,
            ),
        )

    def private_parameters(self) -> PrivateParameters:
        return PrivateParameters(
            instance=self.instance,
            anchors=tuple(self.trusted[k] for k in sorted(self.trusted)),
            timestamping_interval_s=self.definition.scaled_timers.timestamping_interval_s,
        )

    def generate(self, now: float) -> Generation:
        """Sign a new generation valid until ``now + conf_expire_s`` (scaled)."""
        serial = int(now * 1000)
        if self.last is not None and serial <= self.last.serial:
            serial = self.last.serial + 1
        expire = now + self.definition.scaled_timers.conf_expire_s
        shared = ConfFile(
            content_identifier=SHARED_PARAMETERS,
            instance=self.instance,
            location=f"{FILES_PREFIX}{serial}/shared-params.json",
            data=self.shared_parameters().to_bytes(),
        )
        private = ConfFile(
            content_identifier=PRIVATE_PARAMETERS,
            instance=self.instance,
            location=f"{FILES_PREFIX}{serial}/private-params.json",
            data=self.private_parameters().to_bytes(),
        )
        gen = Generation(
            serial=serial,
            generated_at=now,
            expire_date=expire,
            internal=build_signed_directory(
                [private, shared], expire_date=expire, serial=serial, signer=self.internal_key
            ),
            external=build_signed_directory(
                [shared], expire_date=expire, serial=serial, signer=self.external_key
            ),
            files={shared.location: shared.data, private.location: private.data},
        )
        self.last = gen
        return gen

    def anchor(self, kind: str, *, now: float) -> ConfigurationAnchor:
        """The ``internal`` (own security servers) or ``external`` (partners) anchor."""
        key, path = (
            (self.internal_key, INTERNAL_PATH)
            if kind == "internal"
            else (self.external_key, EXTERNAL_PATH)
        )
        return ConfigurationAnchor(
            instance=self.instance,
            generated_at=now,
            sources=(
                AnchorSource(
                    download_url=self.public_url + path, verification_certs=(key.cert_pem,)
                ),
            ),
        )

    # -- trusted anchors (federation, xroad.md 5 step 2) ---------------------------------

    def check_anchor_admissible(self, anchor: ConfigurationAnchor) -> None:
        """Reject an anchor of the own instance or of a partner the definition does not
        trust. GlobalConfError says which."""
        if anchor.instance == self.instance:
            raise GlobalConfError(
                f"anchor points to this central server's own instance {self.instance}; "
                "only federation partners' anchors can be trusted",
                instance=anchor.instance,
            )
        if anchor.instance not in self.definition.trusts:
            raise GlobalConfError(
                f"{self.instance} does not trust {anchor.instance} (federation.trusts in "
                f"{self.definition.source or 'the definition'} lists "
                f"{list(self.definition.trusts)})",
                instance=anchor.instance,
            )

    @staticmethod
    def check_partner_directory(
        anchor: ConfigurationAnchor, content_type: str, body: bytes, *, now: float
    ) -> SignedDirectory:
        """Verify a partner's downloaded directory for an anchor upload: signature,
        expiry, instance ids, and no private parameters."""
        directory = parse_signed_directory(content_type, body)
        verify_signed_directory(directory, anchor=anchor, now=now)
        if directory.entry(PRIVATE_PARAMETERS) is not None:
            raise GlobalConfError(
                "the anchor's configuration contains PRIVATE-PARAMETERS: it is an internal "
                "anchor, federation needs the partner's external anchor",
                instance=anchor.instance,
            )
        if directory.entry(SHARED_PARAMETERS) is None:
            raise GlobalConfError(
                "the anchor's configuration lists no SHARED-PARAMETERS", instance=anchor.instance
            )
        return directory

    def trust(self, anchor: ConfigurationAnchor) -> None:
        """Adopt a verified anchor (replacing one for the same instance)."""
        self.trusted[anchor.instance] = anchor

    def untrust(self, instance: str) -> bool:
        return self.trusted.pop(instance, None) is not None
