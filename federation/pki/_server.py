"""trio shells for the OCSP responder and the TSA, and the admin client.

OCSP (RFC 6960 appendix A.1), on its public listener:

* ``POST`` any path with ``Content-Type: application/ocsp-request`` -> ``200
  application/ocsp-response`` (a malformed body gets an OCSP ``malformedRequest``);
* ``GET /<base64 DER request>`` (standard or url-safe base64, percent-encoded or not,
  padding optional) -> the same; undecodable base64 gets ``malformedRequest``;
* a POST with another content type -> HTTP 400 (it is not an OCSP request at all);
  other methods -> 405.

The admin interface has its own listener (own port), so it is never reachable through the
public OCSP URL:

* ``POST /revoke``: body a PEM certificate (``?reason=keyCompromise`` optional) or JSON
  ``{"serial": <int or hex string>, "reason": "...", "time": <POSIX seconds>}``;
* ``POST /unrevoke``: same body forms, restores ``good``;
* ``GET /status``: JSON with the issuer, the number of issued certificates and the revoked
  serials (hex, as ``openssl x509 -serial`` prints them).

TSA (RFC 3161 section 3.4): ``POST`` with ``Content-Type: application/timestamp-query`` ->
``200 application/timestamp-reply``; another content type -> HTTP 400; other methods 405.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from federation.clock import Clock, SystemClock, iso
from federation.errors import PkiError, TransportError
from federation.http import Handler, Request, Response, json_response, serve_http, text_response
from federation.pki._keys import load_cert_pem
from federation.pki._ocsp import OcspResponder, Revocation
from federation.pki._tsa import TimeStampAuthority

logger = logging.getLogger(__name__)

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
TS_QUERY = "application/timestamp-query"
TS_REPLY = "application/timestamp-reply"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _media_type(req: Request) -> str:
    return (req.header("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class OcspEndpoints:
    """Where a running responder listens: the public OCSP URL and the admin URL."""

    url: str
    admin_url: str


def _decode_get(path: str) -> bytes | None:
    """The DER request of a GET path, or None when the base64 does not decode."""
    text = urllib.parse.unquote(path.lstrip("/"))
    text = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def ocsp_handler(responder: OcspResponder, clock: Clock) -> Handler:
    """The public OCSP request handler."""

    def answer(der: bytes) -> Response:
        body = responder.respond(der, clock.now())
        return Response(200, [("Content-Type", OCSP_RESPONSE)], body)

    async def handle(req: Request) -> Response:
        if req.method == "POST":
            if _media_type(req) != OCSP_REQUEST:
                return text_response(f"expected Content-Type: {OCSP_REQUEST}\n", 400)
            return answer(req.body)
        if req.method == "GET":
            if req.path.strip("/") == "":
                return text_response("OCSP responder: POST or GET /<base64 request>\n", 400)
            der = _decode_get(req.path)
            return answer(der if der is not None else b"")  # b"" -> malformedRequest
        return Response(405, [("Allow", "GET, POST")], b"method not allowed\n")

    return handle


def _parse_serial(value: object) -> int:
    if isinstance(value, bool):
        raise PkiError("serial must be an integer or a hex string")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(":", "")
        text = text.removeprefix("0x")
        try:
            return int(text, 16)
        except ValueError:
            pass
    raise PkiError(f"serial must be an integer or a hex string, not {value!r}")


def _revocation_json(rev: Revocation) -> dict[str, object]:
    return {"serial": f"{rev.serial:X}", "time": iso(rev.time), "reason": rev.reason}


def ocsp_admin_handler(responder: OcspResponder, clock: Clock) -> Handler:
    """The admin handler: revoke, unrevoke, status."""

    def target(req: Request) -> tuple[int, str, float]:
        params = req.query_params()
        reason = params.get("reason", ["keyCompromise"])[-1]
        when = clock.now()
        if b"-----BEGIN CERTIFICATE-----" in req.body:
            return responder.serial_of(load_cert_pem(req.body)), reason, when
        try:
            obj = json.loads(req.body)
        except ValueError:
            raise PkiError("body must be a PEM certificate or a JSON object") from None
        if not isinstance(obj, dict):
            raise PkiError("body must be a PEM certificate or a JSON object")
        if "cert" in obj:
            serial = responder.serial_of(load_cert_pem(str(obj["cert"]).encode()))
        elif "serial" in obj:
            serial = _parse_serial(obj["serial"])
        else:
            raise PkiError('JSON body needs "serial" or "cert"')
        if "time" in obj:
            try:
                if isinstance(obj["time"], bool):
                    raise TypeError
                when = float(obj["time"])
            except (TypeError, ValueError, OverflowError):
                raise PkiError(f'"time" must be POSIX seconds, not {obj["time"]!r}') from None
        return serial, str(obj.get("reason", reason)), when

    async def handle(req: Request) -> Response:
        try:
            if req.method == "POST" and req.path == "/revoke":
                serial, reason, when = target(req)
                rev = responder.revoke(serial, when, reason)
                logger.info("OCSP admin: revoked serial %X (%s)", serial, rev.reason)
                return json_response({"status": "revoked", **_revocation_json(rev)})
            if req.method == "POST" and req.path == "/unrevoke":
                serial, _, _ = target(req)
                was = responder.unrevoke(serial)
                logger.info("OCSP admin: unrevoked serial %X (was revoked: %s)", serial, was)
                return json_response(
                    {
                        "serial": f"{serial:X}",
                        "status": responder.status_of(serial),
                        "was_revoked": was,
                    }
                )
            if req.method == "GET" and req.path == "/status":
                return json_response(
                    {
                        "issuer": responder.ca.issuer.subject.rfc4514_string(),
                        "responder": responder.responder.cert.subject.rfc4514_string(),
                        "validity_s": responder.validity_s,
                        "issued": len(responder.ca.issued_serials),
                        "revoked": [_revocation_json(r) for r in responder.revocations()],
                    }
                )
        except PkiError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"error": f"no such admin endpoint: {req.method} {req.path}"}, 404)

    return handle


async def serve_ocsp(
    responder: OcspResponder,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    admin_host: str | None = None,
    admin_port: int = 0,
    clock: Clock | None = None,
    task_status: trio.TaskStatus[OcspEndpoints] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the OCSP responder and its admin interface until cancelled.

    Reports :class:`OcspEndpoints` through ``task_status.started``. ``clock`` (default the
    system clock) gives ``now`` for thisUpdate and for revocations made through the admin.
    """
    clock = clock or SystemClock()
    async with trio.open_nursery() as nursery:
        h, p = await nursery.start(
            lambda task_status: serve_http(
                ocsp_handler(responder, clock),
                host=host,
                port=port,
                name="ocsp",
                max_body=1 << 20,
                task_status=task_status,
            )
        )
        ah, ap = await nursery.start(
            lambda task_status: serve_http(
                ocsp_admin_handler(responder, clock),
                host=admin_host or host,
                port=admin_port,
                name="ocsp-admin",
                max_body=1 << 20,
                task_status=task_status,
            )
        )
        endpoints = OcspEndpoints(_url(h, p), _url(ah, ap))
        logger.info("OCSP responder at %s (admin %s)", endpoints.url, endpoints.admin_url)
        task_status.started(endpoints)


