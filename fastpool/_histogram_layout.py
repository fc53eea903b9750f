"""The pools' time histograms: bucket bounds and where each count lives in the
``Counters`` array. The one source for ``fastpool.base.Histograms``, the
pure-Python hot path and the compiled one (which copies it into C arrays when
it is imported); so this module imports nothing from fastpool.

The bounds are fine and fixed: the pool counts every observation once, and an
exporter reports any subset of them as its own buckets, exactly (a count per
bound is the sum of the fine buckets up to it). They are 1, 2, 2.5, 5 and 7.5
times each power of ten from 10 µs to 100 s (10 µs ... 750 s), then 1000 s:
every bucket set in common use (prometheus_client's default, OpenTelemetry's
advice for durations, 1-2-5 series, fastpool's former fixed buckets) is a
subset.
"""

from __future__ import annotations

# Seconds, increasing. Written as decimal strings so that each bound is the
# float a user gets by typing the same number (0.025 is float("2.5e-2")).
BOUNDS: tuple[float, ...] = tuple(
    float(f"{m}e{e}") for e in range(-5, 3) for m in ("1", "2", "2.5", "5", "7.5")
) + (1000.0,)
NBUCKETS: int = len(BOUNDS) + 1  # the last bucket is +Inf

# Layout of the counters: the buckets of each histogram, then the three sums
# (in microseconds), then the running count of checkout timeouts.
WAIT: int = 0
USE: int = NBUCKETS
CREATE: int = 2 * NBUCKETS
SUMS: int = 3 * NBUCKETS  # WAIT sum, USE sum, CREATE sum, in this order
TIMEOUTS: int = SUMS + 3
SIZE: int = TIMEOUTS + 1
