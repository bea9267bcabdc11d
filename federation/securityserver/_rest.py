"""X-Road Message Protocol for REST, r1: the sans-IO core of the client proxy's REST side.

Implements (``pr-rest_x-road_message_protocol_for_rest.md`` v1.0.x, and where the spec is
silent the behaviour of X-Road's ``RestMessage``/``RestRequest``/``RestResponse``):

* the path ``/r1/{INSTANCE}/{CLASS}/{CODE}/{SUBSYSTEM}/{SERVICE}[/path][?query]``, each
  identifier segment percent-decoded on its own (UTF-8), only version ``r1``;
* request headers: ``X-Road-Client`` (mandatory, last one wins), ``X-Road-Id`` (the consumer
  security server generates ``<INSTANCE>-<uuid>`` when missing, as X-Road does),
  ``X-Road-UserId``, ``X-Road-Issue``, ``X-Road-Security-Server``,
  ``X-Road-Represented-Party``; custom headers pass; hop-by-hop headers and ``Host``,
  ``User-Agent``, ``Server``, ``Content-Length``, ``Expect`` are dropped;
* the **REST header part**, the bytes the security servers sign and log:

  request::

      VERB CRLF  raw-path [ "?" raw-query ] CRLF  *( name ":" value CRLF )

  response::

      STATUS CRLF  reason-phrase CRLF  *( name ":" value CRLF )

  headers in message order, no space after the colon, UTF-8. The consumer security server
  appends ``x-road-request-id: <uuid>`` (and ``x-road-id`` when it generated one); the
  provider security server drops the information system's ``X-Road-Id``,
  ``X-Road-Client``, ``X-Road-Service``, ``X-Road-Request-Id``, ``X-Road-Request-Hash`` and
  appends its own (lower-case names, as X-Road writes them);
* ``X-Road-Request-Hash`` = base64(SHA-512(SHA-512(request header part) ‖ SHA-512(body)))
  for a request with a body, base64(SHA-512(request header part)) without one.

Every parse error raises :class:`~federation.securityserver.errors.XRoadError` with
``Fault.BAD_REQUEST`` (``Client.BadRequest``, HTTP 400).
"""

from __future__ import annotations

import base64
import hashlib
import http
import re
import urllib.parse
import uuid
from dataclasses import dataclass

from federation.identifiers import ClientId, SecurityServerId, ServiceId
from federation.securityserver.errors import Fault, XRoadError

__all__ = [
    "SKIPPED_HEADERS",
    "VERBS",
    "RepresentedParty",
    "RestRequest",
    "RestResponse",
    "RestTarget",
    "build_rest_request",
    "build_rest_response",
    "encode_id",
    "parse_r1_target",
    "parse_request_header_part",
    "parse_response_header_part",
    "request_hash",
]

VERBS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
"""The HTTP methods X-Road's REST protocol carries (``RestRequest.Verb``)."""

SKIPPED_HEADERS = frozenset(
    {
        "transfer-encoding",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "connection",
        "user-agent",
        "host",
        "content-length",
        "server",
        "expect",
    }
)
"""Headers never carried across X-Road (hop-by-hop, plus those each hop sets itself)."""

H_CLIENT = "x-road-client"
H_ID = "x-road-id"
H_SERVICE = "x-road-service"
H_REQUEST_ID = "x-road-request-id"
H_REQUEST_HASH = "x-road-request-hash"
H_USER_ID = "x-road-userid"
H_ISSUE = "x-road-issue"
H_SECURITY_SERVER = "x-road-security-server"
H_REPRESENTED_PARTY = "x-road-represented-party"

CRLF = b"\r\n"
_PART = re.compile(r"^[A-Za-z0-9'()+,\-.=?]+$")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Guava's urlPathSegmentEscaper keeps unreserved, sub-delims, ':' and '@'.
_SEGMENT_SAFE = "!$&'()*+,;=:@"


def _bad(message: str) -> XRoadError:
    return XRoadError(Fault.BAD_REQUEST, message)


def decode_segment(segment: str, what: str) -> str:
    """Percent-decode one path segment strictly (UTF-8); BAD_REQUEST on a malformed escape."""
    if _PCT.search(segment):
        raise _bad(f"malformed percent-encoding in {what} {segment!r}")
    try:
        return urllib.parse.unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _bad(f"{what} {segment!r} is not percent-encoded UTF-8") from None


def _id_part(segment: str, what: str) -> str:
    part = decode_segment(segment, what)
    if not _PART.match(part):
        raise _bad(
            f"invalid {what} {part!r}: must be non-empty and use only A-Z a-z 0-9 ' ( ) + , - . = ?"
        )
    return part


