"""A certificate authority per X-Road instance and the X-Road certificate profiles.

Layout (docs/pki.md): a self-signed root (``CN=xfed <INST> Root CA``) issues one
intermediate (``CN=xfed <INST> Issuing CA``, pathlen 0), and the intermediate issues every
leaf. Profiles follow the test/EJBCA profile of reference xroad.md section 3:

* auth (security server TLS): ``C=<INST>, O=<member class>, OU=<member code>,
  CN=<server code>, serialNumber=<INST/CLASS/CODE/SERVERCODE>``; EKU serverAuth+clientAuth.
* sign (member signing): ``C=<INST>, O=<member class>, CN=<member code>,
  serialNumber=<INST/CLASS/CODE>``; KU nonRepudiation+digitalSignature, no EKU.
* OCSP responder (EKU OCSPSigning + id-pkix-ocsp-nocheck, RFC 6960 section 4.2.2.2).
* TSA (critical EKU timeStamping only, RFC 3161 section 2.3).

``C`` is only written when the instance id is a two-letter code (``EE``, ``FI``); the
``serialNumber`` attribute always carries the whole identifier so :func:`identify` works
for any instance id (``EE-TEST``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.clock import to_datetime
from federation.errors import PkiError
from federation.identifiers import ClientId, IdentifierError, SecurityServerId
from federation.pki._keys import (
    Credential,
    KeyType,
    PrivateKey,
    cert_pem,
    describe,
    generate_key,
    load_cert_pem,
    load_key_pem,
    write_private,
)

DAY_S = 86400.0
CA_VALIDITY_S = 10 * 365 * DAY_S
LEAF_VALIDITY_S = 2 * 365 * DAY_S
BACKDATE_S = 300.0
"""notBefore is set this far before ``now`` to tolerate clock skew between processes."""

ORGANIZATION = "xfed test PKI"
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _name(instance: str, *attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    rdns: list[x509.NameAttribute[str]] = []
    if _COUNTRY.match(instance):
        rdns.append(x509.NameAttribute(NameOID.COUNTRY_NAME, instance))
    rdns.extend(x509.NameAttribute(oid, value) for oid, value in attrs)
    return x509.Name(rdns)


def _ca_name(instance: str, role: str) -> x509.Name:
    return _name(
        instance,
        (NameOID.ORGANIZATION_NAME, ORGANIZATION),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, instance),
        (NameOID.COMMON_NAME, f"xfed {instance} {role}"),
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Certificate | None,
    issuer_name: x509.Name,
    key: PrivateKey,
    *,
    now: float,
    validity_s: float,
) -> x509.CertificateBuilder:
    pub = key.public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(to_datetime(now - BACKDATE_S).replace(microsecond=0))
        .not_valid_after(to_datetime(now + validity_s).replace(microsecond=0))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return b


@final
class CertificateAuthority:
    """The test PKI of one X-Road instance: a root and an issuing (intermediate) CA.

    Every leaf is issued by the intermediate and its serial is recorded, so the OCSP
    responder can tell "never issued" (``unknown``, RFC 6960 section 2.2) from ``good``.
    Leaf methods take ``now`` (POSIX seconds) like every core; ``key_type`` defaults to the
    CA's own key type.
    """

    def __init__(
        self,
        instance: str,
        root: Credential,
        intermediate: Credential,
        issued: Iterable[int] = (),
    ) -> None:
        self.instance = instance
        self.root = root
        self.intermediate = intermediate
        self._issued: set[int] = set(issued)

    @classmethod
    def create(
        cls,
        instance: str,
        *,
        now: float,
        key_type: KeyType = "ec",
        validity_s: float = CA_VALIDITY_S,
    ) -> CertificateAuthority:
        """A new root and intermediate for ``instance``."""
        root_key = generate_key(key_type)
        root_name = _ca_name(instance, "Root CA")
        root_cert = (
            _builder(root_name, None, root_name, root_key, now=now, validity_s=validity_s)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(key_cert_sign=True), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        inter_key = generate_key(key_type)
        inter_cert = (
            _builder(
                _ca_name(instance, "Issuing CA"),
                root_cert,
                root_name,
                inter_key,
                now=now,
                validity_s=validity_s,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        return cls(instance, Credential(root_cert, root_key), Credential(inter_cert, inter_key, ()))

    # --- state -----------------------------------------------------------------------

    @property
    def key_type(self) -> KeyType:
        return "rsa" if isinstance(self.root.key, rsa.RSAPrivateKey) else "ec"

    @property
    def issuer(self) -> x509.Certificate:
        """The certificate that issues leaves (the intermediate)."""
        return self.intermediate.cert

    def is_issued(self, serial: int) -> bool:
        """Whether the intermediate issued a certificate with this serial number."""
        return serial in self._issued

    @property
    def issued_serials(self) -> frozenset[int]:
        return frozenset(self._issued)

    def ca_bundle_pem(self) -> bytes:
        """Intermediate then root, PEM: ``-CAfile`` for openssl, trust anchors for peers."""
        return cert_pem(self.intermediate.cert) + cert_pem(self.root.cert)

    # --- issuing ---------------------------------------------------------------------

    def _issue(
        self,
        subject: x509.Name,
        extensions: Sequence[tuple[x509.ExtensionType, bool]],
        *,
        now: float,
        key_type: KeyType | None,
        validity_s: float,
        key: PrivateKey | None,
    ) -> Credential:
        key = key or generate_key(key_type or self.key_type)
        b = _builder(
            subject,
            self.intermediate.cert,
            self.intermediate.cert.subject,
            key,
            now=now,
            validity_s=validity_s,
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        cert = b.sign(self.intermediate.key, hashes.SHA256())
        self._issued.add(cert.serial_number)
        return Credential(cert, key, (self.intermediate.cert,))

    def issue_auth(
        self,
        server: SecurityServerId,
        *,
        now: float,
        key_type: KeyType | None = None,
        validity_s: float = LEAF_VALIDITY_S,
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
        key: PrivateKey | None = None,
    ) -> Credential:
        """A security server authentication (TLS client and server) certificate."""
        self._check_instance(server.instance)
        owner = server.owner
        subject = _name(
            self.instance,
            (NameOID.ORGANIZATION_NAME, owner.member_class),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, owner.member_code),
            (NameOID.COMMON_NAME, server.code),
            (NameOID.SERIAL_NUMBER, str(server)),
        )
        key = key or generate_key(key_type or self.key_type)
        is_rsa = isinstance(key, rsa.RSAPrivateKey)
        san: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        san += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        exts: list[tuple[x509.ExtensionType, bool]] = [
            (_key_usage(digital_signature=True, key_encipherment=is_rsa), True),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            ),
        ]
        if san:
            exts.append((x509.SubjectAlternativeName(san), False))
        return self._issue(
            subject, exts, now=now, key_type=key_type, validity_s=validity_s, key=key
        )

    def issue_sign(
        self,
        member: ClientId,
        *,
        now: float,
        key_type: KeyType | None = None,
        validity_s: float = LEAF_VALIDITY_S,
        key: PrivateKey | None = None,
    ) -> Credential:
        """A member signing certificate (X-Road signs with the *member's* key, xroad.md 3)."""
        if member.subsystem is not None:
            raise PkiError(f"signing certificates belong to members, not subsystems: {member}")
        self._check_instance(member.instance)
        subject = _name(
            self.instance,
            (NameOID.ORGANIZATION_NAME, member.member_class),
            (NameOID.COMMON_NAME, member.member_code),
            (NameOID.SERIAL_NUMBER, str(member)),
        )
        exts: list[tuple[x509.ExtensionType, bool]] = [
            (_key_usage(digital_signature=True, content_commitment=True), True),
        ]
        return self._issue(
            subject, exts, now=now, key_type=key_type, validity_s=validity_s, key=key
        )

    def issue_ocsp_responder(
        self,
        *,
        now: float,
        key_type: KeyType | None = None,
        validity_s: float = LEAF_VALIDITY_S,
        key: PrivateKey | None = None,
    ) -> Credential:
        """A delegated OCSP responder certificate (RFC 6960 section 4.2.2.2)."""
        subject = _ca_name(self.instance, "OCSP Responder")
        exts: list[tuple[x509.ExtensionType, bool]] = [
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
            (x509.OCSPNoCheck(), False),
        ]
        return self._issue(
            subject, exts, now=now, key_type=key_type, validity_s=validity_s, key=key
        )

    def issue_tsa(
        self,
        *,
        now: float,
        key_type: KeyType | None = None,
        validity_s: float = LEAF_VALIDITY_S,
        key: PrivateKey | None = None,
    ) -> Credential:
        """A time-stamping authority certificate (RFC 3161 section 2.3: the EKU is critical
        and timeStamping only; OpenSSL also allows only digitalSignature/nonRepudiation KU)."""
        subject = _ca_name(self.instance, "TSA")
        exts: list[tuple[x509.ExtensionType, bool]] = [
            (_key_usage(digital_signature=True, content_commitment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
        ]
        return self._issue(
            subject, exts, now=now, key_type=key_type, validity_s=validity_s, key=key
        )

    def _check_instance(self, instance: str) -> None:
        if instance != self.instance:
            raise PkiError(
                f"the {self.instance} CA does not issue certificates for instance {instance}"
            )

    # --- files -----------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``root.pem/.key``, ``intermediate.pem/.key``, ``ca-bundle.pem`` and
        ``ca.json`` (instance id and issued serials) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, cred in (("root", self.root), ("intermediate", self.intermediate)):
            (d / f"{name}.pem").write_bytes(cred.cert_pem())
            write_private(d / f"{name}.key", cred.key_pem())
        (d / "ca-bundle.pem").write_bytes(self.ca_bundle_pem())
        state = {"instance": self.instance, "issued": [f"{s:x}" for s in sorted(self._issued)]}
        (d / "ca.json").write_text(json.dumps(state, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Read back what :meth:`save` wrote."""
        d = Path(directory)
        try:
            state = json.loads((d / "ca.json").read_text())
            creds = []
            for name in ("root", "intermediate"):
                cert = load_cert_pem((d / f"{name}.pem").read_bytes())
                key = load_key_pem((d / f"{name}.key").read_bytes())
                creds.append((cert, key))
            instance = str(state["instance"])
            issued = [int(s, 16) for s in state["issued"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"cannot load the CA in {d}: {exc}") from None
        (root_cert, root_key), (inter_cert, inter_key) = creds
        return cls(
            instance,
            Credential(root_cert, root_key),
            Credential(inter_cert, inter_key),
            issued,
        )


# --- identify ------------------------------------------------------------------------


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) > 1:
        raise PkiError(f"subject {name.rfc4514_string()} has more than one {oid._name}")
    if not values:
        return None
    v = values[0].value
    return v if isinstance(v, str) else v.decode("utf-8", "replace")


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


_IDENTIFIED_MAX = 1024
_identified: dict[x509.Certificate, ClientId | SecurityServerId | str] = {}


def identify(cert: x509.Certificate) -> ClientId | SecurityServerId:
    """:func:`_identify`, remembered per certificate (every message signature asks)."""
    hit = _identified.get(cert)
    if hit is None:
        try:
            hit = _identify(cert)
        except PkiError as exc:
            hit = str(exc)
        if len(_identified) >= _IDENTIFIED_MAX:
            _identified.clear()
        _identified[cert] = hit
    if isinstance(hit, str):
        raise PkiError(hit)
    return hit


def _identify(cert: x509.Certificate) -> ClientId | SecurityServerId:
    """The X-Road identifier a certificate stands for (test/EJBCA profile, xroad.md 3).

    An auth certificate (EKU serverAuth or clientAuth) maps to a :class:`SecurityServerId`,
    a signing certificate (KU nonRepudiation, no TLS EKU) to a member :class:`ClientId`.
    ``serialNumber`` (``INST/CLASS/CODE[/SERVERCODE]``) is read when present and must agree
    with ``C``/``O``/``OU``/``CN``; without it the EJBCA fields are used
    (``C=INST, O=CLASS, CN=CODE`` for signing).
    """
    subj = cert.subject
    eku = _eku(cert)
    is_auth = ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.SERVER_AUTH in eku
    try:
        ku: x509.KeyUsage | None = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    is_sign = not eku and ku is not None and ku.content_commitment
    if not (is_auth or is_sign):
        raise PkiError(f"{describe(cert)} is neither an X-Road auth nor a signing certificate")
    country = _attr(subj, NameOID.COUNTRY_NAME)
    org = _attr(subj, NameOID.ORGANIZATION_NAME)
    ou = _attr(subj, NameOID.ORGANIZATIONAL_UNIT_NAME)
    cn = _attr(subj, NameOID.COMMON_NAME)
    serial = _attr(subj, NameOID.SERIAL_NUMBER)
    try:
        if is_auth:
            if serial is not None:
                server = SecurityServerId.parse(serial)
            elif country and org and ou and cn:
                server = SecurityServerId(ClientId(country, org, ou), cn)
            else:
                raise PkiError(f"auth certificate {describe(cert)} names no security server")
            expect = (server.instance, server.owner.member_class, server.owner.member_code)
            if (cn, org, ou) != (server.code, *expect[1:]) or country not in (
                None,
                server.instance,
            ):
                raise PkiError(
                    f"auth certificate {describe(cert)}: serialNumber {serial!r} disagrees "
                    "with C/O/OU/CN"
                )
            return server
        if serial is not None:
            member = ClientId.parse(serial)
        elif country and org and cn:
            member = ClientId(country, org, cn)
        else:
            raise PkiError(f"signing certificate {describe(cert)} names no member")
        if member.subsystem is not None or (org, cn) != (
            member.member_class,
            member.member_code,
        ):
            raise PkiError(
                f"signing certificate {describe(cert)}: serialNumber {serial!r} disagrees "
                "with C/O/CN"
            )
        if country not in (None, member.instance):
            raise PkiError(f"signing certificate {describe(cert)}: C disagrees with serialNumber")
        return member
    except IdentifierError as exc:
        raise PkiError(f"{describe(cert)}: {exc}") from None
