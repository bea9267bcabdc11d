"""The evidence container: a zip in the spirit of X-Road's ASiC-E (docs/evidence.md).

Sans-IO: :func:`pack` turns an :class:`Evidence` into zip bytes, :func:`unpack` reads them
back without trusting anything (digests and signatures are checked by
:mod:`._verify`). Entry names are fixed so that the openssl commands of docs/evidence.md
work on an unpacked container::

    mimetype                                   application/vnd.xfed.evidence+zip (stored)
    request/header-part.bin                    the REST header part (exact bytes)
    request/body.bin                           the body (only when there is one)
    request/signed-data.bin                    what the CMS signature covers
    request/signature.p7s                      DER CMS detached SignedData
    request/signer-chain.pem                   signer certificate, then its CA certificates
    request/ocsp-<n>.der                       OCSP responses logged with the message
    request/hash-chain.json                    record -> time-stamped chain value
    request/hash-chain-last-step.bin           128 bytes whose SHA-512 was time-stamped
    request/timestamp.tst                      RFC 3161 token (DER)
    response/...                               the same for the response
    META-INF/verificationconf/<INST>/<kind>/   directory.bin, directory.json,
                                               shared-parameters.json (optional)
    META-INF/manifest.json                     metadata + SHA-256/SHA-512 of every entry
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from federation.errors import ConfigError

MIMETYPE = "application/vnd.xfed.evidence+zip"
FORMAT = "xfed-evidence/1"
MANIFEST = "META-INF/manifest.json"
CONF_PREFIX = "META-INF/verificationconf/"
MESSAGES = ("request", "response")
MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 1000

HEADER_PART = "header-part.bin"
BODY = "body.bin"
SIGNED_DATA = "signed-data.bin"
SIGNATURE = "signature.p7s"
SIGNER_CHAIN = "signer-chain.pem"
HASH_CHAIN = "hash-chain.json"
LAST_STEP = "hash-chain-last-step.bin"
TIMESTAMP = "timestamp.tst"


@dataclass(frozen=True, slots=True, kw_only=True)
class HashChain:
    """The links from a record's signature hash to the time-stamped chain value.

    ``previous`` is the chain value before the record; folding ``steps`` (SHA-512 of the
    signatures of the record and every later record of the batch) with
    ``SHA-512(value || step)`` gives ``stamped``, the token's message imprint.
    """

    record_id: int
    previous: bytes
    steps: tuple[bytes, ...]
    stamped: bytes
    batch_first: int
    batch_last: int

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": "sha-512",
            "record_id": self.record_id,
            "batch": [self.batch_first, self.batch_last],
            "previous": self.previous.hex(),
            "steps": [s.hex() for s in self.steps],
            "stamped": self.stamped.hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> HashChain:
        """Raises ValueError/KeyError/TypeError when malformed (the caller reports it)."""
        if not isinstance(obj, dict) or obj.get("algorithm") != "sha-512":
            raise ValueError("not a sha-512 hash chain object")
        batch = obj["batch"]
        return cls(
            record_id=int(obj["record_id"]),
            previous=bytes.fromhex(obj["previous"]),
            steps=tuple(bytes.fromhex(s) for s in obj["steps"]),
            stamped=bytes.fromhex(obj["stamped"]),
            batch_first=int(batch[0]),
            batch_last=int(batch[1]),
        )

    def last_step_data(self) -> bytes:
        """The 128 bytes whose SHA-512 is ``stamped`` (for ``openssl ts -verify -data``)."""
        value = self.previous
        for step in self.steps[:-1]:
            value = hashlib.sha512(value + step).digest()
        return value + (self.steps[-1] if self.steps else b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One logged message as the container holds it."""

    kind: str
    header_part: bytes
    body: bytes | None
    signed_data: bytes
    signature: bytes
    signer_chain_pem: bytes
    ocsp_responses: tuple[bytes, ...]
    hash_chain: HashChain | None
    """None when the record was not yet time-stamped."""
    hash_chain_raw: bytes | None = None
    last_step: bytes | None = None
    timestamp: bytes | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Record metadata (id, time, client, service, ...), informative only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Everything a container holds."""

    xroad_id: str
    side: str
    meta: Mapping[str, Any]
    messages: Mapping[str, Message]
    conf_files: Mapping[str, bytes] = field(default_factory=dict)
    """``<INST>/<kind>/<file>`` -> bytes (verification configuration)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unpacked:
    """A container as read: the evidence, the manifest and every entry's bytes."""

    evidence: Evidence
    manifest: Mapping[str, Any]
    entries: Mapping[str, bytes]
    mimetype: bytes | None


def digests(data: bytes) -> dict[str, str]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


def hash_chain_bytes(chain: HashChain) -> bytes:
    """The exact bytes of ``hash-chain.json`` (the verifier requires this form)."""
    return (json.dumps(chain.to_json(), indent=1) + "\n").encode()


