"""``xfed bench``: cross-instance latency and throughput, side by side with the direct call.

One session starts a federation (EE + FI, a process per instance by default, time scale 1:
message log and time-stamping on as in production) and measures four *modes* of the same
echo call (``POST .../echo?raw=1``: the payload goes both ways):

* ``direct``: the load generator calls FI's echo information system directly (the floor);
* ``intra``: ``EE/COM/14000001/onboarding`` on ee-ss2 -> EE's echo on ee-ss1 (two security
  servers of one instance);
* ``cross``: ``EE/GOV/70000001/consumer`` on ee-ss1 -> FI's echo on fi-ss1;
* ``cross_wan``: ``cross`` with ``wan_latency_ms`` of latency each way on every EE -> FI
  security-server chaos link (so +2 x 10 ms per round trip).

Each *cell* (payload x concurrency x mode) is measured closed-loop (``concurrency``
requests in flight, each worker sends the next when the previous completes, so there is
no coordinated omission to correct) for ``duration_s`` in total, split into ``rounds``
segments. Segments are **interleaved**: round by round, every cell of every mode runs once,
with the mode order rotated each round, so machine drift (other tenants, the message log
growing, time-stamping batches) hits every mode alike.

The load generator uses the project's own h11 client (:class:`federation.http.HttpClient`,
one keep-alive connection per worker, the same HTTP stack as the security servers), so
the generator is not what saturates first (httpx costs ~3x more CPU per request,
feasibility.md Q5c).

CPU per request: ``utime + stime`` of every process of the run (``/proc/<pid>/stat``: the
instance processes, the chaos proxy, and this runner) over each segment, divided by the
segment's requests.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from chaos import FaultClient, FaultHandle
from federation.bench._hist import Histogram
from federation.bench._load import payload as make_payload
from federation.errors import FederationError, TransportError, leaf_errors
from federation.http import HttpClient, HttpClientResponse
from federation.identifiers import ServiceId

MODES = ("direct", "intra", "cross", "cross_wan")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INSTANCES = (ROOT / "instances" / "ee.yaml", ROOT / "instances" / "fi.yaml")

EE_ECHO = "EE/GOV/70000001/bench/echo"
FI_ECHO = "FI/GOV/0245437-2/bench/echo"
INTRA_CLIENT = "EE/COM/14000001/onboarding"
CROSS_CLIENT = "EE/GOV/70000001/consumer"
ECHO_PATH = "/echo?raw=1"

TARGETS_TEXT = {
    "cross_rps_over_direct": ">= 0.25",
    "cross_p50_minus_direct_ms": "<= 3 ms",
    "cross_wan_p50_minus_cross_plus_20_ms": "|x| <= 2 ms",
    "errors": "0",
}


class BenchError(FederationError):
    """The benchmark cannot run (bad options, a missing component or plotting library)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """What to measure. ``duration_s`` is the measured time of *each* cell."""

    duration_s: float = 10.0
    concurrency: tuple[int, ...] = (1, 16)
    rates: tuple[float, ...] = ()
    """Fixed-rate (open-loop) cells, requests per second, measured besides the closed-loop
    ``concurrency`` cells; latency counts from each request's intended send time."""
    max_in_flight: int = 128
    """Workers (connections) of a fixed-rate cell; later requests queue for one."""
    payloads: tuple[int, ...] = (1024, 102400)
    modes: tuple[str, ...] = MODES
    rounds: int = 5
    warmup_s: float = 1.0
    wan_latency_ms: int = 10
    in_process: bool = False
    instances: tuple[Path, ...] = DEFAULT_INSTANCES
    run_dir: Path | None = None
    seed: int = 0
    timeout_s: float = 30.0

    def check(self) -> None:
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise BenchError("--duration must be a number of seconds > 0")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise BenchError("--concurrency: a list of integers >= 1")
        if any(not (r > 0 and math.isfinite(r)) for r in self.rates):
            raise BenchError("--rate: a list of request rates > 0 (requests per second)")
        seg = self.duration_s / max(1, self.rounds)
        slow = [r for r in self.rates if r * seg < 1]
        if slow:
            raise BenchError(
                f"--rate {slow[0]:g}: less than one request per segment of {seg:g} s "
                "(--duration / --rounds); raise the rate or the duration"
            )
        if len({_rkey(r) for r in self.rates}) != len(self.rates):
            raise BenchError(f"--rate: a rate is listed twice ({list(self.rates)})")
        if self.max_in_flight < 1:
            raise BenchError("max_in_flight must be >= 1")
        if not self.payloads or any(p < 0 for p in self.payloads):
            raise BenchError("--payload: a list of byte counts >= 0")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise BenchError(f"unknown mode(s) {bad}; known: {', '.join(MODES)}")
        if self.rounds < 1:
            raise BenchError("--rounds must be >= 1")

    @property
    def latency_concurrency(self) -> int:
        return min(self.concurrency)

    @property
    def saturating_concurrency(self) -> int:
        return max(self.concurrency)

    @property
    def main_payload(self) -> int:
        """The payload of ``modes.<mode>.c1``/``.csat``: 1 KB when measured, else the smallest."""
        return 1024 if 1024 in self.payloads else min(self.payloads)


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, Python, package versions, load average."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for pkg in ("xroad-federation-testbed", "trio", "h11", "httpx", "cryptography", "asn1crypto"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "absent"
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    import sqlite3
    import ssl

    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "openssl": ssl.OPENSSL_VERSION,
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "loadavg_start": [round(x, 2) for x in load],
    }


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """``utime + stime`` of ``pid`` (all its threads) in seconds; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _TICK


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one mode's requests go."""

    mode: str
    host: str
    port: int
    path: str
    client: str | None
    """``X-Road-Client`` (None for the direct call)."""


