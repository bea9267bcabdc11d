"""Shared parameters, private parameters and configuration anchors (xroad.md section 4).

X-Road writes these as XML (``http://x-road.eu/xsd/xroad.xsd``); xfed writes the same
content as JSON (docs/globalconf.md lists the mapping). Certificates are PEM strings.
``from_json`` validates shape and raises :class:`GlobalConfError` (downloaded files) or
:class:`ConfigError` (anchors, which users hand around as files).
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from federation.clock import iso, parse_iso
from federation.errors import ConfigError, GlobalConfError
from federation.identifiers import ClientId, IdentifierError, SecurityServerId

FORMAT_VERSION = 5
"""The configuration format version we emulate (X-Road ``Version`` header)."""

T = TypeVar("T")


class _Shape:
    """Tiny typed accessor over decoded JSON; ``fail`` decides the error type."""

    def __init__(self, fail: Callable[[str], Exception]) -> None:
        self._fail = fail

    def obj(self, node: object, path: str) -> Mapping[str, Any]:
        if not isinstance(node, dict):
            raise self._fail(f"{path}: expected an object")
        return node

    def get(self, node: Mapping[str, Any], key: str, path: str, kind: type[T]) -> T:
        if key not in node:
            raise self._fail(f"{path}: missing {key!r}")
        value = node[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self._fail(f"{path}.{key}: expected {kind.__name__}")
        return value

    def opt(self, node: Mapping[str, Any], key: str, path: str, kind: type[T]) -> T | None:
        if node.get(key) is None:
            return None
        return self.get(node, key, path, kind)

    def items(self, node: Mapping[str, Any], key: str, path: str) -> list[tuple[str, Any]]:
        value = node.get(key, [])
        if not isinstance(value, list):
            raise self._fail(f"{path}.{key}: expected a list")
        return [(f"{path}.{key}[{i}]", v) for i, v in enumerate(value)]

    def strings(self, node: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        out = []
        for p, v in self.items(node, key, path):
            if not isinstance(v, str):
                raise self._fail(f"{p}: expected a string")
            out.append(v)
        return tuple(out)

    def client(self, text: object, path: str) -> ClientId:
        if not isinstance(text, str):
            raise self._fail(f"{path}: expected an identifier string")
        try:
            return ClientId.parse(text)
        except IdentifierError as exc:
            raise self._fail(f"{path}: {exc}") from None

    def cert(self, text: object, path: str) -> str:
        if not isinstance(text, str):
            raise self._fail(f"{path}: expected a PEM certificate")
        try:
            x509.load_pem_x509_certificate(text.encode())
        except ValueError:
            raise self._fail(f"{path}: not a PEM certificate") from None
        return text


def _conf_shape(what: str) -> _Shape:
    return _Shape(lambda msg: GlobalConfError(f"malformed {what}: {msg}"))


def dump_json(obj: object) -> bytes:
    """The canonical bytes of a configuration file (sorted keys, 2-space indent, LF)."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _load_json(data: bytes, fail: Callable[[str], Exception]) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(f"not JSON: {exc}") from None