def chain_pem(certs: Sequence[x509.Certificate]) -> bytes:
    """The exact bytes of ``signer-chain.pem``."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _message_entries(m: Message) -> dict[str, bytes]:
    p = f"{m.kind}/"
    out = {
        p + HEADER_PART: m.header_part,
        p + SIGNED_DATA: m.signed_data,
        p + SIGNATURE: m.signature,
        p + SIGNER_CHAIN: m.signer_chain_pem,
    }
    if m.body is not None:
        out[p + BODY] = m.body
    for i, der in enumerate(m.ocsp_responses):
        out[p + f"ocsp-{i}.der"] = der
    if m.hash_chain is not None:
        out[p + HASH_CHAIN] = hash_chain_bytes(m.hash_chain)
        out[p + LAST_STEP] = m.hash_chain.last_step_data()
    if m.timestamp is not None:
        out[p + TIMESTAMP] = m.timestamp
    return out


def pack(evidence: Evidence) -> bytes:
    """The zip bytes: ``mimetype`` first and stored, then every entry, then the manifest."""
    entries: dict[str, bytes] = {}
    for kind in MESSAGES:
        if kind in evidence.messages:
            entries.update(_message_entries(evidence.messages[kind]))
    for name, data in sorted(evidence.conf_files.items()):
        entries[CONF_PREFIX + name] = data
    manifest = {
        "format": FORMAT,
        "xroad_id": evidence.xroad_id,
        "side": evidence.side,
        **{k: v for k, v in evidence.meta.items() if k not in ("entries", "messages")},
        "messages": {k: dict(m.meta) for k, m in evidence.messages.items()},
        "entries": [
            {"path": name, "size": len(data), **digests(data)} for name, data in entries.items()
        ],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE.encode(), zipfile.ZIP_STORED)
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
        z.writestr(
            zipfile.ZipInfo(MANIFEST),
            json.dumps(manifest, indent=1) + "\n",
            zipfile.ZIP_DEFLATED,
        )
    return buf.getvalue()


def _bad(source: str, message: str) -> ConfigError:
    return ConfigError(f"not an xfed evidence container: {message}", file=source)


def read_entries(data: bytes, *, source: str = "container") -> dict[str, bytes]:
    """Every entry of a zip (ConfigError when it is not a readable zip)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > MAX_ENTRIES:
                raise _bad(source, f"{len(infos)} entries (at most {MAX_ENTRIES})")
            out: dict[str, bytes] = {}
            for info in infos:
                if info.file_size > MAX_ENTRY_BYTES:
                    raise _bad(source, f"entry {info.filename} is too large")
                if info.filename in out:
                    raise _bad(source, f"duplicate entry {info.filename}")
                out[info.filename] = z.read(info)
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise _bad(source, f"bad zip file ({exc})") from None


def unpack(data: bytes, *, source: str = "container") -> Unpacked:
    """Parse a container. Raises ConfigError only when it is not a container at all
    (not a zip, no manifest); damaged parts are left for the verifier to report."""
    entries = read_entries(data, source=source)
    if MANIFEST not in entries:
        raise _bad(source, f"no {MANIFEST}")
    try:
        manifest = json.loads(entries[MANIFEST])
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise _bad(source, f"{MANIFEST} is not JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise _bad(source, f"format {manifest.get('format')!r}, expected {FORMAT!r}")
    messages: dict[str, Message] = {}
    metas = manifest.get("messages") if isinstance(manifest.get("messages"), dict) else {}
    assert isinstance(metas, dict)
    for kind in MESSAGES:
        p = f"{kind}/"
        if p + SIGNATURE not in entries and p + HEADER_PART not in entries:
            continue
        raw_chain = entries.get(p + HASH_CHAIN)
        chain: HashChain | None = None
        if raw_chain is not None:
            try:
                chain = HashChain.from_json(json.loads(raw_chain))
            except (ValueError, KeyError, TypeError, IndexError):
                chain = None  # reported by the verifier from hash_chain_raw
        ocsp = []
        i = 0
        while p + f"ocsp-{i}.der" in entries:
            ocsp.append(entries[p + f"ocsp-{i}.der"])
            i += 1
        meta = metas.get(kind)
        messages[kind] = Message(
            kind=kind,
            header_part=entries.get(p + HEADER_PART, b""),
            body=entries.get(p + BODY),
            signed_data=entries.get(p + SIGNED_DATA, b""),
            signature=entries.get(p + SIGNATURE, b""),
            signer_chain_pem=entries.get(p + SIGNER_CHAIN, b""),
            ocsp_responses=tuple(ocsp),
            hash_chain=chain,
            hash_chain_raw=raw_chain,
            last_step=entries.get(p + LAST_STEP),
            timestamp=entries.get(p + TIMESTAMP),
            meta=meta if isinstance(meta, dict) else {},
        )
    conf = {
        name[len(CONF_PREFIX) :]: data
        for name, data in entries.items()
        if name.startswith(CONF_PREFIX)
    }
    evidence = Evidence(
        xroad_id=str(manifest.get("xroad_id", "")),
        side=str(manifest.get("side", "")),
        meta=manifest,
        messages=messages,
        conf_files=conf,
    )
    return Unpacked(
        evidence=evidence, manifest=manifest, entries=entries, mimetype=entries.get("mimetype")
    )