def _split_url(url: str) -> tuple[str, int, str]:
    rest = url.split("://", 1)[1]
    hostport, slash, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port), slash + path


def _ss_of(manifest: dict[str, Any], client: str) -> dict[str, Any]:
    inst = client.split("/", 1)[0]
    for ss in manifest["instances"][inst]["security_servers"].values():
        if client in ss["clients"]:
            return dict(ss)
    raise BenchError(f"no security server of {inst} hosts {client}")


def endpoints(manifest: dict[str, Any]) -> dict[str, Endpoint]:
    """The four modes' endpoints from a run manifest."""
    fi_is = manifest["instances"]["FI"]["infosystems"]["url"]
    fi_svc = ServiceId.parse(FI_ECHO)
    ee_svc = ServiceId.parse(EE_ECHO)
    h, p, base = _split_url(fi_is.rstrip("/") + fi_svc.rest_path()[len("/r1") :])
    out = {"direct": Endpoint("direct", h, p, base + ECHO_PATH, None)}
    intra_ss = _ss_of(manifest, INTRA_CLIENT)
    provider_ss = _ss_of(manifest, str(ee_svc.client))
    if intra_ss["code"] == provider_ss["code"]:
        raise BenchError("intra: the consumer and the provider share a security server")
    h, p, _ = _split_url(intra_ss["client_url"] + "/")
    out["intra"] = Endpoint("intra", h, p, ee_svc.rest_path() + ECHO_PATH, INTRA_CLIENT)
    h, p, _ = _split_url(_ss_of(manifest, CROSS_CLIENT)["client_url"] + "/")
    cross = Endpoint("cross", h, p, fi_svc.rest_path() + ECHO_PATH, CROSS_CLIENT)
    out["cross"] = cross
    out["cross_wan"] = Endpoint("cross_wan", h, p, cross.path, CROSS_CLIENT)
    return out


def wan_links(manifest: dict[str, Any], src: str = "EE", dst: str = "FI") -> list[str]:
    """Every security-server -> security-server chaos link from ``src`` to ``dst``."""
    return sorted(
        name
        for name, link in manifest["chaos"]["links"].items()
        if link["kind"] == "ss-ss"
        and link["from"].split(".", 1)[0] == src
        and link["to"].split(".", 1)[0] == dst
    )


# --------------------------------------------------------------------------- one segment


