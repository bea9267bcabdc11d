"""Benchmark: what the chaos proxy (no toxics) adds to a TCP echo, versus a direct connection.

Run ``python -m chaos.bench`` (about 40 s: 8 measurements x 3 runs x 1.5 s, plus under a
second of start-up; ``--duration`` and ``--repeat`` change that). Three processes on
loopback: an echo server, the chaos server (``python -m chaos serve``, one proxy to the
echo server) and this client. For 1 KB and 1 MB messages at 1 and 16 concurrent
connections it sends a message, waits for the whole echo, and repeats for a fixed time,
directly and through the proxy. It prints per-request p50/p99, payload throughput, and the
proxy process's CPU use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import trio

KB = 1000
MB = 1000 * 1000
RECV = 256 * 1024
WARMUP = 2  # requests per connection not counted


class BenchError(Exception):
    """Raised when a measurement yields nothing to report (the window was too short)."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, found {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, found {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Result:
    """One measured configuration."""

    target: str
    size: int
    connections: int
    requests: int
    elapsed_s: float
    p50_s: float
    p99_s: float
    proxy_cpu: float | None  # share of one core used by the proxy process

    @property
    def throughput_mbps(self) -> float:
        return self.requests * self.size / self.elapsed_s / MB


# --------------------------------------------------------------------------- echo server


async def _echo(stream: trio.SocketStream) -> None:
    try:
        while data := await stream.receive_some(RECV):
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def _echo_main(with_chaos: bool) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        if with_chaos:
            from ._server import serve_chaos

            address = await nursery.start(serve_chaos, "127.0.0.1", 0)
            print(f"{port} {address.url}", flush=True)
        else:
            print(port, flush=True)
        await trio.serve_listeners(_echo, listeners)


# --------------------------------------------------------------------------- client


async def _receive_exactly(stream: trio.SocketStream, n: int) -> None:
    got = 0
    while got < n:
        chunk = await stream.receive_some(min(RECV, n - got))
        if not chunk:
            raise EOFError("echo closed")
        got += len(chunk)


async def _worker(port: int, size: int, deadline: float, samples: list[float], warmup: int) -> None:
    payload = b"x" * size
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        count = 0
        while True:
            start = time.perf_counter()
            if start >= deadline:
                return
            if size <= 64 * KB:
                await stream.send_all(payload)
                await _receive_exactly(stream, size)
            else:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stream.send_all, payload)
                    await _receive_exactly(stream, size)
            count += 1
            if count > warmup:
                samples.append(time.perf_counter() - start)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def _measure(
    target: str, port: int, size: int, connections: int, duration_s: float, proxy_pid: int | None
) -> Result:
    samples: list[float] = []
    ticks = _cpu_ticks(proxy_pid) if proxy_pid else 0
    start = time.perf_counter()
    deadline = start + duration_s
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(_worker, port, size, deadline, samples, WARMUP)
    elapsed = time.perf_counter() - start
    cpu = None
    if proxy_pid:
        hz = os.sysconf("SC_CLK_TCK")
        cpu = (_cpu_ticks(proxy_pid) - ticks) / hz / elapsed
    if not samples:
        raise BenchError(
            f"no {_fmt_size(size)} x{connections} {target} request completed in "
            f"{duration_s:g} s after the {WARMUP} warm-up requests per connection; "
            "give a longer --duration"
        )
    samples.sort()
    return Result(
        target=target,
        size=size,
        connections=connections,
        requests=len(samples),
        elapsed_s=elapsed,
        p50_s=statistics.median(samples),
        p99_s=samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        proxy_cpu=cpu,
    )


# --------------------------------------------------------------------------- orchestration


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}; {os.cpu_count()} CPUs; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; trio {trio.__version__}; load average {load}"
    )


