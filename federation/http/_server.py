"""trio + h11 HTTP/1.1 server shell with keep-alive and optional (mutual) TLS.

Bad input never crashes the server: a malformed request gets 400 and the connection
closes; a handler that raises gets 500 (logged with its traceback); a body over
``max_body`` gets 413. Each connection is its own task.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11
import trio

logger = logging.getLogger(__name__)

MAX_RECV = 65536
DEFAULT_MAX_BODY = 64 * 1024 * 1024
IDLE_TIMEOUT_S = 120.0
HANDSHAKE_TIMEOUT_S = 30.0
"""A peer that opens a TLS connection and never finishes the handshake is dropped."""


def header_bytes(value: str) -> bytes:
    """A header name or value as it goes on the wire.

    Header values are read as ISO-8859-1 (one character per octet, so any octet a peer
    sent comes back unchanged); characters beyond ISO-8859-1 (a value built from text, e.g.
    a UTF-8 header part) go out as UTF-8. h11 would encode a ``str`` as ASCII and raise.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the handler sees it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    peer_cert_der: bytes | None = None
    remote: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        """The last value of a header (case-insensitive), or None."""
        lname = name.lower()
        value = None
        for k, v in self.headers:
            if k.lower() == lname:
                value = v
        return value

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path without the query."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def query_params(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)


@dataclass(slots=True)
class Response:
    """What a handler returns."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Handler = Callable[[Request], Awaitable[Response]]


def json_response(
    obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response (``application/json``)."""
    body = json.dumps(obj, indent=None, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json"), *(headers or [])], body)


def text_response(
    text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    return Response(status, [("Content-Type", content_type)], text.encode())


def _response_event(resp: Response, *, keep: bool) -> h11.Response:
    headers = [
        (header_bytes(k), header_bytes(v))
        for k, v in resp.headers
        if k.lower() not in ("content-length", "connection", "transfer-encoding")
    ]
    headers.append((b"Content-Length", str(len(resp.body)).encode()))
    if not keep:
        headers.append((b"Connection", b"close"))
    return h11.Response(status_code=resp.status, headers=headers, reason=_reason(resp.status))


async def _send_response(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    resp: Response,
    *,
    keep: bool,
    head: bool = False,
    name: str = "http",
) -> None:
    """Send ``resp``; a response h11 refuses (a header value with CR/LF, a bad status)
    becomes a 500 instead of a dropped connection. A HEAD answer carries no body; its
    Content-Length is that of the body a GET would get."""
    try:
        event = _response_event(resp, keep=keep)
    except h11.LocalProtocolError as exc:
        logger.error("%s: handler produced an invalid response: %s", name, exc)
        resp = text_response("internal server error: invalid response\n", 500)
        event = _response_event(resp, keep=keep)
    data = conn.send(event)
    if resp.body and not head:
        data += conn.send(h11.Data(data=resp.body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _handle_connection(
    stream: trio.abc.Stream,
    handler: Handler,
    *,
    max_body: int,
    name: str,
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    peer_cert: bytes | None = None
    remote: tuple[str, int] | None = None
    try:
        if isinstance(stream, trio.SSLStream):
            with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as hs:
                await stream.do_handshake()
            if hs.cancelled_caught:
                logger.info("%s: TLS handshake did not finish in %s s", name, HANDSHAKE_TIMEOUT_S)
                await trio.aclose_forcefully(stream)
                return
            peer_cert = stream.getpeercert(binary_form=True)
            sock = stream.transport_stream
        else:
            sock = stream
        if isinstance(sock, trio.SocketStream):
            try:
                peer = sock.socket.getpeername()
                remote = (str(peer[0]), int(peer[1]))
            except OSError:
                remote = None
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError) as exc:
        logger.info("%s: TLS handshake with a peer failed: %s", name, exc)
        await trio.aclose_forcefully(stream)
        return
    except BaseException:
        await trio.aclose_forcefully(stream)  # cancelled mid-handshake: no leaked socket
        raise

    try:
        while True:
            # --- read one request ---
            method = target = ""
            headers: list[tuple[str, str]] = []
            body = bytearray()
            too_big = False
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    await _bad_request(stream, conn, exc)
                    return
                if event is h11.NEED_DATA:
                    with trio.move_on_after(IDLE_TIMEOUT_S) as cs:
                        data = await stream.receive_some(MAX_RECV)
                    if cs.cancelled_caught:
                        return
                    conn.receive_data(bytes(data))
                    if not data and conn.their_state is h11.IDLE:
                        return
                    continue
                if isinstance(event, h11.Request):
                    method = event.method.decode("ascii", "replace")
                    target = event.target.decode("ascii", "replace")
                    headers = [
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in event.headers.raw_items()
                    ]
                elif isinstance(event, h11.Data):
                    if not too_big:
                        body += event.data
                        if len(body) > max_body:
                            too_big = True
                            body = bytearray()
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
                else:  # pragma: no cover - h11 has no other client events here
                    return
            keep = conn.our_state is h11.SEND_RESPONSE and _wants_keep_alive(headers)
            if too_big:
                resp = text_response(f"request body larger than {max_body} bytes\n", 413)
                keep = False
            else:
                req = Request(method, target, headers, bytes(body), peer_cert, remote)
                try:
                    resp = await handler(req)
                except Exception:
                    logger.exception("%s: handler failed on %s %s", name, method, target)
                    resp = text_response("internal server error\n", 500)
            await _send_response(stream, conn, resp, keep=keep, head=method == "HEAD", name=name)
            if not keep or conn.our_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
    except (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        ssl.SSLError,
        OSError,
        h11.LocalProtocolError,
    ) as exc:
        logger.debug("%s: connection ended: %s", name, exc)
    finally:
        await trio.aclose_forcefully(stream)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _wants_keep_alive(headers: list[tuple[str, str]]) -> bool:
    for k, v in headers:
        if k.lower() == "connection" and "close" in v.lower():
            return False
    return True


async def _bad_request(stream: trio.abc.Stream, conn: h11.Connection, exc: Exception) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    try:
        await _send_response(stream, conn, text_response(f"bad request: {exc}\n", 400), keep=False)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError, OSError):
        pass


async def serve_http(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    name: str = "http",
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``host:port`` (port 0 picks one) until cancelled.

    Reports the bound ``(host, port)`` through ``task_status.started``. With an
    ``ssl_context`` the listener speaks TLS; set ``verify_mode = CERT_REQUIRED`` on it for
    mutual TLS (the peer certificate is then on each request).
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    serving: list[trio.abc.Listener[Any]] = list(listeners)
    if ssl_context is not None:
        serving = [trio.SSLListener(lst, ssl_context, https_compatible=True) for lst in listeners]

    async def conn_task(stream: trio.abc.Stream) -> None:
        # One connection's failure never reaches the listener's nursery (it would stop
        # the whole server): anything unexpected is logged and that connection closed.
        try:
            await _handle_connection(stream, handler, max_body=max_body, name=name)
        except Exception:
            logger.exception("%s: connection failed", name)
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        task_status.started((str(bound[0]), int(bound[1])))
        for lst in serving:
            nursery.start_soon(trio.serve_listeners, conn_task, [lst])