def encode_id(parts: list[str]) -> str:
    """``INST/CLASS/CODE[/...]`` with each part percent-encoded (the response header form)."""
    return "/".join(urllib.parse.quote(p, safe=_SEGMENT_SAFE) for p in parts)


def _decode_parts(value: str, counts: tuple[int, ...], what: str) -> list[str]:
    parts = value.strip().split("/")
    if len(parts) not in counts:
        raise _bad(f"invalid {what} {value!r}")
    return [_id_part(p, what) for p in parts]


def decode_client_id(value: str) -> ClientId:
    """``INST/CLASS/CODE[/SUB]``, each part percent-decoded (``X-Road-Client``)."""
    return ClientId(*_decode_parts(value, (3, 4), "X-Road-Client identifier"))


def decode_service_id(value: str) -> ServiceId:
    """``INST/CLASS/CODE/SUB/SERVICE``, each part percent-decoded (``X-Road-Service``)."""
    p = _decode_parts(value, (5,), "X-Road-Service identifier")
    return ServiceId(ClientId(*p[:4]), p[4])


def decode_server_id(value: str) -> SecurityServerId:
    """``INST/CLASS/CODE/SERVERCODE``, each part percent-decoded (``X-Road-Security-Server``)."""
    p = _decode_parts(value, (4,), "X-Road-Security-Server identifier")
    return SecurityServerId(ClientId(*p[:3]), p[3])


@dataclass(frozen=True, slots=True)
class RepresentedParty:
    """``X-Road-Represented-Party: [CLASS/]CODE``."""

    code: str
    member_class: str | None = None

    def __str__(self) -> str:
        return f"{self.member_class}/{self.code}" if self.member_class else self.code


def decode_represented_party(value: str) -> RepresentedParty:
    p = _decode_parts(value, (1, 2), "X-Road-Represented-Party")
    return RepresentedParty(p[-1], p[0] if len(p) == 2 else None)


# --------------------------------------------------------------------------------------
# path


@dataclass(frozen=True, slots=True, kw_only=True)
class RestTarget:
    """A parsed r1 request target."""

    service: ServiceId
    request_path: str
    """The raw (still percent-encoded) path, ``/r1/...`` included."""
    service_path: str
    """The raw path after the service code: ``""`` or ``"/..."`` (forwarded to the provider)."""
    query: str | None
    """The raw query without ``?``, or None when the target had no ``?``."""


def parse_r1_target(target: str) -> RestTarget:
    """Parse ``/r1/INST/CLASS/CODE/SUB/SERVICE[/path][?query]`` (raises BAD_REQUEST)."""
    if "#" in target:
        target = target.split("#", 1)[0]
    path, sep, query = target.partition("?")
    if not path.startswith("/"):
        raise _bad(f"request target {target!r} is not an absolute path")
    parts = path.split("/", 7)
    if len(parts) < 7:
        raise _bad(f"request path {path!r} is not /r1/INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/path]")
    version = parts[1]
    if not re.fullmatch(r"r[0-9]", version):
        raise _bad(f"invalid protocol version {version!r} (expected r1)")
    if version != "r1":
        raise _bad(f"unsupported protocol version {version!r} (only r1)")
    inst, cls, code, sub, svc = (
        _id_part(parts[i], name)
        for i, name in zip(
            range(2, 7),
            ("instance", "member class", "member code", "subsystem code", "service code"),
            strict=True,
        )
    )
    service = ServiceId(ClientId(inst, cls, code, sub), svc)
    service_path = "/" + parts[7] if len(parts) == 8 else ""
    return RestTarget(
        service=service,
        request_path=path,
        service_path=service_path,
        query=query if sep else None,
    )


# --------------------------------------------------------------------------------------
# request


