"""Trust material of a running security server: CA certificates per instance, OCSP.

* :class:`TrustView` derives, from one instance's shared parameters, the parsed approved-CA
  certificates (roots, intermediates, issuer lookup, OCSP responder URLs). Derived views
  are cached per :class:`~federation.globalconf.SharedParameters` object, so a request
  never parses a PEM; a configuration download yields a new object and a new view.
* :class:`OcspVerifier` checks an OCSP response about a certificate once (signature, CertID)
  and then only re-evaluates freshness against ``now`` (X-Road ``ocspFreshnessSeconds`` of
  the *verifier's* instance and ``nextUpdate``), keyed by the SHA-256 of the DER.
* :class:`OwnOcsp` keeps this server's own responses (auth certificate and every member
  signing certificate), refreshed from the own instance's responders by
  :meth:`OwnOcsp.run` every ``ocsp_fetch_interval_s`` (``ocsp_retry_delay_s`` after a
  failure), and hands out fresh GOOD ones for messages and for ``GET /ocsp``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from federation.clock import Clock
from federation.errors import FederationError, PkiError
from federation.globalconf import ConfigurationClient, SharedParameters
from federation.http import HttpClient
from federation.pki import Credential, OcspStatus, build_ocsp_request, check_ocsp_response
from federation.pki._cms import load_der_cert_cached

logger = logging.getLogger(__name__)

__all__ = ["OcspVerifier", "OwnOcsp", "TrustError", "TrustView", "cert_sha1_hex", "der_of"]


class TrustError(FederationError):
    """A certificate is not acceptable (the caller maps it to its X-Road fault)."""


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def cert_sha1_hex(der: bytes) -> str:
    """The certificate identifier of ``GET /ocsp?cert=`` (X-Road: hex SHA-1 of the DER)."""
    return hashlib.sha1(der).hexdigest()


# --------------------------------------------------------------------------- CA views


@dataclass(slots=True)
class TrustView:
    """Parsed approved-CA material of one instance (from one shared-parameters object)."""

    instance: str
    roots: list[x509.Certificate] = field(default_factory=list)
    intermediates: list[x509.Certificate] = field(default_factory=list)
    ocsp_urls: dict[x509.Name, list[str]] = field(default_factory=dict)
    """issuer subject (top or intermediate CA) -> responder URLs of its approved CA."""
    _by_subject: dict[x509.Name, x509.Certificate] = field(default_factory=dict)

    @classmethod
    def build(cls, shared: SharedParameters) -> TrustView:
        view = cls(shared.instance)
        for ca in shared.approved_cas:
            certs = ca.certificates()
            view.roots.append(certs[0])
            view.intermediates.extend(certs[1:])
            urls = [o.url for o in ca.ocsp]
            for c in certs:
                view._by_subject[c.subject] = c
                view.ocsp_urls[c.subject] = urls
        return view

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The approved CA certificate (top or intermediate) that issued ``cert``."""
        return self._by_subject.get(cert.issuer)

    def roots_pem(self) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.roots)


class TrustViews:
    """:class:`TrustView` per instance, rebuilt only when the configuration object changes."""

    def __init__(self, conf: ConfigurationClient) -> None:
        self.conf = conf
        self._views: dict[str, tuple[SharedParameters, TrustView]] = {}

    def shared(self, instance: str) -> SharedParameters | None:
        return self.conf.shared_parameters(instance)

    def view(self, instance: str, shared: SharedParameters | None = None) -> TrustView | None:
        shared = shared if shared is not None else self.conf.shared_parameters(instance)
        if shared is None:
            return None
        hit = self._views.get(instance)
        if hit is not None and hit[0] is shared:
            return hit[1]
        view = TrustView.build(shared)
        self._views[instance] = (shared, view)
        return view


# --------------------------------------------------------------------------- OCSP checks


