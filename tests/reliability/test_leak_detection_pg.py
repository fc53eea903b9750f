"""Opt-in leak detection (``leak_threshold``): a connection held longer is
reported once per checkout with the stack of the code that checked it out,
and counted in ``connections_leaked``; returned connections are never
reported; off by default. Sync and async pools, real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from fastpool import (
    AsyncConnectionPool,
    AsyncNullConnectionPool,
    ConnectionPool,
    NullConnectionPool,
)

pytestmark = pytest.mark.postgres


def leak_reports(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "possible leak" in r.getMessage()]


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def hold_a_connection_too_long(pool):  # the name must show in the report
    return pool.getconn()


@pytest.mark.parametrize("path", ["getconn", "context"])
def test_sync_leak_is_reported_once_with_the_checkout_stack(pg_dsn: str, caplog, path: str) -> None:
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    with ConnectionPool(pg_dsn, min_size=2, leak_threshold=0.1, name="leaky") as pool:
        pool.wait()
        assert pool.leak_threshold == 0.1
        tidy = pool.getconn()
        pool.putconn(tidy)  # returned in time: never reported
        if path == "getconn":
            conn = hold_a_connection_too_long(pool)
            wait_for(lambda: pool.get_stats().get("connections_leaked", 0) == 1)
            time.sleep(0.3)  # more scans: still reported once
            pool.putconn(conn)
        else:
            with pool.connection():
                wait_for(lambda: pool.get_stats().get("connections_leaked", 0) == 1)
        reports = leak_reports(caplog)
        assert len(reports) == 1, reports
        assert "of pool 'leaky' has been checked out for" in reports[0]
        if path == "getconn":
            assert "hold_a_connection_too_long" in reports[0]
        assert "test_leak_detection_pg.py" in reports[0]
        assert "fastpool/pool.py" not in reports[0]  # the pool's own frames are left out
        # after the return, new checkouts start afresh
        with pool.connection():
            pass
        time.sleep(0.3)
        assert pool.get_stats()["connections_leaked"] == 1


def test_leak_detection_is_off_by_default(pg_dsn: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    with ConnectionPool(pg_dsn, min_size=1, max_lifetime=3600) as pool:
        assert pool.leak_threshold is None
        conn = pool.getconn()
        time.sleep(0.3)
        pool.putconn(conn)
        assert "connections_leaked" not in pool.get_stats()
    assert leak_reports(caplog) == []


@pytest.mark.parametrize(
    "cls,size", [(AsyncConnectionPool, {"min_size": 1}), (AsyncNullConnectionPool, {"max_size": 2})]
)
def test_async_leak_is_reported(aio_loop, pg_dsn: str, caplog, cls, size) -> None:
    caplog.set_level(logging.WARNING, logger="psycopg.pool")

    async def main() -> None:
        async with cls(pg_dsn, **size, leak_threshold=0.1, open=False) as pool:
            conn = await pool.getconn()
            for _ in range(500):
                if pool.get_stats().get("connections_leaked"):
                    break
                await asyncio.sleep(0.01)
            await pool.putconn(conn)
            assert pool.get_stats()["connections_leaked"] == 1

    aio_loop.run_until_complete(main())
    reports = leak_reports(caplog)
    assert len(reports) == 1 and "test_leak_detection_pg.py" in reports[0], reports


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        ({"leak_threshold": 0}, ValueError, "leak_threshold must be > 0"),
        ({"leak_threshold": -1}, ValueError, "leak_threshold must be > 0"),
        ({"leak_threshold": "5"}, TypeError, "leak_threshold must be a number of seconds"),
    ],
)
def test_bad_leak_threshold(pg_dsn: str, kwargs, exc, msg) -> None:
    with pytest.raises(exc, match=msg):
        ConnectionPool(pg_dsn, open=False, **kwargs)


def test_null_pool_leak_is_reported(pg_dsn: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    with NullConnectionPool(pg_dsn, max_size=2, leak_threshold=0.1, name="null-leaky") as pool:
        tidy = pool.getconn()
        pool.putconn(tidy)  # returned in time (and closed): never reported
        conn = hold_a_connection_too_long(pool)
        wait_for(lambda: pool.get_stats().get("connections_leaked", 0) == 1)
        time.sleep(0.3)  # more scans: still reported once
        pool.putconn(conn)
        with pool.connection():
            pass
        time.sleep(0.3)
        assert pool.get_stats()["connections_leaked"] == 1
    reports = leak_reports(caplog)
    assert len(reports) == 1, reports
    assert "of pool 'null-leaky'" in reports[0] and "hold_a_connection_too_long" in reports[0]


def test_generic_pool_leak_is_reported(tmp_path, caplog) -> None:
    import sqlite3

    from fastpool import Pool

    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    path = str(tmp_path / "db.sqlite")
    with Pool(
        lambda: sqlite3.connect(path, check_same_thread=False),
        min_size=1,
        leak_threshold=0.1,
        name="dbapi-leaky",
    ) as pool:
        conn = hold_a_connection_too_long(pool)
        wait_for(lambda: pool.get_stats().get("connections_leaked", 0) == 1)
        conn.close()
    reports = leak_reports(caplog)
    assert len(reports) == 1 and "hold_a_connection_too_long" in reports[0], reports


@pytest.fixture
def aio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