def _find(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The last value of a header (case-insensitive), or None."""
    value = None
    for k, v in headers:
        if k.lower() == name:
            value = v
    return value


def _serialize(first: str, second: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    out = [first.encode(), CRLF, second.encode(), CRLF]
    for k, v in headers:
        out += [k.encode(), b":", v.encode(), CRLF]
    return b"".join(out)


def _split_header_part(data: bytes, what: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(f"{what} is not UTF-8") from None
    if not text.endswith("\r\n"):
        raise _bad(f"{what} does not end with CRLF")
    lines = text[:-2].split("\r\n")
    if len(lines) < 2:
        raise _bad(f"{what} has no start lines")
    headers: list[tuple[str, str]] = []
    for line in lines[2:]:
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(name) or name.lower() in SKIPPED_HEADERS:
            raise _bad(f"{what} has an invalid header line {line!r}")
        headers.append((name, value))
    return lines[0], lines[1], tuple(headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestRequest:
    """A REST request as it travels between security servers (the header part, parsed)."""

    method: str
    request_path: str
    query: str | None
    headers: tuple[tuple[str, str], ...]
    """Header-part headers in order, including ``x-road-request-id`` and ``x-road-id``."""
    service: ServiceId
    service_path: str
    client: ClientId
    xroad_id: str
    request_id: str
    user_id: str | None = None
    issue: str | None = None
    security_server: SecurityServerId | None = None
    represented_party: RepresentedParty | None = None

    def header(self, name: str) -> str | None:
        return _find(self.headers, name.lower())

    def header_part(self) -> bytes:
        """The REST header part bytes (``RestRequest.toByteArray`` form)."""
        target = self.request_path + (f"?{self.query}" if self.query is not None else "")
        return _serialize(self.method, target, self.headers)

    def backend_target(self) -> str:
        """Path and query for the provider's information system: service path + ``?query``."""
        return (self.service_path or "/") + (f"?{self.query}" if self.query is not None else "")

    def backend_headers(self) -> list[tuple[str, str]]:
        """Headers the provider security server sends to its information system (all of them,
        X-Road headers included, as X-Road does)."""
        return list(self.headers)


def _request_from(
    method: str,
    target: RestTarget,
    headers: tuple[tuple[str, str], ...],
) -> RestRequest:
    client_value = _find(headers, H_CLIENT)
    if client_value is None or not client_value.strip():
        raise _bad("the X-Road-Client header is missing")
    xroad_id = _find(headers, H_ID)
    request_id = _find(headers, H_REQUEST_ID)
    if not xroad_id or not request_id:
        raise _bad("X-Road-Id or X-Road-Request-Id missing from the header part")
    server = _find(headers, H_SECURITY_SERVER)
    party = _find(headers, H_REPRESENTED_PARTY)
    return RestRequest(
        method=method,
        request_path=target.request_path,
        query=target.query,
        headers=headers,
        service=target.service,
        service_path=target.service_path,
        client=decode_client_id(client_value),
        xroad_id=xroad_id,
        request_id=request_id,
        user_id=_find(headers, H_USER_ID),
        issue=_find(headers, H_ISSUE),
        security_server=decode_server_id(server) if server else None,
        represented_party=decode_represented_party(party) if party else None,
    )


def filter_headers(
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...], drop: frozenset[str]
) -> list[tuple[str, str]]:
    """Headers minus :data:`SKIPPED_HEADERS`, those named in ``Connection``, and ``drop``."""
    named: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            named.update(t.strip().lower() for t in v.split(",") if t.strip())
    return [
        (k, v)
        for k, v in headers
        if (lk := k.lower()) not in SKIPPED_HEADERS and lk not in named and lk not in drop
    ]


def build_rest_request(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    *,
    instance: str,
    request_id: str | None = None,
    new_xroad_id: str | None = None,
) -> RestRequest:
    """The client proxy's view of an information system's request (raises BAD_REQUEST).

    ``instance`` is the consumer security server's instance (for a generated
    ``X-Road-Id``: ``<instance>-<uuid4>``; ``new_xroad_id`` overrides it, for tests).
    ``request_id`` is the ``X-Road-Request-Id`` (uuid4 when None).
    """
    verb = method.upper()
    if verb not in VERBS:
        raise _bad(f"HTTP method {method!r} is not supported by X-Road REST")
    parsed = parse_r1_target(target)
    kept = filter_headers(headers, frozenset({H_REQUEST_ID, H_REQUEST_HASH}))
    rid = request_id or str(uuid.uuid4())
    kept.append((H_REQUEST_ID, rid))
    existing = _find(tuple(kept), H_ID)
    if existing is None or not existing.strip():
        kept = [(k, v) for k, v in kept if k.lower() != H_ID]
        kept.append((H_ID, new_xroad_id or f"{instance}-{uuid.uuid4()}"))
    return _request_from(verb, parsed, tuple(kept))


def parse_request_header_part(data: bytes) -> RestRequest:
    """A request header part received from a peer security server (raises BAD_REQUEST)."""
    verb, target, headers = _split_header_part(data, "request header part")
    if verb not in VERBS:
        raise _bad(f"request header part has an unsupported method {verb!r}")
    if "://" in target.split("?", 1)[0]:
        raise _bad("request header part target must be a path")
    rest = _request_from(verb, parse_r1_target(target), headers)
    if rest.header_part() != data:
        raise _bad("request header part is not in canonical form")
    return rest


