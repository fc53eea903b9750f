"""AsyncConnectionPool(use_lifo=True): the connection returned last is handed
out next; check() and max_idle shrinking still see the idle connections
least recently used first (tests/pool/test_lifo_pg.py has the rest)."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastpool import AsyncConnectionPool

from .conftest import open_pool

pytestmark = pytest.mark.postgres


def idle_pids(pool) -> list[int]:
    """Backend pids of the idle connections, returned longest ago first."""
    return [pool._slots[s].conn.info.backend_pid for s in pool._ring.idle()]


def test_last_returned_first_out_and_check_keeps_the_order(aio, pg_dsn: str, admin) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=3, use_lifo=True) as p:
            await p.wait()
            assert p.use_lifo is True
            conns = [await p.getconn() for _ in range(3)]
            pids = [c.info.backend_pid for c in conns]
            for i in (1, 2, 0):
                await p.putconn(conns[i])
            for _ in range(3):
                async with p.connection() as conn:
                    assert conn.info.backend_pid == pids[0]
            assert idle_pids(p) == [pids[1], pids[2], pids[0]]

            admin.execute("SELECT pg_terminate_backend(%s)", [pids[2]])
            checked: list[int] = []

            async def counting(conn) -> None:
                checked.append(conn.info.backend_pid)
                await AsyncConnectionPool.check_connection(conn)

            p.check_connection = counting  # type: ignore[method-assign]
            await p.check()
            assert checked == [pids[1], pids[2], pids[0]]  # each once, oldest first
            await p.wait()
            assert [pid for pid in idle_pids(p) if pid in pids] == [pids[1], pids[0]]
            assert p.get_stats()["connections_lost"] == 1

    aio(main())


def test_max_idle_closes_the_connections_idle_longest(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1, max_size=3, max_idle=0.2, use_lifo=True) as p:
            conns = [await p.getconn() for _ in range(3)]
            for c in conns:
                await p.putconn(c)
            hot = conns[-1].info.backend_pid
            deadline = time.monotonic() + 15
            while p.get_stats()["pool_size"] > 1:
                assert time.monotonic() < deadline, "timed out waiting for the shrink"
                async with p.connection() as conn:
                    assert conn.info.backend_pid == hot
                    await conn.execute("SELECT 1")
                await asyncio.sleep(0.01)
            assert idle_pids(p) == [hot]

    aio(main())
