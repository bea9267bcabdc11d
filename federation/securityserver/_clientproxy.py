"""The client proxy: X-Road REST r1 for information systems (docs/exchange.md, "Runtime").

One request, in order: own configuration valid (``OutdatedGlobalConf``); the REST request
parses (``Client.BadRequest``); ``X-Road-Client`` is a client of this server
(``UnknownMember``); the message log accepts records (``TimestampingFailed``); the
provider's instance configuration is held and names the provider and the servers hosting
it (``UnknownMember``; ``X-Road-Security-Server`` must be one of them,
``InvalidSecurityServer``); the client member's signing key and fresh GOOD OCSP responses
for it and for the auth certificate (``CertValidation``); a provider server is chosen and
its TLS certificate checked before anything is sent (``NetworkError`` /
``SslAuthenticationFailed``); the request is logged, sent, and the response checked
(TLS peer, envelope, signature of the provider member, its OCSP, request hash), logged and
returned. Errors of the provider's security server pass through unchanged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from federation.errors import TransportError
from federation.globalconf import SecurityServerInfo
from federation.http import Request, Response
from federation.identifiers import ClientId
from federation.securityserver._envelope import (
    decode_envelope,
    encode_envelope,
    sign_envelope,
    transport_headers,
    verify_response,
)
from federation.securityserver._metaservices import MemberInfo, list_clients, list_clients_xml
from federation.securityserver._rest import build_rest_request, check_response_matches
from federation.securityserver._trust import TrustError, parse_ocsp_json
from federation.securityserver.errors import Fault, XRoadError, render_error

if TYPE_CHECKING:
    from federation.securityserver._server import SecurityServer

logger = logging.getLogger(__name__)

__all__ = ["ClientProxy"]

PEER_TIMEOUT_S = 60.0


@dataclass(slots=True)
class _Peer:
    """What the last ``GET /ocsp`` of a provider security server showed."""

    cert_der: bytes
    ocsp: list[bytes]
    fetched_at: float


def error_response(err: XRoadError, accept: str | None) -> Response:
    r = render_error(err, accept)
    return Response(r.status, list(r.headers), r.body)


class ClientProxy:
    """The information-system side of a :class:`SecurityServer`."""

    def __init__(self, ss: SecurityServer) -> None:
        self.ss = ss
        self._routes: dict[ClientId, tuple[str, float]] = {}
        """provider -> (chosen server address, cached until)."""
        self._peers: dict[str, _Peer] = {}
        """server address -> its TLS certificate and OCSP responses (verified on use)."""

    # ------------------------------------------------------------------ entry

    async def handle(self, req: Request) -> Response:
        accept = req.header("accept")
        try:
            path = req.path
            if path == "/listClients":
                return self._list_clients(req)
            if path.startswith(("/r1/", "/r")):
                return await self._exchange(req)
            raise XRoadError(
                Fault.BAD_REQUEST,
                f"unknown request path {path!r} (expected /r1/INSTANCE/CLASS/CODE/SUBSYSTEM/"
                "SERVICE[/path] or /listClients)",
            )
        except XRoadError as err:
            logger.info("%s client proxy: %s %s -> %s", self.ss.label, req.method, req.target, err)
            return error_response(err, accept)
        except Exception as exc:
            logger.exception("%s client proxy failed on %s %s", self.ss.label, req.method, req.path)
            internal = XRoadError(Fault.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return error_response(internal, accept)

    # ------------------------------------------------------------------ listClients

    def _list_clients(self, req: Request) -> Response:
        if req.method not in ("GET", "HEAD"):
            raise XRoadError(Fault.BAD_REQUEST, "listClients takes GET")
        if self.ss.conf.is_outdated():
            raise XRoadError(
                Fault.OUTDATED_GLOBALCONF, "global configuration of the own instance is expired"
            )
        requested = (req.query_params().get("xRoadInstance") or [""])[-1].strip()
        instance = requested or self.ss.instance
        shared = self.ss.conf.shared_parameters(instance)
        members = [
            MemberInfo(
                id=m.id, name=m.name, subsystems=tuple((s.code, s.name) for s in m.subsystems)
            )
            for m in (shared.members if shared else ())
        ]
        accept = (req.header("accept") or "").lower()
        if "json" in accept:
            obj = list_clients(members, own_instance=self.ss.instance, requested=instance)
            body = json.dumps(obj, separators=(",", ":")).encode()
            return Response(200, [("Content-Type", "application/json;charset=utf-8")], body)
        xml = list_clients_xml(members, own_instance=self.ss.instance, requested=instance)
        return Response(200, [("Content-Type", "text/xml;charset=utf-8")], xml)

    # ------------------------------------------------------------------ exchange

    async def _exchange(self, req: Request) -> Response:
        ss = self.ss
        conf = ss.conf
        if conf.is_outdated():
            raise XRoadError(
                Fault.OUTDATED_GLOBALCONF,
                "global configuration of the own instance is expired (last download failed)",
            )
        rest = build_rest_request(req.method, req.target, req.headers, instance=ss.instance)
        xid = rest.xroad_id
        if rest.client not in ss.server.clients:
            raise XRoadError(
                Fault.CLIENT_NOT_REGISTERED,
                f"client {rest.client} is not a registered client of security server {ss.id}",
                xroad_id=xid,
            )
        ss.log.check_can_log(ss.clock.now(), "client")
        provider = rest.service.client
        candidates = self._candidates(provider, rest.security_server, xid)

        signer = ss.signer_for(rest.client)
        if signer is None:
            raise XRoadError(
                Fault.CERT_VALIDATION,
                f"no signing certificate for member {rest.client.member} on {ss.id}",
                xroad_id=xid,
            )
        try:
            ocsp = [ss.own_ocsp.fresh_good(ss.auth.cert), ss.own_ocsp.fresh_good(signer.cert)]
        except TrustError as exc:
            raise XRoadError(Fault.CERT_VALIDATION, str(exc), xroad_id=xid) from None
        body = req.body or None
        env = sign_envelope("request", rest.header_part(), body, signer=signer, ocsp_responses=ocsp)

        address = await self._route(provider, candidates, xid)
        ss.log.append_envelope(
            env,
            side="client",
            xroad_id=xid,
            client_id=str(rest.client),
            service_id=str(rest.service),
            now=ss.clock.now(),
            request_id=rest.request_id,
        )
        wire = ss.tamper_request(env) if ss.tamper_request else env
        ctype, data = encode_envelope(wire)
        host, port = ss.map_address(address)
        try:
            resp = await ss.peer_http.request(
                host,
                port,
                "POST",
                "/",
                headers=[("Content-Type", ctype), *transport_headers(rest.request_id)],
                body=data,
                timeout_s=PEER_TIMEOUT_S,
            )
        except TransportError as exc:
            self._forget(provider, address)
            raise XRoadError(
                Fault.NETWORK_ERROR,
                f"exchange with security server at {address} failed: {exc}",
                xroad_id=xid,
            ) from None
        await self._check_response_peer(address, resp.peer_cert_der, provider, xid)

        error_type = resp.header("x-road-error")
        if error_type:
            raise self._provider_error(error_type, resp.body, xid)
        renv = decode_envelope(resp.header("content-type") or "", resp.body, "response")
        view = ss.views.view(provider.instance)
        if view is None:
            raise XRoadError(
                Fault.UNKNOWN_MEMBER,
                f"configuration of instance {provider.instance} expired during the call",
                xroad_id=xid,
            )
        now = ss.clock.now()
        verified = verify_response(
            renv,
            provider=provider,
            trusted_roots=view.roots,
            intermediates=view.intermediates,
            now=now,
        )
        issuer = view.issuer_of(verified.signer_cert)
        try:
            if issuer is None:
                raise TrustError("signing certificate issuer is not an approved CA")
            ss.ocsp_verifier.check_good(
                renv.ocsp_responses,
                verified.signer_cert,
                issuer,
                now=now,
                freshness_s=ss.own_ocsp.freshness_s(),
            )
        except TrustError as exc:
            raise XRoadError(
                Fault.CERT_VALIDATION,
                f"provider {provider.member} signing certificate: {exc}",
                xroad_id=xid,
            ) from None
        check_response_matches(rest, verified.rest, body or b"")
        ss.log.append_envelope(
            renv,
            side="client",
            xroad_id=xid,
            client_id=str(rest.client),
            service_id=str(rest.service),
            now=ss.clock.now(),
            request_id=rest.request_id,
        )
        return Response(verified.rest.status, verified.rest.client_headers(), renv.body or b"")

    def _provider_error(self, error_type: str, body: bytes, xid: str) -> XRoadError:
        message, detail = "error from the provider's security server", None
        try:
            obj = json.loads(body)
            message = str(obj.get("message", message))
            detail = str(obj["detail"]) if obj.get("detail") else None
        except (ValueError, AttributeError):
            pass
        err = XRoadError.from_wire(error_type, message, detail)
        err.xroad_id = xid
        return err

    # ------------------------------------------------------------------ routing

    def _candidates(self, provider: ClientId, pinned: object, xid: str) -> list[SecurityServerInfo]:
        shared = self.ss.conf.shared_parameters(provider.instance)
        if shared is None:
            raise XRoadError(
                Fault.UNKNOWN_MEMBER,
                f"no valid global configuration of instance {provider.instance} "
                "(not federated, not allowed, or expired)",
                xroad_id=xid,
            )
        if not shared.has_client(provider):
            raise XRoadError(
                Fault.UNKNOWN_MEMBER,
                f"{provider} is not a member or subsystem of {provider.instance}",
                xroad_id=xid,
            )
        hosting = [s for s in shared.servers_hosting(provider) if s.address]
        if pinned is not None:
            pinned_servers = [s for s in hosting if s.id == pinned]
            if not pinned_servers:
                raise XRoadError(
                    Fault.INVALID_SECURITY_SERVER,
                    f"security server {pinned} does not host {provider}",
                    xroad_id=xid,
                )
            return pinned_servers
        hosting = [s for s in hosting if not s.maintenance_mode]
        if not hosting:
            raise XRoadError(
                Fault.UNKNOWN_MEMBER,
                f"no security server of {provider.instance} hosts {provider}",
                xroad_id=xid,
            )
        return hosting

    def _forget(self, provider: ClientId, address: str) -> None:
        self._peers.pop(address, None)
        cached = self._routes.get(provider)
        if cached is not None and cached[0] == address:
            del self._routes[provider]

    async def _route(
        self, provider: ClientId, candidates: list[SecurityServerInfo], xid: str
    ) -> str:
        """The provider server to use, its TLS identity verified. With several, the first to
        answer ``GET /ocsp`` (TCP + TLS + one round trip) with a trusted certificate wins;
        the choice is cached for :attr:`SecurityServer.route_cache_s`."""
        now = self.ss.clock.now()
        addresses = [s.address for s in candidates]
        cached = self._routes.get(provider)
        if cached is not None and cached[0] in addresses and cached[1] > now:
            address = cached[0]
            peer = self._peers.get(address)
            # re-ask after the peer's own refresh period, so a revocation is seen soon
            if peer is not None and now - peer.fetched_at <= self.ss.timers.ocsp_fetch_interval_s:
                try:
                    self.ss.check_peer_auth(peer.cert_der, provider, peer.ocsp)
                    return address
                except TrustError:
                    pass  # e.g. its OCSP response aged: ask again
            await self._probe(address, provider, xid)
            return address
        if len(addresses) == 1:
            await self._probe(addresses[0], provider, xid)
            winner = addresses[0]
        else:
            winner = await self._race(addresses, provider, xid)
        self._routes[provider] = (winner, now + self.ss.route_cache_s)
        return winner

    async def _race(self, addresses: list[str], provider: ClientId, xid: str) -> str:
        winner: str | None = None
        errors: list[XRoadError] = []
        async with trio.open_nursery() as nursery:

            async def attempt(address: str) -> None:
                nonlocal winner
                try:
                    await self._probe(address, provider, xid)
                except XRoadError as err:
                    errors.append(err)
                    return
                if winner is None:
                    winner = address
                    nursery.cancel_scope.cancel()

            for a in addresses:
                nursery.start_soon(attempt, a)
        if winner is not None:
            return winner
        auth = [e for e in errors if e.fault is Fault.SSL_AUTH_FAILED]
        raise (auth or errors)[0]

    async def _probe(self, address: str, provider: ClientId, xid: str) -> _Peer:
        """``GET /ocsp`` on the provider server: connects (TLS), and brings its OCSP
        responses; then checks its TLS certificate for ``provider``."""
        host, port = self.ss.map_address(address)
        try:
            resp = await self.ss.peer_http.request(
                host, port, "GET", "/ocsp", timeout_s=PEER_TIMEOUT_S
            )
        except TransportError as exc:
            self._forget(provider, address)
            raise XRoadError(
                Fault.NETWORK_ERROR,
                f"cannot connect to security server at {address}: {exc}",
                xroad_id=xid,
            ) from None
        if resp.peer_cert_der is None:  # pragma: no cover - TLS always has one
            raise XRoadError(Fault.SSL_AUTH_FAILED, "no TLS certificate", xroad_id=xid)
        try:
            if resp.status != 200:
                raise TrustError(f"GET /ocsp answered HTTP {resp.status}")
            peer = _Peer(
                resp.peer_cert_der,
                list(parse_ocsp_json(resp.body).values()),
                self.ss.clock.now(),
            )
            self.ss.check_peer_auth(peer.cert_der, provider, peer.ocsp)
        except TrustError as exc:
            self._forget(provider, address)
            raise XRoadError(
                Fault.SSL_AUTH_FAILED,
                f"security server at {address} is not trusted for {provider}: {exc}",
                xroad_id=xid,
            ) from None
        self._peers[address] = peer
        return peer

    async def _check_response_peer(
        self, address: str, cert_der: bytes | None, provider: ClientId, xid: str
    ) -> None:
        """The response came over a connection whose certificate was verified (a pooled
        connection opened since the probe may present another one: verify that too)."""
        peer = self._peers.get(address)
        if peer is not None and cert_der == peer.cert_der:
            return
        fresh = await self._probe(address, provider, xid)
        if cert_der == fresh.cert_der:
            return
        try:
            if cert_der is None:
                raise TrustError("no TLS certificate")
            self.ss.check_peer_auth(cert_der, provider, fresh.ocsp)
        except TrustError as exc:
            raise XRoadError(
                Fault.SSL_AUTH_FAILED,
                f"security server at {address} answered over an untrusted connection: {exc}",
                xroad_id=xid,
            ) from None
