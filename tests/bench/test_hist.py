from __future__ import annotations

import math
import random

import pytest

from federation.bench import Histogram
from federation.bench._hist import bucket_bounds, bucket_index


def exact_percentile(sorted_us: list[int], p: float) -> int:
    rank = max(1, -(-round(p * 1000) * len(sorted_us) // 100_000))  # ceil, in integers
    return sorted_us[rank - 1]


def test_bucket_index_bounds_roundtrip() -> None:
    for v in [0, 1, 2047, 2048, 2049, 4095, 4096, 10**6, 123_456_789, 2**40 + 17]:
        lo, hi = bucket_bounds(bucket_index(v))
        assert lo <= v <= hi
        assert hi - lo <= max(0, v // 1024)


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_percentiles_match_exact_within_resolution(seed: int) -> None:
    rng = random.Random(seed)
    # log-normal latencies around 5 ms with a heavy tail, in µs
    values = [int(rng.lognormvariate(math.log(5000), 1.0)) for _ in range(20_000)]
    values += [rng.randint(0, 3000) for _ in range(2000)]  # exact range too
    h = Histogram()
    for v in values:
        h.record_us(v)
    s = sorted(values)
    for p in [0.0, 1, 25, 50, 90, 95, 99, 99.9, 100]:
        exact = s[0] if p == 0 else exact_percentile(s, p)
        got = h.percentile_us(p)
        assert exact <= got <= exact + exact / 1024 + 1, (p, exact, got)
    assert h.max_us == s[-1]
    assert h.min_us == s[0]
    assert h.count == len(values)
    assert h.mean_us == pytest.approx(sum(values) / len(values))


def test_merge_equals_recording_everything() -> None:
    rng = random.Random(3)
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(5000):
        v = rng.randint(0, 10**7)
        (a if i % 2 else b).record_us(v)
        both.record_us(v)
    a.merge(b)
    assert a.to_json() == both.to_json()
    assert Histogram.from_json(a.to_json()).percentile_us(99) == both.percentile_us(99)


def test_cdf_points_monotone_and_complete() -> None:
    h = Histogram.of_seconds([0.001, 0.002, 0.002, 0.010])
    pts = h.cdf_points()
    assert pts[-1] == (10.0, 1.0)
    assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    assert pts[0] == (1.0, 0.25)
    assert h.percentiles_ms()["p50_ms"] == 2.0


def test_empty_histogram() -> None:
    h = Histogram()
    assert h.percentile_us(99) == 0
    assert h.cdf_points() == []
    assert h.percentiles_ms()["max_ms"] == 0


def test_nearest_rank_is_exact_for_every_count() -> None:
    # values 1..n µs (exact buckets): p-th percentile is value ceil(p/100 * n), computed
    # in integers (in floating point, 99.9% of 1000 is 999.0000000000001)
    for n in range(1, 2001):
        h = Histogram()
        for v in range(1, n + 1):
            h.record_us(v)
        for p, milli in ((50, 50_000), (99, 99_000), (99.9, 99_900)):
            assert h.percentile_us(p) == max(1, -(-milli * n // 100_000)), (n, p)
    h = Histogram()
    for v in range(1, 1001):
        h.record_us(v)
    assert h.percentile_us(99.9) == 999
