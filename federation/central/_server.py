"""A central server's trio shell: serve the configuration, regenerate, manage anchors.

Two listeners:

* public (what security servers and partners download): ``GET /internalconf``,
  ``GET /externalconf`` and the files under ``/V5/<serial>/``;
* management (not reachable on the public URL): ``POST /trusted-anchors`` (body: an anchor
  JSON), ``GET /trusted-anchors``, ``DELETE /trusted-anchors/<INST>``,
  ``GET /anchors/internal``, ``GET /anchors/external``, ``GET /status``.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from federation._files import atomic_write
from federation.central._core import (
    EXTERNAL_PATH,
    FILES_PREFIX,
    INTERNAL_PATH,
    CentralFacts,
    ConfGenerator,
    Generation,
)
from federation.clock import Clock, iso
from federation.errors import ConfigError, GlobalConfError, TransportError
from federation.globalconf import (
    SHARED_PARAMETERS,
    ConfigurationAnchor,
    ConfSigningKey,
    Fetcher,
    HttpFetcher,
    SharedParameters,
    UrlMap,
    map_url,
)
from federation.http import Request, Response, json_response, serve_http, text_response
from federation.topology import InstanceDef

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CentralServerAddresses:
    """What :meth:`CentralServer.run` reports once listening."""

    public_url: str
    """Base URL of the configuration (``http://host:port``); anchors point here."""
    management_url: str


class CentralServer:
    """One instance's central server.

    Args:
        definition: the instance definition (registry, trusted partners, timers).
        facts: approved CAs/TSAs and security server addresses + auth-cert hashes.
        clock: the clock for ``Expire-date`` and expiry checks.
        host, port, management_port: where to listen (port 0 picks one).
        public_url: the base URL written into anchors and sources (default: the bound
            public address); set it when clients reach the server through a proxy.
        state_dir: where anchors and ``status.json`` are written (``<run>/<INST>/cs``).
        url_map: rewrites partner download URLs during anchor upload (chaos links).
        internal_key, external_key: configuration-signing keys (generated if omitted).
        fetcher: how partner configuration is downloaded (default: plain HTTP).
    """

    def __init__(
        self,
        definition: InstanceDef,
        facts: CentralFacts | None = None,
        *,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 0,
        management_port: int = 0,
        public_url: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        url_map: UrlMap = None,
        internal_key: ConfSigningKey | None = None,
        external_key: ConfSigningKey | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.definition = definition
        self.clock = clock
        self.host = host
        self.port = port
        self.management_port = management_port
        self._public_url = public_url
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.url_map = url_map
        now = clock.now()
        inst = definition.instance
        self._generator = ConfGenerator(
            definition,
            facts or CentralFacts(),
            internal_key=internal_key or ConfSigningKey.generate(inst, "internal", now=now),
            external_key=external_key or ConfSigningKey.generate(inst, "external", now=now),
            public_url=public_url or "http://unbound",
        )
        self._fetcher: Fetcher = fetcher or HttpFetcher(timeout_s=30.0, connect_timeout_s=10.0)
        self._generations: list[Generation] = []
        self.addresses: CentralServerAddresses | None = None
        self.serving = True
        """False makes the public listener answer 503 (a stopped web server, for tests)."""

    # -- properties ----------------------------------------------------------------------

    @property
    def instance(self) -> str:
        return self.definition.instance

    @property
    def generator(self) -> ConfGenerator:
        return self._generator

    @property
    def current(self) -> Generation:
        if not self._generations:
            self.regenerate()
        return self._generations[-1]

    @property
    def trusted_anchors(self) -> tuple[ConfigurationAnchor, ...]:
        return tuple(self._generator.trusted[k] for k in sorted(self._generator.trusted))

    def internal_anchor(self) -> ConfigurationAnchor:
        """The anchor the instance's own security servers use."""
        return self._generator.anchor("internal", now=self.clock.now())

    def external_anchor(self) -> ConfigurationAnchor:
        """The anchor to hand to federation partners."""
        return self._generator.anchor("external", now=self.clock.now())

    def shared_parameters(self) -> SharedParameters:
        return self._generator.shared_parameters()

    # -- generation ----------------------------------------------------------------------

    def regenerate(self) -> Generation:
        """Build and sign a new generation now; keeps files of unexpired generations."""
        now = self.clock.now()
        gen = self._generator.generate(now)
        self._generations = [g for g in self._generations if g.expire_date > now] + [gen]
        self._write_status()
        return gen

    def update_facts(self, facts: CentralFacts) -> None:
        """Replace the runtime facts (e.g. a new auth cert) and regenerate at once."""
        self._generator.facts = facts
        self.regenerate()

    def _fresh(self) -> Generation:
        gen = self.current
        if self.clock.now() >= gen.generated_at + self.definition.scaled_timers.conf_generation_s:
            gen = self.regenerate()
        return gen

    # -- trusted anchors -----------------------------------------------------------------

    async def upload_trusted_anchor(
        self, anchor: ConfigurationAnchor | bytes
    ) -> ConfigurationAnchor:
        """Verify a partner's external anchor and trust it (xroad.md section 5 step 2).

        Rejects, with :class:`GlobalConfError` (or :class:`ConfigError` for a malformed
        file): an anchor of the own instance, of a partner the definition does not trust,
        one whose configuration cannot be downloaded, is badly signed, expired, or carries
        private parameters. Replaces an earlier anchor of the same instance.
        """
        if isinstance(anchor, bytes):
            anchor = ConfigurationAnchor.from_bytes(anchor)
        gen = self._generator
        gen.check_anchor_admissible(anchor)
        errors: list[str] = []
        for source in anchor.sources:
            url = source.download_url
            try:
                got = await self._fetcher(map_url(self.url_map, url))
                if got.status != 200:
                    raise TransportError(f"GET {url} answered HTTP {got.status}")
                directory = gen.check_partner_directory(
                    anchor, got.content_type, got.body, now=self.clock.now()
                )
                entry = directory.entry(SHARED_PARAMETERS)
                assert entry is not None
                file_url = urllib.parse.urljoin(url, entry.location)
                shared = await self._fetcher(map_url(self.url_map, file_url))
                if shared.status != 200:
                    raise TransportError(f"GET {file_url} answered HTTP {shared.status}")
                entry.check(shared.body)
                params = SharedParameters.from_bytes(shared.body)
                if params.instance != anchor.instance:
                    raise GlobalConfError(
                        f"shared parameters are of instance {params.instance!r}",
                        instance=anchor.instance,
                    )
            except TransportError as exc:
                errors.append(str(exc))
                continue
            gen.trust(anchor)
            logger.info(
                "%s central server: trusted anchor of %s (%s)",
                self.instance,
                anchor.instance,
                anchor.hash(),
            )
            self._write_anchor_files()
            self.regenerate()
            return anchor
        raise GlobalConfError(
            "cannot download the anchor's configuration: " + "; ".join(errors),
            instance=anchor.instance,
        )

    def remove_trusted_anchor(self, instance: str) -> bool:
        """Stop trusting ``instance`` (ends the federation); True if it was trusted."""
        removed = self._generator.untrust(instance)
        if removed:
            if self.state_dir is not None:
                (self.state_dir / "trusted-anchors" / f"{instance}.json").unlink(missing_ok=True)
            self.regenerate()
        return removed

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        """The public listener: configuration directories and files."""
        if req.method != "GET":
            return text_response("method not allowed\n", 405)
        if not self.serving:
            return text_response("central server stopped\n", 503)
        gen = self._fresh()
        path = req.path
        if path in (INTERNAL_PATH, EXTERNAL_PATH):
            version = req.query_params().get("version")
            if version and version[-1] != "5":
                return text_response(f"configuration version {version[-1]} not available\n", 404)
            ctype, body = gen.internal if path == INTERNAL_PATH else gen.external
            return Response(200, [("Content-Type", ctype)], body)
        if path.startswith(FILES_PREFIX):
            for g in reversed(self._generations):
                data = g.files.get(path)
                if data is not None:
                    return Response(200, [("Content-Type", "application/octet-stream")], data)
        return text_response("not found\n", 404)

    async def handle_management(self, req: Request) -> Response:
        """The management listener: trusted anchors, own anchors, status."""
        path = req.path.rstrip("/")
        if path == "/trusted-anchors" and req.method == "POST":
            try:
                anchor = await self.upload_trusted_anchor(req.body)
            except (GlobalConfError, ConfigError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"instance": anchor.instance, "hash": anchor.hash()})
        if path == "/trusted-anchors" and req.method == "GET":
            return json_response([a.to_json() for a in self.trusted_anchors])
        if path.startswith("/trusted-anchors/") and req.method == "DELETE":
            inst = urllib.parse.unquote(path.rsplit("/", 1)[1])
            if self.remove_trusted_anchor(inst):
                return json_response({"removed": inst})
            return json_response({"error": f"{inst} is not trusted"}, 404)
        if path == "/anchors/internal" and req.method == "GET":
            return json_response(self.internal_anchor().to_json())
        if path == "/anchors/external" and req.method == "GET":
            return json_response(self.external_anchor().to_json())
        if path == "/status" and req.method == "GET":
            return json_response(self.status())
        return text_response("not found\n", 404)

    async def run(
        self, *, task_status: trio.TaskStatus[CentralServerAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, generate, export anchors, report addresses, regenerate until cancelled."""
        name = f"{self.instance}-cs"
        try:
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(
                    lambda task_status: serve_http(
                        self.handle,
                        host=self.host,
                        port=self.port,
                        name=name,
                        task_status=task_status,
                    )
                )
                mhost, mport = await nursery.start(
                    lambda task_status: serve_http(
                        self.handle_management,
                        host=self.host,
                        port=self.management_port,
                        name=f"{name}-mgmt",
                        task_status=task_status,
                    )
                )
                public = self._public_url or f"http://{host}:{port}"
                self._generator.public_url = public.rstrip("/")
                self.addresses = CentralServerAddresses(public, f"http://{mhost}:{mport}")
                self._generations = []
                self.regenerate()
                self._write_anchor_files()
                task_status.started(self.addresses)
                while True:
                    await trio.sleep(self.definition.scaled_timers.conf_generation_s)
                    self.regenerate()
        finally:
            if isinstance(self._fetcher, HttpFetcher):
                with trio.CancelScope(shield=True):
                    await self._fetcher.aclose()

    # -- files ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        gen = self._generations[-1] if self._generations else None
        return {
            "instance": self.instance,
            "public_url": self.addresses.public_url if self.addresses else self._public_url,
            "management_url": self.addresses.management_url if self.addresses else None,
            "serial": gen.serial if gen else None,
            "generated_at": iso(gen.generated_at) if gen else None,
            "expires": iso(gen.expire_date) if gen else None,
            "trusts": list(self.definition.trusts),
            "trusted_anchors": [
                {
                    "instance": a.instance,
                    "hash": a.hash(),
                    "generated_at": iso(a.generated_at),
                    "download_urls": [s.download_url for s in a.sources],
                }
                for a in self.trusted_anchors
            ],
        }

    def _write_status(self) -> None:
        if self.state_dir is None:
            return
        try:
            atomic_write(
                self.state_dir / "status.json",
                (json.dumps(self.status(), indent=2) + "\n").encode(),
            )
        except OSError as exc:
            logger.warning("%s central server: cannot write status: %s", self.instance, exc)

    def export_anchor(self, path: str | os.PathLike[str], kind: str = "external") -> Path:
        """Write the ``external`` (or ``internal``) anchor to ``path``."""
        anchor = self.external_anchor() if kind == "external" else self.internal_anchor()
        out = Path(path)
        atomic_write(out, anchor.to_bytes())
        return out

    def _write_anchor_files(self) -> None:
        if self.state_dir is None:
            return
        try:
            self.export_anchor(self.state_dir / "internal-anchor.json", "internal")
            self.export_anchor(self.state_dir / "external-anchor.json", "external")
            for a in self.trusted_anchors:
                atomic_write(
                    self.state_dir / "trusted-anchors" / f"{a.instance}.json", a.to_bytes()
                )
        except OSError as exc:
            logger.warning("%s central server: cannot write anchors: %s", self.instance, exc)