@dataclass(slots=True)
class CellResult:
    """Accumulated measurements of one (payload, concurrency, mode) cell."""

    hist: Histogram = field(default_factory=Histogram)
    requests: int = 0
    errors: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    round_rps: list[float] = field(default_factory=list)
    round_p50_ms: list[float] = field(default_factory=list)
    offered_rps: float | None = None
    """The intended rate of a fixed-rate cell (None: closed loop)."""
    connections: int = 0
    """Fixed-rate cells: the most connections one segment needed."""
    dispatch_lag: Histogram = field(default_factory=Histogram)
    """Fixed-rate cells: how late the generator woke for each due time (its own lag,
    which the latency from the due time includes: epoll sleeps in whole milliseconds)."""
    service: Histogram = field(default_factory=Histogram)
    """Fixed-rate cells: latency from the actual send (without the queueing)."""

    def add_error(self, kind: str) -> None:
        self.errors += 1
        self.error_types[kind] = self.error_types.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        ok = self.hist.count
        pct = self.hist.percentiles_ms((50, 90, 95, 99, 99.9))
        rps = ok / self.elapsed_s if self.elapsed_s > 0 else 0.0
        cpu_ms = {
            name: round(1000 * s / ok, 4) if ok else None for name, s in sorted(self.cpu_s.items())
        }
        total = sum(self.cpu_s.values())
        cpu_ms["total"] = round(1000 * total / ok, 4) if ok else None
        return {
            **pct,
            "rps": round(rps, 1),
            "requests": ok,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "elapsed_s": round(self.elapsed_s, 3),
            "cpu_ms_per_req": cpu_ms,
            "cpu_cores_busy": round(total / self.elapsed_s, 3) if self.elapsed_s > 0 else None,
            "rps_rounds": [round(x, 1) for x in self.round_rps],
            "p50_ms_rounds": [round(x, 3) for x in self.round_p50_ms],
            "histogram": self.hist.to_json(),
            **(
                {}
                if self.offered_rps is None
                else {
                    "offered_rps": self.offered_rps,
                    "latency_from": "intended send time (coordinated omission corrected)",
                    "service_ms": self.service.percentiles_ms((50, 99)),
                    "connections": self.connections,
                    "dispatch_lag_ms": self.dispatch_lag.percentiles_ms((50, 99)),
                }
            ),
        }


class _Workers:
    """Keep-alive h11 clients per (mode, worker index), reused across segments."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._clients: dict[tuple[str, int], HttpClient] = {}

    def get(self, mode: str, i: int) -> HttpClient:
        c = self._clients.get((mode, i))
        if c is None:
            c = HttpClient(connect_timeout_s=10.0, read_timeout_s=self.timeout_s)
            self._clients[(mode, i)] = c
        return c

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()


async def run_segment(
    ep: Endpoint,
    body: bytes,
    concurrency: int,
    seconds: float,
    workers: _Workers,
    cell: CellResult,
    pids: dict[str, int],
) -> None:
    """Keep ``concurrency`` requests in flight at ``ep`` for ``seconds``; add to ``cell``."""
    headers = _headers(ep)
    expect = len(body)
    seg = Histogram()
    errors_before = cell.errors
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(i: int) -> None:
        client = workers.get(ep.mode, i)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                resp = await client.request(
                    ep.host, ep.port, "POST", ep.path, headers=headers, body=body
                )
            except TransportError as exc:
                cell.add_error(f"xfed.TransportError: {str(exc)[:80]}")
                await trio.sleep(0.01)
                continue
            dt = time.perf_counter() - t0
            if _check_answer(resp, expect, cell):
                seg.record_s(dt)

    async with trio.open_nursery() as nursery:
        for i in range(concurrency):
            nursery.start_soon(worker, i)
    _end_segment(cell, seg, time.perf_counter() - start, errors_before, pids, cpu0)


def _headers(ep: Endpoint) -> list[tuple[str, str]]:
    """The request headers of one mode's calls (``X-Road-Client`` except for direct)."""
    headers = [("Content-Type", "application/octet-stream")]
    if ep.client is not None:
        headers.append(("X-Road-Client", ep.client))
    return headers


def _check_answer(resp: HttpClientResponse, expect: int, cell: CellResult) -> bool:
    """Count a wrong answer as an error; True when the answer is the echo expected."""
    xe = resp.header("x-road-error")
    if xe:
        cell.add_error(xe)
    elif resp.status >= 400:
        cell.add_error(f"HTTP {resp.status}")
    elif len(resp.body) != expect:
        cell.add_error(f"xfed.BadBody ({len(resp.body)} bytes, expected {expect})")
    else:
        return True
    return False


