"""Cancellation never loses a connection or a waiter slot, and a task that
ends holding a connection is reported. Real PostgreSQL, asyncio and uvloop.

Conservation is checked the same way everywhere: after the storm, every slot
is idle again (none in use, none lost: pool_size connections, all available),
no waiter is left queued, and the ring's books balance (``open_pool``)."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from fastpool import AsyncNullConnectionPool

from .conftest import open_pool

pytestmark = pytest.mark.postgres


async def settle(p, size: int) -> None:
    """Wait (bounded) until the pool holds ``size`` idle connections."""
    for _ in range(500):
        stats = p.get_stats()
        if stats["pool_available"] == stats["pool_size"] == size and not p._background:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"pool did not settle to {size} idle: {p.get_stats()}")


def test_tasks_cancelled_while_queued_leave_nothing_behind(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=2) as p:
            await p.wait()
            held = [await p.getconn(), await p.getconn()]
            waiters = [asyncio.ensure_future(p.getconn(timeout=10)) for _ in range(50)]
            await asyncio.sleep(0.02)
            assert p.get_stats()["requests_waiting"] == 50
            for w in waiters[::2]:
                w.cancel()
            await asyncio.sleep(0)
            # The cancelled ones left the queue; the others are served in turn.
            for conn in held:
                await p.putconn(conn)
            for w in waiters[1::2]:
                await p.putconn(await w)
            results = await asyncio.gather(*waiters[::2], return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            await settle(p, 2)

    aio(main())


def test_cancel_racing_the_hand_over_gives_the_connection_back(aio, pg_dsn: str) -> None:
    # The waiter is served (the connection handed to it) and cancelled before it
    # runs again: it must pass the connection on, not drop it.
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1) as p:
            await p.wait()
            held = await p.getconn()
            first = asyncio.ensure_future(p.getconn())
            second = asyncio.ensure_future(p.getconn())
            await asyncio.sleep(0.02)
            await p.putconn(held)  # served: first now owns the slot...
            first.cancel()  # ...but is cancelled before it resumes
            with pytest.raises(asyncio.CancelledError):
                await first
            conn = await asyncio.wait_for(second, 5)  # handed on to the next waiter
            await p.putconn(conn)
            await settle(p, 1)

    aio(main())


def test_cancellation_storm_under_load(aio, pg_dsn: str) -> None:
    # Many tasks run queries through connection(); a random third are
    # cancelled at random points: queued, mid-query, mid-commit, mid-rollback.
    async def main() -> None:
        rnd = random.Random(1234)
        async with open_pool(pg_dsn, min_size=4, max_size=4) as p:
            await p.wait()

            async def client(i: int) -> None:
                async with p.connection(timeout=20) as conn:
                    if i % 3 == 0:
                        await conn.execute("SELECT pg_sleep(0.002)")  # leaves a transaction open
                    else:
                        await conn.execute("SELECT 1")
                        if i % 3 == 1:
                            raise KeyError(i)  # rollback path

            for _ in range(3):
                tasks = [asyncio.ensure_future(client(i)) for i in range(120)]
                for _ in range(40):
                    await asyncio.sleep(rnd.random() * 0.003)
                    rnd.choice(tasks).cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                kinds = {type(r).__name__ for r in results}
                assert kinds <= {"NoneType", "KeyError", "CancelledError"}, kinds
                assert "CancelledError" in kinds
            await settle(p, 4)
            assert p.get_stats()["requests_waiting"] == 0

    aio(main())


@pytest.mark.parametrize("callback", ["check", "reset"])
def test_cancel_during_a_callback_discards_and_replaces(aio, pg_dsn: str, callback: str) -> None:
    # Cancelled mid-check (in getconn) or mid-reset (in putconn): the
    # connection is in an unknown state, so it is closed and replaced.
    async def main() -> None:
        started = asyncio.Event()

        async def slow(conn) -> None:
            started.set()
            await conn.execute("SELECT pg_sleep(5)")

        async with open_pool(pg_dsn, min_size=1, **{callback: slow}) as p:
            await p.wait()
            if callback == "check":
                task = asyncio.ensure_future(p.getconn())
            else:
                task = asyncio.ensure_future(p.putconn(await p.getconn()))
            await started.wait()
            # Let the query reach the server: a cancel request that arrives first
            # is a no-op, and psycopg then waits out the query.
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            setattr(p, f"_{callback}", None)  # the replacement needs no slow callback
            await settle(p, 1)
            assert p.get_stats()["connections_num"] == 2  # the first one was replaced

    aio(main())


def test_null_pool_task_cancelled_while_connecting_frees_its_budget(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=2) as p:
            for _ in range(20):
                tasks = [asyncio.ensure_future(p.getconn()) for _ in range(6)]
                await asyncio.sleep(random.random() * 0.01)
                for t in tasks:
                    t.cancel()
                for r in await asyncio.gather(*tasks, return_exceptions=True):
                    if not isinstance(r, BaseException):
                        await p.putconn(r)
            while p._background:
                await asyncio.sleep(0.01)
            assert p.get_stats()["pool_size"] == 0
            # the budget is intact: max_size connections can still be had at once
            a, b = await p.getconn(timeout=5), await p.getconn(timeout=5)
            await p.putconn(a)
            await p.putconn(b)

    aio(main())


def test_task_finishing_with_a_connection_is_reported(aio, pg_dsn: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="psycopg.pool")

    async def main() -> None:
        async with open_pool(pg_dsn, min_size=2, name="leaky", expect_held=1) as p:

            async def leak() -> None:
                await p.getconn()

            async def tidy() -> None:
                await p.putconn(await p.getconn())

            await asyncio.ensure_future(tidy())
            await asyncio.sleep(0)
            assert not [r for r in caplog.records if "finished while holding" in r.getMessage()]
            await asyncio.ensure_future(leak())
            await asyncio.sleep(0)

    aio(main())
    leaks = [r.getMessage() for r in caplog.records if "finished while holding" in r.getMessage()]
    assert len(leaks) == 1 and "'leaky'" in leaks[0], leaks


def test_many_checkouts_in_one_task_keep_no_callbacks(aio, pg_dsn: str) -> None:
    # Leak tracking adds a done-callback per getconn(); putconn() must remove
    # it, or a long-lived task doing many checkouts would pile them up. The
    # pure-Python Task is used because it shows its callback list.
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1) as p:

            async def worker() -> None:
                callbacks = asyncio.current_task()._callbacks
                before = len(callbacks)
                for _ in range(200):
                    conn = await p.getconn()
                    assert len(callbacks) == before + 1
                    await p.putconn(conn)
                    assert len(callbacks) == before

            await asyncio.tasks._PyTask(worker(), loop=asyncio.get_running_loop())

    aio(main())


def test_sync_and_async_pools_are_independent(aio, pg_dsn: str) -> None:
    # An AsyncConnectionPool's connection can't be returned to a sync pool and vice versa.
    from fastpool import ConnectionPool

    async def main() -> None:
        with ConnectionPool(pg_dsn, min_size=1) as sp:
            async with open_pool(pg_dsn, min_size=1) as ap:
                conn = await ap.getconn()
                with pytest.raises(ValueError, match="it comes from pool"):
                    sp.putconn(conn)
                await ap.putconn(conn)

    aio(main())
