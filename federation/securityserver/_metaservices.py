"""Metaservices (``listClients``, ``listMethods``, ``allowedMethods``) and the access rights.

JSON shapes follow X-Road's service metadata protocols (``pr-meta`` Annex C.1 for
``listClients``, ``pr-mrest`` Annex B for the REST service lists; reference xroad.md
section 10). Builders take plain inputs so the runtime only gathers them from the global
configuration and the security server's own configuration:

* ``listClients`` lists the members of *one* instance (the own one, or ``?xRoadInstance=``
  a federated one), each member followed by its subsystems; a subsystem entry repeats the
  member's ``name`` and adds ``subsystem_name`` when the subsystem has one.
* ``listMethods`` lists the provider subsystem's REST services with their endpoints;
  ``allowedMethods`` only those the caller may call. Endpoint paths show ``{param}`` as
  ``*``; a service without endpoints shows X-Road's default endpoint ``*`` ``**``.
  Metaservice codes never appear in the lists.

Access rights (:class:`AccessRights`) are granted per service to client identifiers and
matched **exactly**: a grant to a subsystem covers that subsystem only, and a grant to a
member covers requests whose ``X-Road-Client`` is that member itself, *not* its subsystems
(X-Road matches the access-right subject against the client identifier; it has no
inheritance from member to subsystem).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from federation.identifiers import ClientId, ServiceId
from federation.securityserver.errors import Fault, XRoadError

__all__ = [
    "METASERVICES",
    "AccessRights",
    "Endpoint",
    "MemberInfo",
    "ServiceDescription",
    "allowed_methods",
    "check_access",
    "list_clients",
    "list_clients_xml",
    "list_methods",
]

METASERVICES = frozenset({"listMethods", "allowedMethods", "getOpenAPI"})
"""REST metaservice codes served by the provider security server itself."""

_PARAM = re.compile(r"\{[^/{}]*\}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST endpoint of a service: a method (``*`` = any) and a path template.

    Templates use ``{name}`` for one path segment (``/persons/{id}/income``); ``**`` at the
    end matches any rest.
    """

    method: str
    path: str

    def metadata_path(self) -> str:
        """The path as the metaservices show it: ``{param}`` -> ``*``."""
        return _PARAM.sub("*", self.path)

    def to_json(self) -> dict[str, str]:
        return {"method": self.method.upper(), "path": self.metadata_path()}

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The template's parameters when ``method path`` matches, else None.

        ``path`` is the already percent-decoded path (no query).
        """
        if self.method != "*" and self.method.upper() != method.upper():
            return None
        want = self.path.strip("/").split("/") if self.path.strip("/") else []
        got = path.strip("/").split("/") if path.strip("/") else []
        params: dict[str, str] = {}
        for i, seg in enumerate(want):
            if seg == "**" and i == len(want) - 1:
                params["**"] = "/".join(got[i:])
                return params
            if i >= len(got):
                return None
            m = _PARAM.fullmatch(seg)
            if m:
                if not got[i]:
                    return None
                params[seg[1:-1]] = got[i]
            elif seg == "*":
                if not got[i]:
                    return None
            elif seg != got[i]:
                return None
        return params if len(got) == len(want) else None


DEFAULT_ENDPOINT = Endpoint("*", "**")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceDescription:
    """A REST service of a provider subsystem, as the metaservices show it."""

    service: ServiceId
    endpoints: tuple[Endpoint, ...] = ()
    service_type: str = "REST"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.service.to_json())
        out["service_type"] = self.service_type
        eps = self.endpoints or (DEFAULT_ENDPOINT,)
        out["endpoint_list"] = [e.to_json() for e in eps]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberInfo:
    """A member from an instance's shared parameters, with its subsystems."""

    id: ClientId
    name: str
    subsystems: tuple[tuple[str, str | None], ...] = field(default=())
    """``(subsystem code, subsystem name or None)``."""


def _client_entries(
    members: Iterable[MemberInfo], instance: str
) -> list[tuple[ClientId, str, str | None]]:
    out: list[tuple[ClientId, str, str | None]] = []
    for m in members:
        if m.id.instance != instance:
            continue
        member = m.id.member
        out.append((member, m.name, None))
        for code, sub_name in m.subsystems:
            out.append(
                (
                    ClientId(member.instance, member.member_class, member.member_code, code),
                    m.name,
                    sub_name,
                )
            )
    return out


def list_clients(
    members: Iterable[MemberInfo], *, own_instance: str, requested: str | None = None
) -> dict[str, Any]:
    """``GET /listClients[?xRoadInstance=X]`` as JSON: members (and subsystems) of
    ``requested`` (blank/None -> ``own_instance``). ``members`` may span every instance
    the security server knows (own and federated); the others are filtered out."""
    instance = requested.strip() if requested and requested.strip() else own_instance
    entries = []
    for cid, name, sub_name in _client_entries(members, instance):
        e: dict[str, Any] = {"id": cid.to_json(), "name": name}
        if sub_name is not None:
            e["subsystem_name"] = sub_name
        entries.append(e)
    return {"member": entries}