def cert_to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def pem_to_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def cert_hash(cert: x509.Certificate | bytes, algorithm: str = "sha256") -> str:
    """base64 hash of a certificate's DER, as X-Road writes ``authCertHash`` (SHA-256 for
    configuration version 3 and later) and ``Verification-certificate-hash``."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(hashlib.new(algorithm, der).digest()).decode()


# --------------------------------------------------------------------------- shared


@dataclass(frozen=True, slots=True, kw_only=True)
class OcspResponder:
    url: str
    cert_pem: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovedCA:
    """``approvedCA``: a top CA, its intermediates, and the OCSP responders for them."""

    name: str
    top_ca_pem: str
    intermediate_pems: tuple[str, ...] = ()
    ocsp: tuple[OcspResponder, ...] = ()
    authentication_only: bool = False
    certificate_profile: str = (
        "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
    )

    def certificates(self) -> list[x509.Certificate]:
        return [pem_to_cert(p) for p in (self.top_ca_pem, *self.intermediate_pems)]

    @classmethod
    def from_certs(
        cls,
        name: str,
        top_ca: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        ocsp: Sequence[tuple[str, x509.Certificate | None]] = (),
    ) -> ApprovedCA:
        """Build from certificate objects; ``ocsp`` holds ``(url, responder cert)`` pairs."""
        return cls(
            name=name,
            top_ca_pem=cert_to_pem(top_ca),
            intermediate_pems=tuple(cert_to_pem(c) for c in intermediates),
            ocsp=tuple(
                OcspResponder(url=u, cert_pem=cert_to_pem(c) if c is not None else None)
                for u, c in ocsp
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovedTSA:
    name: str
    url: str
    cert_pem: str

    @classmethod
    def from_cert(cls, name: str, url: str, cert: x509.Certificate) -> ApprovedTSA:
        return cls(name=name, url=url, cert_pem=cert_to_pem(cert))


@dataclass(frozen=True, slots=True, kw_only=True)
class SubsystemInfo:
    code: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberInfo:
    id: ClientId
    name: str
    subsystems: tuple[SubsystemInfo, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityServerInfo:
    """``securityServer``: owner + server code, host address, registered auth certificates
    (base64 SHA-256 of the DER) and the clients it hosts."""

    id: SecurityServerId
    address: str
    auth_cert_hashes: tuple[str, ...] = ()
    clients: tuple[ClientId, ...] = ()
    maintenance_mode: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalSettings:
    member_classes: tuple[tuple[str, str], ...] = ()
    """``(code, description)`` pairs."""
    ocsp_freshness_s: float = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfSource:
    """``source``: a central server address and its configuration-signing certificates."""

    address: str
    internal_verification_certs: tuple[str, ...] = ()
    external_verification_certs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedParameters:
    """What an instance publishes to itself and to its federation partners."""

    instance: str
    sources: tuple[ConfSource, ...] = ()
    approved_cas: tuple[ApprovedCA, ...] = ()
    approved_tsas: tuple[ApprovedTSA, ...] = ()
    members: tuple[MemberInfo, ...] = ()
    security_servers: tuple[SecurityServerInfo, ...] = ()
    global_settings: GlobalSettings = GlobalSettings()

    # -- queries used by security servers ------------------------------------------------

    def member(self, cid: ClientId) -> MemberInfo | None:
        for m in self.members:
            if m.id == cid.member:
                return m
        return None

    def has_client(self, cid: ClientId) -> bool:
        """Whether ``cid`` is a registered member or subsystem of this instance."""
        m = self.member(cid)
        if m is None:
            return False
        return cid.subsystem is None or any(s.code == cid.subsystem for s in m.subsystems)

    def security_server(self, sid: SecurityServerId) -> SecurityServerInfo | None:
        for s in self.security_servers:
            if s.id == sid:
                return s
        return None

    def servers_hosting(self, cid: ClientId) -> tuple[SecurityServerInfo, ...]:
        """Security servers whose client list contains ``cid`` (xroad.md section 3, routing)."""
        return tuple(s for s in self.security_servers if cid in s.clients)

    def server_by_auth_hash(self, cert_hash_b64: str) -> SecurityServerInfo | None:
        for s in self.security_servers:
            if cert_hash_b64 in s.auth_cert_hashes:
                return s
        return None

    def ca_certificates(self) -> list[x509.Certificate]:
        """Top CA certificates (trust roots) of every approved CA."""
        return [pem_to_cert(ca.top_ca_pem) for ca in self.approved_cas]

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_identifier": self.instance,
            "sources": [
                {
                    "address": s.address,
                    "internal_verification_certs": list(s.internal_verification_certs),
                    "external_verification_certs": list(s.external_verification_certs),
                }
                for s in self.sources
            ],
            "approved_cas": [
                {
                    "name": ca.name,
                    "authentication_only": ca.authentication_only,
                    "top_ca": {
                        "cert": ca.top_ca_pem,
                        "ocsp": [{"url": o.url, "cert": o.cert_pem} for o in ca.ocsp],
                    },
                    "intermediate_cas": [{"cert": p} for p in ca.intermediate_pems],
                    "certificate_profile_info": ca.certificate_profile,
                }
                for ca in self.approved_cas
            ],
            "approved_tsas": [
                {"name": t.name, "url": t.url, "cert": t.cert_pem} for t in self.approved_tsas
            ],
            "members": [
                {
                    "member_class": m.id.member_class,
                    "member_code": m.id.member_code,
                    "name": m.name,
                    "subsystems": [
                        {"subsystem_code": s.code, "subsystem_name": s.name} for s in m.subsystems
                    ],
                }
                for m in self.members
            ],
            "security_servers": [
                {
                    "owner": str(s.id.owner),
                    "server_code": s.id.code,
                    "address": s.address,
                    "auth_cert_hashes": list(s.auth_cert_hashes),
                    "clients": [str(c) for c in s.clients],
                    "in_maintenance_mode": s.maintenance_mode,
                }
                for s in self.security_servers
            ],
            "global_settings": {
                "member_classes": [
                    {"code": c, "description": d} for c, d in self.global_settings.member_classes
                ],
                "ocsp_freshness_seconds": self.global_settings.ocsp_freshness_s,
            },
        }

    def to_bytes(self) -> bytes:
        return dump_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> SharedParameters:
        """Parse a shared-parameters file; GlobalConfError when malformed or when an
        identifier names another instance."""
        sh = _conf_shape("shared parameters")
        top = sh.obj(_load_json(data, lambda m: GlobalConfError(f"shared parameters: {m}")), "$")
        inst = sh.get(top, "instance_identifier", "$", str)

        def own(cid: ClientId, path: str) -> ClientId:
            if cid.instance != inst:
                raise GlobalConfError(
                    f"shared parameters of {inst} name {cid} of instance {cid.instance} ({path})"
                )
            return cid

        sources = []
        for p, node in sh.items(top, "sources", "$"):
            o = sh.obj(node, p)
            sources.append(
                ConfSource(
                    address=sh.get(o, "address", p, str),
                    internal_verification_certs=tuple(
                        sh.cert(c, p) for c in sh.strings(o, "internal_verification_certs", p)
                    ),
                    external_verification_certs=tuple(
                        sh.cert(c, p) for c in sh.strings(o, "external_verification_certs", p)
                    ),
                )
            )
        cas = []
        for p, node in sh.items(top, "approved_cas", "$"):
            o = sh.obj(node, p)
            top_ca = sh.obj(o.get("top_ca"), f"{p}.top_ca")
            ocsp = []
            for q, r in sh.items(top_ca, "ocsp", f"{p}.top_ca"):
                ro = sh.obj(r, q)
                cert = sh.opt(ro, "cert", q, str)
                ocsp.append(
                    OcspResponder(
                        url=sh.get(ro, "url", q, str),
                        cert_pem=sh.cert(cert, q) if cert is not None else None,
                    )
                )
            inter = []
            for q, r in sh.items(o, "intermediate_cas", p):
                inter.append(sh.cert(sh.get(sh.obj(r, q), "cert", q, str), q))
            cas.append(
                ApprovedCA(
                    name=sh.get(o, "name", p, str),
                    top_ca_pem=sh.cert(sh.get(top_ca, "cert", f"{p}.top_ca", str), p),
                    intermediate_pems=tuple(inter),
                    ocsp=tuple(ocsp),
                    authentication_only=bool(sh.opt(o, "authentication_only", p, bool)),
                    certificate_profile=sh.opt(o, "certificate_profile_info", p, str) or "",
                )
            )
        tsas = []
        for p, node in sh.items(top, "approved_tsas", "$"):
            o = sh.obj(node, p)
            tsas.append(
                ApprovedTSA(
                    name=sh.get(o, "name", p, str),
                    url=sh.get(o, "url", p, str),
                    cert_pem=sh.cert(sh.get(o, "cert", p, str), p),
                )
            )
        members = []
        for p, node in sh.items(top, "members", "$"):
            o = sh.obj(node, p)
            mid = sh.client(
                f"{inst}/{sh.get(o, 'member_class', p, str)}/{sh.get(o, 'member_code', p, str)}", p
            )
            subs = []
            for q, s in sh.items(o, "subsystems", p):
                so = sh.obj(s, q)
                subs.append(
                    SubsystemInfo(
                        code=sh.get(so, "subsystem_code", q, str),
                        name=sh.opt(so, "subsystem_name", q, str),
                    )
                )
            members.append(
                MemberInfo(id=mid, name=sh.get(o, "name", p, str), subsystems=tuple(subs))
            )
        servers = []
        for p, node in sh.items(top, "security_servers", "$"):
            o = sh.obj(node, p)
            owner = own(sh.client(sh.get(o, "owner", p, str), p), p)
            servers.append(
                SecurityServerInfo(
                    id=SecurityServerId(owner, sh.get(o, "server_code", p, str)),
                    address=sh.get(o, "address", p, str),
                    auth_cert_hashes=sh.strings(o, "auth_cert_hashes", p),
                    clients=tuple(own(sh.client(c, p), p) for c in sh.strings(o, "clients", p)),
                    maintenance_mode=bool(sh.opt(o, "in_maintenance_mode", p, bool)),
                )
            )
        gs = sh.obj(top.get("global_settings"), "$.global_settings")
        classes = []
        for p, node in sh.items(gs, "member_classes", "$.global_settings"):
            o = sh.obj(node, p)
            classes.append((sh.get(o, "code", p, str), sh.opt(o, "description", p, str) or ""))
        return cls(
            instance=inst,
            sources=tuple(sources),
            approved_cas=tuple(cas),
            approved_tsas=tuple(tsas),
            members=tuple(members),
            security_servers=tuple(servers),
            global_settings=GlobalSettings(
                member_classes=tuple(classes),
                ocsp_freshness_s=sh.get(gs, "ocsp_freshness_seconds", "$.global_settings", float),
            ),
        )


# --------------------------------------------------------------------------- anchors


def download_url_problem(url: str) -> str | None:
    """What is wrong with a configuration download URL (``http://host[:port]/path``), or
    None. Checks what urllib only finds out later: the port (1-65535), IPv6 brackets, a
    host name that cannot be encoded."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it contains whitespace or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme != "http":
        return f"scheme {parts.scheme!r} is not supported"
    if not parts.hostname:
        return "it has no host"
    if port == 0:
        return "port 0"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"host name {parts.hostname!r} cannot be encoded"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorSource:
    download_url: str
    verification_certs: tuple[str, ...]
    """PEM certificates; any of them may have signed the directory (key rotation)."""

    def certificates(self) -> list[x509.Certificate]:
        return [pem_to_cert(p) for p in self.verification_certs]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigurationAnchor:
    """``configurationAnchor``: where to download an instance's configuration and which
    certificates verify it. Distributed out-of-band (as a file) with its hash."""

    instance: str
    generated_at: float
    sources: tuple[AnchorSource, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_identifier": self.instance,
            "generated_at": iso(self.generated_at),
            "sources": [
                {"download_url": s.download_url, "verification_certs": list(s.verification_certs)}
                for s in self.sources
            ],
        }

    def to_bytes(self) -> bytes:
        return dump_json(self.to_json())

    def hash(self) -> str:
        """Upper-case hex SHA-224 of the file, grouped like X-Road's UI shows it."""
        digest = hashlib.sha224(self.to_bytes()).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @classmethod
    def from_json(cls, node: object, *, file: str | None = None) -> ConfigurationAnchor:
        """Parse an anchor object; :class:`ConfigError` (with ``file``) when malformed."""
        sh = _Shape(lambda msg: ConfigError(f"invalid configuration anchor: {msg}", file=file))
        top = sh.obj(node, "$")
        inst = sh.get(top, "instance_identifier", "$", str)
        generated = sh.get(top, "generated_at", "$", str)
        try:
            generated_at = parse_iso(generated)
        except ValueError:
            raise ConfigError(
                "invalid configuration anchor: $.generated_at is not an ISO 8601 time", file=file
            ) from None
        sources = []
        for p, s in sh.items(top, "sources", "$"):
            o = sh.obj(s, p)
            certs = tuple(sh.cert(c, p) for c in sh.strings(o, "verification_certs", p))
            if not certs:
                raise ConfigError(
                    f"invalid configuration anchor: {p}.verification_certs is empty", file=file
                )
            url = sh.get(o, "download_url", p, str)
            problem = download_url_problem(url)
            if problem is not None:
                raise ConfigError(
                    f"invalid configuration anchor: {p}.download_url: {problem}",
                    file=file,
                    expected="http://HOST[:PORT]/PATH",
                    found=url,
                )
            sources.append(AnchorSource(download_url=url, verification_certs=certs))
        if not sources:
            raise ConfigError("invalid configuration anchor: $.sources is empty", file=file)
        return cls(instance=inst, generated_at=generated_at, sources=tuple(sources))

    @classmethod
    def from_bytes(cls, data: bytes, *, file: str | None = None) -> ConfigurationAnchor:
        node = _load_json(
            data, lambda m: ConfigError(f"invalid configuration anchor: {m}", file=file)
        )
        return cls.from_json(node, file=file)

    @classmethod
    def load(cls, path: str) -> ConfigurationAnchor:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read anchor: {exc.strerror or exc}", file=path) from None
        return cls.from_bytes(data, file=path)


# --------------------------------------------------------------------------- private


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateParameters:
    """What an instance tells only its own security servers."""

    instance: str
    anchors: tuple[ConfigurationAnchor, ...] = ()
    """Trusted anchors of federation partners (``configurationAnchor``)."""
    timestamping_interval_s: float = 60.0

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_identifier": self.instance,
            "configuration_anchors": [a.to_json() for a in self.anchors],
            "time_stamping_interval_seconds": self.timestamping_interval_s,
        }

    def to_bytes(self) -> bytes:
        return dump_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivateParameters:
        sh = _conf_shape("private parameters")
        top = sh.obj(_load_json(data, lambda m: GlobalConfError(f"private parameters: {m}")), "$")
        anchors = []
        for p, node in sh.items(top, "configuration_anchors", "$"):
            try:
                anchors.append(ConfigurationAnchor.from_json(node))
            except ConfigError as exc:
                raise GlobalConfError(f"malformed private parameters: {p}: {exc}") from None
        return cls(
            instance=sh.get(top, "instance_identifier", "$", str),
            anchors=tuple(anchors),
            timestamping_interval_s=sh.get(top, "time_stamping_interval_seconds", "$", float),
        )
