"""fastpool.metrics: PoolCollector (Prometheus) and instrument_opentelemetry
report the same db.client.connection.* metrics with the same values, under the
names OpenTelemetry's Prometheus mapping gives them; histograms with chosen
buckets; what counts as a timeout. Real pools after real traffic, sync and async."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from typing import Any

import pytest

from fastpool import (
    AsyncConnectionPool,
    AsyncNullConnectionPool,
    ConnectionPool,
    NullConnectionPool,
    PoolTimeout,
    TooManyRequests,
)
from fastpool._core import MAX_CAPACITY
from fastpool.metrics import DEFAULT_BUCKETS, HISTOGRAM_BOUNDS, PoolCollector
from tests.support.waiting import wait_until

prometheus_client = pytest.importorskip("prometheus_client")
pytestmark = pytest.mark.postgres

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

POOL = "db_client_connection_pool_name"
STATE = "db_client_connection_state"
HISTOGRAMS = {
    "db_client_connection_create_time_seconds",
    "db_client_connection_wait_time_seconds",
    "db_client_connection_use_time_seconds",
}
# Every family PoolCollector exposes (Prometheus adds _total to a counter's samples).
FAMILIES = {
    "db_client_connection_count",
    "db_client_connection_idle_max",
    "db_client_connection_idle_min",
    "db_client_connection_max",
    "db_client_connection_pending_requests",
    "db_client_connection_timeouts",
} | HISTOGRAMS


def scrape(*pools: Any, **kwargs: Any) -> Samples:
    registry = prometheus_client.CollectorRegistry()
    registry.register(PoolCollector(*pools, **kwargs))
    out: Samples = {}
    for family in registry.collect():
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# OpenTelemetry's semantic conventions for database client connection pools:
# name -> (unit, instrument, attributes). instrument_opentelemetry reports
# all of them; the three histograms aside (create_time, wait_time, use_time).
POOL_ATTR, STATE_ATTR = "db.client.connection.pool.name", "db.client.connection.state"
SEMCONV = {
    "db.client.connection.count": ("{connection}", "updowncounter", {POOL_ATTR, STATE_ATTR}),
    "db.client.connection.idle.max": ("{connection}", "updowncounter", {POOL_ATTR}),
    "db.client.connection.idle.min": ("{connection}", "updowncounter", {POOL_ATTR}),
    "db.client.connection.max": ("{connection}", "updowncounter", {POOL_ATTR}),
    "db.client.connection.pending_requests": ("{request}", "updowncounter", {POOL_ATTR}),
    "db.client.connection.timeouts": ("{timeout}", "counter", {POOL_ATTR}),
}


# OpenTelemetry's "Prometheus and OpenMetrics compatibility" rules (OTLP to
# Prometheus), written out here to check fastpool's names against them.
UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


def prometheus_label(key: str) -> str:
    return re.sub("_+", "_", re.sub("[^a-zA-Z0-9_]", "_", key))


def prometheus_name(name: str, unit: str, monotonic_sum: bool) -> str:
    name = re.sub("_+", "_", re.sub("[^a-zA-Z0-9_:]", "_", name))
    unit = re.sub(r"\{[^}]*\}", "", unit)  # annotations are no unit
    if unit:
        word = UNIT_WORDS[unit]
        if not name.endswith(f"_{word}"):
            name = f"{name}_{word}"
    if monotonic_sum and not name.endswith("_total"):
        name = f"{name}_total"
    return name


def otel_points(*pools: Any) -> Samples:
    """What instrument_opentelemetry reports, read through the SDK (checked
    against the conventions), with names and attributes mapped by the rules
    above."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Sum

    from fastpool.metrics import instrument_opentelemetry

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument_opentelemetry(*pools, meter_provider=provider)
    out: Samples = {}
    seen = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "fastpool"
            for metric in sm.metrics:
                assert isinstance(metric.data, Sum)
                monotonic = metric.data.is_monotonic
                unit, kind, attributes = SEMCONV[metric.name]
                assert (metric.unit, "counter" if monotonic else "updowncounter") == (unit, kind)
                seen[metric.name] = True
                name = prometheus_name(metric.name, metric.unit or "", monotonic)
                for p in metric.data.data_points:
                    assert set(p.attributes) == attributes
                    labels = tuple(
                        sorted((prometheus_label(k), str(v)) for k, v in p.attributes.items())
                    )
                    out[(name, labels)] = p.value
    provider.shutdown()
    assert set(seen) == set(SEMCONV)
    return out


