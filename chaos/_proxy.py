"""The trio shell: listeners, upstream dials and the byte pumps that drive :mod:`chaos._core`.

Each accepted connection dials the upstream and runs two pumps, one per direction. A pump
reads from its source, feeds the direction's :class:`~chaos._core.LinkCore`, writes what the
core releases and sleeps until the core's next deadline. Toxic changes reach live links at
once (:meth:`ProxyRuntime.set_toxics`) and wake the pumps. Bytes are never interpreted, so
TLS passes through untouched.

While a direction has no toxics and both ends are sockets, its pump relays on Linux with
``splice(2)`` through a pipe of its own (socket to pipe to socket, no copy into Python);
elsewhere, and whenever a toxic is present, it copies through ``bytes``.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import random
import socket as stdsocket
import struct
import sys
from dataclasses import dataclass

import trio

from ._core import Close, LinkCore, Send, SendEof
from ._errors import ProxyStartError
from ._model import DOWNSTREAM, UPSTREAM, ToxicSpec

logger = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
_LINGER_RST = struct.pack("ii", 1, 0)
_PUMP_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

# splice(2) relay on the passthrough path (Linux). A pump's pipe starts at the kernel's
# default size (64 KiB) and grows to SPLICE_PIPE_SIZE on the first bulk read, so idle and
# small-message connections do not use up the per-user pipe allowance
# (/proc/sys/fs/pipe-user-pages-soft); when growing is refused the default size stays.
SPLICE_AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
SPLICE_PIPE_SIZE = 1024 * 1024
SPLICE_GROW_AT = 32 * 1024
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
# splice refused for these descriptors (before any byte moved): copy instead
_SPLICE_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of one proxy's counters (``bytes_*`` count bytes read from the source)."""

    connections: int
    connections_total: int
    bytes_upstream: int
    bytes_downstream: int


