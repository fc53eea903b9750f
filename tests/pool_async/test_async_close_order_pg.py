"""close() fails the waiting tasks with PoolClosed first, then closes
connections (psycopg_pool's order; the sync pools' twin of this test is
tests/pool/test_close_order_pg.py, which says why the connection is an orphan)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import psycopg
import pytest

from fastpool import AsyncConnectionPool, AsyncNullConnectionPool, PoolClosed
from fastpool._pool_logic import PoolLogic

pytestmark = pytest.mark.postgres

# How long a close() waits for the waiter's PoolClosed before it gives up:
# only a bound on a broken pool, never reached when the order is right.
GIVE_UP = 10.0


@pytest.mark.parametrize("cls", [AsyncConnectionPool, AsyncNullConnectionPool])
def test_close_fails_waiters_before_closing_connections(aio, pg_dsn, monkeypatch, cls) -> None:
    monkeypatch.setattr(PoolLogic, "_orphan_scan_period", 3600.0)  # only close() reclaims it
    events: list[Any] = []

    async def main() -> None:
        waiter_failed = asyncio.Event()

        class RecordingConnection(psycopg.AsyncConnection[Any]):
            async def close(self) -> None:
                if not self.closed:
                    # Was the waiter told before this close began?
                    try:
                        await asyncio.wait_for(waiter_failed.wait(), GIVE_UP)
                        events.append(("close", True))
                    except asyncio.TimeoutError:
                        events.append(("close", False))
                await super().close()

        p = cls(
            pg_dsn,
            min_size=int(cls is AsyncConnectionPool),
            max_size=1,
            connection_class=RecordingConnection,
            open=False,
            timeout=30,
        )
        await p.open()
        try:

            async def forgetful() -> None:
                await (await p.getconn()).execute("SELECT 1")

            await asyncio.create_task(forgetful())
            gc.collect()

            async def wait_for_a_connection() -> None:
                try:
                    await p.getconn()
                except PoolClosed:
                    events.append("waiter got PoolClosed")
                    waiter_failed.set()

            waiter = asyncio.create_task(wait_for_a_connection())
            for _ in range(1000):
                if p.get_stats()["requests_waiting"] == 1:
                    break
                await asyncio.sleep(0.01)
            assert p.get_stats()["requests_waiting"] == 1
            await p.close()
            await waiter
        finally:
            await p.close()

    aio(main())
    assert events == ["waiter got PoolClosed", ("close", True)]
