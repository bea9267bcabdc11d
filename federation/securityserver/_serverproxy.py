"""The server proxy: signed requests from other security servers over mutual TLS.

Checks, in X-Road's order (xroad.md section 3, "Provider SS order"): own configuration
valid; the envelope parses; the request is for this server (``X-Road-Security-Server``)
and for a client it hosts; the client is known in its instance's configuration; the TLS
peer certificate (registered for a server hosting the client, chain to an approved CA of
the client's instance, fresh GOOD OCSP response sent along in the request); the service
exists; the access right; the signature of the client member and the OCSP response for
its signing certificate. Then: log, call the provider information system (or answer a
metaservice), sign the response with the provider member's key, log, reply.

``GET /ocsp[?cert=<sha1 hex>...]`` hands out this server's own OCSP responses (X-Road
serves them on port 5577; here on the server proxy port): JSON
``{"responses": {"<sha1 hex of the certificate DER>": "<base64 DER OCSPResponse>"}}``.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from typing import TYPE_CHECKING

from federation.errors import TransportError
from federation.http import Request, Response, json_response, text_response
from federation.identifiers import ServiceId
from federation.infosystems import service_url
from federation.securityserver._envelope import (
    decode_envelope,
    encode_envelope,
    sign_envelope,
    verify_request,
)
from federation.securityserver._metaservices import (
    METASERVICES,
    Endpoint,
    ServiceDescription,
    allowed_methods,
    list_methods,
)
from federation.securityserver._rest import (
    RestRequest,
    build_rest_response,
    parse_request_header_part,
    request_hash,
)
from federation.securityserver._trust import TrustError
from federation.securityserver.errors import Fault, XRoadError, render_error

if TYPE_CHECKING:
    from federation.securityserver._server import SecurityServer

logger = logging.getLogger(__name__)

__all__ = ["ServerProxy"]

BACKEND_TIMEOUT_S = 30.0
"""X-Road ``proxy.client-timeout`` default."""


class ServerProxy:
    """The security-server side of a :class:`SecurityServer`."""

    def __init__(self, ss: SecurityServer) -> None:
        self.ss = ss
        self._backends: dict[ServiceId, tuple[str, int, str]] = {}

    async def handle(self, req: Request) -> Response:
        if req.path == "/ocsp":
            if req.method != "GET":
                return text_response("GET only\n", 405)
            wanted = req.query_params().get("cert", [])
            out = {
                k: base64.b64encode(v).decode()
                for k, v in self.ss.own_ocsp.responses(wanted).items()
            }
            return json_response({"responses": out})
        if req.method != "POST":
            return text_response("POST a signed X-Road message\n", 405)
        try:
            return await self._exchange(req)
        except XRoadError as err:
            logger.info("%s server proxy: %s", self.ss.label, err)
            r = render_error(err)
            return Response(r.status, list(r.headers), r.body)
        except Exception as exc:
            logger.exception("%s server proxy failed", self.ss.label)
            internal = XRoadError(Fault.PROVIDER_INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            r = render_error(internal)
            return Response(r.status, list(r.headers), r.body)

    async def _exchange(self, req: Request) -> Response:
        ss = self.ss
        if ss.conf.is_outdated():
            raise XRoadError(
                Fault.PROVIDER_OUTDATED_GLOBALCONF,
                f"global configuration of {ss.instance} is expired on {ss.id}",
            )
        ss.log.check_can_log(ss.clock.now(), "provider")
        env = decode_envelope(req.header("content-type") or "", req.body, "request")
        try:
            rest = parse_request_header_part(env.header_part)
        except XRoadError as exc:
            raise XRoadError(
                Fault.PROVIDER_INVALID_MESSAGE, f"request header part: {exc.message}"
            ) from None
        xid = rest.xroad_id
        if rest.security_server is not None and rest.security_server != ss.id:
            raise XRoadError(
                Fault.PROVIDER_INVALID_SECURITY_SERVER,
                f"request is for security server {rest.security_server}, this is {ss.id}",
                xroad_id=xid,
            )
        provider = rest.service.client
        if provider not in ss.server.clients:
            raise XRoadError(
                Fault.PROVIDER_UNKNOWN_MEMBER,
                f"{provider} is not a client of security server {ss.id}",
                xroad_id=xid,
            )
        client = rest.client
        shared = ss.conf.shared_parameters(client.instance)
        if shared is None or not shared.has_client(client):
            raise XRoadError(
                Fault.PROVIDER_UNKNOWN_MEMBER,
                f"client {client} is unknown (no valid configuration of {client.instance} "
                "names it)",
                xroad_id=xid,
            )
        if req.peer_cert_der is None:
            raise XRoadError(Fault.PROVIDER_SSL_AUTH_FAILED, "no client TLS certificate")
        try:
            ss.check_peer_auth(req.peer_cert_der, client, env.ocsp_responses)
        except TrustError as exc:
            raise XRoadError(
                Fault.PROVIDER_SSL_AUTH_FAILED, f"client security server: {exc}", xroad_id=xid
            ) from None
        meta = rest.service.code in METASERVICES and ss.definition.service(rest.service) is None
        if not meta:
            if ss.definition.service(rest.service) is None:
                raise XRoadError(
                    Fault.UNKNOWN_SERVICE, f"unknown service {rest.service}", xroad_id=xid
                )
            if not ss.access.allowed(client, rest.service):
                raise XRoadError(
                    Fault.ACCESS_DENIED,
                    f"{client} has no access right to {rest.service}",
                    xroad_id=xid,
                )
        elif rest.service.code == "getOpenAPI":
            raise XRoadError(
                Fault.UNKNOWN_SERVICE, "getOpenAPI is not implemented by xfed", xroad_id=xid
            )
        view = ss.views.view(client.instance, shared)
        assert view is not None
        now = ss.clock.now()
        verified = verify_request(
            env, trusted_roots=view.roots, intermediates=view.intermediates, now=now
        )
        issuer = view.issuer_of(verified.signer_cert)
        try:
            if issuer is None:
                raise TrustError("signing certificate issuer is not an approved CA")
            ss.ocsp_verifier.check_good(
                env.ocsp_responses,
                verified.signer_cert,
                issuer,
                now=now,
                freshness_s=ss.own_ocsp.freshness_s(),
            )
        except TrustError as exc:
            raise XRoadError(
                Fault.PROVIDER_CERT_VALIDATION,
                f"client {client.member} signing certificate: {exc}",
                xroad_id=xid,
            ) from None
        signer = ss.signer_for(provider)
        if signer is None:
            raise XRoadError(
                Fault.PROVIDER_CERT_VALIDATION,
                f"no signing certificate for provider member {provider.member}",
                xroad_id=xid,
            )
        try:
            own_ocsp = [ss.own_ocsp.fresh_good(signer.cert)]
        except TrustError as exc:
            raise XRoadError(Fault.PROVIDER_CERT_VALIDATION, str(exc), xroad_id=xid) from None
        ss.log.append_envelope(
            env,
            side="provider",
            xroad_id=xid,
            client_id=str(client),
            service_id=str(rest.service),
            now=now,
            request_id=rest.request_id,
        )
        if meta:
            status, headers, body = self._metaservice(rest)
        else:
            status, headers, body = await self._call_backend(rest, env.body)
        rresp = build_rest_response(
            rest, status, headers, request_digest=request_hash(env.header_part, env.body)
        )
        renv = sign_envelope(
            "response", rresp.header_part(), body or None, signer=signer, ocsp_responses=own_ocsp
        )
        ss.log.append_envelope(
            renv,
            side="provider",
            xroad_id=xid,
            client_id=str(client),
            service_id=str(rest.service),
            now=ss.clock.now(),
            request_id=rest.request_id,
        )
        wire = ss.tamper_response(renv) if ss.tamper_response else renv
        ctype, data = encode_envelope(wire)
        return Response(
            200, [("Content-Type", ctype), ("x-road-request-id", rest.request_id)], data
        )

    # ------------------------------------------------------------------ provider side

    def _backend(self, service: ServiceId) -> tuple[str, int, str]:
        hit = self._backends.get(service)
        if hit is None:
            u = urllib.parse.urlsplit(service_url(self.ss.infosystem_url, service))
            hit = (u.hostname or "127.0.0.1", u.port or 80, u.path.rstrip("/"))
            self._backends[service] = hit
        return hit

    async def _call_backend(
        self, rest: RestRequest, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port, prefix = self._backend(rest.service)
        try:
            resp = await self.ss.is_http.request(
                host,
                port,
                rest.method,
                prefix + rest.backend_target(),
                headers=rest.backend_headers(),
                body=body or b"",
                timeout_s=BACKEND_TIMEOUT_S,
            )
        except TransportError as exc:
            raise XRoadError(
                Fault.PROVIDER_NETWORK_ERROR,
                f"provider information system for {rest.service} failed: {exc}",
                xroad_id=rest.xroad_id,
            ) from None
        return resp.status, resp.headers, resp.body

    def _metaservice(self, rest: RestRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        provider = rest.service.client
        services = [
            ServiceDescription(
                service=s.id, endpoints=tuple(Endpoint(e.method, e.path) for e in s.endpoints)
            )
            for s in self.ss.definition.services
            if s.id.client == provider
        ]
        if rest.service.code == "listMethods":
            obj = list_methods(provider, services)
        else:
            obj = allowed_methods(provider, rest.client, services, self.ss.access.allowed)
        body = json.dumps(obj, separators=(",", ":")).encode()
        return 200, [("Content-Type", "application/json;charset=utf-8")], body