def both_exporters(*pools: Any) -> Samples:
    """Read ``pools`` (at rest) through both exporters; check they name the
    same things the same way with the same values, the histograms aside
    (Prometheus only), and return what they agree on."""
    prom = scrape(*pools)
    otel = otel_points(*pools)
    otel_names = {n for n, _ in otel}
    shared = {k: v for k, v in prom.items() if k[0] in otel_names}
    assert shared == otel  # the same names, labels and values
    assert {
        re.sub("_(bucket|count|sum)$", "", n) for n, _ in prom.keys() - shared.keys()
    } == HISTOGRAMS
    return otel


def expected(
    name: str,
    *,
    idle: int,
    used: int,
    idle_max: int,
    idle_min: int,
    max: int,
    pending: int,
    timeouts: int,
) -> Samples:
    pool = ((POOL, name),)
    return {
        ("db_client_connection_count", pool + ((STATE, "idle"),)): idle,
        ("db_client_connection_count", pool + ((STATE, "used"),)): used,
        ("db_client_connection_idle_max", pool): idle_max,
        ("db_client_connection_idle_min", pool): idle_min,
        ("db_client_connection_max", pool): max,
        ("db_client_connection_pending_requests", pool): pending,
        ("db_client_connection_timeouts_total", pool): timeouts,
    }


# The same pool through both exporters ---------------------------------------


def test_both_exporters_report_a_sync_pool_alike(pg_dsn: str) -> None:
    with ConnectionPool(pg_dsn, min_size=2, max_size=3, name="web", timeout=5) as pool:
        pool.wait()
        held = [pool.getconn() for _ in range(3)]
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0.01)
        waiter = threading.Thread(target=lambda: pool.putconn(pool.getconn(timeout=10)))
        waiter.start()
        try:
            wait_until(lambda: pool.get_stats()["requests_waiting"] == 1, "the waiter")
            values = both_exporters(pool)
        finally:
            for conn in held:
                pool.putconn(conn)
            waiter.join()
    assert values == expected(
        "web", idle=0, used=3, idle_max=3, idle_min=2, max=3, pending=1, timeouts=1
    )


def test_both_exporters_report_an_async_pool_alike(pg_dsn: str) -> None:
    async def main() -> Samples:
        async with AsyncConnectionPool(
            pg_dsn, min_size=2, max_size=3, name="api", timeout=5, open=False
        ) as pool:
            await pool.wait()
            held = [await pool.getconn() for _ in range(3)]
            with pytest.raises(PoolTimeout):
                await pool.getconn(timeout=0.01)

            async def wait_and_return() -> None:
                await pool.putconn(await pool.getconn(timeout=10))

            waiter = asyncio.create_task(wait_and_return())
            while pool.get_stats()["requests_waiting"] < 1:
                await asyncio.sleep(0.001)
            values = both_exporters(pool)
            for conn in held:
                await pool.putconn(conn)
            await waiter
            return values

    values = asyncio.run(main())
    assert values == expected(
        "api", idle=0, used=3, idle_max=3, idle_min=2, max=3, pending=1, timeouts=1
    )


def test_both_exporters_report_many_pools_and_null_pools(pg_dsn: str) -> None:
    # A null pool keeps no idle connection; max_size=0 ("unlimited") is bounded
    # by the slot ring all the same.
    async def main() -> Samples:
        async with AsyncNullConnectionPool(pg_dsn, max_size=2, name="anull", open=False) as apool:
            await apool.wait()
            conn = await apool.getconn()
            with (
                NullConnectionPool(pg_dsn, name="null") as spool,
                ConnectionPool(pg_dsn, min_size=1, name="plain") as plain,
            ):
                plain.wait()
                with spool.connection():
                    values = both_exporters(apool, spool, plain)
            await apool.putconn(conn)
            return values

    values = asyncio.run(main())
    assert values == {
        **expected("anull", idle=0, used=1, idle_max=0, idle_min=0, max=2, pending=0, timeouts=0),
        **expected(
            "null", idle=0, used=1, idle_max=0, idle_min=0, max=MAX_CAPACITY, pending=0, timeouts=0
        ),
        **expected("plain", idle=1, used=0, idle_max=1, idle_min=1, max=1, pending=0, timeouts=0),
    }


