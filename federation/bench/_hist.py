"""An HDR-style log-linear latency histogram with microsecond resolution.

The layout follows HdrHistogram with 3 significant digits: values below 2048 µs get one
bucket each (exact); above that every power-of-two range ``[2^k, 2^(k+1))`` is split into
1024 equal sub-buckets, so a recorded value is known to within 1/1024 (< 0.1 %) of itself.
Buckets are kept in a sparse dict, so the range is unbounded and a histogram of a few
thousand distinct latencies stays small; histograms merge by adding counts.

Percentiles use the nearest-rank definition (the smallest recorded value ``v`` such that at
least ``p`` % of the values are ``<= v``) and report the highest value equivalent to the
bucket, capped by the exact maximum, as HdrHistogram does. Sans-IO: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SUB_BUCKET_BITS = 10
"""log2 of the sub-buckets per power of two above the exact range (1024: < 0.1 % error)."""
_HALF = 1 << SUB_BUCKET_BITS  # 1024
_EXACT = _HALF << 1  # 2048: values below are recorded exactly


def bucket_index(value_us: int) -> int:
    """The bucket of a non-negative integer number of microseconds."""
    if value_us < _EXACT:
        return value_us
    shift = value_us.bit_length() - (SUB_BUCKET_BITS + 1)
    return _EXACT + (shift - 1) * _HALF + ((value_us >> shift) - _HALF)


def bucket_bounds(index: int) -> tuple[int, int]:
    """``(lowest, highest)`` microsecond values that fall into bucket ``index``."""
    if index < _EXACT:
        return index, index
    shift = (index - _EXACT) // _HALF + 1
    sub = (index - _EXACT) % _HALF + _HALF
    low = sub << shift
    return low, low + (1 << shift) - 1


class Histogram:
    """Latency histogram in integer microseconds.

    ``record_s`` takes seconds (rounded to µs, negative values clamp to 0); ``record_us``
    takes microseconds with an optional ``count``.
    """

    __slots__ = ("_counts", "_max", "_min", "_sum", "count")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self._sum = 0
        self._min = 0
        self._max = 0

    # -- recording --------------------------------------------------------------------
    def record_us(self, value_us: int, count: int = 1) -> None:
        if count <= 0:
            return
        v = max(0, int(value_us))
        idx = bucket_index(v)
        self._counts[idx] = self._counts.get(idx, 0) + count
        if self.count == 0:
            self._min = self._max = v
        else:
            self._min = min(self._min, v)
            self._max = max(self._max, v)
        self.count += count
        self._sum += v * count

    def record_s(self, seconds: float) -> None:
        self.record_us(round(seconds * 1e6))

    def merge(self, other: Histogram) -> None:
        """Add every value of ``other`` to this histogram."""
        if other.count == 0:
            return
        for idx, n in other._counts.items():
            self._counts[idx] = self._counts.get(idx, 0) + n
        if self.count == 0:
            self._min, self._max = other._min, other._max
        else:
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)
        self.count += other.count
        self._sum += other._sum

    @classmethod
    def of_seconds(cls, values: Iterable[float]) -> Histogram:
        h = cls()
        for v in values:
            h.record_s(v)
        return h

    # -- reading ----------------------------------------------------------------------
    @property
    def max_us(self) -> int:
        return self._max

    @property
    def min_us(self) -> int:
        return self._min

    @property
    def mean_us(self) -> float:
        return self._sum / self.count if self.count else 0.0

    def percentile_us(self, p: float) -> int:
        """Nearest-rank percentile ``p`` in [0, 100]; 0 for an empty histogram."""
        if self.count == 0:
            return 0
        if p <= 0:
            return self._min
        # ceil(p% of count) in integers: p / 100.0 * count in floating point lands just
        # above a whole number for many counts (99.9% of 1000 -> 999.0000000000001 -> 1000)
        milli = round(p * 1000)
        rank = max(1, -(-milli * self.count // 100_000))
        seen = 0
        for idx in sorted(self._counts):
            seen += self._counts[idx]
            if seen >= rank:
                return min(bucket_bounds(idx)[1], self._max)
        return self._max

    def percentile_ms(self, p: float) -> float:
        return self.percentile_us(p) / 1000.0

    def percentiles_ms(self, ps: Iterable[float] = (50, 90, 95, 99, 99.9)) -> dict[str, float]:
        """``{"p50_ms": .., ...}`` plus ``max_ms`` and ``mean_ms``."""
        out = {f"p{_pname(p)}_ms": round(self.percentile_ms(p), 3) for p in ps}
        out["max_ms"] = round(self._max / 1000.0, 3)
        out["mean_ms"] = round(self.mean_us / 1000.0, 3)
        return out

    def cdf_points(self) -> list[tuple[float, float]]:
        """``(value_ms, fraction <= value)`` for every non-empty bucket, ascending."""
        out: list[tuple[float, float]] = []
        seen = 0
        for idx in sorted(self._counts):
            seen += self._counts[idx]
            out.append((min(bucket_bounds(idx)[1], self._max) / 1000.0, seen / self.count))
        return out

    # -- serialisation ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "unit": "us",
            "sub_bucket_bits": SUB_BUCKET_BITS,
            "count": self.count,
            "sum": self._sum,
            "min": self._min,
            "max": self._max,
            "buckets": [[i, n] for i, n in sorted(self._counts.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        if data.get("sub_bucket_bits", SUB_BUCKET_BITS) != SUB_BUCKET_BITS:
            raise ValueError("histogram layout differs (sub_bucket_bits)")
        h = cls()
        h._counts = {int(i): int(n) for i, n in data["buckets"]}
        h.count = int(data["count"])
        h._sum = int(data["sum"])
        h._min = int(data["min"])
        h._max = int(data["max"])
        return h


def _pname(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else str(p).replace(".", "")
