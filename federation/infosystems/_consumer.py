"""The consumer side: one X-Road REST call through a security server's client proxy.

Exactly what a REST client written for X-Road sends (``pr-rest`` section 4): the request
goes to ``<client proxy>/r1/<service id>/<path>`` with ``X-Road-Client``, and the answer's
``X-Road-*`` headers say what happened. httpx is used (tools, CLI, tests, once-only
backends); the hot benchmark path may use :class:`federation.http.HttpClient` instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from federation.identifiers import ClientId, SecurityServerId, ServiceId

__all__ = ["XRoadCaller", "XRoadResponse", "xroad_call"]


@dataclass(frozen=True, slots=True)
class XRoadResponse:
    """What the consumer information system got back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        low = name.lower()
        value = None
        for k, v in self.headers:
            if k.lower() == low:
                value = v
        return value

    @property
    def xroad_error(self) -> str | None:
        """``X-Road-Error`` (set only when an X-Road component failed)."""
        return self.header("x-road-error")

    def xroad_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers if k.lower().startswith("x-road-")}

    def json(self) -> Any:
        return json.loads(self.body)

    def json_or_none(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


async def xroad_call(
    client_proxy_url: str,
    client_id: ClientId | str,
    service_id: ServiceId | str,
    path: str = "",
    *,
    method: str = "GET",
    query: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    xroad_id: str | None = None,
    user_id: str | None = None,
    issue: str | None = None,
    security_server: SecurityServerId | str | None = None,
    http: httpx.AsyncClient | None = None,
    timeout_s: float = 60.0,
) -> XRoadResponse:
    """Call ``service_id`` at ``path`` (the part after the service code) as ``client_id``.

    ``client_proxy_url`` is the consumer security server's client proxy base URL
    (``http://127.0.0.1:8080``). ``path`` is sent as given (already percent-encoded);
    ``query`` is encoded; header values go out as UTF-8. Network failures raise httpx's
    exceptions.
    """
    if isinstance(service_id, str):
        service_id = ServiceId.parse(service_id)
    if path and not path.startswith("/"):
        path = "/" + path
    url = client_proxy_url.rstrip("/") + service_id.rest_path() + path
    hdrs: list[tuple[str, str]] = [("X-Road-Client", str(client_id))]
    if xroad_id:
        hdrs.append(("X-Road-Id", xroad_id))
    if user_id:
        hdrs.append(("X-Road-UserId", user_id))
    if issue:
        hdrs.append(("X-Road-Issue", issue))
    if security_server:
        hdrs.append(("X-Road-Security-Server", str(security_server)))
    hdrs += list(headers)
    params: list[tuple[str, str | int | float | bool | None]] = (
        list(query.items()) if isinstance(query, Mapping) else list(query or [])
    )
    own = http is None
    client = http or httpx.AsyncClient(timeout=timeout_s)
    try:
        resp = await client.request(
            method,
            url,
            params=params or None,
            # header values are text: UTF-8 on the wire (httpx would refuse non-ASCII)
            headers=[(k.encode(), v.encode()) for k, v in hdrs],
            content=body,
            timeout=timeout_s,
        )
        return XRoadResponse(resp.status_code, list(resp.headers.multi_items()), resp.content)
    finally:
        if own:
            await client.aclose()


class XRoadCaller:
    """An outbound X-Road caller handed to backends that consume other services
    (the once-only scenario): a client proxy URL and the client id to call as."""

    def __init__(
        self,
        client_proxy_url: str,
        client_id: ClientId,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.client_proxy_url = client_proxy_url
        self.client_id = client_id
        self._http = http
        self.timeout_s = timeout_s

    async def call(
        self,
        service_id: ServiceId,
        path: str = "",
        *,
        method: str = "GET",
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> XRoadResponse:
        return await xroad_call(
            self.client_proxy_url,
            self.client_id,
            service_id,
            path,
            method=method,
            query=query,
            body=body,
            headers=headers,
            http=self._http,
            timeout_s=self.timeout_s,
        )