async def run_rate_segment(
    ep: Endpoint,
    body: bytes,
    rate: float,
    seconds: float,
    workers: _Workers,
    cell: CellResult,
    pids: dict[str, int],
    *,
    max_in_flight: int = 128,
    drain_s: float | None = None,
) -> None:
    """Offer ``rate`` requests per second at ``ep`` for ``seconds`` (open loop); add to
    ``cell``.

    Request ``i`` is due at ``start + i / rate`` whether or not earlier ones have answered;
    at most ``max_in_flight`` are in flight and later ones wait their turn in order. Latency
    counts from the due time, so a server that falls behind shows the queue it causes
    (coordinated omission corrected, as wrk2 does); ``cell.service`` keeps the time from the
    actual send. Connections are taken last-used-first, so a light load keeps using the few
    warm ones it needs. Requests still waiting ``drain_s`` (default: ``seconds``, at least
    5 s) after the last due time are not sent: they count as ``xfed.Overloaded`` errors,
    which bounds the run when the offered rate is above what the federation can serve.
    """
    headers = _headers(ep)
    expect = len(body)
    seg = Histogram()
    errors_before = cell.errors
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    count = max(1, math.floor(seconds * rate))
    start = trio.current_time()
    give_up = start + (count - 1) / rate + (max(5.0, seconds) if drain_s is None else drain_s)
    slots = trio.Semaphore(max_in_flight)  # trio wakes waiters in arrival (due) order
    free: list[int] = []  # indices of idle connections, most recently used last
    opened = 0

    async def one(due: float) -> None:
        nonlocal opened
        async with slots:
            if trio.current_time() > give_up:
                cell.add_error("xfed.Overloaded (not sent: the queue did not drain)")
                return
            if free:
                i = free.pop()
            else:
                i, opened = opened, opened + 1
            client = workers.get(ep.mode, i)
            t0 = trio.current_time()
            try:
                resp = await client.request(
                    ep.host, ep.port, "POST", ep.path, headers=headers, body=body
                )
            except TransportError as exc:
                cell.add_error(f"xfed.TransportError: {str(exc)[:80]}")
                return
            finally:
                free.append(i)
            end = trio.current_time()
            if _check_answer(resp, expect, cell):
                seg.record_s(end - due)
                cell.service.record_s(end - t0)

    async with trio.open_nursery() as nursery:
        for k in range(count):
            due = start + k / rate
            await trio.sleep_until(due)
            cell.dispatch_lag.record_s(trio.current_time() - due)
            nursery.start_soon(one, due)
    _end_segment(cell, seg, trio.current_time() - start, errors_before, pids, cpu0)
    cell.connections = max(cell.connections, opened)


def _end_segment(
    cell: CellResult,
    seg: Histogram,
    elapsed: float,
    errors_before: int,
    pids: dict[str, int],
    cpu0: dict[str, float | None],
) -> None:
    """Add one segment's latencies, counts, rate and CPU to ``cell``."""
    for name, pid in pids.items():
        a, b = cpu0[name], cpu_seconds(pid)
        if a is not None and b is not None:
            cell.cpu_s[name] = cell.cpu_s.get(name, 0.0) + (b - a)
    cell.hist.merge(seg)
    cell.requests += seg.count + (cell.errors - errors_before)
    cell.elapsed_s += elapsed
    cell.round_rps.append(seg.count / elapsed if elapsed > 0 else 0.0)
    cell.round_p50_ms.append(seg.percentile_ms(50))


# --------------------------------------------------------------------------- the session


Progress = Callable[[str], None]


class _Wan:
    """The cross_wan latency: on while cross_wan segments run, healed otherwise."""

    def __init__(self, fc: FaultClient, links: Sequence[str], ms: int) -> None:
        self.fc = fc
        self.links = list(links)
        self.ms = ms
        self._handles: list[FaultHandle] = []

    async def set(self, on: bool) -> None:
        if on and not self._handles:
            for link in self.links:
                self._handles.append(await self.fc.latency(link, self.ms, stream="both"))
        elif not on and self._handles:
            for h in self._handles:
                await h.heal()
            self._handles.clear()


