"""Checked-out connections nobody can return any more — their thread died, or
the code dropped them — are closed (their server session ends, its locks are
released) and replaced, in every pool family; connections still referenced
from anywhere (even only through a cursor) are never touched."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import uuid

import psycopg
import pytest

import fastpool
from fastpool._pool_logic import PoolLogic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def fast_scans(monkeypatch) -> None:
    monkeypatch.setattr(PoolLogic, "_orphan_scan_period", 0.02)


def backends(admin: psycopg.Connection, app: str) -> int:
    return admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]
    ).fetchone()[0]


@pytest.fixture
def app() -> str:
    return f"fp-orphan-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def locked_table(admin: psycopg.Connection):
    name = f"fp_orphan_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
    admin.execute(f"INSERT INTO {name} VALUES (1)")
    yield name
    admin.execute("SET lock_timeout = '5s'")  # a lock never released fails, not hangs
    try:
        admin.execute(f"DROP TABLE {name}")
    finally:
        admin.execute("RESET lock_timeout")


def row_lock_free(pg_dsn: str, table: str) -> bool:
    with psycopg.connect(pg_dsn) as other:
        other.execute("SET lock_timeout = '50ms'")
        try:
            other.execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
        except psycopg.errors.LockNotAvailable:
            return False
    return True


@pytest.mark.parametrize("cls", [fastpool.ConnectionPool, fastpool.NullConnectionPool])
def test_a_thread_that_dies_holding_a_connection_in_a_transaction(
    pg_dsn, admin, app, locked_table, caplog, cls
) -> None:
    sizes = {"min_size": 1} if cls is fastpool.ConnectionPool else {"max_size": 1}
    with cls(pg_dsn, open=True, timeout=10, kwargs={"application_name": app}, **sizes) as p:

        def worker() -> None:
            conn = p.getconn()
            conn.execute(f"SELECT * FROM {locked_table} WHERE id = 1 FOR UPDATE")  # holds a lock
            # ... and the thread ends without putconn()

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        wait_until(lambda: row_lock_free(pg_dsn, locked_table), "the dead thread's lock released")
        wait_until(lambda: p.get_stats().get("connections_lost") == 1, "the orphan counted")
        with p.connection(timeout=10) as conn:  # its place is usable again
            conn.execute("SELECT 1")
        if cls is fastpool.ConnectionPool:
            wait_until(
                lambda: p.get_stats()["pool_size"] == p.get_stats()["pool_available"] == 1,
                "the pool back at its size",
            )
        else:
            assert p.get_stats()["pool_size"] == 0
        wait_until(
            lambda: backends(admin, app) == p.get_stats()["pool_size"], "server sessions = pool"
        )
    assert any(
        "never returned" in r.getMessage()
        for r in caplog.records
        if r.name == "psycopg.pool" and r.levelno == logging.WARNING
    )


def test_an_orphan_is_closed_by_close_even_before_a_scan(pg_dsn, admin, app, monkeypatch) -> None:
    monkeypatch.setattr(PoolLogic, "_orphan_scan_period", 3600.0)  # no scan: close() must find it
    p = fastpool.ConnectionPool(pg_dsn, min_size=2, open=True, kwargs={"application_name": app})
    p.wait()

    def worker() -> None:
        p.getconn().execute("SELECT 1")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert backends(admin, app) == 2
    p.close()
    wait_until(lambda: backends(admin, app) == 0, "every session closed by close()")


def test_referenced_connections_are_never_reclaimed(pg_dsn, admin, app) -> None:
    # Heavy churn with scans every 20 ms, and connections kept alive only
    # through a cursor or a list: none may be taken for an orphan.
    with fastpool.ConnectionPool(
        pg_dsn, min_size=4, max_size=4, open=True, timeout=10, kwargs={"application_name": app}
    ) as p:
        p.wait()
        cur = p.getconn().cursor()  # the connection lives on in cur.connection
        kept = [p.getconn()]  # and this one in a list
        stop = time.monotonic() + 1.5
        errors: list[BaseException] = []

        def churn() -> None:
            try:
                while time.monotonic() < stop:
                    with p.connection() as conn:
                        conn.execute("SELECT 1")
            except BaseException as ex:  # pragma: no cover - reported below
                errors.append(ex)

        threads = [threading.Thread(target=churn) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert "connections_lost" not in p.get_stats()
        assert cur.execute("SELECT 1").fetchone() == (1,) and not cur.connection.closed
        p.putconn(cur.connection)
        p.putconn(kept.pop())


def test_async_task_that_ends_holding_a_connection(pg_dsn, admin, app) -> None:
    async def main() -> None:
        async with fastpool.AsyncConnectionPool(
            pg_dsn, min_size=1, open=False, timeout=10, kwargs={"application_name": app}
        ) as p:
            await p.wait()

            async def forgetful() -> None:
                conn = await p.getconn()
                await conn.execute("SELECT 1")

            await asyncio.create_task(forgetful())
            gc.collect()
            for _ in range(1500):
                if (
                    p.get_stats().get("connections_lost") == 1
                    and p.get_stats()["pool_available"] == 1
                ):
                    break
                await asyncio.sleep(0.01)
            assert p.get_stats().get("connections_lost") == 1
            async with p.connection() as conn:
                await conn.execute("SELECT 1")

    asyncio.run(main())
    wait_until(lambda: backends(admin, app) == 0, "sessions closed")


def test_async_null_pool_orphan_frees_its_place(pg_dsn, admin, app) -> None:
    async def main() -> None:
        async with fastpool.AsyncNullConnectionPool(
            pg_dsn, max_size=1, open=False, timeout=10, kwargs={"application_name": app}
        ) as p:

            async def forgetful() -> None:
                await (await p.getconn()).execute("SELECT 1")

            await asyncio.create_task(forgetful())
            async with p.connection() as conn:  # waits for the orphan's place
                await conn.execute("SELECT 1")
            assert p.get_stats().get("connections_lost") == 1

    asyncio.run(main())


def test_generic_pool_dropped_connection(pg_dsn, admin, app, locked_table) -> None:
    p = fastpool.Pool(
        lambda: psycopg.connect(pg_dsn, application_name=app),
        min_size=1,
        max_size=1,
        open=True,
        timeout=10,
    )
    try:
        conn = p.getconn()
        conn.cursor().execute(f"SELECT * FROM {locked_table} WHERE id = 1 FOR UPDATE")
        del conn  # dropped, never closed nor returned
        wait_until(
            lambda: row_lock_free(pg_dsn, locked_table), "the dropped connection's lock released"
        )
        with p.connection() as again:
            again.cursor().execute("SELECT 1")
        assert p.get_stats().get("connections_lost") == 1
    finally:
        p.close()


def test_leak_detection_still_reports_it_first(pg_dsn, app, caplog, monkeypatch) -> None:
    monkeypatch.setattr(PoolLogic, "_orphan_scan_period", 0.5)
    with fastpool.ConnectionPool(
        pg_dsn, min_size=1, open=True, leak_threshold=0.05, kwargs={"application_name": app}
    ) as p:

        def worker() -> None:
            p.getconn()

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        wait_until(lambda: p.get_stats().get("connections_lost") == 1, "the orphan reclaimed")
        assert p.get_stats()["connections_leaked"] == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]
    assert any("possible leak" in m for m in messages)
    reclaimed = [m for m in messages if "never returned" in m]
    assert reclaimed and "checked out at:" in reclaimed[0] and "worker" in reclaimed[0]