def request_hash(header_part: bytes, body: bytes | None) -> bytes:
    """The raw ``X-Road-Request-Hash`` digest (SHA-512; see the module docstring)."""
    head = hashlib.sha512(header_part).digest()
    if not body:
        return head
    return hashlib.sha512(head + hashlib.sha512(body).digest()).digest()


# --------------------------------------------------------------------------------------
# response

_RESPONSE_DROP = frozenset({H_ID, H_REQUEST_HASH, H_CLIENT, H_SERVICE, H_REQUEST_ID})


@dataclass(frozen=True, slots=True, kw_only=True)
class RestResponse:
    """A REST response as it travels between security servers (the header part, parsed)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    """Header-part headers in order; the last five are the provider's X-Road headers."""
    xroad_id: str
    client: ClientId
    service: ServiceId
    request_id: str
    request_hash: bytes

    def header(self, name: str) -> str | None:
        return _find(self.headers, name.lower())

    def header_part(self) -> bytes:
        """The REST header part bytes (``RestResponse.toByteArray`` form)."""
        return _serialize(str(self.status), self.reason, self.headers)

    def client_headers(self) -> list[tuple[str, str]]:
        """Headers the consumer security server returns to the information system."""
        return list(self.headers)


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def build_rest_response(
    request: RestRequest,
    status: int,
    headers: list[tuple[str, str]],
    *,
    request_digest: bytes,
    reason: str | None = None,
) -> RestResponse:
    """The provider security server's response header part for the information system's
    response ``status``/``headers``; ``request_digest`` from :func:`request_hash`."""
    if not 100 <= status <= 999:
        raise ValueError(f"invalid HTTP status {status}")
    kept = filter_headers(headers, _RESPONSE_DROP)
    kept += [
        (H_ID, request.xroad_id),
        (H_CLIENT, encode_id(request.client.parts())),
        (H_SERVICE, encode_id([*request.service.client.parts(), request.service.code])),
        (H_REQUEST_ID, request.request_id),
        (H_REQUEST_HASH, base64.b64encode(request_digest).decode()),
    ]
    return RestResponse(
        status=status,
        reason=reason_phrase(status) if reason is None else reason,
        headers=tuple(kept),
        xroad_id=request.xroad_id,
        client=request.client,
        service=request.service,
        request_id=request.request_id,
        request_hash=request_digest,
    )


def parse_response_header_part(data: bytes) -> RestResponse:
    """A response header part received from the provider security server.

    Raises ``XRoadError(Fault.BAD_REQUEST)`` when malformed; the caller maps that to its
    own fault (the consumer side reports ``InconsistentResponse``/``InvalidSignatureValue``).
    """
    status_text, reason, headers = _split_header_part(data, "response header part")
    if not re.fullmatch(r"[1-9][0-9]{2}", status_text):
        raise _bad(f"response header part has an invalid status {status_text!r}")
    xroad_id = _find(headers, H_ID)
    hash_b64 = _find(headers, H_REQUEST_HASH)
    client = _find(headers, H_CLIENT)
    service = _find(headers, H_SERVICE)
    request_id = _find(headers, H_REQUEST_ID)
    if not (xroad_id and hash_b64 and client and service and request_id):
        raise _bad("response header part lacks an X-Road header")
    try:
        digest = base64.b64decode(hash_b64, validate=True)
    except ValueError:
        raise _bad("response X-Road-Request-Hash is not base64") from None
    rest = RestResponse(
        status=int(status_text),
        reason=reason,
        headers=headers,
        xroad_id=xroad_id,
        client=decode_client_id(client),
        service=decode_service_id(service),
        request_id=request_id,
        request_hash=digest,
    )
    if rest.header_part() != data:
        raise _bad("response header part is not in canonical form")
    return rest


def check_response_matches(request: RestRequest, response: RestResponse, body: bytes) -> None:
    """The consumer security server's consistency check (``checkConsistency``):
    client, X-Road-Id, service, request id and request hash must match the request.

    ``body`` is the request body that was sent. Raises ``XRoadError(INCONSISTENT_RESPONSE)``.
    """
    problems = []
    if response.client != request.client:
        problems.append("client id")
    if response.xroad_id != request.xroad_id:
        problems.append("X-Road-Id")
    if response.service != request.service:
        problems.append("service id")
    if response.request_id != request.request_id:
        problems.append("request id")
    if response.request_hash != request_hash(request.header_part(), body):
        problems.append("request hash")
    if problems:
        raise XRoadError(
            Fault.INCONSISTENT_RESPONSE,
            "response does not match the request: " + ", ".join(problems),
            xroad_id=request.xroad_id,
        )