async def measure(
    manifest: dict[str, Any],
    config: BenchConfig,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every cell against a running federation (its ``manifest``); the result dict."""
    say = progress or (lambda _m: None)
    eps = endpoints(manifest)
    pids = {name: int(p["pid"]) for name, p in manifest.get("processes", {}).items()}
    pids["runner"] = os.getpid()
    links = wan_links(manifest)
    if "cross_wan" in config.modes and not links:
        raise BenchError("no EE -> FI security-server link in the manifest")
    cells: dict[tuple[int, int, str], CellResult] = {
        (p, c, m): CellResult()
        for p in config.payloads
        for c in config.concurrency
        for m in config.modes
    }
    rate_cells: dict[tuple[int, float, str], CellResult] = {
        (p, r, m): CellResult(offered_rps=r)
        for p in config.payloads
        for r in config.rates
        for m in config.modes
    }
    bodies = {p: make_payload(p) for p in config.payloads}
    seg_s = config.duration_s / config.rounds
    workers = _Workers(config.timeout_s)
    started = time.perf_counter()
    async with AsyncExitStack() as stack:
        fc = await stack.enter_async_context(FaultClient(manifest["chaos"]["api_url"]))
        wan = _Wan(fc, links, config.wan_latency_ms)
        stack.push_async_callback(wan.set, False)
        stack.push_async_callback(workers.aclose)
        # warm-up: open every connection pool (client -> SS, SS -> SS TLS, SS -> IS), route
        # and OCSP caches, at the highest concurrency; not measured
        if config.warmup_s > 0:
            say(f"warm-up {config.warmup_s:g} s per mode")
            for m in config.modes:
                await wan.set(m == "cross_wan")
                scratch = CellResult()
                await run_segment(
                    eps[m],
                    bodies[config.main_payload],
                    config.saturating_concurrency,
                    config.warmup_s,
                    workers,
                    scratch,
                    {},
                )
                if scratch.errors:
                    raise BenchError(
                        f"warm-up of {m} failed: {scratch.errors} errors ({scratch.error_types})"
                    )
        total = (len(cells) + len(rate_cells)) * config.rounds
        done = 0
        for r in range(config.rounds):
            k = r % len(config.modes)
            order = config.modes[k:] + config.modes[:k]
            for p in config.payloads:
                for c in config.concurrency:
                    for m in order:
                        await wan.set(m == "cross_wan")
                        await run_segment(
                            eps[m], bodies[p], c, seg_s, workers, cells[(p, c, m)], pids
                        )
                        done += 1
                for rate in config.rates:
                    for m in order:
                        await wan.set(m == "cross_wan")
                        await run_rate_segment(
                            eps[m],
                            bodies[p],
                            rate,
                            seg_s,
                            workers,
                            rate_cells[(p, rate, m)],
                            pids,
                            max_in_flight=config.max_in_flight,
                        )
                        done += 1
            say(
                f"round {r + 1}/{config.rounds} done ({done}/{total} segments, "
                f"{time.perf_counter() - started:.0f} s)"
            )
    return _result(config, cells, rate_cells, manifest, time.perf_counter() - started)


def _ckey(c: int) -> str:
    return f"c{c}"


def _rkey(rate: float) -> str:
    """``r300`` for a fixed-rate cell of 300 requests per second (``r12.5``: 12.5/s)."""
    return f"r{int(rate)}" if rate.is_integer() else f"r{rate!r}"


def _result(
    config: BenchConfig,
    cells: dict[tuple[int, int, str], CellResult],
    rate_cells: dict[tuple[int, float, str], CellResult],
    manifest: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    summaries = {k: v.summary() for k, v in cells.items()}
    rate_summaries = {k: v.summary() for k, v in rate_cells.items()}
    lo, hi, main = config.latency_concurrency, config.saturating_concurrency, config.main_payload
    modes: dict[str, Any] = {}
    for m in config.modes:
        entry: dict[str, Any] = {
            "c1": _brief(summaries[(main, lo, m)]),
            "csat": _brief(summaries[(main, hi, m)]),
            "payloads": {},
        }
        for p in config.payloads:
            entry["payloads"][str(p)] = {_ckey(c): summaries[(p, c, m)] for c in config.concurrency}
            for r in config.rates:
                entry["payloads"][str(p)][_rkey(r)] = rate_summaries[(p, r, m)]
        modes[m] = entry
    ratios = _ratios(config, summaries)
    errors = sum(s["errors"] for s in (*summaries.values(), *rate_summaries.values()))
    try:
        load_end = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load_end = []
    return {
        "machine": {**machine_info_cached(), "loadavg_end": load_end},
        "config": {
            "duration_s_per_cell": config.duration_s,
            "rounds": config.rounds,
            "segment_s": config.duration_s / config.rounds,
            "concurrency": list(config.concurrency),
            "rates": list(config.rates),
            "max_in_flight": config.max_in_flight,
            "latency_concurrency": lo,
            "saturating_concurrency": hi,
            "payloads": list(config.payloads),
            "main_payload": main,
            "modes": list(config.modes),
            "wan_latency_ms_each_way": config.wan_latency_ms,
            "mode": manifest.get("mode"),
            "time_scale": manifest.get("time_scale"),
            "message_log": True,
            "timestamping_interval_s": manifest["instances"]["EE"]["timers"].get(
                "timestamping_interval_s"
            ),
            "load_generator": "closed loop (cN cells) and fixed rate (rN cells, latency from "
            "the intended send time), federation.http.HttpClient (h11), one keep-alive "
            "connection per worker",
            "request": "POST .../echo?raw=1, the payload both ways",
        },
        "modes": modes,
        "ratios": ratios,
        "targets": _targets(ratios, errors),
        "errors_total": errors,
        "wall_s": round(wall_s, 1),
    }


def _brief(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "rps", "errors")
    out = {k: s[k] for k in keys}
    out["cpu_ms_per_req"] = s["cpu_ms_per_req"]
    out["rps_rounds"] = s["rps_rounds"]
    return out


def _ratios(
    config: BenchConfig, summaries: dict[tuple[int, int, str], dict[str, Any]]
) -> dict[str, Any]:
    lo, hi = config.latency_concurrency, config.saturating_concurrency
    out: dict[str, Any] = {}

    def get(p: int, c: int, m: str, key: str) -> float | None:
        s = summaries.get((p, c, m))
        return None if s is None else float(s[key])

    def put(name: str, value: float | None, nd: int = 3) -> None:
        out[name] = None if value is None or math.isnan(value) else round(value, nd)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    per_payload: dict[str, Any] = {}
    for p in config.payloads:
        block: dict[str, Any] = {}
        for m in ("intra", "cross", "cross_wan"):
            r = ratio(get(p, hi, m, "rps"), get(p, hi, "direct", "rps"))
            block[f"{m}_rps_over_direct"] = None if r is None else round(r, 3)
            d = diff(get(p, lo, m, "p50_ms"), get(p, lo, "direct", "p50_ms"))
            block[f"{m}_p50_minus_direct_ms"] = None if d is None else round(d, 3)
        d = diff(get(p, lo, "cross_wan", "p50_ms"), get(p, lo, "cross", "p50_ms"))
        block["cross_wan_p50_minus_cross_ms"] = None if d is None else round(d, 3)
        per_payload[str(p)] = block
    main = per_payload[str(config.main_payload)]
    for k, v in main.items():
        put(k, v)
    wan = main.get("cross_wan_p50_minus_cross_ms")
    put("cross_wan_p50_minus_cross_plus_20_ms", None if wan is None else wan - 20.0)
    out["per_payload"] = per_payload
    return out


def _targets(ratios: dict[str, Any], errors: int) -> dict[str, Any]:
    def t(value: float | None, ok: bool | None, bar: str) -> dict[str, Any]:
        return {"measured": value, "target": bar, "met": ok}

    rps = ratios.get("cross_rps_over_direct")
    lat = ratios.get("cross_p50_minus_direct_ms")
    wan = ratios.get("cross_wan_p50_minus_cross_plus_20_ms")
    return {
        "cross_rps_over_direct": t(rps, None if rps is None else rps >= 0.25, ">= 0.25"),
        "cross_p50_minus_direct_ms": t(lat, None if lat is None else lat <= 3.0, "<= 3 ms"),
        "cross_wan_p50_minus_cross_plus_20_ms": t(
            wan, None if wan is None else abs(wan) <= 2.0, "within +-2 ms"
        ),
        "errors": t(errors, errors == 0, "0"),
    }


_MACHINE: dict[str, Any] = {}


def machine_info_cached() -> dict[str, Any]:
    if not _MACHINE:
        _MACHINE.update(machine_info())
    return dict(_MACHINE)


async def run_bench(config: BenchConfig, *, progress: Progress | None = None) -> dict[str, Any]:
    """Start a federation, measure, stop it; the result dict (see :func:`measure`)."""
    from federation.topology._runtime import make_plan
    from federation.topology.up import open_federation

    config.check()
    say = progress or (lambda _m: None)
    machine_info_cached()  # load average before the federation starts
    tmp: str | None = None
    run_dir = config.run_dir
    if run_dir is None:
        tmp = tempfile.mkdtemp(prefix="xfed-bench-")
        run_dir = Path(tmp) / "run"
    try:
        plan = make_plan(list(config.instances), run_dir, time_scale=1.0, seed=config.seed)
        t0 = time.perf_counter()
        async with open_federation(plan, in_process=config.in_process) as fed:
            ready = time.perf_counter() - t0
            say(f"federation ready in {ready:.1f} s ({fed.manifest.get('mode')})")
            result = await measure(fed.manifest, config, progress=say)
            result["federation_ready_s"] = round(ready, 2)
            result["run_dir"] = str(run_dir) if tmp is None else None
            result["message_log"] = _log_status(fed.manifest)
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _log_status(manifest: dict[str, Any]) -> dict[str, Any]:
    """Records and time-stamps in each security server's message log after the run."""
    from federation.securityserver._messagelog import MessageLog

    out: dict[str, Any] = {}
    for info in manifest["instances"].values():
        for sid, ss in info["security_servers"].items():
            try:
                log = MessageLog.open_readonly(ss["message_log"])
            except FederationError:
                continue
            try:
                st = log.status()
            finally:
                log.close()
            out[sid] = {k: st[k] for k in ("records", "unstamped", "timestamps")}
    return out


# --------------------------------------------------------------------------- output


def _fmt_bytes(n: int) -> str:
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n} B"


