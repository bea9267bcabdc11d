"""A small HTTP/1.1 server and client on trio + h11 (see ARCHITECTURE.md, "HTTP stack").

Every xfed server (OCSP responder, TSA, central server, client and server proxies, sample
information systems) is a handler ``async def handler(request) -> Response`` served by
:func:`serve_http`. The peer's TLS certificate (mutual TLS) is on ``request.peer_cert_der``.
"""

from federation.http._client import HttpClient as HttpClient
from federation.http._client import HttpClientResponse as HttpClientResponse
from federation.http._server import Handler as Handler
from federation.http._server import Request as Request
from federation.http._server import Response as Response
from federation.http._server import json_response as json_response
from federation.http._server import serve_http as serve_http
from federation.http._server import text_response as text_response
