from __future__ import annotations

import trio

from federation.bench import (
    Histogram,
    LoadStats,
    RequestRecord,
    Target,
    run_closed_loop,
    run_open_loop,
    xroad_target,
)
from federation.http import Request, Response, json_response, serve_http


async def start_stalling_server(
    nursery: trio.Nursery, stall_from: float, stall_until: float
) -> tuple[str, list[str]]:
    """A server that answers at once, except that everything arriving inside
    ``[stall_from, stall_until)`` (trio time) waits until ``stall_until`` (a GC pause)."""
    seen: list[str] = []

    async def handler(req: Request) -> Response:
        seen.append(req.header("X-Road-Client") or "")
        now = trio.current_time()
        if stall_from <= now < stall_until:
            await trio.sleep_until(stall_until)
        if req.path.endswith("/fail"):
            return json_response(
                {"type": "Server.ClientProxy.NetworkError", "message": "x", "detail": "d"},
                500,
                [("X-Road-Error", "Server.ClientProxy.NetworkError")],
            )
        return json_response({"ok": True}, headers=[("X-Road-Id", f"id-{len(seen)}")])

    host, port = await nursery.start(serve_http, handler)
    return f"http://{host}:{port}", seen


async def test_open_loop_corrects_for_coordinated_omission(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    t0 = trio.current_time()
    url, _ = await start_stalling_server(nursery, t0 + 1.0, t0 + 2.0)
    target = xroad_target(url, "EE/GOV/1/c", "FI/GOV/2/s/svc", "/x")
    records: list[RequestRecord] = []
    n = await run_open_loop(
        [target], 100.0, sink=records.append, origin=t0, workers=4, duration_s=3.0
    )
    assert n == 300
    assert len(records) == 300
    assert all(r.ok and r.status == 200 and r.direction == "EE->FI" for r in records)
    corrected = Histogram.of_seconds(r.latency_s for r in records)
    uncorrected = Histogram.of_seconds(r.service_s for r in records)
    # one third of the intended sends fall inside the 1 s stall: the corrected p90 shows
    # the queue, the uncorrected one only sees the 4 requests that were on the wire
    assert corrected.percentile_ms(90) > 500
    assert uncorrected.percentile_ms(90) < 50
    assert corrected.max_us >= 990_000
    # intended times are exactly on the schedule
    assert [round(r.t, 6) for r in records[:3]] == [0.0, 0.01, 0.02]


async def test_closed_loop_records_errors_and_ids(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    url, seen = await start_stalling_server(nursery, -1, -1)
    ok = xroad_target(url, "EE/GOV/1/c", "EE/GOV/2/s/svc", "/ok", weight=3)
    bad = xroad_target(url, "FI/GOV/2/k", "EE/GOV/2/s/svc", "/fail", weight=1)
    stats = LoadStats()
    records: list[RequestRecord] = []

    def sink(r: RequestRecord) -> None:
        stats(r)
        records.append(r)
        if len(records) >= 200:
            stop.set()

    stop = trio.Event()
    n = await run_closed_loop([ok, bad], 4, sink=sink, seed=5, stop=stop)
    assert n == len(records) >= 200
    errs = [r for r in records if not r.ok]
    assert errs
    assert {r.error for r in errs} == {"Server.ClientProxy.NetworkError"}
    assert all(r.direction == "FI->EE" and r.status == 500 for r in errs)
    assert all(r.xroad_id and r.direction == "EE" for r in records if r.ok)
    assert 0.1 < len(errs) / len(records) < 0.4  # weights 3:1
    assert stats.errors == len(errs)
    assert stats.by_direction["EE"].count == len(records) - len(errs)
    assert set(seen) == {"EE/GOV/1/c", "FI/GOV/2/k"}
    assert RequestRecord.from_json(records[0].to_json()).error == records[0].error


async def test_transport_failure_is_recorded(autojump_clock: trio.testing.MockClock) -> None:
    # a port nobody listens on: connection refused
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    target = Target(client="EE/A/1/c", service="EE/A/1/s/x", url=f"http://127.0.0.1:{port}/")
    records: list[RequestRecord] = []
    await run_open_loop([target], 10.0, sink=records.append, duration_s=0.3, workers=2)
    assert len(records) == 3
    assert all(r.status == 0 and r.error == "xfed.ConnectError" for r in records)
