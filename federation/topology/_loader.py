"""Load and validate ``instances/*.yaml`` into :class:`InstanceDef` (docs/instances.md).

Every user mistake becomes one :class:`~federation.errors.ConfigError` naming the file, the
path inside it (``security_servers[1].clients[0]``) and what was expected versus found.
Unknown keys are errors. Nothing here raises anything else for bad input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable, Sequence
from os import PathLike, fspath
from typing import Any, NoReturn

import yaml

from federation.errors import ConfigError
from federation.identifiers import ClientId, IdentifierError, SecurityServerId, ServiceId
from federation.settings import TIMER_NAMES, Timers
from federation.topology._model import (
    BACKENDS,
    HTTP_METHODS,
    AccessRule,
    AllowedFederations,
    Endpoint,
    InstanceDef,
    MemberDef,
    SecurityServerDef,
    ServiceDef,
    SubsystemDef,
)

MAX_NUMBER = 1e9
"""The largest timer (seconds, about 31 years) or time scale an instance file may set: larger
ones overflow the dates computed from them."""

MAX_INSTANCE_LEN = 32
"""Certificate common names (at most 64 characters) include the instance id."""
MAX_CN_LEN = 64
"""Member and server codes are certificate common names (RFC 5280: at most 64 characters)."""

_INSTANCE_RE = re.compile(r"^[A-Za-z0-9'()+,\-.=?]+$")
_PATH_RE = re.compile(r"^/[^\s]*$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads only true/false as booleans.

    YAML 1.1 reads ``NO`` (Norway's instance id) as ``False``; we do not. A scalar that
    PyYAML cannot convert (a 5000-digit integer, the date ``2024-13-45``) is a YAML error at
    its line, not a ValueError.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            text = str(node.value)
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {shown!r}: {exc}", node.start_mark
            ) from None


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a mapping key must be a string (expected a string, found {_kind(key)})",
                key_node.start_mark,
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(
        self, path: str, message: str, expected: str | None = None, found: object = None
    ) -> NoReturn:
        raise ConfigError(
            message, file=self.file, path=path or None, expected=expected, found=found
        )

    def mapping(
        self, node: object, path: str, *, required: Iterable[str], optional: Iterable[str] = ()
    ) -> dict[str, Any]:
        required = tuple(required)
        optional = tuple(optional)
        if not isinstance(node, dict):
            self.fail(path, f"expected a mapping, found {_kind(node)}")
        for key in node:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.fail(
                    _join(path, str(key)), "unknown key", expected=f"one of: {allowed}", found=key
                )
        for key in required:
            if key not in node:
                self.fail(path, f"missing required key {key!r}")
        return node

    def list(self, node: object, path: str, *, non_empty: bool = False) -> list[Any]:
        if not isinstance(node, list):
            self.fail(path, f"expected a list, found {_kind(node)}")
        if non_empty and not node:
            self.fail(path, "expected a non-empty list")
        return node

    def string(self, node: object, path: str) -> str:
        if not isinstance(node, str) or not node.strip():
            self.fail(path, f"expected a non-empty string, found {_kind(node)}", found=node)
        return node.strip()

    def number(
        self, node: object, path: str, *, positive: bool = True, maximum: float = MAX_NUMBER
    ) -> float:
        if isinstance(node, bool) or not isinstance(node, int | float):
            self.fail(path, f"expected a number, found {_kind(node)}", found=node)
        if not (isinstance(node, int) or math.isfinite(node)):
            self.fail(path, f"expected a finite number, found {node}", found=node)
        if positive and node <= 0:
            self.fail(path, "expected a number > 0", found=node)
        if node > maximum:
            if isinstance(node, int) and node >= 10**20:
                self.fail(
                    path, f"expected a number <= {maximum:g}, found a {len(str(node))}-digit one"
                )
            self.fail(path, f"expected a number <= {maximum:g}, found {node:g}", found=node)
        return float(node)

    def instance_id(self, node: object, path: str) -> str:
        text = self.string(node, path)
        if not _INSTANCE_RE.match(text):
            self.fail(
                path,
                "invalid instance id",
                expected="letters, digits and - (e.g. EE, FI-TEST)",
                found=text,
            )
        if len(text) > MAX_INSTANCE_LEN:
            self.fail(
                path,
                "instance id too long (certificate names carry it)",
                expected=f"at most {MAX_INSTANCE_LEN} characters",
                found=text,
            )
        return text

    def local_client(
        self, node: object, path: str, instance: str, *, subsystem: bool | None
    ) -> ClientId:
        """``CLASS/CODE`` (member), ``CLASS/CODE/SUB`` (subsystem); ``subsystem`` None = either."""
        text = self.string(node, path)
        shapes = {True: "CLASS/CODE/SUBSYSTEM", False: "CLASS/CODE", None: "CLASS/CODE[/SUBSYSTEM]"}
        expected = f"a local id {shapes[subsystem]} (without the instance)"
        try:
            cid = ClientId.parse(f"{instance}/{text}")
        except IdentifierError:
            self.fail(path, "invalid identifier", expected=expected, found=text)
        if subsystem is not None and cid.is_subsystem != subsystem:
            self.fail(path, "wrong identifier shape", expected=expected, found=text)
        return cid

    def full_client(self, node: object, path: str) -> ClientId:
        text = self.string(node, path)
        try:
            return ClientId.parse(text)
        except IdentifierError:
            self.fail(
                path,
                "invalid client identifier",
                expected="INSTANCE/CLASS/CODE[/SUBSYSTEM]",
                found=text,
            )


def _check_member_class(r: _Reader, cid: ClientId, classes: Sequence[str], path: str) -> None:
    if cid.member_class not in classes:
        r.fail(
            path,
            f"member class {cid.member_class!r} is not declared in member_classes",
            expected=f"one of {list(classes)}",
            found=str(cid),
        )


def _parse_subsystems(r: _Reader, node: object, path: str) -> tuple[SubsystemDef, ...]:
    out: list[SubsystemDef] = []
    for i, item in enumerate(r.list(node, path)):
        p = _join(path, i)
        if isinstance(item, str):
            sub = SubsystemDef(code=r.string(item, p))
        else:
            m = r.mapping(item, p, required=("code",), optional=("name",))
            sub = SubsystemDef(
                code=r.string(m["code"], _join(p, "code")),
                name=r.string(m["name"], _join(p, "name")) if "name" in m else None,
            )
        if not _INSTANCE_RE.match(sub.code):
            r.fail(
                p,
                "invalid subsystem code",
                expected="A-Z a-z 0-9 ' ( ) + , - . = ?",
                found=sub.code,
            )
        if any(s.code == sub.code for s in out):
            r.fail(p, f"duplicate subsystem {sub.code!r}")
        out.append(sub)
    return tuple(out)


def _parse_allowed(r: _Reader, node: object, path: str, instance: str) -> AllowedFederations:
    if node == "all":
        return AllowedFederations(all=True)
    if node == "none":
        return AllowedFederations()
    if not isinstance(node, list):
        r.fail(
            path,
            f"expected a list of instance ids, 'all' or 'none', found {_kind(node)}",
            found=node,
        )
    out: list[str] = []
    for i, item in enumerate(node):
        inst = r.instance_id(item, _join(path, i))
        if inst.upper() == instance.upper():
            r.fail(
                _join(path, i),
                "a security server cannot federate with its own instance",
                found=inst,
            )
        if inst.upper() not in (o.upper() for o in out):
            out.append(inst)
    return AllowedFederations(instances=tuple(out))


def parse_instance(data: object, *, file: str = "<instance>") -> InstanceDef:
    """Validate an already-parsed YAML document (a mapping) into an :class:`InstanceDef`."""
    r = _Reader(file)
    top = r.mapping(
        data,
        "",
        required=("instance", "member_classes", "members", "security_servers"),
        optional=("federation", "services", "access", "settings", "time_scale"),
    )
    inst = r.instance_id(top["instance"], "instance")

    classes: list[str] = []
    for i, c in enumerate(r.list(top["member_classes"], "member_classes", non_empty=True)):
        code = r.string(c, f"member_classes[{i}]")
        if not _INSTANCE_RE.match(code):
            r.fail(f"member_classes[{i}]", "invalid member class", found=code)
        if code in classes:
            r.fail(f"member_classes[{i}]", f"duplicate member class {code!r}")
        classes.append(code)

    trusts: list[str] = []
    if "federation" in top:
        fed = r.mapping(top["federation"], "federation", required=(), optional=("trusts",))
        for i, t in enumerate(r.list(fed.get("trusts", []), "federation.trusts")):
            p = f"federation.trusts[{i}]"
            partner = r.instance_id(t, p)
            if partner == inst:
                r.fail(
                    p,
                    "an instance cannot federate with itself (instance ids must differ)",
                    found=partner,
                )
            if partner in trusts:
                r.fail(p, f"duplicate partner {partner!r}")
            trusts.append(partner)

    members: list[MemberDef] = []
    for i, node in enumerate(r.list(top["members"], "members", non_empty=True)):
        p = f"members[{i}]"
        m = r.mapping(node, p, required=("id", "name"), optional=("subsystems",))
        mid = r.local_client(m["id"], f"{p}.id", inst, subsystem=False)
        _check_member_class(r, mid, classes, f"{p}.id")
        if len(mid.member_code) > MAX_CN_LEN:
            r.fail(
                f"{p}.id",
                "member code too long (it is the signing certificate's CN)",
                expected=f"at most {MAX_CN_LEN} characters",
                found=mid.member_code,
            )
        if any(x.id == mid for x in members):
            r.fail(f"{p}.id", f"duplicate member {mid}")
        subs = _parse_subsystems(r, m["subsystems"], f"{p}.subsystems") if "subsystems" in m else ()
        members.append(MemberDef(id=mid, name=r.string(m["name"], f"{p}.name"), subsystems=subs))

    partial = InstanceDef(
        instance=inst,
        member_classes=tuple(classes),
        trusts=tuple(trusts),
        members=tuple(members),
        security_servers=(),
        services=(),
        access=(),
    )

    def existing(node: object, path: str, *, subsystem: bool | None) -> ClientId:
        cid = r.local_client(node, path, inst, subsystem=subsystem)
        _check_member_class(r, cid, classes, path)
        if not partial.has_client(cid):
            what = "subsystem" if cid.is_subsystem else "member"
            r.fail(
                path, f"unknown {what} {cid}", expected="a member/subsystem declared under members"
            )
        return cid

    servers: list[SecurityServerDef] = []
    default_allowed = AllowedFederations(instances=tuple(trusts))
    for i, node in enumerate(r.list(top["security_servers"], "security_servers", non_empty=True)):
        p = f"security_servers[{i}]"
        m = r.mapping(
            node, p, required=("code", "owner"), optional=("clients", "allowed_federations")
        )
        code = r.string(m["code"], f"{p}.code")
        if not _INSTANCE_RE.match(code):
            r.fail(f"{p}.code", "invalid server code", found=code)
        if len(code) > MAX_CN_LEN:
            r.fail(
                f"{p}.code",
                "server code too long (it is the auth certificate's CN)",
                expected=f"at most {MAX_CN_LEN} characters",
                found=code,
            )
        if any(s.code == code for s in servers):
            r.fail(f"{p}.code", f"duplicate security server code {code!r}")
        owner = existing(m["owner"], f"{p}.owner", subsystem=False)
        clients: list[ClientId] = []
        for j, c in enumerate(r.list(m.get("clients", []), f"{p}.clients")):
            cid = existing(c, f"{p}.clients[{j}]", subsystem=None)
            if cid in clients:
                r.fail(f"{p}.clients[{j}]", f"duplicate client {cid}")
            clients.append(cid)
        allowed = (
            _parse_allowed(r, m["allowed_federations"], f"{p}.allowed_federations", inst)
            if "allowed_federations" in m
            else default_allowed
        )
        servers.append(
            SecurityServerDef(
                id=SecurityServerId(owner, code),
                clients=tuple(clients),
                allowed_federations=allowed,
            )
        )

    services: list[ServiceDef] = []
    for i, node in enumerate(r.list(top.get("services", []), "services")):
        p = f"services[{i}]"
        m = r.mapping(
            node,
            p,
            required=("provider", "code", "endpoints", "backend"),
            optional=("name", "options"),
        )
        provider = existing(m["provider"], f"{p}.provider", subsystem=True)
        if not any(provider in ss.clients for ss in servers):
            r.fail(
                f"{p}.provider",
                f"provider {provider} is not a client of any security server",
                expected="listed under some security_servers[].clients",
            )
        code = r.string(m["code"], f"{p}.code")
        try:
            sid = ServiceId.parse(f"{provider}/{code}")
        except IdentifierError:
            r.fail(
                f"{p}.code",
                "invalid service code",
                expected="A-Z a-z 0-9 ' ( ) + , - . = ?",
                found=code,
            )
        if any(s.id == sid for s in services):
            r.fail(f"{p}.code", f"duplicate service {sid}")
        endpoints: list[Endpoint] = []
        for j, e in enumerate(r.list(m["endpoints"], f"{p}.endpoints", non_empty=True)):
            ep = f"{p}.endpoints[{j}]"
            em = r.mapping(e, ep, required=("method", "path"))
            method = r.string(em["method"], f"{ep}.method").upper()
            if method not in HTTP_METHODS:
                r.fail(
                    f"{ep}.method",
                    "invalid HTTP method",
                    expected=f"one of {sorted(HTTP_METHODS)}",
                    found=em["method"],
                )
            path = r.string(em["path"], f"{ep}.path")
            if not (path == "*" or _PATH_RE.match(path)):
                r.fail(
                    f"{ep}.path",
                    "invalid endpoint path",
                    expected="a path starting with / (or *)",
                    found=path,
                )
            endpoints.append(Endpoint(method=method, path=path))
        backend = r.string(m["backend"], f"{p}.backend")
        if backend not in BACKENDS:
            r.fail(
                f"{p}.backend",
                "unknown backend",
                expected=f"one of {sorted(BACKENDS)}",
                found=backend,
            )
        options: dict[str, str] = {}
        if "options" in m:
            om = m["options"]
            if not isinstance(om, dict):
                r.fail(f"{p}.options", f"expected a mapping, found {_kind(om)}")
            for key, value in om.items():
                options[str(key)] = r.string(value, f"{p}.options.{key}")
        if backend == "once-only":
            # the backend calls these services through X-Road as the provider subsystem
            for key, value in options.items():
                try:
                    ServiceId.parse(value)
                except IdentifierError:
                    r.fail(
                        f"{p}.options.{key}",
                        "invalid service id",
                        expected="INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE",
                        found=value,
                    )
        services.append(
            ServiceDef(
                id=sid,
                endpoints=tuple(endpoints),
                backend=backend,
                name=r.string(m["name"], f"{p}.name") if "name" in m else None,
                options=tuple(options.items()),
            )
        )

    access: list[AccessRule] = []
    for i, node in enumerate(r.list(top.get("access", []), "access")):
        p = f"access[{i}]"
        m = r.mapping(node, p, required=("service", "clients"))
        stext = r.string(m["service"], f"{p}.service")
        try:
            sid = ServiceId.parse(f"{inst}/{stext}")
        except IdentifierError:
            r.fail(
                f"{p}.service",
                "invalid service identifier",
                expected="a local id CLASS/CODE/SUBSYSTEM/SERVICE",
                found=stext,
            )
        if not any(s.id == sid for s in services):
            r.fail(
                f"{p}.service",
                f"unknown service {sid}",
                expected="a service declared under services",
            )
        clients = []
        for j, c in enumerate(r.list(m["clients"], f"{p}.clients", non_empty=True)):
            cp = f"{p}.clients[{j}]"
            cid = r.full_client(c, cp)
            if cid.instance == inst:
                _check_member_class(r, cid, classes, cp)
                if not partial.has_client(cid):
                    r.fail(
                        cp,
                        f"unknown client {cid}",
                        expected="a member/subsystem declared under members",
                    )
            elif cid.instance not in trusts:
                r.fail(
                    cp,
                    f"client instance {cid.instance!r} is neither {inst} nor a trusted partner",
                    expected=f"an instance in federation.trusts {trusts}",
                    found=str(cid),
                )
            clients.append(cid)
        access.append(AccessRule(service=sid, clients=tuple(clients)))

    timer_values: dict[str, float] = {}
    if "settings" in top:
        s = r.mapping(top["settings"], "settings", required=(), optional=TIMER_NAMES)
        timer_values = {k: r.number(v, f"settings.{k}") for k, v in s.items()}
    timers = Timers(**timer_values)
    if timers.conf_generation_s >= timers.conf_expire_s:
        r.fail(
            "settings.conf_generation_s",
            "the generation interval must be shorter than conf_expire_s",
            expected=f"< {timers.conf_expire_s}",
            found=timers.conf_generation_s,
        )
    if timers.timestamping_interval_s >= timers.ocsp_freshness_s:
        r.fail(
            "settings.timestamping_interval_s",
            "time-stamping interval must be shorter than ocsp_freshness_s",
            expected=f"< {timers.ocsp_freshness_s}",
            found=timers.timestamping_interval_s,
        )
    time_scale = r.number(top["time_scale"], "time_scale") if "time_scale" in top else 1.0
    for name, value in timers.scaled(time_scale).to_json().items():
        if value > MAX_NUMBER:
            r.fail(
                "time_scale",
                f"time_scale {time_scale:g} stretches settings.{name} to {value:g} s, "
                f"expected at most {MAX_NUMBER:g} s",
                found=time_scale,
            )

    return InstanceDef(
        instance=inst,
        member_classes=tuple(classes),
        trusts=tuple(trusts),
        members=tuple(members),
        security_servers=tuple(servers),
        services=tuple(services),
        access=tuple(access),
        timers=timers,
        time_scale=time_scale,
        source=file,
    )


def load_instance(path: str | PathLike[str]) -> InstanceDef:
    """Read and validate one instance file. Raises :class:`ConfigError` on any mistake."""
    file = fspath(path)
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read instance file: {exc.strerror or exc}", file=file) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {where}{problem}", file=file) from None
    return parse_instance(data, file=file)


def check_instances(defs: Sequence[InstanceDef]) -> None:
    """Cross-file checks: unique instance ids; foreign access-rule clients exist if loaded."""
    seen: dict[str, InstanceDef] = {}
    for d in defs:
        if d.instance in seen:
            raise ConfigError(
                f"instance {d.instance!r} is also defined in {seen[d.instance].source}",
                file=d.source,
                path="instance",
                expected="a unique instance id",
                found=d.instance,
            )
        seen[d.instance] = d
    for d in defs:
        for i, rule in enumerate(d.access):
            for j, cid in enumerate(rule.clients):
                other = seen.get(cid.instance)
                if cid.instance != d.instance and other is not None and not other.has_client(cid):
                    raise ConfigError(
                        f"unknown client {cid}: {other.source} declares no such member/subsystem",
                        file=d.source,
                        path=f"access[{i}].clients[{j}]",
                    )


def load_instances(paths: Iterable[str | PathLike[str]]) -> list[InstanceDef]:
    """Load several instance files and cross-check them (see :func:`check_instances`)."""
    defs = [load_instance(p) for p in paths]
    check_instances(defs)
    return defs


def federation_links(defs: Sequence[InstanceDef]) -> list[tuple[str, str]]:
    """``(instance, partner)`` pairs where ``instance``'s central server should receive the
    partner's external anchor: the instance trusts the partner and the partner is loaded."""
    loaded = {d.instance for d in defs}
    return [(d.instance, p) for d in defs for p in d.trusts if p in loaded]
