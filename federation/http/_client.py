"""A small keep-alive HTTP/1.1 client on trio + h11, for hot paths.

httpx's shared pool degrades at high concurrency (feasibility.md Q5c), so the security
server's hops use this client: idle connections are kept per ``(host, port)`` and reused,
a reused connection that turns out dead is retried once on a fresh one (only when no byte
of the response had arrived), and new TLS connections expose the peer certificate.
"""

from __future__ import annotations

import ssl
from collections import defaultdict
from dataclasses import dataclass

import h11
import trio

from federation.errors import TransportError
from federation.http._server import header_bytes

MAX_RECV = 65536


@dataclass(frozen=True, slots=True)
class HttpClientResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    peer_cert_der: bytes | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        value = None
        for k, v in self.headers:
            if k.lower() == lname:
                value = v
        return value


class _Conn:
    __slots__ = ("conn", "peer_cert", "stream")

    def __init__(self, stream: trio.abc.Stream, peer_cert: bytes | None) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.peer_cert = peer_cert


class _Stale(Exception):
    """A reused connection died before any response byte arrived."""


class HttpClient:
    """Keep-alive client. ``ssl_context`` makes every connection TLS (mutual when it holds a
    client certificate); ``server_hostname`` is sent as SNI / checked if the context checks
    host names."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        max_idle_per_host: int = 64,
    ) -> None:
        self._ssl = ssl_context
        self._sni = server_hostname
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], list[_Conn]] = defaultdict(list)
        self._closed = False

    async def _open(self, host: str, port: int) -> _Conn:
        try:
            with trio.fail_after(self.connect_timeout_s):
                tcp = await trio.open_tcp_stream(host, port)
                if self._ssl is None:
                    return _Conn(tcp, None)
                tls = trio.SSLStream(
                    tcp, self._ssl, server_hostname=self._sni or host, https_compatible=True
                )
                try:
                    await tls.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(tcp)  # also when cancelled mid-handshake
                    raise
                return _Conn(tls, tls.getpeercert(binary_form=True))
        except trio.TooSlowError as exc:
            raise TransportError(f"connect to {host}:{port} timed out") from exc
        except (OSError, trio.BrokenResourceError, ssl.SSLError, UnicodeError) as exc:
            # UnicodeError: a host name IDNA cannot encode (a label over 63 characters...)
            raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        timeout_s: float | None = None,
    ) -> HttpClientResponse:
        """Send one request; raises :class:`TransportError` on any network failure."""
        if self._closed:
            raise TransportError("client is closed")
        key = (host, port)
        for attempt in range(2):
            idle = self._idle[key]
            reused = bool(idle) and attempt == 0
            c = idle.pop() if reused else await self._open(host, port)
            try:
                resp, keep = await self._exchange(
                    c, host, port, method, target, headers or [], body, reused, timeout_s
                )
            except _Stale:
                await trio.aclose_forcefully(c.stream)
                continue
            except BaseException:
                await trio.aclose_forcefully(c.stream)
                raise
            if keep and len(idle) < self._max_idle and not self._closed:
                c.conn.start_next_cycle()
                idle.append(c)
            else:
                await trio.aclose_forcefully(c.stream)
            return resp
        raise TransportError(f"connection to {host}:{port} failed twice")  # pragma: no cover

    async def _exchange(
        self,
        c: _Conn,
        host: str,
        port: int,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        reused: bool,
        timeout_s: float | None,
    ) -> tuple[HttpClientResponse, bool]:
        hdrs = [
            (header_bytes(k), header_bytes(v))
            for k, v in headers
            if k.lower() not in ("content-length", "host", "transfer-encoding", "connection")
        ]
        hdrs.insert(0, (b"Host", f"{host}:{port}".encode()))
        hdrs.append((b"Content-Length", str(len(body)).encode()))
        try:
            start = h11.Request(method=method, target=target, headers=hdrs)
        except h11.LocalProtocolError as exc:
            raise TransportError(f"request to {host}:{port} cannot be sent: {exc}") from exc
        got_any = False
        try:
            with trio.fail_after(timeout_s or self.read_timeout_s):
                data = c.conn.send(start)
                if body:
                    data += c.conn.send(h11.Data(data=body))
                data += c.conn.send(h11.EndOfMessage())
                await c.stream.send_all(data)
                status = 0
                rheaders: list[tuple[str, str]] = []
                rbody = bytearray()
                while True:
                    event = c.conn.next_event()
                    if event is h11.NEED_DATA:
                        chunk = await c.stream.receive_some(MAX_RECV)
                        if not chunk and not got_any and reused:
                            raise _Stale()
                        got_any = got_any or bool(chunk)
                        c.conn.receive_data(bytes(chunk))
                        continue
                    if isinstance(event, h11.Response):
                        status = event.status_code
                        rheaders = [
                            (k.decode("latin-1"), v.decode("latin-1"))
                            for k, v in event.headers.raw_items()
                        ]
                    elif isinstance(event, h11.Data):
                        rbody += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise TransportError(f"{host}:{port} closed the connection mid-response")
        except trio.TooSlowError as exc:
            raise TransportError(f"{host}:{port} did not answer in time") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError) as exc:
            if reused and not got_any:
                raise _Stale() from exc
            raise TransportError(f"connection to {host}:{port} failed: {exc}") from exc
        except h11.RemoteProtocolError as exc:
            if reused and not got_any:
                raise _Stale() from exc
            raise TransportError(f"{host}:{port} sent a malformed response: {exc}") from exc
        keep = c.conn.our_state is h11.DONE and c.conn.their_state is h11.DONE
        return HttpClientResponse(status, rheaders, bytes(rbody), c.peer_cert), keep

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                await trio.aclose_forcefully(c.stream)
        self._idle.clear()
