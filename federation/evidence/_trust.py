"""Trust material for offline verification: ``--ca`` bundles and ``--anchor`` files.

An anchor alone names no CA: it carries the central server's configuration-signing
certificates. As X-Road's ``asicverifier`` does with ``verificationconf``, the container
may embed signed configuration directories with the shared parameters they list; a
directory that verifies against the user's anchor makes its instance's approved CAs,
OCSP responder certificates, approved TSAs and ``ocspFreshnessSeconds`` trusted. Nothing
in the container is trusted without that signature.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from federation.errors import ConfigError, FederationError, PkiError
from federation.globalconf import (
    SHARED_PARAMETERS,
    ConfigurationAnchor,
    SharedParameters,
    parse_signed_directory,
    verify_signed_directory,
)
from federation.pki import load_certs_pem


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceTrust:
    """What may be trusted for one instance (``instance`` None: any instance)."""

    instance: str | None
    source: str
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    ocsp_responders: tuple[x509.Certificate, ...] | None = None
    """Approved OCSP responder certificates; None: any delegate of the issuing CA."""
    tsas: tuple[x509.Certificate, ...] | None = None
    """Approved TSA certificates; None: any TSA certificate that chains to ``roots``."""
    ocsp_freshness_s: float | None = None


@dataclass(frozen=True, slots=True)
class ConfVerdict:
    """How one ``--anchor`` fared against the container's verification configuration."""

    ok: bool
    message: str
    missing: bool = False
    """True when the container holds no configuration of the anchor's instance at all."""


class TrustStore:
    """Per-instance trust, from ``--ca`` files and verified embedded configuration."""

    def __init__(self, trusts: Iterable[InstanceTrust] = ()) -> None:
        self.trusts = list(trusts)

    def add(self, trust: InstanceTrust) -> None:
        self.trusts.append(trust)

    def for_instance(self, instance: str) -> list[InstanceTrust]:
        """Trust labelled with ``instance``, then unlabelled ``--ca`` bundles."""
        own = [t for t in self.trusts if t.instance == instance]
        return own + [t for t in self.trusts if t.instance is None]

    def roots(self, instance: str) -> list[x509.Certificate]:
        return _unique(c for t in self.for_instance(instance) for c in t.roots)

    def intermediates(self, instance: str) -> list[x509.Certificate]:
        return _unique(c for t in self.for_instance(instance) for c in t.intermediates)

    def ocsp_responders(self, instance: str) -> list[x509.Certificate] | None:
        """Approved responders, or None when some trust for the instance allows any
        delegate (a bare ``--ca``)."""
        out: list[x509.Certificate] = []
        for t in self.for_instance(instance):
            if t.ocsp_responders is None:
                return None
            out.extend(t.ocsp_responders)
        return _unique(out)

    def tsas(self, instance: str) -> list[x509.Certificate] | None:
        out: list[x509.Certificate] = []
        for t in self.for_instance(instance):
            if t.tsas is None:
                return None
            out.extend(t.tsas)
        return _unique(out)

    def ocsp_freshness_s(self, instance: str) -> float | None:
        for t in self.for_instance(instance):
            if t.ocsp_freshness_s is not None:
                return t.ocsp_freshness_s
        return None

    def sources(self, instance: str) -> list[str]:
        return [t.source for t in self.for_instance(instance)]


def _unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for c in certs:
        if c not in out:
            out.append(c)
    return out


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, Exception):
        return False
    return True


def load_ca_option(spec: str) -> InstanceTrust:
    """``--ca [INST=]FILE``: a PEM bundle; self-signed certificates are roots, the others
    intermediates. Without ``INST=`` the bundle is trusted for any instance."""
    instance: str | None = None
    path = spec
    if "=" in spec and not Path(spec).exists():
        instance, path = spec.split("=", 1)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read CA bundle: {exc.strerror or exc}", file=path) from None
    try:
        certs = load_certs_pem(data)
    except PkiError as exc:
        raise ConfigError(str(exc), file=path) from None
    if not certs:
        raise ConfigError("no PEM certificate in the file", file=path)
    roots = tuple(c for c in certs if _self_signed(c))
    if not roots:
        raise ConfigError(
            "no self-signed (root) certificate in the bundle: a CA bundle must hold its root",
            file=path,
        )
    return InstanceTrust(
        instance=instance,
        source=f"--ca {path}",
        roots=roots,
        intermediates=tuple(c for c in certs if c not in roots),
    )


