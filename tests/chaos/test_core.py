"""The sans-IO toxic pipeline, driven with explicit times (no event loop, no sockets)."""

from __future__ import annotations

import random
import statistics

import pytest

from chaos import Action, Close, LinkCore, Send, SendEof

from .conftest import make_spec, rng


def sends(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


def run_until(link: LinkCore, end: float) -> list[tuple[float, Action]]:
    """Step through every deadline up to ``end``; returns (time, action) pairs."""
    out: list[tuple[float, Action]] = []
    now = 0.0
    while True:
        out += [(now, a) for a in link.poll(now)]
        deadline = link.next_deadline()
        if deadline is None or deadline > end:
            return out
        now = max(now, deadline)


def test_no_toxics_passes_through_and_half_closes() -> None:
    link = LinkCore([], rng(), 0.0)
    assert link.passthrough
    link.feed(b"abc", 0.0)
    assert link.poll(0.0) == [Send(b"abc")]
    link.feed_eof(1.0)
    assert link.poll(1.0) == [SendEof()]
    assert link.finished
    link.feed(b"late", 2.0)
    assert link.poll(2.0) == []


def test_latency_counts_from_read_time_and_keeps_order() -> None:
    link = LinkCore([make_spec("latency", latency=100)], rng(), 0.0)
    link.feed(b"a", 0.0)
    link.feed(b"b", 0.05)
    assert link.poll(0.0999) == []
    assert link.next_deadline() == pytest.approx(0.1)
    assert link.poll(0.1) == [Send(b"a")]
    # Not 0.2: the second chunk waits 100 ms from its own read time.
    deadline = link.next_deadline()
    assert deadline is not None
    assert deadline == pytest.approx(0.15)
    assert link.poll(deadline - 0.001) == []
    assert link.poll(deadline) == [Send(b"b")]


def test_latency_jitter_is_seeded_within_bounds_and_ordered() -> None:
    def release_times(seed: str) -> list[float]:
        link = LinkCore([make_spec("latency", latency=50, jitter=20)], rng(seed), 0.0)
        for i in range(200):
            link.feed(bytes([i % 256]), i * 0.01)
        return [t for t, a in run_until(link, 10.0) if isinstance(a, Send)]

    times = release_times("x")
    assert times == release_times("x")
    assert times != release_times("y")
    assert times == sorted(times)
    delays = [t - i * 0.01 for i, t in enumerate(times)]
    assert min(delays) >= 0.030 - 1e-9
    # A later chunk may wait for an earlier one (order kept), so only bound the earliest.
    assert max(delays) < 0.070 + 0.020


def test_latency_jitter_spreads_uniformly_over_both_sides() -> None:
    """Toxiproxy draws ``latency + rand.Int63n(2*jitter) - jitter`` ms: uniform over the
    integers in [latency-jitter, latency+jitter). Chunks 1 s apart never wait for each
    other, so each release time is read time + exactly the drawn delay."""
    latency, jitter, count = 50, 20, 4000
    link = LinkCore([make_spec("latency", latency=latency, jitter=jitter)], rng("spread"), 0.0)
    for i in range(count):
        link.feed(b"x", float(i))
    times = [t for t, a in run_until(link, count + 1.0) if isinstance(a, Send)]
    assert len(times) == count
    delays_ms = [(t - i) * 1000 for i, t in enumerate(times)]
    assert all(abs(d - round(d)) < 1e-6 for d in delays_ms)  # whole milliseconds
    seen = {round(d) for d in delays_ms}
    # Both sides reached, and every value in between (4000 draws over 40 values).
    assert seen == set(range(latency - jitter, latency + jitter))
    assert statistics.mean(delays_ms) == pytest.approx(latency - 0.5, abs=1.0)
    below = sum(d < latency for d in delays_ms)
    assert 0.45 < below / count < 0.55  # not one-sided


def test_stacked_latencies_add() -> None:
    toxics = [
        make_spec("latency", name="a", latency=30),
        make_spec("latency", name="b", latency=20),
    ]
    link = LinkCore(toxics, rng(), 0.0)
    link.feed(b"x", 0.0)
    assert run_until(link, 1.0) == [(pytest.approx(0.05), Send(b"x"))]


def test_removing_latency_flushes_held_data_at_once() -> None:
    spec = make_spec("latency", latency=1000)
    link = LinkCore([spec], rng(), 0.0)
    link.feed(b"held", 0.0)
    link.set_toxics([], 0.2)
    assert link.poll(0.2) == [Send(b"held")]
    assert link.passthrough


def test_toxic_added_to_a_live_link_applies_to_later_data() -> None:
    link = LinkCore([], rng(), 0.0)
    link.feed(b"before", 0.0)
    link.set_toxics([make_spec("latency", latency=10)], 0.0)
    link.feed(b"after", 0.0)
    assert link.poll(0.0) == [Send(b"before")]
    assert link.poll(0.01) == [Send(b"after")]


def test_bandwidth_paces_bytes_per_millisecond_in_100ms_pieces() -> None:
    link = LinkCore([make_spec("bandwidth", rate=10)], rng(), 0.0)  # 10 KB/s = 10 B/ms
    link.feed(b"x" * 2500, 0.0)
    link.feed(b"y" * 100, 0.0)
    timeline = [(round(t, 6), len(a.data)) for t, a in run_until(link, 10.0) if isinstance(a, Send)]
    assert timeline == [(0.1, 1000), (0.2, 1000), (0.25, 500), (0.26, 100)]


def test_bandwidth_idle_time_earns_no_burst() -> None:
    link = LinkCore([make_spec("bandwidth", rate=1)], rng(), 0.0)
    link.feed(b"z" * 10, 5.0)
    assert [
        (round(t, 6), len(a.data)) for t, a in run_until(link, 10.0) if isinstance(a, Send)
    ] == [(5.01, 10)]


def test_bandwidth_back_pressure() -> None:
    link = LinkCore([make_spec("bandwidth", rate=1)], rng(), 0.0)
    assert link.wants_input
    link.feed(b"z" * 70_000, 0.0)
    assert not link.wants_input


def test_slow_close_delays_only_the_close() -> None:
    link = LinkCore([make_spec("slow_close", delay=500)], rng(), 0.0)
    link.feed(b"data", 0.0)
    link.feed_eof(0.1)
    assert link.poll(0.1) == [Send(b"data")]
    assert link.poll(0.59) == []
    assert link.poll(0.6) == [SendEof()]


def test_timeout_drops_data_and_closes_after_silence() -> None:
    link = LinkCore([make_spec("timeout", timeout=1000)], rng(), 0.0)
    link.feed(b"lost", 0.5)  # restarts the timer
    assert link.poll(1.4) == []
    assert link.next_deadline() == pytest.approx(1.5)
    assert link.poll(1.5) == [Close(reset=False)]
    assert link.finished


def test_timeout_zero_holds_forever_and_removal_closes() -> None:
    link = LinkCore([make_spec("timeout", timeout=0)], rng(), 0.0)
    link.feed(b"lost", 0.0)
    assert link.poll(1000.0) == []
    assert link.next_deadline() is None
    link.set_toxics([], 1000.0)
    assert link.poll(1000.0) == [Close(reset=False)]


def test_reset_peer_resets_on_first_data_after_timeout() -> None:
    link = LinkCore([make_spec("reset_peer", timeout=200)], rng(), 0.0)
    assert link.poll(100.0) == []  # idle connections are never reset
    link.feed(b"trigger", 100.0)
    assert link.poll(100.1) == []
    assert link.poll(100.2) == [Close(reset=True)]


def test_slicer_splits_into_small_pieces_with_microsecond_delays() -> None:
    spec = make_spec("slicer", average_size=10, size_variation=4, delay=500)
    link = LinkCore([spec], rng(), 0.0)
    payload = bytes(range(256)) * 4
    link.feed(payload, 0.0)
    timeline = [(t, a) for t, a in run_until(link, 10.0)]
    pieces = [a.data for _, a in timeline if isinstance(a, Send)]
    assert b"".join(pieces) == payload
    assert all(1 <= len(p) <= 14 for p in pieces)
    assert len(pieces) >= len(payload) // 14
    times = [t for t, _ in timeline]
    assert times[1] - times[0] == pytest.approx(0.0005)
    assert times[-1] == pytest.approx((len(pieces) - 1) * 0.0005)


def test_limit_data_passes_exact_bytes_then_closes() -> None:
    link = LinkCore([make_spec("limit_data", bytes=10)], rng(), 0.0)
    link.feed(b"123456", 0.0)
    link.feed(b"789abc", 0.0)
    assert link.poll(0.0) == [Send(b"123456"), Send(b"789a"), Close(reset=False)]


def test_limit_data_zero_closes_on_first_data_and_count_survives_update() -> None:
    link = LinkCore([make_spec("limit_data", bytes=0)], rng(), 0.0)
    assert link.poll(5.0) == []
    link.feed(b"x", 5.0)
    assert link.poll(5.0) == [Close(reset=False)]

    link = LinkCore([make_spec("limit_data", bytes=4)], rng(), 0.0)
    link.feed(b"ab", 0.0)
    link.set_toxics([make_spec("limit_data", bytes=5)], 0.0)  # a restart keeps the count
    link.feed(b"cdef", 0.0)
    assert link.poll(0.0) == [Send(b"ab"), Send(b"cde"), Close(reset=False)]


def test_toxicity_is_drawn_per_link_from_its_seeded_rng() -> None:
    spec = make_spec("latency", latency=100, toxicity=0.5)

    def affected(seed: int) -> bool:
        link = LinkCore([spec], random.Random(seed), 0.0)
        link.feed(b"x", 0.0)
        return link.poll(0.0) == []

    draws = [affected(s) for s in range(400)]
    assert draws == [affected(s) for s in range(400)]
    assert 150 < sum(draws) < 250
    never = LinkCore([make_spec("reset_peer", toxicity=0.0)], rng(), 0.0)
    never.feed(b"x", 0.0)
    assert never.poll(0.0) == [Send(b"x")]


def test_update_redraws_and_changes_live_links() -> None:
    link = LinkCore([make_spec("latency", latency=100)], rng(), 0.0)
    link.set_toxics([make_spec("latency", latency=10)], 0.0)
    link.feed(b"x", 0.0)
    assert link.poll(0.01) == [Send(b"x")]


def test_latency_buffer_is_bounded() -> None:
    link = LinkCore([make_spec("latency", latency=1000)], rng(), 0.0)
    for _ in range(1023):
        link.feed(b"c", 0.0)
    assert link.wants_input
    link.feed(b"c", 0.0)
    assert not link.wants_input
    assert link.buffered == 1024
    link.poll(1.0)
    assert link.wants_input


def test_nothing_after_close_and_noop_passes() -> None:
    link = LinkCore([make_spec("noop"), make_spec("limit_data", bytes=1)], rng(), 0.0)
    link.feed(b"ab", 0.0)
    assert link.poll(0.0) == [Send(b"a"), Close(reset=False)]
    link.feed(b"more", 0.0)
    link.feed_eof(0.0)
    assert link.poll(1.0) == []
    assert link.finished
