"""The numbers the compiled core (``src/_fastpool.pyx``), its pure-Python twin
(``fastpool._pycore``, ``fastpool._pyhotpath``) and ``fastpool.base`` share,
written once: where each statistic and histogram count lives in its
``Counters`` array, the histograms' bucket bounds, the transaction statuses the
return path compares against, and the limits both cores enforce. The compiled
core copies them into C globals when it is imported, so this module imports
nothing from fastpool (no import cycle through ``fastpool._core``).

The histogram bounds are fine and fixed: the pool counts every observation
once, and an exporter reports any subset of them as its own buckets, exactly
(a count per bound is the sum of the fine buckets up to it). They are 1, 2,
2.5, 5 and 7.5 times each power of ten from 10 µs to 100 s (10 µs ... 750 s),
then 1000 s: every bucket set in common use (prometheus_client's default,
OpenTelemetry's advice for durations, 1-2-5 series, fastpool's former fixed
buckets) is a subset.
"""

from __future__ import annotations

# -- Statistics: psycopg_pool's names, in the order of their counters -------

STAT_KEYS: tuple[str, ...] = (
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "usage_ms",
    "returns_bad",
    "connections_num",
    "connections_ms",
    "connections_errors",
    "connections_lost",
    "connections_leaked",
)
STAT_INDEX: dict[str, int] = {k: i for i, k in enumerate(STAT_KEYS)}
# The two the fast paths bump (usage_ms accumulated in microseconds).
I_REQUESTS_NUM: int = STAT_INDEX["requests_num"]
I_USAGE_MS: int = STAT_INDEX["usage_ms"]

# -- Histograms: bucket bounds and where each count lives -------------------

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

# -- psycopg.pq.TransactionStatus values, as plain ints ----------------------
# (comparing ints is cheaper than comparing enum members on the return path)

IDLE, ACTIVE, INTRANS, INERROR, UNKNOWN = 0, 1, 2, 3, 4

# -- Limits and names both cores share ---------------------------------------

#: Largest capacity a SlotRing accepts. A connection pool never needs more; the
#: bound keeps a typo (capacity=10**9) from allocating gigabytes.
MAX_CAPACITY: int = 1 << 20
#: Most counters one Counters array holds.
MAX_COUNTERS: int = 4096
#: SlotRing.debug_counters() keys, in the order the compiled core counts them.
DEBUG_COUNTER_KEYS: tuple[str, ...] = ("acquires", "releases", "adds", "retires")

# -- ConnectionContext's refusals (both hot paths raise RuntimeError) --------

REENTERED: str = (
    "this pool.connection() context manager was already entered: "
    "call pool.connection() once for each with-block (and don't share one between threads)"
)
EXIT_WITHOUT_ENTER: str = (
    "pool.connection() context manager exited without a connection: was __enter__ called?"
)

# -- AsyncConnectionContext's refusals (both hot paths raise RuntimeError) ---

ASYNC_REENTERED: str = (
    "this pool.connection() context manager was already entered: call"
    " pool.connection() once for each async with-block (and don't share one between tasks)"
)
ASYNC_EXIT_WITHOUT_ENTER: str = (
    "pool.connection() context manager exited without a connection: was __aenter__ called?"
)