def load_anchor_option(path: str) -> ConfigurationAnchor:
    """``--anchor FILE``: a configuration anchor (ConfigError when unreadable)."""
    return ConfigurationAnchor.load(path)


def conf_groups(conf_files: Mapping[str, bytes]) -> dict[tuple[str, str], dict[str, bytes]]:
    """``<INST>/<kind>/<file>`` entries grouped by (instance, kind)."""
    out: dict[tuple[str, str], dict[str, bytes]] = {}
    for name, data in conf_files.items():
        parts = name.split("/")
        if len(parts) == 3:
            out.setdefault((parts[0], parts[1]), {})[parts[2]] = data
    return out


def _trust_from_shared(shared: SharedParameters, source: str) -> InstanceTrust:
    roots: list[x509.Certificate] = []
    inters: list[x509.Certificate] = []
    responders: list[x509.Certificate] = []
    for ca in shared.approved_cas:
        certs = ca.certificates()
        roots.append(certs[0])
        inters.extend(certs[1:])
        for o in ca.ocsp:
            if o.cert_pem:
                responders.extend(load_certs_pem(o.cert_pem.encode()))
    tsas = [c for t in shared.approved_tsas for c in load_certs_pem(t.cert_pem.encode())]
    return InstanceTrust(
        instance=shared.instance,
        source=source,
        roots=tuple(roots),
        intermediates=tuple(inters),
        ocsp_responders=tuple(responders),
        tsas=tuple(tsas),
        ocsp_freshness_s=shared.global_settings.ocsp_freshness_s,
    )


def verify_conf(
    anchor: ConfigurationAnchor, files: Mapping[str, bytes], label: str
) -> InstanceTrust:
    """One embedded directory against ``anchor``; raises FederationError saying why not.

    The directory's signature is checked at its own expiry time minus one second: the
    container is verified long after the directory expired, and what matters is that the
    anchor's key signed it while it was valid.
    """
    try:
        body = files["directory.bin"]
        meta = json.loads(files["directory.json"])
        shared_bytes = files["shared-parameters.json"]
    except KeyError as exc:
        raise FederationError(f"{label}: missing {exc.args[0]}") from None
    except ValueError as exc:
        raise FederationError(f"{label}: directory.json is not JSON ({exc})") from None
    directory = parse_signed_directory(str(meta.get("content_type", "")), body)
    verify_signed_directory(directory, anchor=anchor, now=directory.expire_date - 1.0)
    entry = directory.entry(SHARED_PARAMETERS)
    if entry is None:
        raise FederationError(f"{label}: the directory lists no shared parameters")
    entry.check(shared_bytes)
    shared = SharedParameters.from_bytes(shared_bytes)
    if shared.instance != anchor.instance:
        raise FederationError(f"{label}: shared parameters of {shared.instance}")
    return _trust_from_shared(
        shared, f"anchor of {anchor.instance} via {label} (serial {directory.serial})"
    )


def trust_from_anchor(
    anchor: ConfigurationAnchor, conf_files: Mapping[str, bytes]
) -> tuple[InstanceTrust | None, ConfVerdict]:
    """The first embedded directory of the anchor's instance that the anchor verifies."""
    groups = conf_groups(conf_files)
    mine = sorted((k, v) for k, v in groups.items() if k[0] == anchor.instance)
    if not mine:
        return None, ConfVerdict(
            False,
            f"the container holds no verification configuration of {anchor.instance} "
            "(use --ca for this instance)",
            missing=True,
        )
    errors = []
    for (inst, kind), files in mine:
        label = f"verificationconf/{inst}/{kind}"
        try:
            trust = verify_conf(anchor, files, label)
        except FederationError as exc:
            errors.append(f"{label}: {exc}")
            continue
        n_ca = len(trust.roots)
        return trust, ConfVerdict(
            True,
            f"{label} is signed by the {inst} anchor ({anchor.hash()[:23]}...): "
            f"{n_ca} approved CA(s), {len(trust.tsas or ())} approved TSA(s)",
        )
    return None, ConfVerdict(False, "; ".join(errors))


def parse_ca_specs(specs: Sequence[str] | None) -> list[InstanceTrust]:
    return [load_ca_option(s) for s in specs or ()]
