"""Async twin of tests/pool/test_null_log_parity_pg.py: the same misuse
through psycopg_pool's and fastpool's AsyncNullConnectionPool leaves the same
WARNING records on the ``psycopg`` loggers (with a client waiting for the
returned connection, and with nobody waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

import fastpool
from tests.support.waiting import async_wait_until

psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.postgres


async def in_transaction(conn: Any, admin: psycopg.Connection) -> None:
    await conn.execute("SELECT 1")


async def in_error(conn: Any, admin: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        await conn.execute("SELECT 1 / 0")


async def mid_query(conn: Any, admin: psycopg.Connection) -> None:
    conn.pgconn.send_query(b"SELECT 1")


async def closed(conn: Any, admin: psycopg.Connection) -> None:
    await conn.close()


async def rollback_fails(conn: Any, admin: psycopg.Connection) -> None:
    await conn.execute("SELECT 1")
    admin.execute("SELECT pg_terminate_backend(%s, 5000)", [conn.info.backend_pid])


async def untouched(conn: Any, admin: psycopg.Connection) -> None:
    pass


async def failing_reset(conn: Any) -> None:
    raise RuntimeError("reset refused")


MISUSES = [
    pytest.param(in_transaction, {}, id="in-transaction"),
    pytest.param(in_error, {}, id="in-error"),
    pytest.param(mid_query, {}, id="mid-query"),
    pytest.param(closed, {}, id="closed"),
    pytest.param(rollback_fails, {}, id="rollback-fails"),
    pytest.param(untouched, {"reset": failing_reset}, id="reset-raises"),
]


@pytest.mark.parametrize("misuse, pool_kwargs", MISUSES)
@pytest.mark.parametrize("waiter", [True, False], ids=["a-client-waits", "nobody-waits"])
def test_same_warning_records_as_psycopg_pool(
    aio, pg_dsn: str, admin, caplog, psycopg_warnings, misuse, pool_kwargs, waiter: bool
) -> None:
    async def run(cls: type) -> None:
        async with cls(
            pg_dsn, name="parity", max_size=1, timeout=5, open=False, **pool_kwargs
        ) as p:
            conn = await p.getconn()
            got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            release = asyncio.Event()

            async def waiting_client() -> None:
                c = await p.getconn()
                got.set_result(c)
                await release.wait()
                await p.putconn(c)

            if waiter:
                task = asyncio.ensure_future(waiting_client())
                await async_wait_until(lambda: p.get_stats()["requests_waiting"] == 1)
            await misuse(conn, admin)
            await p.putconn(conn)
            if waiter:
                await asyncio.wait_for(got, 10)
                release.set()
                await task
            # psycopg_pool resets in a worker when there is a reset callback
            await async_wait_until(lambda: p.get_stats()["pool_size"] == 0)

    seen = {}
    for cls in (psycopg_pool.AsyncNullConnectionPool, fastpool.AsyncNullConnectionPool):
        caplog.clear()
        aio(run(cls))
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()
    if waiter:
        assert seen["psycopg_pool"], "the misuse provokes no warning: it tests nothing"
    assert seen["fastpool"] == seen["psycopg_pool"]


@pytest.mark.parametrize("configure_fault", ["raises", "leaves-a-transaction"])
def test_same_records_when_wait_fails_in_configure(
    aio, pg_dsn: str, caplog, psycopg_warnings, configure_fault: str
) -> None:
    async def configure(conn: Any) -> None:
        if configure_fault == "raises":
            raise RuntimeError("configure refused")
        await conn.execute("SELECT 1")

    async def run(cls: type) -> None:
        async with cls(pg_dsn, name="parity", configure=configure, open=False) as p:
            # one attempt within the timeout: the retry would come after ~1 s
            with pytest.raises(
                Exception, match=r"^pool initialization incomplete after 0\.5 sec$"
            ) as info:
                await p.wait(0.5)
            assert type(info.value).__name__ == "PoolTimeout" and p.closed

    seen = {}
    for cls in (psycopg_pool.AsyncNullConnectionPool, fastpool.AsyncNullConnectionPool):
        caplog.clear()
        aio(run(cls))
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()
    assert len(seen["psycopg_pool"]) == 1
    assert seen["fastpool"] == seen["psycopg_pool"]