def list_clients_xml(
    members: Iterable[MemberInfo], *, own_instance: str, requested: str | None = None
) -> bytes:
    """``listClients`` as the ``clientList`` XML (when ``Accept`` is not JSON)."""
    instance = requested.strip() if requested and requested.strip() else own_instance
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ns2:clientList xmlns:ns1="http://x-road.eu/xsd/identifiers" '
        'xmlns:ns2="http://x-road.eu/xsd/xroad.xsd">'
    ]
    for cid, name, sub_name in _client_entries(members, instance):
        out.append(f'<ns2:member><ns2:id ns1:objectType="{cid.object_type}">')
        out.append(f"<ns1:xRoadInstance>{escape(cid.instance)}</ns1:xRoadInstance>")
        out.append(f"<ns1:memberClass>{escape(cid.member_class)}</ns1:memberClass>")
        out.append(f"<ns1:memberCode>{escape(cid.member_code)}</ns1:memberCode>")
        if cid.subsystem:
            out.append(f"<ns1:subsystemCode>{escape(cid.subsystem)}</ns1:subsystemCode>")
        out.append(f"</ns2:id><ns2:name>{escape(name)}</ns2:name>")
        if sub_name is not None:
            out.append(f"<ns2:subsystemName>{escape(sub_name)}</ns2:subsystemName>")
        out.append("</ns2:member>")
    out.append("</ns2:clientList>")
    return "".join(out).encode()


def _services_of(
    provider: ClientId, services: Iterable[ServiceDescription]
) -> list[ServiceDescription]:
    return sorted(
        (
            s
            for s in services
            if s.service.client == provider and s.service.code not in METASERVICES
        ),
        key=lambda s: s.service.code,
    )


def list_methods(provider: ClientId, services: Iterable[ServiceDescription]) -> dict[str, Any]:
    """``GET /r1/<provider>/listMethods``: every REST service of ``provider``."""
    return {"service": [s.to_json() for s in _services_of(provider, services)]}


def allowed_methods(
    provider: ClientId,
    client: ClientId,
    services: Iterable[ServiceDescription],
    allowed: Callable[[ClientId, ServiceId], bool],
) -> dict[str, Any]:
    """``GET /r1/<provider>/allowedMethods`` with ``X-Road-Client: client``: the services of
    ``provider`` that ``allowed(client, service)`` permits."""
    return {
        "service": [
            s.to_json() for s in _services_of(provider, services) if allowed(client, s.service)
        ]
    }


class AccessRights:
    """Which clients may call which service (exact identifier match; see module docstring)."""

    def __init__(self, grants: Mapping[ServiceId, Iterable[ClientId]] | None = None) -> None:
        self._grants: dict[ServiceId, frozenset[ClientId]] = {
            svc: frozenset(clients) for svc, clients in (grants or {}).items()
        }

    def allowed(self, client: ClientId, service: ServiceId) -> bool:
        """Whether ``client`` (exactly this member or subsystem) may call ``service``."""
        return client in self._grants.get(service, frozenset())

    __call__ = allowed

    def clients_of(self, service: ServiceId) -> frozenset[ClientId]:
        return self._grants.get(service, frozenset())

    def services_for(self, client: ClientId) -> list[ServiceId]:
        return sorted(s for s, clients in self._grants.items() if client in clients)

    def grant(self, service: ServiceId, client: ClientId) -> AccessRights:
        """A copy with one more grant (scenarios add and remove rights at run time)."""
        grants = dict(self._grants)
        grants[service] = grants.get(service, frozenset()) | {client}
        return AccessRights(grants)

    def revoke(self, service: ServiceId, client: ClientId) -> AccessRights:
        """A copy without that grant."""
        grants = dict(self._grants)
        grants[service] = grants.get(service, frozenset()) - {client}
        return AccessRights(grants)


def check_access(
    services: Mapping[ServiceId, ServiceDescription],
    allowed: Callable[[ClientId, ServiceId], bool],
    client: ClientId,
    service: ServiceId,
) -> ServiceDescription:
    """The provider security server's service and access checks, in X-Road's order.

    Raises ``XRoadError``: ``UnknownService`` when this server has no such service,
    ``AccessDenied`` when ``allowed(client, service)`` is false.
    """
    desc = services.get(service)
    if desc is None or service.code in METASERVICES:
        raise XRoadError(Fault.UNKNOWN_SERVICE, f"Unknown service: {service}")
    if not allowed(client, service):
        raise XRoadError(Fault.ACCESS_DENIED, f"Request is not allowed: {service} for {client}")
    return desc
