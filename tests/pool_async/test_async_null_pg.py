"""AsyncNullConnectionPool against a real PostgreSQL, asyncio and uvloop."""
from __future__ import annotations

import asyncio

import pytest

from fastpool import AsyncNullConnectionPool, PoolTimeout

from .conftest import open_pool

pytestmark = pytest.mark.postgres


def test_null_pool_requires_min_size_zero(pg_dsn: str) -> None:
    with pytest.raises(ValueError, match="null pools must have min_size = 0"):
        AsyncNullConnectionPool(pg_dsn, min_size=1, open=False)


def test_opens_per_request_and_closes_on_return(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool) as p:
            await p.wait()
            async with p.connection() as conn:
                cur = await conn.execute("SELECT pg_backend_pid()")
                (pid1,) = await cur.fetchone()
            assert conn.closed
            async with p.connection() as conn:
                cur = await conn.execute("SELECT pg_backend_pid()")
                (pid2,) = await cur.fetchone()
            assert pid1 != pid2
            stats = p.get_stats()
            assert stats["pool_size"] == 0 and stats["connections_num"] == 3  # wait() made one

    aio(main())


def test_queues_beyond_max_size_and_hands_over(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=2) as p:
            a, b = await p.getconn(), await p.getconn()
            waiter = asyncio.ensure_future(p.getconn())
            await asyncio.sleep(0.02)
            assert p.get_stats()["requests_waiting"] == 1
            with pytest.raises(PoolTimeout):
                await p.getconn(timeout=0.05)
            pid = a.info.backend_pid
            await p.putconn(a)  # handed over, not closed
            c = await asyncio.wait_for(waiter, 5)
            assert c is a and not c.closed and c.info.backend_pid == pid
            await p.putconn(b)
            await p.putconn(c)
            assert b.closed and c.closed and p.get_stats()["pool_size"] == 0

    aio(main())


def test_concurrent_first_requests_connect_in_parallel(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=8) as p:
            conns = await asyncio.gather(*(p.getconn() for _ in range(8)))
            assert len({c.info.backend_pid for c in conns}) == 8
            for c in conns:
                await p.putconn(c)
            assert p.get_stats()["pool_size"] == 0

    aio(main())


def test_resize_lets_queued_tasks_connect(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1) as p:
            a = await p.getconn()
            waiter = asyncio.ensure_future(p.getconn())
            await asyncio.sleep(0.02)
            await p.resize(0, 2)
            b = await asyncio.wait_for(waiter, 5)
            assert b is not a
            await p.putconn(a)
            await p.putconn(b)

    aio(main())
