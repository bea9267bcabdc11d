"""Load generation against X-Road client proxies (or any HTTP target), shared by the
scenario runner and the benchmark.

Two generators:

* :func:`run_open_loop` sends at a fixed rate. Request ``i`` is *intended* at
  ``start + i / rate`` and its latency is measured from that intended time, not from the
  moment a worker got round to sending it. A stalled server therefore shows up in the
  percentiles as the queue it causes (Gil Tene's "coordinated omission" correction, as in
  wrk2). ``service_s`` keeps the uncorrected figure (from the actual send).
* :func:`run_closed_loop` keeps ``concurrency`` requests in flight; each worker sends its next
  request when the previous one completes (latency = service time).

Every worker owns one ``httpx.AsyncClient``: one shared client collapses at concurrency 16
(feasibility.md Q5c). Every request becomes a :class:`RequestRecord` handed to ``sink``.
Times come from ``trio.current_time()`` (so tests run under ``autojump_clock``) and are
stored relative to ``origin``. Target choice is seeded.
"""

from __future__ import annotations

import math
import random
import ssl
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from federation.bench._hist import Histogram
from federation.identifiers import ServiceId

Sink = Callable[["RequestRecord"], None]
ClientFactory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]

DEFAULT_TIMEOUT_S = 30.0


def direction_of(client: str, service: str) -> str:
    """``EE->FI`` across instances, ``EE`` within one (first part of each identifier)."""
    a = client.split("/", 1)[0]
    b = service.split("/", 1)[0]
    return a if a == b else f"{a}->{b}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One kind of request, resolved to a URL. ``weight`` is its share of the mix."""

    client: str
    service: str
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    weight: float = 1.0
    direction: str = ""

    @property
    def dir(self) -> str:
        return self.direction or direction_of(self.client, self.service)


def xroad_target(
    client_url: str,
    client: str,
    service: str,
    path: str,
    *,
    method: str = "GET",
    body_bytes: int = 0,
    weight: float = 1.0,
) -> Target:
    """An X-Road REST r1 call: ``{client_url}/r1/{service}{path}`` with ``X-Road-Client``."""
    if path and not path.startswith("/"):
        path = "/" + path
    url = client_url.rstrip("/") + ServiceId.parse(service).rest_path() + path
    headers: list[tuple[str, str]] = [("X-Road-Client", client)]
    if body_bytes:
        headers.append(("Content-Type", "application/octet-stream"))
    return Target(
        client=client,
        service=service,
        url=url,
        method=method.upper(),
        headers=tuple(headers),
        body=payload(body_bytes),
        weight=weight,
        direction=direction_of(client, service),
    )


