"""Toxiproxy 2.x HTTP API routes: paths, methods, status codes and error bodies.

Routing follows gorilla/mux as Toxiproxy uses it: the path is matched after
percent-decoding, a path parameter is one non-empty segment, an unknown path is
``404 page not found`` in plain text and a known path with a wrong method is an empty 405.
Browsers (``User-Agent: Mozilla/...``) get 403 before anything else.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from ._collection import PopulateError, ProxyCollection
from ._errors import ApiError
from ._http import HttpRequest, HttpResponse
from ._model import decode_body, dumps

TOXIPROXY_VERSION = "2.12.0"
XFED_VERSION = "xfed-chaos 0.1.0"

_JSON = (("Content-Type", "application/json"),)
_TEXT = (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"))

Params = tuple[str, ...]
Route = Callable[[HttpRequest, Params], Awaitable[HttpResponse]]


def _json(status: int, value: Any) -> HttpResponse:
    return HttpResponse(status, dumps(value), _JSON)


def _error(exc: ApiError) -> HttpResponse:
    if isinstance(exc, PopulateError):
        body = {"error": exc.message, "status": exc.status, "proxies": exc.proxies}
        return HttpResponse(exc.status, dumps(body) + b"\n", _JSON)
    body_text = dumps({"error": exc.message, "status": exc.status}) + b"\n"
    return HttpResponse(exc.status, body_text, _TEXT)


_NOT_FOUND = HttpResponse(404, b"404 page not found\n", _TEXT)
_NO_CONTENT = HttpResponse(204)


class ToxiproxyApi:
    """The request handler: ``await api(request)`` gives the response."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection
        self._routes: list[tuple[tuple[str | None, ...], dict[str, Route]]] = [
            (("version",), {"GET": self._version}),
            (("proxies",), {"GET": self._list_proxies, "POST": self._create_proxy}),
            (("populate",), {"POST": self._populate}),
            (("reset",), {"POST": self._reset}),
            (
                ("proxies", None),
                {
                    "GET": self._get_proxy,
                    "POST": self._update_proxy,
                    "PATCH": self._update_proxy,
                    "DELETE": self._delete_proxy,
                },
            ),
            (
                ("proxies", None, "toxics"),
                {"GET": self._list_toxics, "POST": self._add_toxic},
            ),
            (
                ("proxies", None, "toxics", None),
                {
                    "GET": self._get_toxic,
                    "POST": self._update_toxic,
                    "PATCH": self._update_toxic,
                    "DELETE": self._delete_toxic,
                },
            ),
        ]

    def _match(self, path: str) -> tuple[dict[str, Route], Params] | None:
        if not path.startswith("/"):
            return None
        segments = path[1:].split("/")
        for pattern, methods in self._routes:
            if len(pattern) != len(segments):
                continue
            params: list[str] = []
            for expected, segment in zip(pattern, segments, strict=True):
                if expected is None:
                    if not segment:
                        break
                    params.append(segment)
                elif expected != segment:
                    break
            else:
                return methods, tuple(params)
        return None

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if (request.header("user-agent") or "").startswith("Mozilla/"):
            return HttpResponse(403, b"User agent not allowed\n", _TEXT)
        path = urllib.parse.unquote(request.target.split("?", 1)[0], errors="replace")
        matched = self._match(path)
        if matched is None:
            return _NOT_FOUND
        methods, params = matched
        route = methods.get(request.method)
        if route is None:
            return HttpResponse(405)
        try:
            return await route(request, params)
        except ApiError as exc:
            return _error(exc)

    # ------------------------------------------------------------------ server

    async def _version(self, request: HttpRequest, params: Params) -> HttpResponse:
        body = json.dumps({"version": TOXIPROXY_VERSION, "xfed": XFED_VERSION}) + "\n"
        return HttpResponse(
            200, body.encode(), (("Content-Type", "application/json;charset=utf-8"),)
        )

    async def _reset(self, request: HttpRequest, params: Params) -> HttpResponse:
        await self.collection.reset()
        return _NO_CONTENT

    async def _populate(self, request: HttpRequest, params: Params) -> HttpResponse:
        proxies = await self.collection.populate(decode_body(request.body))
        items = [self.collection.proxy_json(p) for p in proxies] or None
        return _json(201, {"proxies": items})

    # ------------------------------------------------------------------ proxies

    async def _list_proxies(self, request: HttpRequest, params: Params) -> HttpResponse:
        return _json(200, self.collection.all_json())

    async def _create_proxy(self, request: HttpRequest, params: Params) -> HttpResponse:
        proxy = await self.collection.create(decode_body(request.body))
        return _json(201, self.collection.proxy_json(proxy))

    async def _get_proxy(self, request: HttpRequest, params: Params) -> HttpResponse:
        return _json(200, self.collection.proxy_json(self.collection.get(params[0])))

    async def _update_proxy(self, request: HttpRequest, params: Params) -> HttpResponse:
        self.collection.get(params[0])  # 404 before 400, as Toxiproxy checks
        proxy = await self.collection.update(params[0], decode_body(request.body))
        return _json(200, self.collection.proxy_json(proxy))

    async def _delete_proxy(self, request: HttpRequest, params: Params) -> HttpResponse:
        await self.collection.delete(params[0])
        return _NO_CONTENT

    # ------------------------------------------------------------------ toxics

    async def _list_toxics(self, request: HttpRequest, params: Params) -> HttpResponse:
        proxy = self.collection.get(params[0])
        return _json(200, [t.to_json() for t in proxy.ordered_toxics()])

    async def _add_toxic(self, request: HttpRequest, params: Params) -> HttpResponse:
        self.collection.get(params[0])
        toxic = await self.collection.add_toxic(params[0], decode_body(request.body))
        return _json(200, toxic.to_json())

    async def _get_toxic(self, request: HttpRequest, params: Params) -> HttpResponse:
        proxy = self.collection.get(params[0])
        return _json(200, self.collection.find_toxic(proxy, params[1]).to_json())

    async def _update_toxic(self, request: HttpRequest, params: Params) -> HttpResponse:
        self.collection.find_toxic(self.collection.get(params[0]), params[1])
        toxic = await self.collection.update_toxic(params[0], params[1], decode_body(request.body))
        return _json(200, toxic.to_json())

    async def _delete_toxic(self, request: HttpRequest, params: Params) -> HttpResponse:
        await self.collection.remove_toxic(params[0], params[1])
        return _NO_CONTENT
