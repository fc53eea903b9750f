"""Async twin of tests/pool/test_log_parity_pg.py: the same misuse through
psycopg_pool's and fastpool's AsyncConnectionPool leaves the same WARNING
records on the ``psycopg`` loggers."""

from __future__ import annotations

from typing import Any, Callable

import psycopg
import pytest

import fastpool
from tests.support.waiting import async_wait_until

psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.postgres


async def settled(p: Any) -> None:
    await async_wait_until(lambda: p.get_stats()["pool_available"] == 1)


def backend_gone(admin: psycopg.Connection, pid: int) -> Callable[[], bool]:
    return lambda: admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
    ).fetchone() == (0,)


async def returned_in_transaction(p: Any, admin: psycopg.Connection) -> None:
    conn = await p.getconn()
    await conn.execute("SELECT 1")
    await p.putconn(conn)
    await settled(p)


async def returned_mid_query(p: Any, admin: psycopg.Connection) -> None:
    conn = await p.getconn()
    conn.pgconn.send_query(b"SELECT 1")
    await p.putconn(conn)
    await settled(p)


async def closed_inside_the_block(p: Any, admin: psycopg.Connection) -> None:
    async with p.connection() as conn:
        await conn.close()
    await settled(p)


async def rollback_fails_on_return(p: Any, admin: psycopg.Connection) -> None:
    conn = await p.getconn()
    await conn.execute("SELECT 1")
    pid = conn.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    await async_wait_until(backend_gone(admin, pid))
    await p.putconn(conn)
    await settled(p)


async def check_finds_a_dead_connection(p: Any, admin: psycopg.Connection) -> None:
    async with p.connection() as conn:
        pid = conn.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    await async_wait_until(backend_gone(admin, pid))
    await p.check()
    await settled(p)


async def failing_reset(conn: Any) -> None:
    raise RuntimeError("reset refused")


async def reset_fails(p: Any, admin: psycopg.Connection) -> None:
    async with p.connection():
        pass
    await settled(p)


SCENARIOS = [
    pytest.param(returned_in_transaction, {}, id="returned-in-transaction"),
    pytest.param(returned_mid_query, {}, id="returned-mid-query"),
    pytest.param(closed_inside_the_block, {}, id="closed-inside-the-block"),
    pytest.param(rollback_fails_on_return, {}, id="rollback-fails-on-return"),
    pytest.param(check_finds_a_dead_connection, {}, id="check-finds-a-dead-connection"),
    pytest.param(reset_fails, {"reset": failing_reset}, id="reset-raises"),
]


@pytest.mark.parametrize("scenario, pool_kwargs", SCENARIOS)
def test_same_warning_records_as_psycopg_pool(
    aio, pg_dsn: str, admin, caplog, psycopg_warnings, scenario, pool_kwargs
) -> None:
    seen = {}

    async def run(cls: type) -> None:
        async with cls(
            pg_dsn, name="parity", min_size=1, max_size=1, timeout=5, open=False, **pool_kwargs
        ) as p:
            await p.wait()
            await scenario(p, admin)

    for cls in (psycopg_pool.AsyncConnectionPool, fastpool.AsyncConnectionPool):
        caplog.clear()
        aio(run(cls))
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()
    assert seen["psycopg_pool"], "the scenario provokes no warning: it tests nothing"
    assert seen["fastpool"] == seen["psycopg_pool"]
