"""The signed configuration directory (xroad.md section 4, pr-gconf "Signed directory").

Sans-IO: bytes and ``now`` in, bytes or :class:`SignedDirectory` out. The HTTP response of
``GET /internalconf`` / ``/externalconf`` is a ``multipart/related`` with two parts:

1. a ``multipart/mixed`` whose first entry has only headers (``Expire-date``, ``Version``,
   and xfed's ``Serial``) followed by one entry per configuration file: its
   ``Content-identifier`` (``SHARED-PARAMETERS; instance="EE"``), ``Content-location`` and,
   as the entry body, the base64 SHA-512 of the file;
2. the signature over the exact bytes of part 1's body: a DER CMS detached ``SignedData``
   (xfed's simplification of X-Road's XML-DSig value), base64-encoded.

The files themselves are downloaded separately from their ``Content-location`` and checked
against the hashes. docs/globalconf.md has the byte layout and the openssl recipe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from federation.clock import iso, parse_iso
from federation.errors import GlobalConfError
from federation.globalconf._model import FORMAT_VERSION, ConfigurationAnchor, cert_hash
from federation.globalconf._signing import ConfSigningKey, verify_with_certificate

SHARED_PARAMETERS = "SHARED-PARAMETERS"
PRIVATE_PARAMETERS = "PRIVATE-PARAMETERS"
SHA512_URI = "http://www.w3.org/2001/04/xmlenc#sha512"
CONTENT_TYPE = "multipart/related"

_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfFile:
    """A configuration file to list in a directory."""

    content_identifier: str
    instance: str
    location: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryEntry:
    content_identifier: str
    instance: str
    location: str
    hash_b64: str
    hash_algorithm_id: str = SHA512_URI

    def check(self, data: bytes) -> None:
        """Raise GlobalConfError unless ``data`` is the file this entry lists."""
        if self.hash_algorithm_id != SHA512_URI:
            raise GlobalConfError(
                f"unsupported hash algorithm {self.hash_algorithm_id} for {self.location}",
                instance=self.instance,
            )
        if base64.b64encode(hashlib.sha512(data).digest()).decode() != self.hash_b64:
            raise GlobalConfError(
                f"{self.content_identifier} file {self.location} does not match its hash in "
                "the signed directory",
                instance=self.instance,
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedDirectory:
    """A parsed (not yet verified) directory."""

    expire_date: float
    version: int
    serial: int
    entries: tuple[DirectoryEntry, ...]
    signed_content: bytes
    signature_der: bytes
    signature_algorithm_id: str | None
    verification_cert_hash: str
    """base64 SHA-512 of the certificate that verifies the signature (required, as in X-Road:
    the client finds the anchor certificate by it)."""

    def entry(self, content_identifier: str) -> DirectoryEntry | None:
        for e in self.entries:
            if e.content_identifier == content_identifier:
                return e
        return None


# --------------------------------------------------------------------------- building


def _headers(pairs: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}".encode() + _CRLF for k, v in pairs)


def build_signed_directory(
    files: Sequence[ConfFile],
    *,
    expire_date: float,
    serial: int,
    signer: ConfSigningKey,
) -> tuple[str, bytes]:
    """The HTTP ``Content-Type`` and body of a signed directory listing ``files``."""
    entries: list[bytes] = [
        _headers(
            [
                ("Expire-date", iso(expire_date)),
                ("Version", str(FORMAT_VERSION)),
                ("Serial", str(serial)),
            ]
        )
        + _CRLF
    ]
    for f in files:
        digest = base64.b64encode(hashlib.sha512(f.data).digest()).decode()
        entries.append(
            _headers(
                [
                    ("Content-type", "application/octet-stream"),
                    ("Content-transfer-encoding", "base64"),
                    ("Content-identifier", f'{f.content_identifier}; instance="{f.instance}"'),
                    ("Content-location", f.location),
                    ("Hash-algorithm-id", SHA512_URI),
                ]
            )
            + _CRLF
            + digest.encode()
        )
    inner = "inner" + hashlib.sha256(b"".join(entries)).hexdigest()[:32]
    delim = b"--" + inner.encode()
    signed = b"".join(delim + _CRLF + e + _CRLF for e in entries) + delim + b"--" + _CRLF

    sig_b64 = base64.b64encode(signer.sign(signed))
    signature = _CRLF.join(sig_b64[i : i + 64] for i in range(0, len(sig_b64), 64))
    outer = "outer" + hashlib.sha256(signed + signature).hexdigest()[:32]
    odelim = b"--" + outer.encode()
    body = (
        odelim
        + _CRLF
        + _headers([("Content-Type", f"multipart/mixed; charset=UTF-8; boundary={inner}")])
        + _CRLF
        + signed
        + _CRLF
        + odelim
        + _CRLF
        + _headers(
            [
                ("Content-Type", "application/pkcs7-signature"),
                ("Content-Transfer-Encoding", "base64"),
                ("Signature-algorithm-id", signer.algorithm_id),
                (
                    "Verification-certificate-hash",
                    f'{cert_hash(signer.cert, "sha512")}; hash-algorithm-id="{SHA512_URI}"',
                ),
            ]
        )
        + _CRLF
        + signature
        + _CRLF
        + odelim
        + b"--"
        + _CRLF
    )
    return f"{CONTENT_TYPE}; charset=UTF-8; boundary={outer}", body


# --------------------------------------------------------------------------- parsing


def _params(value: str) -> tuple[str, dict[str, str]]:
    """``main; a=1; b="x"`` -> ``("main", {"a": "1", "b": "x"})`` (names lower-cased)."""
    head, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        if "=" in item:
            k, v = item.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return head.strip(), params


def _split_multipart(body: bytes, boundary: str, what: str) -> list[bytes]:
    delim = b"--" + boundary.encode()
    if body.startswith(delim):
        pos = len(delim)
    else:
        first = body.find(_CRLF + delim)
        if first < 0:
            raise GlobalConfError(f"{what}: no multipart boundary")
        pos = first + 2 + len(delim)
    parts: list[bytes] = []
    while True:
        if body[pos : pos + 2] == b"--":
            return parts
        eol = body.find(_CRLF, pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise GlobalConfError(f"{what}: malformed multipart boundary line")
        start = eol + 2
        end = body.find(_CRLF + delim, start)
        if end < 0:
            raise GlobalConfError(f"{what}: unterminated multipart body")
        parts.append(body[start:end])
        pos = end + 2 + len(delim)


def _split_part(part: bytes, what: str) -> tuple[dict[str, str], bytes]:
    if part.startswith(_CRLF):
        return {}, part[2:]
    end = part.find(_CRLF + _CRLF)
    if end < 0:
        head, content = part, b""
    else:
        head, content = part[:end], part[end + 4 :]
    headers: dict[str, str] = {}
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise GlobalConfError(f"{what}: non-ASCII part headers") from None
    for line in text.split("\r\n"):
        if ":" not in line:
            raise GlobalConfError(f"{what}: malformed header line {line!r}")
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return headers, content


def parse_signed_directory(content_type: str, body: bytes) -> SignedDirectory:
    """Parse a directory response; GlobalConfError when malformed (not yet verified)."""
    kind, params = _params(content_type or "")
    if kind.lower() != CONTENT_TYPE or "boundary" not in params:
        raise GlobalConfError(
            f"directory is {content_type!r}, expected {CONTENT_TYPE} with a boundary"
        )
    parts = _split_multipart(body, params["boundary"], "directory")
    if len(parts) != 2:
        raise GlobalConfError(f"directory has {len(parts)} parts, expected 2")
    h1, signed = _split_part(parts[0], "directory part 1")
    h2, sig_b64 = _split_part(parts[1], "directory part 2")
    kind1, p1 = _params(h1.get("content-type", ""))
    if kind1.lower() != "multipart/mixed" or "boundary" not in p1:
        raise GlobalConfError("directory part 1 is not multipart/mixed")
    try:
        signature = base64.b64decode(sig_b64, validate=False)
    except (binascii.Error, ValueError):
        raise GlobalConfError("directory signature is not base64") from None
    entries_raw = _split_multipart(signed, p1["boundary"], "directory part 1")
    if not entries_raw:
        raise GlobalConfError("directory part 1 has no entries")
    first, _ = _split_part(entries_raw[0], "directory header entry")
    if "expire-date" not in first:
        raise GlobalConfError("directory has no Expire-date")
    try:
        expire = parse_iso(first["expire-date"])
        version = int(first.get("version", "0"))
        serial = int(first.get("serial", "0"))
    except ValueError:
        raise GlobalConfError(
            "directory header entry is malformed (Expire-date/Version/Serial)"
        ) from None
    entries = []
    for raw in entries_raw[1:]:
        h, content = _split_part(raw, "directory entry")
        ident, ip = _params(h.get("content-identifier", ""))
        if not ident or "instance" not in ip or "content-location" not in h:
            raise GlobalConfError(
                "directory entry lacks Content-identifier/instance/Content-location"
            )
        entries.append(
            DirectoryEntry(
                content_identifier=ident,
                instance=ip["instance"],
                location=h["content-location"],
                hash_b64=content.decode("ascii", "replace").strip(),
                hash_algorithm_id=h.get("hash-algorithm-id", SHA512_URI),
            )
        )
    vch = _params(h2.get("verification-certificate-hash", ""))[0]
    if not vch:
        raise GlobalConfError(
            "directory signature has no Verification-certificate-hash header (it names the "
            "anchor certificate that verifies the signature)"
        )
    return SignedDirectory(
        expire_date=expire,
        version=version,
        serial=serial,
        entries=tuple(entries),
        signed_content=signed,
        signature_der=signature,
        signature_algorithm_id=h2.get("signature-algorithm-id"),
        verification_cert_hash=vch,
    )


def verify_signed_directory(
    directory: SignedDirectory, *, anchor: ConfigurationAnchor, now: float
) -> x509.Certificate:
    """Verify a directory against an anchor (pr-gconf client procedure steps 2, 3, 5).

    ``Expire-date`` must be in the future, the format version ours, the signature made by
    one of the anchor's verification certificates, and every entry must name the anchor's
    instance. Returns the certificate that verified. Raises GlobalConfError saying why not.
    """
    inst = anchor.instance
    if directory.version != FORMAT_VERSION:
        raise GlobalConfError(
            f"directory format version {directory.version}, expected {FORMAT_VERSION}",
            instance=inst,
        )
    if directory.expire_date <= now:
        raise GlobalConfError(
            f"configuration expired at {iso(directory.expire_date)} (now {iso(now)})",
            instance=inst,
        )
    certs = [
        c
        for s in anchor.sources
        for c in s.certificates()
        if cert_hash(c, "sha512") == directory.verification_cert_hash
    ]
    if not certs:
        raise GlobalConfError(
            "directory was signed with a certificate that is not in the anchor "
            "(Verification-certificate-hash matches none)",
            instance=inst,
        )
    last: GlobalConfError | None = None
    for cert in certs:
        try:
            verify_with_certificate(
                directory.signature_der, directory.signed_content, cert, now=now, instance=inst
            )
        except GlobalConfError as exc:
            last = exc
            continue
        for e in directory.entries:
            if e.instance != inst:
                raise GlobalConfError(
                    f"directory entry {e.content_identifier} names instance {e.instance!r}",
                    instance=inst,
                )
        return cert
    assert last is not None
    raise last
