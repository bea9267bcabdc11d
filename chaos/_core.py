"""The sans-IO toxic pipeline: bytes and ``now`` in, actions and the next deadline out.

One :class:`LinkCore` handles one direction of one proxied TCP connection. It holds the
chain of toxic stages for that direction, in the order the toxics were added. The shell
feeds it what it read from the source socket (:meth:`LinkCore.feed`, :meth:`LinkCore.feed_eof`),
asks for what is due (:meth:`LinkCore.poll`) and sleeps until :meth:`LinkCore.next_deadline`.
Nothing here reads a clock, touches a socket or logs; times are seconds on the shell's clock.

A unit of data is a *chunk*: whatever one read returned, stamped with its read time.
Every stage computes the release time of its outputs as soon as an input reaches it
(all toxic logic is deterministic given arrival times and the seeded RNG), and hands
them on once ``now`` has passed that time. Semantics follow Toxiproxy 2.12
(``toxics/*.go``); see ``docs/chaos.md`` for where we differ.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ._model import ToxicSpec

MS = 0.001
US = 0.000001

# A latency stage holds up to this many chunks before the shell stops reading (Toxiproxy
# buffers 1024 chunks per latency toxic); bandwidth and slicer hold about one read.
LATENCY_MAX_CHUNKS = 1024
PACED_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` to the destination socket."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendEof:
    """Half-close the destination (the source sent EOF); this direction is finished."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the whole connection, both sockets; with ``reset`` the close sends a TCP RST."""

    reset: bool = False


Action = Send | SendEof | Close

_DATA = 0
_EOF = 1
_CLOSE = 2


class _Item:
    """A chunk, an EOF or a close on its way through the chain.

    ``stamp`` is the time the latency of later stages counts from (read time, pushed on
    by each latency stage); ``at`` is when the item leaves (or left) the current stage.
    """

    __slots__ = ("at", "data", "kind", "reset", "stamp")

    def __init__(self, kind: int, data: bytes, stamp: float, at: float, reset: bool = False):
        self.kind = kind
        self.data = data
        self.stamp = stamp
        self.at = at
        self.reset = reset