def test_prometheus_names_are_opentelemetrys_mapped() -> None:
    # The families, by name, before any pool has done anything.
    pool = ConnectionPool("", name="idle", open=False)
    registry = prometheus_client.CollectorRegistry()
    registry.register(PoolCollector(pool))
    families = {f.name: f for f in registry.collect()}
    assert set(families) == FAMILIES
    assert {n: f.type for n, f in families.items() if f.type != "gauge"} == {
        "db_client_connection_timeouts": "counter",
        **{h: "histogram" for h in HISTOGRAMS},
    }
    assert {s.name for s in families["db_client_connection_timeouts"].samples} == {
        "db_client_connection_timeouts_total"
    }
    assert {f.unit for n, f in families.items() if n in HISTOGRAMS} == {"seconds"}
    # A second collector would repeat every name: the registry refuses it.
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(PoolCollector(ConnectionPool("", name="other", open=False)))


# Histograms ----------------------------------------------------------------


def check_histograms(pool: Any, fast: int, slow: int) -> None:
    """``fast`` quick blocks and ``slow`` blocks of >= 30 ms went through
    ``pool.connection()``: check the histograms, with chosen buckets and
    with every bound the pools count in."""
    web = ((POOL, pool.name),)
    chosen = (0.001, 0.025, 0.075, 1000.0)
    custom = scrape(pool, buckets=chosen)
    full = scrape(pool, buckets=HISTOGRAM_BOUNDS)
    default = scrape(pool)
    use = "db_client_connection_use_time_seconds"

    def buckets(samples: Samples, name: str) -> dict[str, float]:
        return {
            dict(labels)["le"]: v for (n, labels), v in samples.items() if n == f"{name}_bucket"
        }

    for name in HISTOGRAMS:
        fine = buckets(full, name)
        assert len(fine) == len(HISTOGRAM_BOUNDS) + 1
        counts = list(fine.values())
        assert counts == sorted(counts)  # cumulative
        # A chosen bucket counts exactly what the fine ones up to its bound count.
        assert buckets(custom, name) == {
            le: fine[le] for le in ("0.001", "0.025", "0.075", "1000.0", "+Inf")
        }
        assert list(buckets(default, name)) == [*(repr(b) for b in DEFAULT_BUCKETS), "+Inf"]
        for samples in (custom, default):
            for suffix in ("count", "sum"):
                assert samples[(f"{name}_{suffix}", web)] == full[(f"{name}_{suffix}", web)]
        assert fine["+Inf"] == full[(f"{name}_count", web)]
    assert full[(f"{use}_count", web)] == fast + slow
    assert full[("db_client_connection_wait_time_seconds_count", web)] == fast + slow
    assert full[("db_client_connection_create_time_seconds_count", web)] == 1
    assert full[(f"{use}_sum", web)] >= 0.03 * slow
    # The slow blocks are above 25 ms (the quick ones anywhere: the machine may stall).
    assert buckets(custom, use)["0.025"] <= fast
    assert buckets(custom, use)["1000.0"] == fast + slow


def test_histograms_with_chosen_buckets_sync(pg_dsn: str) -> None:
    with ConnectionPool(pg_dsn, min_size=1, max_size=1, name="h") as pool:
        pool.wait()
        for sleep in (0, 0.03, 0, 0.03, 0):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                time.sleep(sleep)
        pool.pop_stats()  # never resets what is exported
        check_histograms(pool, fast=3, slow=2)


def test_histograms_with_chosen_buckets_async(pg_dsn: str) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(
            pg_dsn, min_size=1, max_size=1, name="ah", open=False
        ) as pool:
            await pool.wait()
            for sleep in (0, 0.03, 0, 0.03, 0):
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
                    await asyncio.sleep(sleep)
            pool.pop_stats()
            check_histograms(pool, fast=3, slow=2)

    asyncio.run(main())


def test_buckets_are_matched_to_the_pools_bounds() -> None:
    pool = ConnectionPool("", name="b", open=False)
    # A final +Inf is implied (and accepted, as prometheus_client does); a
    # bound off by a rounding error is the bound it means.
    collector = PoolCollector(pool, buckets=[0.005, 3 * 0.025, 2.5, math.inf])
    assert collector.buckets == (0.005, 0.075, 2.5)
    assert PoolCollector(pool, buckets=(1,)).buckets == (1.0,)
    assert PoolCollector(pool).buckets == DEFAULT_BUCKETS
    assert PoolCollector(pool, buckets=iter(HISTOGRAM_BOUNDS)).buckets == HISTOGRAM_BOUNDS


