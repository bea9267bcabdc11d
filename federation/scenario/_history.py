"""The request history of a run and the window statistics expectations are judged on.

Records arrive in completion order (the load generator hands each one over as it
completes), so ``t_end`` is non-decreasing and windows are found by bisection. A window
``[a, b]`` holds the requests that **completed** in it (real seconds since the run origin);
requests sent by ``request`` steps (``source == "step"``) are left out of window figures,
since those steps often expect an error on purpose.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from federation.bench import Histogram, RequestRecord
from federation.scenario._model import Filter


def matches(rec: RequestRecord, flt: Filter) -> bool:
    if flt.client is not None and rec.client != flt.client:
        return False
    if flt.service is not None and rec.service != flt.service:
        return False
    d = flt.direction
    if d is None:
        return True
    cross = "->" in rec.direction
    if d == "cross":
        return cross
    if d == "intra":
        return not cross
    return rec.direction == d


class History:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self._ends: list[float] = []

    def add(self, rec: RequestRecord) -> None:
        end = rec.t_end
        if self._ends and end < self._ends[-1]:
            i = bisect.bisect_right(self._ends, end)
            self._ends.insert(i, end)
            self.records.insert(i, rec)
        else:
            self._ends.append(end)
            self.records.append(rec)

    def __len__(self) -> int:
        return len(self.records)

    def completed(
        self, start: float, end: float, flt: Filter | None = None, *, load_only: bool = True
    ) -> list[RequestRecord]:
        """Records that completed in ``[start, end]``."""
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._ends, end)
        out = self.records[lo:hi]
        if load_only:
            out = [r for r in out if r.source != "step"]
        if flt is not None:
            out = [r for r in out if matches(r, flt)]
        return out

    def last_n(self, n: int, since: float, flt: Filter) -> list[RequestRecord]:
        """The last ``n`` load records that completed at or after ``since``."""
        out: list[RequestRecord] = []
        for rec in reversed(self.records):
            if rec.t_end < since or len(out) >= n:
                break
            if rec.source != "step" and matches(rec, flt):
                out.append(rec)
        out.reverse()
        return out

    def first_error(
        self, error: str, since: float, flt: Filter, *, load_only: bool = False
    ) -> RequestRecord | None:
        lo = bisect.bisect_left(self._ends, since)
        for rec in self.records[lo:]:
            if (
                rec.error == error
                and matches(rec, flt)
                and not (load_only and rec.source == "step")
            ):
                return rec
        return None


def stats(records: Sequence[RequestRecord]) -> dict[str, Any]:
    """Figures of a window: counts, error rate and types, latency percentiles (successes)."""
    n = len(records)
    errors = Counter(r.error for r in records if r.error is not None)
    n_err = sum(errors.values())
    h = Histogram()
    for r in records:
        if r.ok:
            h.record_s(r.latency_s)
    out: dict[str, Any] = {
        "requests": n,
        "errors": n_err,
        "error_rate": round(n_err / n, 6) if n else None,
        "error_types": dict(sorted(errors.items())),
    }
    if h.count:
        out.update(h.percentiles_ms((50, 99)))
    return out


def histograms_by(records: Iterable[RequestRecord], key: str) -> dict[str, Histogram]:
    """Latency histograms of successful records grouped by ``direction`` or ``pair``."""
    out: dict[str, Histogram] = {}
    for r in records:
        if not r.ok:
            continue
        k = r.direction if key == "direction" else f"{r.client} -> {r.service}"
        out.setdefault(k, Histogram()).record_s(r.latency_s)
    return out


def p50_rise_problems(
    p50: float | None,
    base_p50: float | None,
    *,
    base: str,
    min_rise: float | None = None,
    max_rise: float | None = None,
) -> list[str]:
    """Judge the rise of a window's p50 over an earlier window's (``base`` names it): at
    least ``min_rise`` ms, at most ``max_rise`` ms (either may be negative: a fall)."""
    if min_rise is None and max_rise is None:
        return []
    if p50 is None:
        return ["p50 rise: no successful request to measure"]
    if base_p50 is None:
        return [f"p50 rise: {base} measured no p50 to compare with"]
    rise = p50 - base_p50
    out = []
    if min_rise is not None and rise < min_rise:
        out.append(f"p50 rose {rise:.1f} ms over {base} ({base_p50:.1f} ms) < {min_rise:g}")
    if max_rise is not None and rise > max_rise:
        out.append(f"p50 rose {rise:.1f} ms over {base} ({base_p50:.1f} ms) > {max_rise:g}")
    return out
