"""The one clock that every expiry decision reads.

X-Road's timers are wall-clock based (``Expire-date``, OCSP ``thisUpdate``/``nextUpdate``,
time-stamp ``genTime``). xfed keeps wall-clock timestamps real (so openssl accepts them) and
compresses *durations* instead: a run with ``time_scale: 60`` divides every timer by 60
(see :mod:`federation.settings`).

:class:`TrioClock` maps trio's clock onto the wall clock, so that under trio's
``MockClock``/``autojump_clock`` the "wall" time jumps with it and timer logic is tested
without real sleeps. Cores never read a clock: they take ``now`` (POSIX seconds, float).
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Protocol

import trio


class Clock(Protocol):
    """Anything with ``now()`` returning POSIX seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class TrioClock:
    """Wall-clock seconds that advance with ``trio.current_time()``.

    Anchored at construction (inside a trio run): ``now() = wall0 + (trio_now - trio0)``.
    Under a ``MockClock`` with autojump, ``now()`` follows the virtual time.
    """

    def __init__(self, *, wall0: float | None = None) -> None:
        self._trio0 = trio.current_time()
        self._wall0 = time.time() if wall0 is None else wall0

    def now(self) -> float:
        return self._wall0 + (trio.current_time() - self._trio0)


class FixedClock:
    """A settable clock for core tests."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def to_datetime(ts: float) -> _dt.datetime:
    """POSIX seconds -> aware UTC datetime."""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)


def to_timestamp(when: _dt.datetime) -> float:
    """Aware (or naive-UTC) datetime -> POSIX seconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


def iso(ts: float) -> str:
    """POSIX seconds -> ISO 8601 UTC with a ``Z`` (what ``Expire-date`` and status use)."""
    return to_datetime(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """ISO 8601 (``Z`` or offset) -> POSIX seconds. Raises ValueError."""
    return to_timestamp(_dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