def render_table(result: dict[str, Any]) -> str:
    """A plain-text table of every cell, the ratios and the targets."""
    cfg = result["config"]
    lines = []
    m = result["machine"]
    lines.append(
        f"machine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}, "
        f"load {m.get('loadavg_start')} -> {m.get('loadavg_end')}"
    )
    lines.append(
        f"{cfg['mode']}, {cfg['rounds']} interleaved rounds, {cfg['duration_s_per_cell']:g} s "
        f"per cell, message log + time-stamping on (interval "
        f"{cfg['timestamping_interval_s']:g} s)"
    )
    procs = sorted(
        {
            k
            for mode in result["modes"].values()
            for per_c in mode["payloads"].values()
            for s in per_c.values()
            for k in s["cpu_ms_per_req"]
        }
    )
    head = (
        f"{'payload':>8} {'load':>6} {'mode':<10} {'p50':>7} {'p95':>7} {'p99':>7} "
        f"{'max':>7} {'rps':>7} {'err':>4}  cpu ms/req " + " ".join(f"{p:>7}" for p in procs)
    )
    lines.append(head)
    lines.append("-" * len(head))
    loads = [_ckey(c) for c in cfg["concurrency"]] + [_rkey(r) for r in cfg.get("rates", [])]
    for p in cfg["payloads"]:
        for load in loads:
            for mode in cfg["modes"]:
                s = result["modes"][mode]["payloads"][str(p)][load]
                cpu = " ".join(
                    f"{s['cpu_ms_per_req'].get(k) or 0:7.3f}"
                    if s["cpu_ms_per_req"].get(k) is not None
                    else f"{'-':>7}"
                    for k in procs
                )
                lines.append(
                    f"{_fmt_bytes(p):>8} {load:>6} {mode:<10} {s['p50_ms']:7.2f} "
                    f"{s['p95_ms']:7.2f} {s['p99_ms']:7.2f} {s['max_ms']:7.1f} {s['rps']:7.0f} "
                    f"{s['errors']:>4}  "
                    f"{'':10} {cpu}"
                )
        lines.append("")
    lines.append(
        "latency in ms; rps = completed requests per second; load cN = N requests in flight "
        "(closed loop), rN = N requests per second offered (latency from the intended send)"
    )
    lines.append("")
    lines.append("targets (1 KB):")
    for name, t in result["targets"].items():
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"  {name:<40} {t['measured']!s:>10}  target {t['target']:<14} {mark}")
    return "\n".join(lines)


