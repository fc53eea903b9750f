"""fastpool.metrics.PoolCollector: the pools' state and histograms as
Prometheus metrics with OpenTelemetry db.client.connection.* names, read from
a real registry after real traffic (sync and async pools)."""
from __future__ import annotations

import asyncio
import threading

import pytest

from fastpool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from fastpool.base import Histograms
from fastpool.metrics import PoolCollector

prometheus_client = pytest.importorskip("prometheus_client")
pytestmark = pytest.mark.postgres


def scrape(*pools) -> dict[tuple[str, tuple], float]:
    registry = prometheus_client.CollectorRegistry()
    registry.register(PoolCollector(*pools))
    out = {}
    for family in registry.collect():
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_sync_pool_metrics(pg_dsn: str) -> None:
    with ConnectionPool(pg_dsn, min_size=2, max_size=3, name="web", timeout=5) as pool:
        pool.wait()
        for _ in range(10):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
        held = [pool.getconn() for _ in range(3)]
        waiter = threading.Thread(target=lambda: pool.putconn(pool.getconn(timeout=5)))
        waiter.start()
        while pool.get_stats()["requests_waiting"] < 1:
            pass
        m = scrape(pool)
        web = (("pool_name", "web"),)
        assert m[("db_client_connection_count", (("pool_name", "web"), ("state", "used")))] == 3
        assert m[("db_client_connection_count", (("pool_name", "web"), ("state", "idle")))] == 0
        assert m[("db_client_connection_pending_requests", web)] == 1
        assert (m[("db_client_connection_idle_min", web)], m[("db_client_connection_max", web)]) == (2, 3)
        pool.putconn(held.pop())
        waiter.join()
        held.append(pool.getconn())  # all three out again
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0.05)
        for c in held:
            pool.putconn(c)
        pool.pop_stats()  # must not reset what is exported
        m = scrape(pool)
        assert m[("db_client_connection_timeouts_total", web)] == 1
        # 10 + 3 + waiter + 1 + the failed one: every checkout observed once
        assert m[("db_client_connection_wait_time_seconds_count", web)] == 16
        assert m[("db_client_connection_wait_time_seconds_bucket", (("le", "+Inf"),) + web)] == 16
        # the queued one waited for a return; the failed one 50 ms
        assert m[("db_client_connection_wait_time_seconds_sum", web)] >= 0.05
        assert m[("db_client_connection_use_time_seconds_count", web)] == 10
        assert m[("db_client_connection_create_time_seconds_count", web)] == 3
        buckets = [m[("db_client_connection_use_time_seconds_bucket", (("le", b),) + web)]
                   for b in [*map(str, Histograms.BOUNDS), "+Inf"]]
        assert buckets == sorted(buckets) and buckets[-1] == 10  # cumulative


def test_async_pool_metrics_and_many_pools(pg_dsn: str) -> None:
    async def main() -> dict:
        async with AsyncConnectionPool(pg_dsn, min_size=1, name="api", open=False) as apool:
            await apool.wait()
            for _ in range(4):
                async with apool.connection() as conn:
                    await conn.execute("SELECT 1")
            with ConnectionPool(pg_dsn, min_size=1, name="jobs") as spool:
                spool.wait()
                return scrape(apool, spool)

    m = asyncio.run(main())
    assert m[("db_client_connection_use_time_seconds_count", (("pool_name", "api"),))] == 4
    assert m[("db_client_connection_wait_time_seconds_count", (("pool_name", "api"),))] == 4
    assert m[("db_client_connection_count", (("pool_name", "jobs"), ("state", "idle")))] == 1


def test_collector_rejects_what_is_not_a_pool() -> None:
    with pytest.raises(ValueError, match="at least one pool"):
        PoolCollector()
    with pytest.raises(TypeError, match="not a fastpool pool"):
        PoolCollector(object())


def test_opentelemetry_instruments(pg_dsn: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from fastpool.metrics import instrument_opentelemetry

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with ConnectionPool(pg_dsn, min_size=2, max_size=2, name="otel", timeout=5) as pool:
        pool.wait()
        instrument_opentelemetry(pool, meter_provider=provider)
        held = [pool.getconn(), pool.getconn()]
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0.01)  # none idle, and no room to grow
        points = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        points[(metric.name, tuple(sorted(p.attributes.items())))] = p.value
        for conn in held:
            pool.putconn(conn)
    name = ("db.client.connection.pool.name", "otel")
    state = "db.client.connection.state"
    assert points[("db.client.connection.count", (name, (state, "used")))] == 2
    assert points[("db.client.connection.count", (name, (state, "idle")))] == 0
    assert points[("db.client.connection.idle.min", (name,))] == 2
    assert points[("db.client.connection.max", (name,))] == 2
    assert points[("db.client.connection.pending_requests", (name,))] == 0
    assert points[("db.client.connection.timeouts", (name,))] == 1


def test_opentelemetry_rejects_what_is_not_a_pool() -> None:
    pytest.importorskip("opentelemetry")
    from fastpool.metrics import instrument_opentelemetry

    with pytest.raises(ValueError, match="at least one pool"):
        instrument_opentelemetry()
    with pytest.raises(TypeError, match="not a fastpool pool"):
        instrument_opentelemetry(object())