class _Stage:
    """A pass-through stage; subclasses implement one toxic each."""

    max_chunks = 1 << 30
    max_bytes = 1 << 62

    def __init__(self, spec: ToxicSpec, active: bool, now: float, rng: random.Random) -> None:
        self.spec = spec
        self.active = active
        self.rng = rng
        self.out: deque[_Item] = deque()
        self.buffered = 0
        self.done = False  # an EOF or close has been emitted; later input is ignored
        self.busy_until = now

    # -- subclass hooks (only called when active)
    def on_data(self, item: _Item) -> None:
        self._emit(item)

    def on_end(self, item: _Item) -> None:
        self._emit(item)

    def timer(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        """Called by :meth:`pull` once ``now`` has reached :meth:`timer`."""

    def on_remove(self, now: float) -> list[_Item]:
        """Extra items to send on when the toxic is removed from a live link."""
        return []

    # -- machinery
    def _emit(self, item: _Item) -> None:
        if item.kind != _DATA:
            self.done = True
        self.out.append(item)
        self.buffered += len(item.data)

    def push(self, item: _Item) -> None:
        if self.done:
            return
        if not self.active:
            self._emit(item)
        elif item.kind == _DATA:
            self.on_data(item)
        else:
            self.on_end(item)

    def deadline(self) -> float | None:
        first = self.out[0].at if self.out else None
        timer = self.timer() if self.active and not self.done else None
        if first is None:
            return timer
        return first if timer is None else min(first, timer)

    def pull(self, now: float) -> list[_Item]:
        ready: list[_Item] = []
        out = self.out
        while True:
            timer = self.timer() if self.active and not self.done else None
            if out and out[0].at <= now and (timer is None or out[0].at <= timer):
                item = out.popleft()
                self.buffered -= len(item.data)
                ready.append(item)
            elif timer is not None and timer <= now:
                self.on_timer(now)
            else:
                return ready

    def saturated(self) -> bool:
        return len(self.out) >= self.max_chunks or self.buffered >= self.max_bytes

    def take_all(self, now: float) -> list[_Item]:
        items = list(self.out)
        self.out.clear()
        self.buffered = 0
        for item in items:
            item.at = now
        return items


class _Latency(_Stage):
    max_chunks = LATENCY_MAX_CHUNKS

    def _delay(self) -> float:
        latency = self.spec.attr("latency")
        jitter = self.spec.attr("jitter")
        ms = latency + self.rng.randrange(-jitter, jitter) if jitter > 0 else latency
        return max(ms, 0) * MS

    def on_data(self, item: _Item) -> None:
        item.stamp = item.stamp + self._delay()
        item.at = max(item.stamp, item.at, self.busy_until)
        self.busy_until = item.at
        self._emit(item)

    def on_end(self, item: _Item) -> None:
        item.at = max(item.at, self.busy_until)
        self._emit(item)


class _Bandwidth(_Stage):
    max_bytes = PACED_MAX_BYTES

    def on_data(self, item: _Item) -> None:
        rate = self.spec.attr("rate")  # bytes per millisecond; validated > 0
        start = max(item.at, self.busy_until)
        data = item.data
        piece = rate * 100
        t = start
        while len(data) > piece:
            t += 100 * MS
            self._emit(_Item(_DATA, data[:piece], item.stamp, t))
            data = data[piece:]
        t += len(data) / rate * MS
        if data:
            self._emit(_Item(_DATA, data, item.stamp, t))
        self.busy_until = t

    def on_end(self, item: _Item) -> None:
        item.at = max(item.at, self.busy_until)
        self._emit(item)


class _SlowClose(_Stage):
    def on_end(self, item: _Item) -> None:
        item.at = item.at + self.spec.attr("delay") * MS
        self._emit(item)


class _Timeout(_Stage):
    def __init__(self, spec: ToxicSpec, active: bool, now: float, rng: random.Random) -> None:
        super().__init__(spec, active, now, rng)
        self.last = now

    def on_data(self, item: _Item) -> None:
        self.last = item.at  # the data is dropped; the timer restarts

    def timer(self) -> float | None:
        timeout = self.spec.attr("timeout")
        return self.last + timeout * MS if timeout > 0 else None

    def on_timer(self, now: float) -> None:
        at = self.timer()
        self._emit(_Item(_CLOSE, b"", at if at is not None else now, at or now))

    def on_remove(self, now: float) -> list[_Item]:
        if self.active and not self.done:
            self.done = True
            return [_Item(_CLOSE, b"", now, now)]
        return []


class _ResetPeer(_Stage):
    def _trigger(self, item: _Item) -> None:
        at = item.at + self.spec.attr("timeout") * MS
        self._emit(_Item(_CLOSE, b"", at, at, reset=True))

    on_data = _trigger

    def on_end(self, item: _Item) -> None:
        if item.kind == _EOF:
            self._trigger(item)
        else:
            self._emit(item)


class _Slicer(_Stage):
    max_bytes = PACED_MAX_BYTES

    def _cuts(self, start: int, end: int, out: list[int]) -> None:
        # Split [start, end) recursively around a jittered midpoint (iteratively, so a
        # large chunk cannot exhaust the stack).
        average = self.spec.attr("average_size")
        variation = self.spec.attr("size_variation")
        todo = [(start, end)]
        while todo:
            lo, hi = todo.pop()
            size = average
            if variation > 0:
                size += self.rng.randrange(-variation, variation + 1)
            if hi - lo <= size:
                out.append(hi)
                continue
            mid = lo + (hi - lo) // 2
            if variation > 0:
                mid += self.rng.randrange(-variation, variation + 1)
            mid = min(max(mid, lo + 1), hi - 1)
            todo.append((mid, hi))
            todo.append((lo, mid))

    def on_data(self, item: _Item) -> None:
        delay = self.spec.attr("delay") * US
        cuts: list[int] = []
        self._cuts(0, len(item.data), cuts)
        t = max(item.at, self.busy_until)
        begin = 0
        for end in cuts:
            self._emit(_Item(_DATA, item.data[begin:end], item.stamp, t))
            begin = end
            t += delay
        self.busy_until = t

    def on_end(self, item: _Item) -> None:
        item.at = max(item.at, self.busy_until)
        self._emit(item)


class _LimitData(_Stage):
    def __init__(
        self, spec: ToxicSpec, active: bool, now: float, rng: random.Random, sent: list[int]
    ) -> None:
        super().__init__(spec, active, now, rng)
        self.sent = sent  # shared per link and toxic name, survives restarts

    def on_data(self, item: _Item) -> None:
        remaining = max(self.spec.attr("bytes") - self.sent[0], 0)
        if len(item.data) > remaining:
            item.data = item.data[:remaining]
        if item.data:
            self.sent[0] += len(item.data)
            remaining -= len(item.data)
            self._emit(item)
        if remaining <= 0:
            self._emit(_Item(_CLOSE, b"", item.at, item.at))


_STAGES: dict[str, type[_Stage]] = {
    "latency": _Latency,
    "bandwidth": _Bandwidth,
    "slow_close": _SlowClose,
    "timeout": _Timeout,
    "reset_peer": _ResetPeer,
    "slicer": _Slicer,
    "noop": _Stage,
}


class LinkCore:
    """One direction of one connection: the toxic chain between a source and a destination.

    Args:
        toxics: the toxics of this direction, in the order they were added.
        rng: the link's own seeded RNG; toxicity, jitter and slicer sizes are drawn from it.
        now: the time the link starts (toxicity is drawn now).
    """

    def __init__(self, toxics: Sequence[ToxicSpec], rng: random.Random, now: float) -> None:
        self._rng = rng
        self._stages: list[_Stage] = []
        self._limit_state: dict[str, list[int]] = {}
        self._ready: list[Action] = []
        self._finished = False
        self._ended = False  # EOF or close already fed
        for spec in toxics:
            self._stages.append(self._make_stage(spec, now))

    def _make_stage(self, spec: ToxicSpec, now: float) -> _Stage:
        active = self._rng.random() < spec.toxicity
        if spec.type == "limit_data":
            sent = self._limit_state.setdefault(spec.name, [0])
            return _LimitData(spec, active, now, self._rng, sent)
        return _STAGES[spec.type](spec, active, now, self._rng)

    # ------------------------------------------------------------------ inputs

    def feed(self, data: bytes, now: float) -> None:
        """``data`` was read from the source at ``now``."""
        if self._ended or not data:
            return
        if not self._stages:
            self._ready.append(Send(data))
            return
        self._inject(0, [_Item(_DATA, data, now, now)])

    def feed_eof(self, now: float) -> None:
        """The source sent EOF at ``now``."""
        if self._ended:
            return
        self._ended = True
        self._inject(0, [_Item(_EOF, b"", now, now)])

    def close(self, now: float) -> None:
        """The connection is being closed from outside; nothing more will be emitted."""
        self._ended = True
        self._finished = True

    def _inject(self, index: int, items: list[_Item]) -> None:
        if index < len(self._stages):
            stage = self._stages[index]
            for item in items:
                stage.push(item)
        else:
            self._output(items)

    def _output(self, items: list[_Item]) -> None:
        for item in items:
            if self._finished:
                return
            if item.kind == _DATA:
                self._ready.append(Send(item.data))
            elif item.kind == _EOF:
                self._ready.append(SendEof())
                self._finished = True
            else:
                self._ready.append(Close(reset=item.reset))
                self._finished = True

    # ------------------------------------------------------------------ outputs

    def poll(self, now: float) -> list[Action]:
        """Everything due at ``now``, in order. After a :class:`SendEof` or :class:`Close`
        nothing more is ever returned."""
        stages = self._stages
        if stages:
            carry: list[_Item] = []
            for stage in stages:
                for item in carry:
                    stage.push(item)
                carry = stage.pull(now)
            self._output(carry)
        ready = self._ready
        self._ready = []
        return ready

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do (None: only new input can change that)."""
        if self._ready:
            return float("-inf")
        best: float | None = None
        for stage in self._stages:
            deadline = stage.deadline()
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    @property
    def finished(self) -> bool:
        """An EOF or close has been emitted: this direction will produce nothing more."""
        return self._finished and not self._ready

    @property
    def wants_input(self) -> bool:
        """False while a stage holds as much as its toxic may buffer (back-pressure)."""
        if self._ended:
            return False
        return not any(stage.saturated() for stage in self._stages)

    @property
    def buffered(self) -> int:
        """Bytes held by the stages."""
        return sum(stage.buffered for stage in self._stages)

    @property
    def passthrough(self) -> bool:
        """No toxics and nothing pending: the shell may copy bytes without calling the core."""
        return not self._stages and not self._ready and not self._ended

    # ------------------------------------------------------------------ toxic changes

    def set_toxics(self, toxics: Sequence[ToxicSpec], now: float) -> None:
        """Apply the proxy's current toxics for this direction to the live link at ``now``.

        Removed toxics flush what they held to the next stage (a ``timeout`` closes the
        connection instead); changed toxics restart (flushing, redrawing toxicity,
        keeping ``limit_data``'s byte count); new toxics are appended and draw toxicity.
        """
        self.poll_into_ready(now)
        wanted = {spec.name: spec for spec in toxics}
        index = 0
        while index < len(self._stages):
            stage = self._stages[index]
            spec = wanted.get(stage.spec.name)
            if spec == stage.spec:
                index += 1
                continue
            flushed = stage.take_all(now)
            if spec is None:
                flushed += stage.on_remove(now)
                del self._stages[index]
                self._inject(index, flushed)
                continue
            self._stages[index] = self._make_stage(spec, now)
            self._inject(index + 1, flushed)
            index += 1
        present = {stage.spec.name for stage in self._stages}
        for spec in toxics:
            if spec.name not in present:
                self._stages.append(self._make_stage(spec, now))
        for name in list(self._limit_state):
            if name not in wanted:
                del self._limit_state[name]

    def poll_into_ready(self, now: float) -> None:
        """Advance the chain to ``now`` without taking the resulting actions out."""
        self._ready = self.poll(now)
