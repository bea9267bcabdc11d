"""A small HTTP/1.1 server loop on trio + h11 for the Toxiproxy API.

Keep-alive, ``Expect: 100-continue``, a body limit (413), idle and send timeouts. Bad input
never crashes it: a malformed request gets a plain-text 4xx and the connection closes; a
handler that raises gets 500 (logged with its traceback) and the server keeps serving.
"""

from __future__ import annotations

import http
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import trio

logger = logging.getLogger(__name__)

MAX_RECV = 65536
MAX_BODY = 4 * 1024 * 1024
MAX_HEADERS = 64 * 1024
IDLE_TIMEOUT_S = 300.0
SEND_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as a handler sees it (header names in lower case)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (lower case), or None."""
        value = None
        for key, item in self.headers:
            if key == name:
                value = item
        return value


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One response; ``Content-Length`` is added by the server."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _Reject(Exception):
    """Raised inside the reader when a request must be refused before reaching the handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_REQUEST_IDS = itertools.count(1)
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


def _raw_error(status: int, message: str) -> bytes:
    body = (message + "\n").encode()
    reason = {400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large"}.get(
        status, "Error"
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> HttpRequest | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with trio.move_on_after(IDLE_TIMEOUT_S):
                conn.receive_data(bytes(await stream.receive_some(MAX_RECV)))
                continue
            return None
        if isinstance(event, h11.Request):
            request = event
            length = dict(event.headers).get(b"content-length")
            if length is not None and int(length) > MAX_BODY:
                raise _Reject(413, "request body too large")
            if conn.client_is_waiting_for_100_continue:
                await stream.send_all(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                )
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise _Reject(413, "request body too large")
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return HttpRequest(
                method=request.method.decode("ascii", "replace"),
                target=request.target.decode("ascii", "replace"),
                headers=tuple(
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers
                ),
                body=bytes(body),
            )
        else:  # ConnectionClosed (or PAUSED, which cannot happen between requests)
            return None


async def _send_response(
    conn: h11.Connection, stream: trio.abc.Stream, response: HttpResponse
) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"X-Toxiproxy-Request-Id", str(next(_REQUEST_IDS)).encode()))
    if response.status not in (204, 304):
        headers.append((b"Content-Length", str(len(response.body)).encode()))
    reason = _REASONS.get(response.status, "")
    data = conn.send(
        h11.Response(status_code=response.status, headers=headers, reason=reason.encode())
    )
    if response.body and response.status not in (204, 304):
        data += conn.send(h11.Data(data=response.body))
    data += conn.send(h11.EndOfMessage())
    with trio.fail_after(SEND_TIMEOUT_S):
        await stream.send_all(data)


async def handle_http_connection(stream: trio.abc.Stream, handler: Handler) -> None:
    """Serve requests on one connection until the client closes or misbehaves."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
    try:
        while True:
            try:
                request = await _read_request(conn, stream)
            except h11.RemoteProtocolError as exc:
                with trio.move_on_after(SEND_TIMEOUT_S):
                    await stream.send_all(_raw_error(exc.error_status_hint, f"bad request: {exc}"))
                return
            except (_Reject, ValueError) as exc:
                status = exc.status if isinstance(exc, _Reject) else 400
                with trio.move_on_after(SEND_TIMEOUT_S):
                    await stream.send_all(_raw_error(status, str(exc)))
                return
            if request is None:
                return
            try:
                response = await handler(request)
            except Exception:
                logger.exception("API handler failed for %s %s", request.method, request.target)
                response = HttpResponse(
                    500,
                    b'{"error":"internal server error","status":500}\n',
                    (("Content-Type", "text/plain; charset=utf-8"),),
                )
            await _send_response(conn, stream, response)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
        return
    except h11.LocalProtocolError:
        return
    finally:
        await trio.aclose_forcefully(stream)


async def serve_http(listener: trio.SocketListener, handler: Handler) -> None:
    """Accept connections on ``listener`` for ever, one task per connection."""
    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                logger.warning("API accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(handle_http_connection, stream, handler)
