"""The instance definition: what ``instances/*.yaml`` declares (see docs/instances.md).

Frozen values only; :mod:`federation.topology._loader` builds and validates them. Local
identifiers in the YAML (members, owners, clients, providers) omit the instance; here every
identifier is a full :class:`~federation.identifiers.ClientId` / ``ServiceId``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from federation.identifiers import ClientId, SecurityServerId, ServiceId
from federation.settings import Timers

BACKENDS: frozenset[str] = frozenset(
    {
        "population-register",
        "tax-register",
        "business-register",
        "health-insurance",
        "vehicle-register",
        "echo",
        "once-only",
    }
)
"""Sample provider information systems a service can be implemented by."""

HTTP_METHODS: frozenset[str] = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"}
)
"""Endpoint methods X-Road accepts in a REST service description (``*`` = any)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubsystemDef:
    code: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberDef:
    id: ClientId
    """The member (no subsystem), with the instance filled in."""
    name: str
    subsystems: tuple[SubsystemDef, ...] = ()

    def subsystem_ids(self) -> tuple[ClientId, ...]:
        return tuple(
            ClientId(self.id.instance, self.id.member_class, self.id.member_code, s.code)
            for s in self.subsystems
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedFederations:
    """A security server's ``[configuration-client] allowed-federations``.

    ``all`` admits every partner the central server trusts; otherwise only ``instances``,
    compared case-insensitively (X-Road documents the setting in lower case:
    ``allowed-federations=fi,fi-test``). ``AllowedFederations()`` is X-Road's ``none``.
    """

    all: bool = False
    instances: tuple[str, ...] = ()

    def admits(self, instance: str) -> bool:
        return self.all or instance.upper() in (i.upper() for i in self.instances)

    def __str__(self) -> str:
        if self.all:
            return "all"
        return ",".join(self.instances) if self.instances else "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityServerDef:
    id: SecurityServerId
    clients: tuple[ClientId, ...]
    allowed_federations: AllowedFederations

    @property
    def code(self) -> str:
        return self.id.code

    @property
    def owner(self) -> ClientId:
        return self.id.owner


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    method: str
    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceDef:
    id: ServiceId
    endpoints: tuple[Endpoint, ...]
    backend: str
    name: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    """Backend options as (key, value) pairs (``once-only``: the service ids it calls
    through X-Road)."""

    @property
    def provider(self) -> ClientId:
        return self.id.client


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRule:
    """``clients`` (local or from a federated instance) may call ``service``."""

    service: ServiceId
    clients: tuple[ClientId, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceDef:
    """One X-Road instance as declared in its YAML file."""

    instance: str
    member_classes: tuple[str, ...]
    trusts: tuple[str, ...]
    """Partner instances whose external anchors this instance's central server accepts."""
    members: tuple[MemberDef, ...]
    security_servers: tuple[SecurityServerDef, ...]
    services: tuple[ServiceDef, ...]
    access: tuple[AccessRule, ...]
    timers: Timers = field(default_factory=Timers)
    """Unscaled (X-Road time) timers; see :attr:`scaled_timers`."""
    time_scale: float = 1.0
    source: str | None = None
    """The file it was loaded from, for error messages."""

    @property
    def scaled_timers(self) -> Timers:
        """The timers divided by ``time_scale`` (what components actually wait)."""
        return self.timers.scaled(self.time_scale)

    def member(self, cid: ClientId) -> MemberDef | None:
        """The member owning ``cid`` (member or subsystem id), if declared."""
        for m in self.members:
            if m.id == cid.member:
                return m
        return None

    def has_client(self, cid: ClientId) -> bool:
        """Whether ``cid`` is a declared member or subsystem of this instance."""
        m = self.member(cid)
        if m is None:
            return False
        return cid.subsystem is None or any(s.code == cid.subsystem for s in m.subsystems)

    def security_server(self, code: str) -> SecurityServerDef | None:
        for ss in self.security_servers:
            if ss.code == code:
                return ss
        return None

    def servers_hosting(self, cid: ClientId) -> tuple[SecurityServerDef, ...]:
        return tuple(ss for ss in self.security_servers if cid in ss.clients)

    def service(self, sid: ServiceId) -> ServiceDef | None:
        for s in self.services:
            if s.id == sid:
                return s
        return None

    def allowed_clients(self, sid: ServiceId) -> tuple[ClientId, ...]:
        """Every client any access rule grants ``sid`` to (rules may repeat a service)."""
        out: list[ClientId] = []
        for rule in self.access:
            if rule.service == sid:
                out.extend(c for c in rule.clients if c not in out)
        return tuple(out)
