"""Unit tests of the pool's fast path that need no pool, each run against the
compiled core and the pure-Python twin (the ``hotpath`` fixture)."""

from __future__ import annotations

import math

from fastpool.base import Histograms as H


def _times_around_the_bounds() -> list[float]:
    times = [0.0, 1e-9, 1e6]
    for b in H.BOUNDS:
        times += [math.nextafter(b, 0), b, math.nextafter(b, math.inf)]
    return times


def test_fast_path_counts_a_time_in_the_bucket_histograms_observe_uses(hotpath) -> None:
    # Both fast paths read fastpool._constants (the compiled one copies it into
    # C arrays at import): a time lands in the bucket of Histograms.observe,
    # at, just under and just over each bound.
    for seconds in _times_around_the_bounds():
        h = H()
        h.observe(H.USE, seconds)
        counts, _ = h.snapshot()["use"]
        expected = counts.index(1)
        assert hotpath.histogram_bucket(seconds) == expected, seconds
        # "le": a time equal to a bound counts in that bound's bucket
        if seconds in H.BOUNDS:
            assert H.BOUNDS[expected] == seconds
    assert hotpath.histogram_bucket(math.inf) == H.NBUCKETS - 1