def write_plot(result: dict[str, Any], out: Path) -> None:
    """Latency CDFs per mode, one panel per (payload, concurrency) cell (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BenchError(
            "--plot needs matplotlib: pip install matplotlib "
            "(or the project's 'plot' extra: pip install -e '.[plot]')"
        ) from None
    cfg = result["config"]
    payloads = cfg["payloads"]
    loads = [(_ckey(c), f"concurrency {c}") for c in cfg["concurrency"]] + [
        (_rkey(r), f"{r:g} requests/s offered") for r in cfg.get("rates", [])
    ]
    fig, axes = plt.subplots(
        len(payloads),
        len(loads),
        figsize=(5.5 * len(loads), 3.8 * len(payloads)),
        squeeze=False,
    )
    for i, p in enumerate(payloads):
        for j, (load, title) in enumerate(loads):
            ax = axes[i][j]
            for mode in cfg["modes"]:
                s = result["modes"][mode]["payloads"][str(p)][load]
                h = Histogram.from_json(s["histogram"])
                pts = h.cdf_points()
                if not pts:
                    continue
                xs = [x for x, _ in pts]
                ys = [y for _, y in pts]
                ax.step(xs, ys, where="post", label=f"{mode} (p50 {s['p50_ms']:.2f} ms)")
            ax.set_xscale("log")
            ax.set_title(f"{_fmt_bytes(p)}, {title}")
            ax.set_xlabel("latency (ms, log)")
            ax.set_ylabel("fraction of requests")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("xfed bench: latency CDF per mode")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- command


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise BenchError(f"{what}: expected comma-separated integers, found {text!r}") from None
    if not values:
        raise BenchError(f"{what}: empty list")
    return values


def _rate_list(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        return tuple(float(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise BenchError(
            f"--rate: expected comma-separated requests per second, found {text!r}"
        ) from None


def cmd_bench(args: Any) -> int:
    """``xfed bench``: run, print the table, write ``--json`` / ``--plot``."""
    import json
    import sys

    config = BenchConfig(
        duration_s=args.duration,
        concurrency=_int_list(args.concurrency, "--concurrency"),
        rates=_rate_list(getattr(args, "rate", None)),
        payloads=_int_list(args.payload, "--payload"),
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
        rounds=args.rounds,
        warmup_s=args.warmup,
        in_process=args.in_process,
        run_dir=args.run_dir,
        seed=args.seed,
        instances=tuple(args.instances) if args.instances else DEFAULT_INSTANCES,
    )
    config.check()
    for opt, out in (("--json", args.json), ("--plot", args.plot)):
        # found out before minutes of measuring, not when writing the result
        if out is not None and not Path(out).resolve().parent.is_dir():
            raise BenchError(f"{opt} {out}: directory {Path(out).resolve().parent} does not exist")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise BenchError(
                "--plot needs matplotlib: pip install matplotlib (or the project's 'plot' extra)"
            ) from None

    def progress(msg: str) -> None:
        print(f"xfed bench: {msg}", file=sys.stderr, flush=True)

    try:
        result = trio.run(lambda: run_bench(config, progress=progress))
    except BaseExceptionGroup as group:
        # a federation error inside the federation's nursery: show it as one line
        leaves = leaf_errors(group)
        if leaves and all(isinstance(e, FederationError) for e in leaves):
            raise leaves[0] from None
        raise
    print(render_table(result))
    try:
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
            progress(f"wrote {args.json}")
        if args.plot is not None:
            write_plot(result, args.plot)
            progress(f"wrote {args.plot}")
    except OSError as exc:
        raise BenchError(f"cannot write the result: {exc}") from None
    return 0 if result["errors_total"] == 0 else 1