def payload(n: int) -> bytes:
    """``n`` bytes of deterministic filler."""
    unit = b"xfed-payload-0123456789abcdef\n"
    return (unit * (n // len(unit) + 1))[:n]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One request in the history.

    ``t`` is the intended send time and ``sent`` the actual one (seconds since the origin);
    ``latency_s`` runs from ``t`` to completion (corrected for coordinated omission),
    ``service_s`` from ``sent``. ``status`` is 0 when no HTTP response arrived; ``error`` is
    the ``X-Road-Error`` type, ``HTTP <status>`` for a non-X-Road failure, or
    ``xfed.<Exception>`` for a transport failure; None on success.
    """

    t: float
    sent: float
    latency_s: float
    service_s: float
    client: str
    service: str
    direction: str
    method: str
    status: int
    error: str | None
    xroad_id: str | None
    source: str = "load"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def t_end(self) -> float:
        return self.t + self.latency_s

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 6),
            "latency_ms": round(self.latency_s * 1000, 3),
            "service_ms": round(self.service_s * 1000, 3),
            "client": self.client,
            "service": self.service,
            "direction": self.direction,
            "method": self.method,
            "status": self.status,
            "error": self.error,
            "xroad_id": self.xroad_id,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RequestRecord:
        lat = float(d["latency_ms"]) / 1000
        svc = float(d.get("service_ms", d["latency_ms"])) / 1000
        return cls(
            t=float(d["t"]),
            sent=float(d["t"]) + lat - svc,
            latency_s=lat,
            service_s=svc,
            client=d["client"],
            service=d["service"],
            direction=d["direction"],
            method=d.get("method", "GET"),
            status=int(d["status"]),
            error=d.get("error"),
            xroad_id=d.get("xroad_id"),
            source=d.get("source", "load"),
        )


def classify(status: int, headers: httpx.Headers) -> str | None:
    """The error type of a response, or None for a success."""
    xe = headers.get("X-Road-Error")
    if xe:
        return xe.strip()
    if status >= 400:
        return f"HTTP {status}"
    return None


def default_client_factory(
    timeout_s: float = DEFAULT_TIMEOUT_S, ssl_context: ssl.SSLContext | None = None
) -> ClientFactory:
    """One keep-alive ``httpx.AsyncClient`` per worker.

    The clients share one SSL context: httpx builds a new one (loading the CA bundle, tens
    of milliseconds of blocking CPU) for every client otherwise, which stalls the event loop
    when 32 workers start at once.
    """
    ctx = ssl_context or ssl.create_default_context()

    def make() -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return httpx.AsyncClient(
            timeout=timeout_s,
            verify=ctx,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    return make


async def send_one(
    client: httpx.AsyncClient,
    target: Target,
    *,
    origin: float,
    intended: float | None = None,
    source: str = "load",
) -> tuple[RequestRecord, bytes]:
    """Send one request; return its record and the response body (empty on failure)."""
    sent = trio.current_time()
    if intended is None:
        intended = sent
    status = 0
    error: str | None
    xroad_id: str | None = None
    body = b""
    try:
        resp = await client.request(
            target.method,
            target.url,
            headers=list(target.headers),
            content=target.body or None,
        )
        status = resp.status_code
        body = resp.content
        error = classify(status, resp.headers)
        xroad_id = resp.headers.get("X-Road-Id")
    except httpx.TimeoutException:
        error = "xfed.Timeout"
    except httpx.HTTPError as exc:
        error = f"xfed.{type(exc).__name__}"
    end = trio.current_time()
    rec = RequestRecord(
        t=intended - origin,
        sent=sent - origin,
        latency_s=end - intended,
        service_s=end - sent,
        client=target.client,
        service=target.service,
        direction=target.dir,
        method=target.method,
        status=status,
        error=error,
        xroad_id=xroad_id,
        source=source,
    )
    return rec, body


class _Picker:
    def __init__(self, targets: Sequence[Target], rng: random.Random) -> None:
        if not targets:
            raise ValueError("no targets to send to")
        self._targets = list(targets)
        self._cum: list[float] = []
        total = 0.0
        for t in self._targets:
            total += max(t.weight, 0.0)
            self._cum.append(total)
        if total <= 0:
            raise ValueError("target weights sum to 0")
        self._rng = rng

    def __call__(self) -> Target:
        return self._rng.choices(self._targets, cum_weights=self._cum)[0]


async def run_open_loop(
    targets: Sequence[Target],
    rate: float,
    *,
    sink: Sink,
    origin: float | None = None,
    seed: int = 0,
    workers: int = 32,
    duration_s: float | None = None,
    stop: trio.Event | None = None,
    client_factory: ClientFactory | None = None,
) -> int:
    """Send ``rate`` requests per second until ``duration_s`` passes or ``stop`` is set.

    Requests wait in an unbounded queue for one of ``workers`` workers; their latency counts
    from the intended send time. In-flight requests complete before this returns; returns
    the number of requests scheduled.
    """
    if rate <= 0:
        raise ValueError("rate must be > 0")
    pick = _Picker(targets, random.Random(seed))
    factory = client_factory or default_client_factory()
    start = trio.current_time()
    base = start if origin is None else origin
    send_ch, recv_ch = trio.open_memory_channel[tuple[float, Target]](math.inf)

    async def worker(recv: trio.MemoryReceiveChannel[tuple[float, Target]]) -> None:
        async with factory() as client, recv:
            async for intended, target in recv:
                rec, _ = await send_one(client, target, origin=base, intended=intended)
                sink(rec)

    n = 0
    async with trio.open_nursery() as nursery:
        async with recv_ch:
            for _ in range(max(1, workers)):
                nursery.start_soon(worker, recv_ch.clone())
        async with send_ch:
            while True:
                intended = start + n / rate
                if duration_s is not None and n / rate >= duration_s:
                    break
                if stop is not None:
                    with trio.move_on_at(intended):
                        await stop.wait()
                    if stop.is_set():
                        break
                else:
                    await trio.sleep_until(intended)
                send_ch.send_nowait((intended, pick()))
                n += 1
    return n


async def run_closed_loop(
    targets: Sequence[Target],
    concurrency: int,
    *,
    sink: Sink,
    origin: float | None = None,
    seed: int = 0,
    duration_s: float | None = None,
    stop: trio.Event | None = None,
    client_factory: ClientFactory | None = None,
) -> int:
    """Keep ``concurrency`` requests in flight until ``duration_s`` passes or ``stop`` is
    set; returns the number of requests sent."""
    factory = client_factory or default_client_factory()
    start = trio.current_time()
    base = start if origin is None else origin
    deadline = math.inf if duration_s is None else start + duration_s
    count = 0

    async def worker(i: int) -> None:
        nonlocal count
        pick = _Picker(targets, random.Random(seed * 1_000_003 + i))
        async with factory() as client:
            while trio.current_time() < deadline and not (stop is not None and stop.is_set()):
                rec, _ = await send_one(client, pick(), origin=base)
                count += 1
                sink(rec)

    async with trio.open_nursery() as nursery:
        for i in range(max(1, concurrency)):
            nursery.start_soon(worker, i)
    return count


class LoadStats:
    """A sink that keeps histograms overall and per direction, plus counts of errors.

    ``corrected`` chooses ``latency_s`` (from the intended time) or ``service_s``.
    """

    def __init__(self, *, corrected: bool = True) -> None:
        self.corrected = corrected
        self.all = Histogram()
        self.by_direction: dict[str, Histogram] = {}
        self.requests = 0
        self.errors = 0
        self.error_types: dict[str, int] = {}
        self.first_t: float | None = None
        self.last_end: float = 0.0

    def __call__(self, rec: RequestRecord) -> None:
        self.requests += 1
        if self.first_t is None or rec.t < self.first_t:
            self.first_t = rec.t
        self.last_end = max(self.last_end, rec.t_end)
        if rec.error is not None:
            self.errors += 1
            self.error_types[rec.error] = self.error_types.get(rec.error, 0) + 1
            return
        value = rec.latency_s if self.corrected else rec.service_s
        self.all.record_s(value)
        self.by_direction.setdefault(rec.direction, Histogram()).record_s(value)

    def rps(self) -> float:
        if self.first_t is None or self.last_end <= self.first_t:
            return 0.0
        return self.requests / (self.last_end - self.first_t)