def split_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` like Go's ``net.SplitHostPort`` (numeric port).

    Raises:
        ValueError: with Go's wording for a malformed address.
    """
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        colon = address.rfind(":")
        if colon < 0:
            raise ValueError(f"address {address}: missing port in address")
        host, port_text = address[:colon], address[colon + 1 :]
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address {address}: invalid port")
    return host, int(port_text)


def format_address(family: int, ip: str, port: int) -> str:
    """``ip:port`` or ``[ip]:port``, as Go prints a TCP address."""
    return f"[{ip}]:{port}" if family == stdsocket.AF_INET6 else f"{ip}:{port}"


def _reuse_port(sock: trio.socket.SocketType) -> bool:
    """Set SO_REUSEPORT where the platform has it; whether it was set."""
    if not hasattr(stdsocket, "SO_REUSEPORT"):
        return False
    try:
        sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT, 1)
    except OSError:  # pragma: no cover - kernels without it
        return False
    return True


async def reserve_port(
    address: str, listener: trio.socket.SocketType
) -> trio.socket.SocketType | None:
    """A socket bound to ``address`` (``host:port``, the port of ``listener``) that does not
    listen: connections are refused (RST) once ``listener`` closes, yet no other socket can
    take the port (it has no SO_REUSEADDR; outgoing connections skip bound ports). Bound
    while ``listener`` still holds the port, through SO_REUSEPORT set on both now (not at
    bind time, so two proxies can never share a port). None when that fails."""
    if not _reuse_port(listener):
        return None
    try:
        host, port = split_host_port(address)
        family = stdsocket.AF_INET6 if ":" in host else stdsocket.AF_INET
        sock = trio.socket.socket(family, stdsocket.SOCK_STREAM)
    except (ValueError, OSError):
        return None
    try:
        _reuse_port(sock)
        if family == stdsocket.AF_INET6 and host == "::":
            sock.setsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY, 0)
        await sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


def _lookup_error(host: str, exc: Exception) -> str:
    """Go's text for a failed name lookup of ``host``."""
    not_found = {getattr(stdsocket, n, None) for n in ("EAI_NONAME", "EAI_NODATA")} - {None}
    if isinstance(exc, UnicodeError) or (
        isinstance(exc, stdsocket.gaierror) and exc.errno in not_found
    ):
        return f"lookup {host}: no such host"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"lookup {host}: {reason}"


async def bind_listener(listen: str) -> tuple[trio.socket.SocketType, str]:
    """Bind and listen on ``listen``; returns the socket and the bound address as text.

    ``""``, ``":PORT"`` and ``"[::]:PORT"`` bind every interface (dual stack when possible).

    Raises:
        ProxyStartError: the address is malformed, does not resolve, or cannot be bound.
    """
    try:
        host, port = ("", 0) if listen == "" else split_host_port(listen)
    except ValueError as exc:
        raise ProxyStartError(listen, str(exc), bound=False) from None
    candidates: list[tuple[int, tuple[str, int]]] = []
    if host in ("", "::"):
        candidates = [(stdsocket.AF_INET6, ("::", port)), (stdsocket.AF_INET, ("0.0.0.0", port))]
    else:
        try:
            infos = await trio.socket.getaddrinfo(
                host, port, type=stdsocket.SOCK_STREAM, flags=stdsocket.AI_PASSIVE
            )
        except (OSError, UnicodeError) as exc:
            # gaierror: the name does not resolve; UnicodeError: it is no valid host name
            # (IDNA: an empty or 64+ character label, a NUL...). Go says "no such host".
            raise ProxyStartError(listen, _lookup_error(host, exc), bound=False) from None
        infos.sort(key=lambda info: info[0] != stdsocket.AF_INET)  # Go prefers IPv4
        candidates = [(int(info[0]), (str(info[4][0]), int(info[4][1]))) for info in infos[:1]]
    error: OSError | None = None
    for family, addr in candidates:
        sock = trio.socket.socket(family, stdsocket.SOCK_STREAM)
        try:
            sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
            if family == stdsocket.AF_INET6 and addr[0] == "::":
                sock.setsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY, 0)
            await sock.bind(addr)
            sock.listen(stdsocket.SOMAXCONN)
        except OSError as exc:
            sock.close()
            error = error or exc
            continue
        bound = sock.getsockname()
        return sock, format_address(family, str(bound[0]), int(bound[1]))
    assert error is not None
    raise ProxyStartError(listen, f"bind: {error.strerror or error}")


class _Pump:
    """Copies one direction of a connection through its :class:`LinkCore`."""

    def __init__(
        self,
        conn: Connection,
        link: LinkCore,
        src: trio.abc.HalfCloseableStream,
        dst: trio.abc.HalfCloseableStream,
        upstream: bool,
    ) -> None:
        self.conn = conn
        self.link = link
        self.src = src
        self.dst = dst
        self.upstream = upstream
        self.wake_scope: trio.CancelScope | None = None
        # splice relay: both ends plain sockets; the pipe is opened on first use
        self.splice = (
            SPLICE_AVAILABLE
            and isinstance(src, trio.SocketStream)
            and isinstance(dst, trio.SocketStream)
        )
        self.pipe: tuple[int, int] | None = None
        self.pipe_size = 0
        self.pipe_grown = False
        self.spliced = 0  # bytes relayed by splice (tests look at it)

    def wake(self) -> None:
        """Interrupt the pump's wait so it re-reads the core's deadline (toxics changed)."""
        if self.wake_scope is not None:
            self.wake_scope.cancel()

    def _count(self, n: int) -> None:
        proxy = self.conn.proxy
        if self.upstream:
            proxy.bytes_upstream += n
        else:
            proxy.bytes_downstream += n

    async def run(self) -> None:
        try:
            await self._run()
        except _PUMP_ERRORS:
            self.conn.abort(reset=False)
        finally:
            self._close_pipe()

    async def _run(self) -> None:
        link, src, dst = self.link, self.src, self.dst
        while True:
            if link.passthrough and self.splice:
                # Fastest path: no toxics, both ends sockets. Returns once a toxic is set
                # (nothing left in the pipe), after EOF, when splice turns out unusable, or
                # (True) to have one read done by copy below.
                copy_once = await self._splice_passthrough()
                if link.passthrough and not copy_once:
                    continue
            if link.passthrough:
                # Fast path: no toxics on this direction.
                with trio.CancelScope() as scope:
                    self.wake_scope = scope
                    data = await src.receive_some(READ_SIZE)
                self.wake_scope = None
                if scope.cancelled_caught:
                    continue
                self._count(len(data))
                if not data:
                    link.feed_eof(trio.current_time())
                elif link.passthrough:
                    await dst.send_all(data)
                    continue
                else:
                    link.feed(bytes(data), trio.current_time())
            for action in link.poll(trio.current_time()):
                if isinstance(action, Send):
                    await dst.send_all(action.data)
                elif isinstance(action, SendEof):
                    try:
                        await dst.send_eof()
                    except _PUMP_ERRORS:
                        self.conn.abort(reset=False)
                    return
                else:
                    assert isinstance(action, Close)
                    self.conn.abort(reset=action.reset)
                    return
            if link.passthrough:  # the toxics are gone and all they held was sent
                continue
            deadline = link.next_deadline()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self.wake_scope = scope
                if link.wants_input:
                    data = await src.receive_some(READ_SIZE)
                    now = trio.current_time()
                    self._count(len(data))
                    if data:
                        link.feed(bytes(data), now)
                    else:
                        link.feed_eof(now)
                else:
                    await trio.sleep_forever()
            self.wake_scope = None

    # ------------------------------------------------------------------ splice relay

    def _open_pipe(self) -> tuple[int, int] | None:
        """This pump's pipe, opened at the default size; None (and no splice) if it cannot be."""
        if self.pipe is None:
            import fcntl

            try:
                self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                self.pipe_size = fcntl.fcntl(self.pipe[1], fcntl.F_GETPIPE_SZ)
            except OSError as exc:  # EMFILE, ENFILE: copy instead
                logger.debug("proxy %s: no pipe for splice: %s", self.conn.proxy.name, exc)
                self._close_pipe()
                self.splice = False
        return self.pipe

    def _grow_pipe(self) -> None:
        """Once, on the first bulk read: enlarge the pipe (kept at its size if refused)."""
        import fcntl

        self.pipe_grown = True
        assert self.pipe is not None
        try:
            self.pipe_size = fcntl.fcntl(self.pipe[1], fcntl.F_SETPIPE_SZ, SPLICE_PIPE_SIZE)
        except OSError:  # EPERM over pipe-max-size or the per-user allowance
            pass

    def _close_pipe(self) -> None:
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            for fd in pipe:
                os.close(fd)

    async def _splice_passthrough(self) -> bool:
        """Relay source to destination with splice while the link stays passthrough.

        Each round moves what the source socket holds (up to the pipe's size) into the pipe,
        then all of it out to the destination, so a toxic set meanwhile (seen before the next
        read, or by cancelling the read wait) applies from the next byte read, after the
        pipe is empty. Returns then, after EOF (fed to the link), or with ``self.splice``
        False when the kernel refuses to splice these sockets (nothing read yet). Returns
        True, the pipe empty, when the source polls readable yet splice has nothing for it
        (TCP urgent data at the head, which splice never passes: EAGAIN, or 0 after the
        peer's FIN): the caller reads once with ``recv``, which steps over the urgent byte
        as the copying path always did, instead of spinning or taking it for EOF.
        """
        link = self.link
        pipe = self._open_pipe()
        if pipe is None:
            return False
        pipe_r, pipe_w = pipe
        assert isinstance(self.src, trio.SocketStream)
        assert isinstance(self.dst, trio.SocketStream)
        src_fd = self.src.socket.fileno()
        dst_fd = self.dst.socket.fileno()
        splice = os.splice
        waited = True
        readable = False
        while link.passthrough:
            try:
                n = splice(src_fd, pipe_w, self.pipe_size, flags=_SPLICE_FLAGS)
            except BlockingIOError:  # nothing to read (the pipe is empty)
                if readable:
                    return True
                with trio.CancelScope() as scope:
                    self.wake_scope = scope
                    await trio.lowlevel.wait_readable(src_fd)
                self.wake_scope = None
                readable = not scope.cancelled_caught
                waited = True
                continue
            except OSError as exc:
                if exc.errno in _SPLICE_UNSUPPORTED and not self.spliced:
                    logger.debug("proxy %s: splice refused: %s", self.conn.proxy.name, exc)
                    self.splice = False
                    return False
                raise
            readable = False
            self._count(n)
            if n == 0:
                # EOF, or urgent data at the head of a stream whose peer has shut down
                # (splice stops there too): a peek tells, and recv steps over it
                if await self.src.socket.recv(1, stdsocket.MSG_PEEK):
                    return True
                link.feed_eof(trio.current_time())
                return False
            if n >= SPLICE_GROW_AT and not self.pipe_grown:
                self._grow_pipe()
            self.spliced += n
            while n:
                try:
                    n -= splice(pipe_r, dst_fd, n, flags=_SPLICE_FLAGS)
                except BlockingIOError:  # destination full
                    await trio.lowlevel.wait_writable(dst_fd)
                    waited = True
            if not waited:  # source and destination always ready: let other tasks run
                await trio.lowlevel.checkpoint()
            waited = False
        return False


async def _close_stream(stream: trio.abc.HalfCloseableStream, reset: bool) -> None:
    """Close at once, even inside a cancelled scope; with ``reset`` a socket sends RST."""
    if isinstance(stream, trio.SocketStream):
        if reset:
            try:
                stream.socket.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, _LINGER_RST)
            except OSError:
                pass
        stream.socket.close()
        return
    with trio.CancelScope(shield=True):
        await trio.aclose_forcefully(stream)


class Connection:
    """One proxied connection: the client stream, its upstream stream and two pumps.

    The proxy creates one per accepted socket; tests may create one over memory streams
    and call :meth:`relay` directly.
    """

    def __init__(self, proxy: ProxyRuntime, client: trio.abc.HalfCloseableStream, seq: int) -> None:
        self.proxy = proxy
        self.client = client
        self.seq = seq
        self.scope = trio.CancelScope()
        self.reset = False
        self.pumps: dict[str, _Pump] = {}

    def abort(self, *, reset: bool) -> None:
        """Close both sockets (with RST when ``reset``) and stop both pumps."""
        self.reset = self.reset or reset
        self.scope.cancel()

    def apply_toxics(self, now: float) -> None:
        for direction, pump in self.pumps.items():
            pump.link.set_toxics(self.proxy.toxics_for(direction), now)
            pump.wake()

    async def run(self) -> None:
        """Dial the upstream, then relay; a failed dial just closes the client (as Toxiproxy)."""
        proxy = self.proxy
        upstream: trio.SocketStream | None = None
        try:
            host, port = split_host_port(proxy.upstream)
            upstream = await trio.open_tcp_stream(host or "localhost", port)
        except (OSError, ValueError) as exc:
            logger.info("proxy %s: dial %s failed: %s", proxy.name, proxy.upstream, exc)
        finally:
            if upstream is None:
                proxy.live -= 1
                await _close_stream(self.client, reset=False)
        if upstream is not None:
            await self.relay(upstream)

    async def relay(self, upstream: trio.abc.HalfCloseableStream) -> None:
        """Pump both directions until both ended or the connection is aborted, then close."""
        proxy = self.proxy
        try:
            with self.scope:
                now = trio.current_time()
                for direction, src, dst in (
                    (UPSTREAM, self.client, upstream),
                    (DOWNSTREAM, upstream, self.client),
                ):
                    rng = random.Random(f"{proxy.seed}/{proxy.name}/{self.seq}/{direction}")
                    link = LinkCore(proxy.toxics_for(direction), rng, now)
                    self.pumps[direction] = _Pump(self, link, src, dst, direction == UPSTREAM)
                proxy.connections.add(self)
                async with trio.open_nursery() as nursery:
                    for pump in self.pumps.values():
                        nursery.start_soon(pump.run)
        finally:
            proxy.connections.discard(self)
            proxy.live -= 1
            for pump in self.pumps.values():
                pump.link.close(trio.current_time())
            for stream in (self.client, upstream):
                await _close_stream(stream, self.reset)


class ProxyRuntime:
    """One proxy: its configuration, toxics, listener and live connections."""

    def __init__(self, *, name: str, listen: str, upstream: str, seed: int) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.seed = seed
        self.enabled = False
        self.toxics: list[ToxicSpec] = []
        self.connections: set[Connection] = set()
        self.live = 0
        self.accepted = 0
        self.bytes_upstream = 0
        self.bytes_downstream = 0
        self._scope: trio.CancelScope | None = None
        self._stopped: trio.Event | None = None
        self._reserved: trio.socket.SocketType | None = None
        self._listener: trio.socket.SocketType | None = None

    def toxics_for(self, direction: str) -> list[ToxicSpec]:
        return [t for t in self.toxics if t.direction == direction]

    def ordered_toxics(self) -> list[ToxicSpec]:
        """Upstream toxics first, then downstream, each in the order they were added."""
        return self.toxics_for(UPSTREAM) + self.toxics_for(DOWNSTREAM)

    def stats(self) -> ProxyStats:
        return ProxyStats(
            connections=self.live,
            connections_total=self.accepted,
            bytes_upstream=self.bytes_upstream,
            bytes_downstream=self.bytes_downstream,
        )

    def set_toxics(self, toxics: list[ToxicSpec]) -> None:
        """Replace the toxic list and apply it to every live connection now."""
        self.toxics = toxics
        now = trio.current_time()
        for conn in list(self.connections):
            conn.apply_toxics(now)

    async def start(self, nursery: trio.Nursery) -> None:
        """Bind ``listen`` and serve in ``nursery``; ``listen`` becomes the bound address.

        Raises:
            ProxyStartError: the address cannot be bound.
        """
        if self.enabled:
            return
        reserved, self._reserved = self._reserved, None
        if reserved is not None:
            try:
                reserved.listen(stdsocket.SOMAXCONN)
                sock, bound = reserved, self.listen
            except OSError:
                reserved.close()
                sock, bound = await bind_listener(self.listen)
        else:
            sock, bound = await bind_listener(self.listen)
        self.listen = bound
        self._listener = sock
        self.enabled = True
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        nursery.start_soon(self._serve, trio.SocketListener(sock), self._scope, self._stopped)
        logger.info("proxy %s listening on %s -> %s", self.name, bound, self.upstream)

    async def stop(self, *, keep_port: bool = False) -> None:
        """Close the listener and every connection; returns once all are closed.

        With ``keep_port`` (a disable, as opposed to a delete or an address change), the
        port stays reserved by a bound socket that does not listen: new connections are
        refused as with Toxiproxy, but no other socket on the machine (port 0 binds,
        outgoing connections) can take the port, so a later enable cannot fail with
        "address already in use".
        """
        if not self.enabled:
            if not keep_port:
                self._release()
            return
        self.enabled = False
        assert self._scope is not None
        assert self._stopped is not None
        if keep_port and self._reserved is None:
            # bound before the listener closes (SO_REUSEPORT): no window for another socket
            assert self._listener is not None
            self._reserved = await reserve_port(self.listen, self._listener)
        self._scope.cancel()
        await self._stopped.wait()
        logger.info("proxy %s stopped", self.name)

    def _release(self) -> None:
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    async def _serve(
        self, listener: trio.SocketListener, scope: trio.CancelScope, stopped: trio.Event
    ) -> None:
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    while True:
                        try:
                            stream = await listener.accept()
                        except OSError as exc:  # e.g. EMFILE: keep serving
                            logger.warning("proxy %s: accept failed: %s", self.name, exc)
                            await trio.sleep(0.1)
                            continue
                        assert isinstance(stream, trio.SocketStream)
                        self.accepted += 1
                        self.live += 1
                        conn = Connection(self, stream, self.accepted)
                        nursery.start_soon(conn.run)
        finally:
            listener.socket.close()
            stopped.set()