def is_fresh(status: OcspStatus, now: float, freshness_s: float) -> str | None:
    """None when ``status`` is usable at ``now``; else why not (stale / past nextUpdate)."""
    age = now - status.this_update
    if age > freshness_s:
        return f"OCSP response is stale (thisUpdate {age:.0f} s old, limit {freshness_s:.0f} s)"
    if status.next_update is not None and now > status.next_update:
        return f"OCSP response is past its nextUpdate by {now - status.next_update:.0f} s"
    return None


class OcspVerifier:
    """Verifies OCSP responses about peers' certificates, caching the expensive part."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: OrderedDict[tuple[bytes, int], OcspStatus | str] = OrderedDict()
        self._max = max_entries

    def status(
        self, der: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: float
    ) -> OcspStatus:
        """The (signature-checked) status ``der`` gives for ``cert``; raises PkiError when
        it is not a valid response about ``cert``. Freshness is not checked here."""
        key = (hashlib.sha256(der).digest(), cert.serial_number)
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = check_ocsp_response(
                    der, cert, issuer, now=now, freshness_s=float("inf"), verify_next_update=False
                )
            except PkiError as exc:
                hit = str(exc)  # e.g. a response about another certificate of the message
            self._cache[key] = hit
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        if isinstance(hit, str):
            raise PkiError(hit)
        return hit

    def check_good(
        self,
        responses: Sequence[bytes],
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        now: float,
        freshness_s: float,
    ) -> OcspStatus:
        """The fresh GOOD status among ``responses`` for ``cert``; TrustError otherwise
        (revoked, unknown, stale, or no response about it)."""
        problems: list[str] = []
        for der in responses:
            try:
                st = self.status(der, cert, issuer, now)
            except PkiError as exc:
                problems.append(str(exc))
                continue
            if st.status != "good":
                raise TrustError(f"certificate serial {cert.serial_number:#x} is {st.status}")
            why = is_fresh(st, now, freshness_s)
            if why is None:
                return st
            problems.append(why)
        if not problems:
            raise TrustError(f"no OCSP response for certificate serial {cert.serial_number:#x}")
        raise TrustError(
            f"no fresh GOOD OCSP response for certificate serial {cert.serial_number:#x}: "
            + "; ".join(problems[-2:])
        )


# --------------------------------------------------------------------------- own responses


@dataclass(slots=True)
class _Own:
    name: str
    cert: x509.Certificate
    issuer: x509.Certificate
    der_hex: str
    response: bytes | None = None
    status: OcspStatus | None = None
    error: str | None = None


class OwnOcsp:
    """This security server's OCSP responses for its own certificates.

    ``credentials`` maps a label (``auth``, ``sign:EE/GOV/70000001``) to a credential whose
    ``chain[0]`` is the issuing CA. Responses come from the responders of the approved CA
    (in the own instance's configuration) that issued each certificate.
    """

    def __init__(
        self,
        credentials: dict[str, Credential],
        *,
        conf: ConfigurationClient,
        views: TrustViews,
        clock: Clock,
        fetch_interval_s: float,
        retry_delay_s: float,
        default_freshness_s: float,
    ) -> None:
        self.conf = conf
        self.views = views
        self.clock = clock
        self.fetch_interval_s = fetch_interval_s
        self.retry_delay_s = retry_delay_s
        self.default_freshness_s = default_freshness_s
        self.url_map: Callable[[str], str] = lambda u: u
        self._own: dict[x509.Certificate, _Own] = {}
        for name, cred in credentials.items():
            issuer = cred.chain[0] if cred.chain else cred.cert
            self._own[cred.cert] = _Own(name, cred.cert, issuer, cert_sha1_hex(der_of(cred.cert)))
        self._http = HttpClient(connect_timeout_s=10.0, read_timeout_s=30.0)
        self.rounds = 0
        self._round_done = trio.Event()

    def freshness_s(self) -> float:
        return self.conf.ocsp_freshness_s() or self.default_freshness_s

    # -- queries ---------------------------------------------------------------------

    def fresh_good(self, cert: x509.Certificate) -> bytes:
        """A fresh GOOD response for one of our certificates; TrustError saying why not."""
        own = self._own.get(cert)
        if own is None:
            raise TrustError("not one of this server's certificates")
        if own.status is None or own.response is None:
            raise TrustError(
                f"no OCSP response for the {own.name} certificate yet"
                + (f" ({own.error})" if own.error else "")
            )
        if own.status.status != "good":
            raise TrustError(f"the {own.name} certificate is {own.status.status} (OCSP)")
        why = is_fresh(own.status, self.clock.now(), self.freshness_s())
        if why is not None:
            raise TrustError(
                f"the {own.name} certificate has no fresh OCSP response: {why}"
                + (f"; last fetch failed: {own.error}" if own.error else "")
            )
        return own.response

    def responses(self, sha1_hex: Sequence[str] = ()) -> dict[str, bytes]:
        """Latest responses (whatever their status) by certificate SHA-1 hex, optionally
        only those asked for (``GET /ocsp?cert=``)."""
        want = {h.lower() for h in sha1_hex}
        return {
            o.der_hex: o.response
            for o in self._own.values()
            if o.response is not None and (not want or o.der_hex in want)
        }

    # -- fetching --------------------------------------------------------------------

    async def fetch_all(self) -> bool:
        """One round over every own certificate; True when every fetch succeeded."""
        ok = True
        for own in self._own.values():
            try:
                await self._fetch(own)
                own.error = None
            except (FederationError, ValueError) as exc:
                own.error = str(exc)
                ok = False
                logger.info("OCSP fetch for the %s certificate failed: %s", own.name, exc)
        self.rounds += 1
        self._round_done.set()
        self._round_done = trio.Event()
        return ok

    async def wait_round(self) -> None:
        await self._round_done.wait()

    async def _fetch(self, own: _Own) -> None:
        view = self.views.view(self.conf.instance)
        if view is None:
            raise TrustError("own configuration not held: no OCSP responder known")
        urls = view.ocsp_urls.get(own.issuer.subject, [])
        if not urls:
            raise TrustError(f"no OCSP responder for {own.issuer.subject.rfc4514_string()}")
        errors = []
        request = build_ocsp_request(own.cert, own.issuer)
        for url in urls:
            parts = urllib.parse.urlsplit(self.url_map(url))
            if parts.scheme != "http" or not parts.hostname:
                errors.append(f"{url}: unsupported URL")
                continue
            try:
                resp = await self._http.request(
                    parts.hostname,
                    parts.port or 80,
                    "POST",
                    parts.path or "/",
                    headers=[("Content-Type", "application/ocsp-request")],
                    body=request,
                )
                if resp.status != 200:
                    raise TrustError(f"HTTP {resp.status}")
                status = check_ocsp_response(
                    resp.body,
                    own.cert,
                    own.issuer,
                    now=self.clock.now(),
                    freshness_s=self.freshness_s(),
                )
            except FederationError as exc:
                errors.append(f"{url}: {exc}")
                continue
            own.response, own.status = resp.body, status
            return
        raise TrustError("; ".join(errors))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch now, report started, then refresh until cancelled."""
        try:
            ok = await self.fetch_all()
            task_status.started()
            while True:
                await trio.sleep(self.fetch_interval_s if ok else self.retry_delay_s)
                ok = await self.fetch_all()
        finally:
            with trio.CancelScope(shield=True):
                await self._http.aclose()


def parse_ocsp_json(body: bytes) -> dict[str, bytes]:
    """The ``GET /ocsp`` reply: ``{"responses": {"<sha1 hex>": "<base64 DER>"}}``."""
    import json

    try:
        obj = json.loads(body)
        return {str(k).lower(): base64.b64decode(v) for k, v in obj["responses"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrustError(f"malformed OCSP distribution reply: {exc}") from None


def cert_from_der(der: bytes) -> x509.Certificate:
    try:
        return load_der_cert_cached(der)
    except PkiError as exc:
        raise TrustError(str(exc)) from None