def tsa_handler(tsa: TimeStampAuthority, clock: Clock) -> Handler:
    """The RFC 3161 HTTP handler."""

    async def handle(req: Request) -> Response:
        if req.method != "POST":
            return Response(405, [("Allow", "POST")], b"method not allowed\n")
        if _media_type(req) != TS_QUERY:
            return text_response(f"expected Content-Type: {TS_QUERY}\n", 400)
        return Response(200, [("Content-Type", TS_REPLY)], tsa.respond(req.body, clock.now()))

    return handle


async def serve_tsa(
    tsa: TimeStampAuthority,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the TSA until cancelled; reports its URL (``http://HOST:PORT/``)."""
    clock = clock or SystemClock()

    async with trio.open_nursery() as nursery:
        h, p = await nursery.start(
            lambda task_status: serve_http(
                tsa_handler(tsa, clock),
                host=host,
                port=port,
                name="tsa",
                max_body=1 << 20,
                task_status=task_status,
            )
        )
        url = _url(h, p)
        logger.info("TSA at %s", url)
        task_status.started(url)


async def _admin_post(admin_url: str, path: str, body: bytes, params: dict[str, str]) -> Any:
    url = urllib.parse.urljoin(admin_url, path)
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            r = await client.post(
                url, content=body, params=params, headers={"Content-Type": "application/json"}
            )
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the OCSP admin interface at {url}: {exc}") from None
    try:
        data = r.json()
    except ValueError:
        data = {"error": r.text}
    if r.status_code != 200:
        raise PkiError(f"OCSP admin at {url} refused: {data.get('error', r.text)}")
    return data


async def revoke_remote(
    admin_url: str, cert_pem: bytes | str, reason: str = "keyCompromise"
) -> dict[str, Any]:
    """Revoke a certificate through a running responder's admin interface (``xfed revoke``).

    Returns the admin's JSON answer (``serial``, ``time``, ``reason``). Raises
    TransportError when the responder is unreachable and PkiError when it refuses.
    """
    body = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    result: dict[str, Any] = await _admin_post(admin_url, "revoke", body, {"reason": reason})
    return result


async def unrevoke_remote(admin_url: str, cert_pem: bytes | str) -> dict[str, Any]:
    """Restore a revoked certificate through the admin interface."""
    body = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    result: dict[str, Any] = await _admin_post(admin_url, "unrevoke", body, {})
    return result
