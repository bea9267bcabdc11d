"""The trio runtime of one X-Road security server (docs/exchange.md, "Runtime").

:class:`SecurityServer` wires the sans-IO cores together:

* the **client proxy** (:mod:`._clientproxy`, plain HTTP for information systems): REST r1,
  routing, signing, the provider's TLS and signature checks, ``listClients``;
* the **server proxy** (:mod:`._serverproxy`, mutual TLS with the auth certificate): the
  client's TLS certificate, service, access right and signature checks, the call to the
  provider information system, the signed response, and ``GET /ocsp`` (OCSP distribution);
* the **OCSP cache** for the own certificates (:class:`._trust.OwnOcsp`);
* the **message log** (``<state_dir>/messagelog.sqlite``) and the batch **time-stamper**.

Two phases, as :mod:`federation.topology._runtime` drives them: :meth:`SecurityServer.serve`
binds both listeners and reports :class:`SecurityServerAddresses`;
:meth:`SecurityServer.connect` receives the address map (real ``host:port`` -> chaos proxy)
and starts the background tasks (OCSP refresh, time-stamping, TLS trust refresh).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from cryptography import x509

from federation.clock import Clock
from federation.errors import PkiError
from federation.globalconf import ConfigurationClient, SharedParameters, cert_hash
from federation.http import HttpClient, serve_http
from federation.identifiers import ClientId, ServiceId
from federation.pki import Credential, verify_chain
from federation.pki._keys import write_private
from federation.securityserver._envelope import Envelope
from federation.securityserver._messagelog import MessageLog
from federation.securityserver._metaservices import AccessRights
from federation.securityserver._timestamper import run_timestamper
from federation.securityserver._trust import (
    OcspVerifier,
    OwnOcsp,
    TrustError,
    TrustViews,
    cert_from_der,
    der_of,
)
from federation.settings import Timers
from federation.topology._model import InstanceDef, SecurityServerDef

logger = logging.getLogger(__name__)

__all__ = ["SecurityServer", "SecurityServerAddresses"]

Tamper = Callable[[Envelope], Envelope]


@dataclass(frozen=True, slots=True)
class SecurityServerAddresses:
    """Where a running security server listens."""

    client_url: str
    """Client proxy base URL for information systems, ``http://host:port``."""
    server_address: str
    """Server proxy ``host:port`` (mutual TLS), as published in the shared parameters."""