def _spawn(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise RuntimeError(f"{args} did not start")
    return proc, line


def _create_proxy(api_url: str, echo_port: int) -> int:
    body = json.dumps(
        {"name": "bench", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo_port}"}
    ).encode()
    request = urllib.request.Request(f"{api_url}/proxies", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        listen: str = json.load(response)["listen"]
    return int(listen.rsplit(":", 1)[1])


def _median_run(runs: list[Result]) -> Result:
    """The run with the median throughput (p50/p99 are medians over the runs)."""
    ordered = sorted(runs, key=lambda r: r.throughput_mbps)
    middle = ordered[len(ordered) // 2]
    cpus = [r.proxy_cpu for r in runs if r.proxy_cpu is not None]
    return Result(
        target=middle.target,
        size=middle.size,
        connections=middle.connections,
        requests=middle.requests,
        elapsed_s=middle.elapsed_s,
        p50_s=statistics.median(r.p50_s for r in runs),
        p99_s=statistics.median(r.p99_s for r in runs),
        proxy_cpu=statistics.median(cpus) if cpus else None,
    )


def _fmt_size(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // KB} KB"


def _table(results: list[Result]) -> str:
    rows = [
        "| transfer | conns | path | requests | p50 | p99 | added p50 | throughput | vs direct "
        "| proxy CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    direct = {(r.size, r.connections): r for r in results if r.target == "direct"}
    for r in results:
        base = direct[(r.size, r.connections)]
        added = "" if r.target == "direct" else f"{(r.p50_s - base.p50_s) * 1000:+.3f} ms"
        ratio = "" if r.target == "direct" else f"{r.throughput_mbps / base.throughput_mbps:.0%}"
        cpu = "" if r.proxy_cpu is None else f"{r.proxy_cpu:.0%}"
        rows.append(
            f"| {_fmt_size(r.size)} | {r.connections} | {r.target} | {r.requests} "
            f"| {r.p50_s * 1000:.3f} ms | {r.p99_s * 1000:.3f} ms | {added} "
            f"| {r.throughput_mbps:.1f} MB/s | {ratio} | {cpu} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.bench", description=__doc__)
    parser.add_argument(
        "--duration", type=_positive_float, default=1.5, help="seconds per measurement"
    )
    parser.add_argument(
        "--repeat", type=_positive_int, default=3, help="measurements per cell (median)"
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="run the chaos server inside the echo server's process (as federation embeds it)",
    )
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        try:
            trio.run(_echo_main, args.embedded)
        except KeyboardInterrupt:
            pass
        return 0

    if args.embedded:
        echo, line = _spawn(["-m", "chaos.bench", "--echo-server", "--embedded"])
        echo_port_text, api_url = line.split()
        chaos = echo
    else:
        echo, echo_port_text = _spawn(["-m", "chaos.bench", "--echo-server"])
        chaos, banner = _spawn(["-m", "chaos", "serve", "--port", "0", "--seed", "1"])
        api_url = banner.split(" on ", 1)[1].split()[0]
    try:
        echo_port = int(echo_port_text)
        proxy_port = _create_proxy(api_url, echo_port)
        print(f"machine: {_machine()}")
        mode = "embedded in the echo server" if args.embedded else "own process"
        print(f"echo pid {echo.pid} port {echo_port}; chaos pid {chaos.pid} ({mode}) {api_url}")
        results: list[Result] = []

        async def run_all() -> None:
            for size in (KB, MB):
                for connections in (1, 16):
                    runs: dict[str, list[Result]] = {"direct": [], "proxy": []}
                    for _ in range(args.repeat):  # interleaved, to share the noise
                        for target, port, pid in (
                            ("direct", echo_port, None),
                            ("proxy", proxy_port, chaos.pid),
                        ):
                            result = await _measure(
                                target, port, size, connections, args.duration, pid
                            )
                            runs[target].append(result)
                            print(
                                f"  {_fmt_size(size):>5} x{connections:<2} {target:<6} "
                                f"p50 {result.p50_s * 1000:8.3f} ms  "
                                f"{result.throughput_mbps:8.1f} MB/s",
                                flush=True,
                            )
                    results.extend(_median_run(runs[t]) for t in ("direct", "proxy"))

        try:
            trio.run(run_all)
        except BenchError as exc:
            print(f"chaos.bench: {exc}", file=sys.stderr)
            return 1
        print()
        print(_table(results))
    finally:
        for proc in {chaos, echo}:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
