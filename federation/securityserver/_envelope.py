"""The signed message envelope between security servers (sans-IO; docs/exchange.md).

Modelled on X-Road's message transport protocol (reference xroad.md section 3) with a CMS
detached signature instead of XAdES/ASiC. One HTTP POST body, ``multipart/mixed``::

    application/ocsp-response          x n   the sender's OCSP responses (DER), request only
    application/x-road-rest-request          the REST header part (or ...-rest-response)
    application/x-road-rest-body             the body, only when there is one (non-empty)
    application/pkcs7-signature              CMS detached SignedData (DER) over signed-data

Every part is ``Content-Transfer-Encoding: binary``; the boundary is random and checked not
to occur inside any part.

**signed-data** (the exact bytes the CMS signature covers, :func:`signed_data`)::

    signed-data = header-part CRLF body-line CRLF
    body-line   = "body-digest:sha-512:" 128*HEXDIG   ; lower-case hex of SHA-512(body)
                / "body-digest:none"                   ; no body

``header-part`` is the REST header part of :mod:`._rest`, which ends with CRLF; the empty
line that follows separates it from the body line (a header part never has an empty line).
So ``openssl cms -verify -binary -inform DER -in sig.der -content signed-data.bin -CAfile
root.pem -purpose any`` checks a logged message with nothing but the stored parts.

The request is signed with the *client member's* signing key, the response with the
*provider member's* (X-Road's rule); :func:`verify_envelope` checks the CMS signature, the
chain to the signer's instance's roots, and that the signer certificate identifies the
expected member, and raises ``XRoadError(InvalidSignatureValue)`` on any mismatch.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from federation.errors import FederationError
from federation.identifiers import ClientId
from federation.pki import Credential, cms_sign_detached, cms_verify_detached, identify
from federation.securityserver._rest import (
    RestRequest,
    RestResponse,
    parse_request_header_part,
    parse_response_header_part,
)
from federation.securityserver.errors import Fault, XRoadError

__all__ = [
    "CT_BODY",
    "CT_OCSP",
    "CT_REQUEST",
    "CT_RESPONSE",
    "CT_SIGNATURE",
    "Envelope",
    "Kind",
    "VerifiedRequest",
    "VerifiedResponse",
    "body_digest",
    "decode_envelope",
    "encode_envelope",
    "sign_envelope",
    "signed_data",
    "transport_headers",
    "verify_request",
    "verify_response",
]

Kind = Literal["request", "response"]

CT_OCSP = "application/ocsp-response"
CT_REQUEST = "application/x-road-rest-request"
CT_RESPONSE = "application/x-road-rest-response"
CT_BODY = "application/x-road-rest-body"
CT_SIGNATURE = "application/pkcs7-signature"

SIGN_HASH = "sha512"
"""Digest of the CMS signature (X-Road's default digest is SHA-512 too)."""

MAX_PARTS = 64
_BOUNDARY = re.compile(r'boundary="?([0-9A-Za-z\'()+_,\-./:=? ]{1,70})"?', re.IGNORECASE)


def body_digest(body: bytes | None) -> bytes | None:
    """SHA-512 of the body, or None when there is no body (None or empty)."""
    return hashlib.sha512(body).digest() if body else None


def signed_data(header_part: bytes, body: bytes | None) -> bytes:
    """The exact bytes the CMS signature covers (see the module docstring)."""
    digest = body_digest(body)
    line = b"body-digest:sha-512:" + digest.hex().encode() if digest else b"body-digest:none"
    return header_part + b"\r\n" + line + b"\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One signed message between security servers, as bytes."""

    kind: Kind
    header_part: bytes
    body: bytes | None
    """None when the message has no body (X-Road does not distinguish an empty body)."""
    signature: bytes
    """DER CMS ``ContentInfo`` (detached) over :func:`signed_data`."""
    ocsp_responses: tuple[bytes, ...] = ()

    def signed_data(self) -> bytes:
        return signed_data(self.header_part, self.body)

    def signed_data_digest(self) -> bytes:
        """SHA-512 of :meth:`signed_data` (stored in the message log)."""
        return hashlib.sha512(self.signed_data()).digest()

    def signature_hash(self) -> bytes:
        """SHA-512 of the signature: the input of the message log's hash chain."""
        return hashlib.sha512(self.signature).digest()


def sign_envelope(
    kind: Kind,
    header_part: bytes,
    body: bytes | None,
    *,
    signer: Credential,
    ocsp_responses: Sequence[bytes] = (),
) -> Envelope:
    """Sign a message with ``signer`` (the member's signing credential; chain embedded)."""
    body = body or None
    sig = cms_sign_detached(
        signed_data(header_part, body), signer.cert, signer.key, signer.chain, hash_alg=SIGN_HASH
    )
    return Envelope(
        kind=kind,
        header_part=header_part,
        body=body,
        signature=sig,
        ocsp_responses=tuple(ocsp_responses),
    )


# --------------------------------------------------------------------------------------
# multipart/mixed


def _part(content_type: str, data: bytes) -> list[bytes]:
    return [
        f"Content-Type: {content_type}\r\n".encode(),
        b"Content-Transfer-Encoding: binary\r\n\r\n",
        data,
    ]


def encode_envelope(envelope: Envelope, *, boundary: str | None = None) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of the HTTP POST (request) or its reply (response).

    ``boundary`` is random unless given; a given boundary found inside a part is replaced.
    """
    parts: list[tuple[str, bytes]] = [(CT_OCSP, der) for der in envelope.ocsp_responses]
    parts.append((CT_REQUEST if envelope.kind == "request" else CT_RESPONSE, envelope.header_part))
    if envelope.body:
        parts.append((CT_BODY, envelope.body))
    parts.append((CT_SIGNATURE, envelope.signature))
    while True:
        b = boundary or "xfed" + secrets.token_hex(16)
        marker = b"--" + b.encode()
        if not any(marker in data for _, data in parts):
            break
        boundary = None
    out: list[bytes] = []
    for ctype, data in parts:
        out += [marker, b"\r\n", *_part(ctype, data), b"\r\n"]
    out += [marker, b"--\r\n"]
    return f'multipart/mixed; boundary="{b}"', b"".join(out)


def transport_headers(request_id: str) -> list[tuple[str, str]]:
    """HTTP headers of the security-server-to-security-server POST (besides Content-Type)."""
    return [
        ("x-road-message-type", "REST"),
        ("x-road-request-id", request_id),
        ("x-hash-algorithm", "SHA-512"),
        ("x-proxy-version", "xfed-1"),
    ]


def _invalid(kind: Kind, message: str) -> XRoadError:
    # A request is decoded by the provider, a response by the consumer.
    fault = Fault.PROVIDER_INVALID_MESSAGE if kind == "request" else Fault.INVALID_MESSAGE
    return XRoadError(fault, message)


def _split_multipart(content_type: str, data: bytes, kind: Kind) -> list[tuple[str, bytes]]:
    if not content_type.strip().lower().startswith("multipart/mixed"):
        raise _invalid(kind, f"expected multipart/mixed, got {content_type[:80]!r}")
    m = _BOUNDARY.search(content_type)
    if not m:
        raise _invalid(kind, "multipart/mixed without a boundary")
    marker = b"--" + m.group(1).encode()
    if data.startswith(marker):
        pos = 0
    else:
        pos = data.find(b"\r\n" + marker)
        if pos < 0:
            raise _invalid(kind, "multipart body has no opening boundary")
        pos += 2
    parts: list[tuple[str, bytes]] = []
    while True:
        pos += len(marker)
        if data[pos : pos + 2] == b"--":
            break
        if data[pos : pos + 2] != b"\r\n":
            raise _invalid(kind, "malformed multipart boundary line")
        pos += 2
        end = data.find(b"\r\n" + marker, pos)
        if end < 0:
            raise _invalid(kind, "multipart body is truncated (no closing boundary)")
        head_end = data.find(b"\r\n\r\n", pos, end)
        if data[pos:end].startswith(b"\r\n"):
            head, content = b"", data[pos + 2 : end]
        elif head_end < 0:
            raise _invalid(kind, "multipart part has no header/content separator")
        else:
            head, content = data[pos:head_end], data[head_end + 4 : end]
        ctype = ""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-type":
                ctype = value.decode("latin-1").split(";", 1)[0].strip().lower()
            elif lname == b"content-transfer-encoding":
                if value.strip().lower() not in (b"binary", b"8bit", b"7bit"):
                    raise _invalid(kind, f"unsupported transfer encoding {value.strip()!r}")
        parts.append((ctype, content))
        if len(parts) > MAX_PARTS:
            raise _invalid(kind, f"more than {MAX_PARTS} multipart parts")
        pos = end + 2
    return parts


def decode_envelope(content_type: str, data: bytes, kind: Kind) -> Envelope:
    """Parse an HTTP body into an :class:`Envelope` (no signature check yet).

    Raises ``XRoadError`` (``InvalidMessage``; ServerProxy for a request, ClientProxy for a
    response) for anything malformed: never another exception.
    """
    try:
        parts = _split_multipart(content_type, data, kind)
    except XRoadError:
        raise
    except (ValueError, UnicodeError) as exc:  # pragma: no cover - defensive
        raise _invalid(kind, f"malformed multipart body: {exc}") from None
    want_head = CT_REQUEST if kind == "request" else CT_RESPONSE
    ocsp: list[bytes] = []
    header_part: bytes | None = None
    body: bytes | None = None
    signature: bytes | None = None
    for ctype, content in parts:
        if ctype == CT_OCSP:
            if header_part is not None:
                raise _invalid(kind, "OCSP response part after the REST header part")
            ocsp.append(content)
        elif ctype == want_head:
            if header_part is not None:
                raise _invalid(kind, f"two {want_head} parts")
            header_part = content
        elif ctype == CT_BODY:
            if header_part is None or body is not None or signature is not None:
                raise _invalid(kind, "misplaced REST body part")
            body = content
        elif ctype == CT_SIGNATURE:
            if header_part is None or signature is not None:
                raise _invalid(kind, "misplaced signature part")
            signature = content
        else:
            raise _invalid(kind, f"unexpected part {ctype or '(no Content-Type)'!r}")
    if header_part is None:
        raise _invalid(kind, f"message has no {want_head} part")
    if signature is None:
        raise _invalid(kind, "message has no signature part")
    return Envelope(
        kind=kind,
        header_part=header_part,
        body=body or None,
        signature=signature,
        ocsp_responses=tuple(ocsp),
    )


# --------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedRequest:
    envelope: Envelope
    signer_cert: x509.Certificate
    rest: RestRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedResponse:
    envelope: Envelope
    signer_cert: x509.Certificate
    rest: RestResponse


def _check_cms(
    envelope: Envelope,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    intermediates: Sequence[x509.Certificate],
    fault: Fault,
) -> x509.Certificate:
    try:
        return cms_verify_detached(
            envelope.signature,
            envelope.signed_data(),
            trusted_roots=trusted_roots,
            now=now,
            usage="sign",
            intermediates=intermediates,
        )
    except FederationError as exc:
        raise XRoadError(fault, f"{envelope.kind} signature does not verify: {exc}") from None
    except Exception as exc:
        # A trust boundary: whatever a peer's bytes make the parser raise (e.g. cryptography's
        # UnsupportedAlgorithm for a mangled embedded certificate) is an invalid signature.
        raise XRoadError(
            fault, f"{envelope.kind} signature is malformed: {type(exc).__name__}: {exc}"
        ) from None


def _check_signer(
    envelope: Envelope, cert: x509.Certificate, expected: ClientId, fault: Fault
) -> None:
    try:
        who = identify(cert)
    except FederationError as exc:
        raise XRoadError(fault, f"{envelope.kind} signer certificate: {exc}") from None
    if who != expected.member:
        raise XRoadError(
            fault, f"{envelope.kind} is signed by {who}, expected member {expected.member}"
        )


def verify_request(
    envelope: Envelope,
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    intermediates: Sequence[x509.Certificate] = (),
) -> VerifiedRequest:
    """Provider side: check the signature, then parse the request header part.

    The CMS signature is checked first, so any change to the header part, the body or the
    signature is ``Server.ServerProxy.InvalidSignatureValue``. The signer must chain to
    ``trusted_roots`` (the *client's* instance's approved CAs) and be the member of the
    ``X-Road-Client`` named in the header part (else InvalidSignatureValue too). A signed
    header part that does not parse is ``Server.ServerProxy.InvalidMessage``.
    """
    fault = Fault.PROVIDER_INVALID_SIGNATURE
    if envelope.kind != "request":
        raise _invalid("request", "expected a request envelope")
    cert = _check_cms(envelope, trusted_roots, now, intermediates, fault)
    try:
        rest = parse_request_header_part(envelope.header_part)
    except XRoadError as exc:
        raise _invalid("request", f"request header part: {exc.message}") from None
    _check_signer(envelope, cert, rest.client, fault)
    return VerifiedRequest(envelope=envelope, signer_cert=cert, rest=rest)


def verify_response(
    envelope: Envelope,
    *,
    provider: ClientId,
    trusted_roots: Sequence[x509.Certificate],
    now: float,
    intermediates: Sequence[x509.Certificate] = (),
) -> VerifiedResponse:
    """Consumer side: the response must verify, be signed by the member of ``provider``
    (the service's provider subsystem, from the *request*) and chain to ``trusted_roots``
    (the provider's instance's approved CAs). Raises ``XRoadError``
    (``Server.ClientProxy.InvalidSignatureValue``, or ``InvalidMessage`` for a signed but
    unparsable header part). The caller then runs ``check_response_matches``."""
    fault = Fault.INVALID_SIGNATURE
    if envelope.kind != "response":
        raise _invalid("response", "expected a response envelope")
    cert = _check_cms(envelope, trusted_roots, now, intermediates, fault)
    _check_signer(envelope, cert, provider, fault)
    try:
        rest = parse_response_header_part(envelope.header_part)
    except XRoadError as exc:
        raise _invalid("response", f"response header part: {exc.message}") from None
    return VerifiedResponse(envelope=envelope, signer_cert=cert, rest=rest)