def _split_hostport(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class SecurityServer:
    """One security server. See the module docstring; the constructor does no I/O besides
    writing the TLS key material under ``state_dir/tls`` and opening the message log.

    Test hooks (off by default): :attr:`tamper_request` rewrites each signed request
    envelope after it was logged and before it is sent; :attr:`tamper_response` does the
    same to each signed response of the server proxy.
    """

    def __init__(
        self,
        *,
        definition: InstanceDef,
        server: SecurityServerDef,
        auth: Credential,
        sign: Mapping[ClientId, Credential],
        conf: ConfigurationClient,
        infosystem_url: str,
        state_dir: Path,
        clock: Clock,
        timers: Timers,
        host: str = "127.0.0.1",
        client_port: int = 0,
        server_port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.definition = definition
        self.server = server
        self.id = server.id
        self.instance = definition.instance
        self.auth = auth
        self.sign: dict[ClientId, Credential] = {m.member: c for m, c in sign.items()}
        self.conf = conf
        self.infosystem_url = infosystem_url.rstrip("/")
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.timers = timers
        self.host = host
        self.client_port = client_port
        self.server_port = server_port
        self.seed = seed
        self.label = f"{self.instance}.{server.code}"
        self.tamper_request: Tamper | None = None
        self.tamper_response: Tamper | None = None
        self.access = AccessRights(
            {rule.service: definition.allowed_clients(rule.service) for rule in definition.access}
        )
        """Access rights (from the instance definition; replace to grant or revoke)."""
        self.route_cache_s = 3600.0 / max(definition.time_scale, 1e-9)
        """X-Road's ``client-fastest-connecting-ssl-uri-cache-period``, scaled."""
        self.addr_map: dict[str, str] = {}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log = MessageLog(
            self.state_dir / "messagelog.sqlite",
            failure_period_s=timers.timestamp_failure_period_s,
        )
        self.views = TrustViews(conf)
        self.ocsp_verifier = OcspVerifier()
        creds = {"auth": auth, **{f"sign {m}": c for m, c in self.sign.items()}}
        self.own_ocsp = OwnOcsp(
            creds,
            conf=conf,
            views=self.views,
            clock=clock,
            fetch_interval_s=timers.ocsp_fetch_interval_s,
            retry_delay_s=timers.ocsp_retry_delay_s,
            default_freshness_s=timers.ocsp_freshness_s,
        )
        self._hash_cache: dict[bytes, str] = {}
        self._peer_ok: dict[
            tuple[bytes, ClientId, tuple[bytes, ...]],
            tuple[SharedParameters, float, x509.Certificate],
        ] = {}
        self._loaded_roots: set[bytes] = set()
        chain_file, key_file = self._write_tls_files()
        self.server_ssl = self._server_context(chain_file, key_file)
        self.client_ssl = self._client_context(chain_file, key_file)
        self.peer_http = HttpClient(
            ssl_context=self.client_ssl, connect_timeout_s=10.0, read_timeout_s=60.0
        )
        """Keep-alive mutual-TLS client to other security servers (one pool per peer)."""
        self.is_http = HttpClient(connect_timeout_s=10.0, read_timeout_s=60.0)
        """Keep-alive client to the provider information systems."""
        # imported here: the proxies import this module's types
        from federation.securityserver._clientproxy import ClientProxy
        from federation.securityserver._serverproxy import ServerProxy

        self.client_proxy = ClientProxy(self)
        self.server_proxy = ServerProxy(self)
        self.addresses: SecurityServerAddresses | None = None

    # ------------------------------------------------------------------ TLS

    def _write_tls_files(self) -> tuple[Path, Path]:
        d = self.state_dir / "tls"
        d.mkdir(parents=True, exist_ok=True)
        chain_file, key_file = d / "auth-chain.pem", d / "auth.key"
        chain_file.write_bytes(self.auth.fullchain_pem())
        write_private(key_file, self.auth.key_pem())
        return chain_file, key_file

    @staticmethod
    def _server_context(chain_file: Path, key_file: Path) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # X-Road: TLSv1.2 only
        ctx.load_cert_chain(chain_file, key_file)
        # Trust anchors: every approved top CA of every held instance, added as the
        # configuration arrives (refresh_tls_trust). OpenSSL only filters here; the
        # authoritative checks (chain to the *client's* instance, OCSP, registration)
        # run in code on every request.
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    @staticmethod
    def _client_context(chain_file: Path, key_file: Path) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(chain_file, key_file)
        # The provider's certificate is checked in code against the *provider's*
        # instance (chain, OCSP, registration), which OpenSSL cannot express; the peer
        # certificate is still available with CERT_NONE.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def refresh_tls_trust(self) -> int:
        """Add the approved top CAs of every held instance to the server's TLS trust
        store; returns how many were new."""
        added = 0
        for inst in self.conf.instances():
            view = self.views.view(inst)
            if view is None:
                continue
            for root in view.roots:
                der = der_of(root)
                if der in self._loaded_roots:
                    continue
                self.server_ssl.load_verify_locations(cadata=der)
                self._loaded_roots.add(der)
                added += 1
        return added

    async def _trust_loop(self) -> None:
        while True:
            await self.conf.wait_round()
            if self.refresh_tls_trust():
                logger.debug("%s: TLS trust store updated", self.label)

    # ------------------------------------------------------------------ peers

    def cert_hash(self, der: bytes) -> str:
        h = self._hash_cache.get(der)
        if h is None:
            h = cert_hash(der)
            if len(self._hash_cache) > 1024:
                self._hash_cache.clear()
            self._hash_cache[der] = h
        return h

    def check_peer_auth(
        self, cert_der: bytes, member: ClientId, ocsp: Sequence[bytes]
    ) -> x509.Certificate:
        """The checks each side makes on the other's TLS certificate (xroad.md 3):
        registered (SHA-256 hash) for a security server of ``member``'s instance that
        hosts ``member``; chains to an approved CA of that instance; a fresh GOOD OCSP
        response among ``ocsp`` (freshness of the verifier's own instance). TrustError."""
        shared = self.conf.shared_parameters(member.instance)
        if shared is None:
            raise TrustError(f"configuration of instance {member.instance} is not held")
        now = self.clock.now()
        key = (cert_der, member, tuple(ocsp))
        hit = self._peer_ok.get(key)
        if hit is not None and hit[0] is shared and now <= hit[1]:
            return hit[2]
        server = shared.server_by_auth_hash(self.cert_hash(cert_der))
        if server is None:
            raise TrustError(
                f"the TLS certificate is not registered for any security server of "
                f"{member.instance}"
            )
        if member not in server.clients:
            raise TrustError(f"security server {server.id} (TLS peer) does not host {member}")
        view = self.views.view(member.instance, shared)
        assert view is not None
        cert = cert_from_der(cert_der)
        try:
            verify_chain(cert, view.intermediates, view.roots, now, "auth")
        except PkiError as exc:
            raise TrustError(f"TLS certificate of {server.id}: {exc}") from None
        issuer = view.issuer_of(cert)
        if issuer is None:  # pragma: no cover - verify_chain found a path
            raise TrustError(f"TLS certificate of {server.id}: issuer not approved")
        freshness = self.own_ocsp.freshness_s()
        try:
            status = self.ocsp_verifier.check_good(
                ocsp, cert, issuer, now=now, freshness_s=freshness
            )
        except TrustError as exc:
            raise TrustError(f"TLS certificate of {server.id}: {exc}") from None
        # the same answer until the OCSP response stops being fresh or the configuration
        # object changes (a new download): a request then costs dictionary lookups
        until = status.this_update + freshness
        if status.next_update is not None:
            until = min(until, status.next_update)
        until = min(until, cert.not_valid_after_utc.timestamp())
        if len(self._peer_ok) > 1024:
            self._peer_ok.clear()
        self._peer_ok[key] = (shared, until, cert)
        return cert

    def map_address(self, address: str) -> tuple[str, int]:
        """``host:port`` of a peer through its chaos link (when one is mapped)."""
        return _split_hostport(self.addr_map.get(address, address))

    def map_url(self, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return url
        hostport, slash, path = rest.partition("/")
        target = self.addr_map.get(hostport)
        return f"{scheme}://{target}{slash}{path}" if target else url

    def signer_for(self, member: ClientId) -> Credential | None:
        return self.sign.get(member.member)

    def services_of(self, provider: ClientId) -> list[ServiceId]:
        return [s.id for s in self.definition.services if s.id.client == provider]

    # ------------------------------------------------------------------ lifecycle

    async def serve(
        self, *, task_status: trio.TaskStatus[SecurityServerAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Phase 1: serve the client proxy (HTTP) and the server proxy (mutual TLS) until
        cancelled; reports :class:`SecurityServerAddresses`."""
        try:
            async with trio.open_nursery() as nursery:
                ch, cp = await nursery.start(
                    partial(
                        serve_http,
                        self.client_proxy.handle,
                        host=self.host,
                        port=self.client_port,
                        name=f"{self.label} client proxy",
                    )
                )
                sh, sp = await nursery.start(
                    partial(
                        serve_http,
                        self.server_proxy.handle,
                        host=self.host,
                        port=self.server_port,
                        ssl_context=self.server_ssl,
                        name=f"{self.label} server proxy",
                    )
                )
                self.addresses = SecurityServerAddresses(f"http://{ch}:{cp}", f"{sh}:{sp}")
                logger.info(
                    "%s: client proxy %s, server proxy %s",
                    self.label,
                    self.addresses.client_url,
                    self.addresses.server_address,
                )
                task_status.started(self.addresses)
        finally:
            with trio.CancelScope(shield=True):
                await self.peer_http.aclose()
                await self.is_http.aclose()
            self.log.close()

    async def connect(self, nursery: trio.Nursery, addr_map: Mapping[str, str]) -> None:
        """Phase 2: outbound links go through ``addr_map`` (real ``host:port`` -> proxy);
        fetches the own OCSP responses once, then starts the background tasks in
        ``nursery``: OCSP refresh, time-stamping, TLS trust refresh."""
        self.addr_map = dict(addr_map)
        self.own_ocsp.url_map = self.map_url
        self.refresh_tls_trust()
        await nursery.start(self.own_ocsp.run)
        nursery.start_soon(self._trust_loop)
        own = self.views.view(self.instance)
        await nursery.start(
            partial(
                run_timestamper,
                self.log,
                lambda: [t.url for t in self.conf.approved_tsas()],
                interval_s=self.timers.timestamping_interval_s,
                retry_s=self.timers.timestamp_retry_delay_s,
                clock=self.clock,
                trusted_roots=self._own_roots,
                intermediates=own.intermediates if own else (),
                url_map=self.map_url,
                seed=self.seed,
            )
        )

    def _own_roots(self) -> list[x509.Certificate]:
        view = self.views.view(self.instance)
        return view.roots if view else []
