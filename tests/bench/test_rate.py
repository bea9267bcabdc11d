"""Fixed-rate (open-loop) cells of ``xfed bench``: the schedule, the coordinated-omission
correction, connection reuse and the drain bound, on trio's mock clock with a fake server
of known service time (no sockets, no real time)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from federation.bench._bench import (
    BenchConfig,
    BenchError,
    CellResult,
    Endpoint,
    _rkey,
    run_rate_segment,
)
from federation.http import HttpClientResponse

EP = Endpoint("cross", "127.0.0.1", 9, "/echo", "EE/GOV/70000001/consumer")


class FakeServer:
    """Answers every request after ``service_s`` of (mock) time; at most ``capacity``
    at once, like a server with that many workers."""

    def __init__(self, service_s: float, capacity: int = 1_000_000) -> None:
        self.service_s = service_s
        self.slots = trio.Semaphore(capacity)
        self.in_flight = self.max_in_flight = self.served = 0


class FakeClient:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    async def request(
        self, host: str, port: int, method: str, target: str, **kw: Any
    ) -> HttpClientResponse:
        s = self.server
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        async with s.slots:
            await trio.sleep(s.service_s)
        s.in_flight -= 1
        s.served += 1
        return HttpClientResponse(200, [], kw["body"])


class FakeWorkers:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.clients: dict[tuple[str, int], FakeClient] = {}

    def get(self, mode: str, i: int) -> FakeClient:
        return self.clients.setdefault((mode, i), FakeClient(self.server))


async def segment(
    server: FakeServer, rate: float, seconds: float, **kw: Any
) -> tuple[CellResult, FakeWorkers]:
    cell = CellResult(offered_rps=rate)
    workers = FakeWorkers(server)
    await run_rate_segment(EP, b"x" * 10, rate, seconds, workers, cell, {}, **kw)  # type: ignore[arg-type]
    return cell, workers


async def test_under_capacity_latency_is_the_service_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    del autojump_clock
    cell, workers = await segment(FakeServer(0.005), rate=100, seconds=2)
    assert cell.requests == cell.hist.count == 200
    assert cell.errors == 0
    assert 5.0 <= cell.hist.percentile_ms(50) <= 5.1
    assert cell.hist.percentile_ms(100) <= 5.1
    # each request ends 5 ms into its 10 ms slot: one warm connection does it all
    assert cell.connections == 1
    assert len(workers.clients) == 1
    assert cell.dispatch_lag.count == 200
    assert cell.dispatch_lag.percentile_ms(100) == 0  # the mock clock wakes on time
    assert cell.round_rps[0] == pytest.approx(100, rel=0.02)


async def test_a_server_that_falls_behind_shows_its_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 100/s offered, 2 requests at a time of 50 ms each: 40/s served, the queue grows by
    # 60/s for 2 s and drains in 3 s more; latency counts from the due time
    del autojump_clock
    server = FakeServer(0.050, capacity=2)
    cell, _ = await segment(server, rate=100, seconds=2, max_in_flight=2)
    assert cell.errors == 0
    assert cell.hist.count == 200
    assert cell.service.percentile_ms(99) <= 50.1  # each send itself took 50 ms
    assert cell.hist.percentile_ms(100) >= 2900  # the last one waited ~3 s
    assert cell.hist.percentile_ms(50) >= 1000
    assert server.max_in_flight <= 2


async def test_requests_that_cannot_drain_are_overloaded_errors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    del autojump_clock
    server = FakeServer(0.050, capacity=2)
    cell, _ = await segment(server, rate=100, seconds=2, max_in_flight=2, drain_s=0.5)
    assert cell.requests == 200  # every due request is accounted for
    assert cell.hist.count == server.served
    assert cell.errors == 200 - server.served > 0
    assert set(cell.error_types) == {"xfed.Overloaded (not sent: the queue did not drain)"}
    # ~40/s for the 2 s + 0.5 s of drain
    assert 95 <= server.served <= 105


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rates": (float("nan"),)}, "--rate"),
        ({"rates": (0.0,)}, "--rate"),
        ({"rates": (0.1,), "duration_s": 5, "rounds": 5}, "less than one request"),
        ({"rates": (100.0, 100.0)}, "listed twice"),
        ({"duration_s": float("nan")}, "--duration"),
        ({"duration_s": float("inf")}, "--duration"),
    ],
)
def test_bad_rate_options(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        BenchConfig(**kw).check()


def test_rate_keys_are_distinct_and_readable() -> None:
    assert _rkey(300.0) == "r300"
    assert _rkey(12.5) == "r12.5"
    assert _rkey(1234567.0) != _rkey(1234568.0)