@pytest.mark.parametrize(
    "buckets, error, message",
    [
        ([], ValueError, "at least one finite bound"),
        ([math.inf], ValueError, "at least one finite bound"),
        ([0.1, 0.05], ValueError, "must increase, without repeats: got 0.1 then 0.05"),
        ([0.1, 0.1], ValueError, "must increase, without repeats"),
        ([0, 0.1], ValueError, "positive, finite"),
        ([-0.1, 0.1], ValueError, "positive, finite"),
        ([0.1, math.nan], ValueError, "positive, finite"),
        ([0.1, math.inf, 1.0], ValueError, "positive, finite"),
        (
            [0.1, 0.3],
            ValueError,
            r"0\.3 s is not one of the bounds .*; nearest bounds: 0\.25, 0\.5$",
        ),
        ([2000.0], ValueError, r"nearest bounds: 1000\.0$"),
        ([1e-6], ValueError, r"nearest bounds: 1e-05$"),
        (["0.1"], TypeError, "numbers of seconds, got '0.1'"),
        ([True], TypeError, "numbers of seconds"),
        ("0.1", TypeError, "a sequence of seconds"),
        (0.1, TypeError, "a sequence of seconds"),
    ],
)
def test_bad_buckets_are_refused(buckets: Any, error: type[Exception], message: str) -> None:
    pool = ConnectionPool("", name="b", open=False)
    with pytest.raises(error, match=message):
        PoolCollector(pool, buckets=buckets)


# What counts as a timeout ----------------------------------------------------


def timeouts(pool: Any) -> float:
    return scrape(pool)[("db_client_connection_timeouts_total", ((POOL, pool.name),))]


@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_timeouts_count_pool_timeouts_only_sync(pg_dsn: str, cls: type) -> None:
    min_size = 1 if cls is ConnectionPool else 0
    with cls(pg_dsn, min_size=min_size, max_size=1, max_waiting=1, name="t", timeout=5) as pool:
        pool.wait()
        conn = pool.getconn()
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0.01)  # waited, in vain
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0)  # no time to wait at all (psycopg_pool's rule)
        assert timeouts(pool) == 2
        waiter = threading.Thread(target=lambda: pool.putconn(pool.getconn(timeout=10)))
        waiter.start()
        try:
            wait_until(lambda: pool.get_stats()["requests_waiting"] == 1, "the waiter")
            with pytest.raises(TooManyRequests):
                pool.getconn()
        finally:
            pool.putconn(conn)
            waiter.join()
        # Refused, not timed out: in psycopg_pool's requests_errors only.
        assert timeouts(pool) == 2
        assert pool.get_stats()["requests_errors"] == 2


@pytest.mark.parametrize("cls", [AsyncConnectionPool, AsyncNullConnectionPool])
def test_timeouts_count_pool_timeouts_only_async(pg_dsn: str, cls: type) -> None:
    async def main() -> None:
        min_size = 1 if cls is AsyncConnectionPool else 0
        async with cls(
            pg_dsn, min_size=min_size, max_size=1, max_waiting=1, name="at", timeout=5, open=False
        ) as pool:
            await pool.wait()
            conn = await pool.getconn()
            with pytest.raises(PoolTimeout):
                await pool.getconn(timeout=0.01)
            with pytest.raises(PoolTimeout):
                await pool.getconn(timeout=0)
            assert timeouts(pool) == 2

            async def wait_and_return() -> None:
                await pool.putconn(await pool.getconn(timeout=10))

            waiter = asyncio.create_task(wait_and_return())
            while pool.get_stats()["requests_waiting"] < 1:
                await asyncio.sleep(0.001)
            with pytest.raises(TooManyRequests):
                await pool.getconn()
            await pool.putconn(conn)
            await waiter
            assert timeouts(pool) == 2
            assert pool.get_stats()["requests_errors"] == 2

    asyncio.run(main())


# What the exporters accept ----------------------------------------------------


def test_exporters_refuse_what_is_not_a_pool_and_repeated_names() -> None:
    pytest.importorskip("opentelemetry")
    from fastpool.metrics import instrument_opentelemetry

    a, b = ConnectionPool("", name="same", open=False), ConnectionPool("", name="same", open=False)
    for export in (PoolCollector, instrument_opentelemetry):
        with pytest.raises(ValueError, match="at least one pool"):
            export()
        with pytest.raises(TypeError, match="not a fastpool pool: object"):
            export(object())
        with pytest.raises(
            ValueError, match="two pools are named 'same': give each pool its own name="
        ):
            export(a, b)
