"""The sample provider information system: a trio + h11 server hosting backends by name.

Routing. Each service is mounted at ``/<INST>/<CLASS>/<CODE>/<SUB>/<SERVICE>`` (its
:func:`mount_path`): the provider security server's *service address* for it is
``http://host:port`` + that prefix, and X-Road appends the REST path after the service code
(``RestRequest.servicePath``), as an X-Road administrator's service URL works. A request
without a mount prefix is matched against every service's endpoints in order (handy for
direct calls, e.g. the benchmark's baseline). The request must match one of the service's
declared endpoints (or the backend's own when it declares none) and a backend route;
otherwise 404 JSON.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import trio

from federation.http import Handler, Request, Response, serve_http
from federation.identifiers import ClientId, ServiceId
from federation.infosystems._backends import BACKENDS, BackendCall, BackendReply, dumps
from federation.infosystems._consumer import XRoadCaller
from federation.securityserver import Endpoint

logger = logging.getLogger(__name__)

__all__ = [
    "ServiceSpec",
    "check_service_spec",
    "infosystem_handler",
    "mount_path",
    "serve_infosystem",
    "service_url",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    """A service an information system provides: id, endpoints, backend name, options."""

    service: ServiceId
    endpoints: tuple[Endpoint, ...] = ()
    backend: str
    options: Mapping[str, str] = field(default_factory=dict)

    def effective_endpoints(self) -> tuple[Endpoint, ...]:
        return self.endpoints or BACKENDS[self.backend].endpoints()


def check_service_spec(spec: ServiceSpec) -> None:
    """Raise ValueError when the backend is unknown or cannot serve a declared endpoint."""
    backend = BACKENDS.get(spec.backend)
    if backend is None:
        raise ValueError(
            f"{spec.service}: unknown backend {spec.backend!r} "
            f"(known: {', '.join(sorted(BACKENDS))})"
        )
    for ep in spec.endpoints:
        if not backend.serves(ep):
            raise ValueError(
                f"{spec.service}: backend {spec.backend!r} has no route for "
                f"{ep.method} {ep.path} (it serves "
                + ", ".join(f"{e.method} {e.path}" for e in backend.endpoints())
                + ")"
            )


def mount_path(service: ServiceId) -> str:
    """``/INST/CLASS/CODE/SUB/SERVICE``, each part percent-encoded."""
    return service.rest_path()[len("/r1") :]


def service_url(base_url: str, service: ServiceId) -> str:
    """The service address a provider security server uses for ``service``."""
    return base_url.rstrip("/") + mount_path(service)


def _json(status: int, obj: dict[str, object]) -> Response:
    return Response(status, [("Content-Type", "application/json")], dumps(obj))


def infosystem_handler(
    services: Sequence[ServiceSpec],
    *,
    caller: XRoadCaller | Mapping[ClientId, XRoadCaller] | None = None,
) -> Handler:
    """The HTTP handler of an information system hosting ``services``.

    ``caller`` is the X-Road caller handed to backends that consume other services: one
    for all, or one per provider subsystem (looked up at each call, so the mapping may be
    filled once the security servers are up)."""
    for spec in services:
        check_service_spec(spec)
    mounts = {mount_path(s.service): s for s in services}

    async def handle(req: Request) -> Response:
        raw_path = req.path
        candidates: list[tuple[ServiceSpec, str]] = []
        for prefix, spec in mounts.items():
            if raw_path == prefix or raw_path.startswith(prefix + "/"):
                candidates = [(spec, raw_path[len(prefix) :] or "/")]
                break
        else:
            candidates = [(spec, raw_path) for spec in services]
        for spec, rel in candidates:
            path = urllib.parse.unquote(rel)
            if not any(ep.match(req.method, path) is not None for ep in spec.effective_endpoints()):
                continue
            backend = BACKENDS[spec.backend]
            found = backend.find(req.method, path)
            if found is None:
                continue
            handler, params = found
            call = BackendCall(
                service=spec.service,
                method=req.method,
                path=path,
                params=params,
                query=req.query_params(),
                headers=req.headers,
                body=req.body,
                options=spec.options,
                caller=caller.get(spec.service.client) if isinstance(caller, Mapping) else caller,
            )
            result = await handler(call)
            if isinstance(result, BackendReply):
                return Response(
                    result.status,
                    [("Content-Type", result.content_type), *result.headers],
                    result.body,
                )
            status, obj = result
            return _json(status, obj)
        return _json(
            404,
            {"error": "not_found", "message": f"no service endpoint for {req.method} {raw_path}"},
        )

    return handle


async def serve_infosystem(
    services: Sequence[ServiceSpec],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    caller: XRoadCaller | Mapping[ClientId, XRoadCaller] | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``services`` until cancelled; reports the bound ``(host, port)``."""
    await serve_http(
        infosystem_handler(services, caller=caller),
        host=host,
        port=port,
        name="infosystem",
        task_status=task_status,
    )
