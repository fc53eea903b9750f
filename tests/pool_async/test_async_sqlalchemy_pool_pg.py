"""AsyncAdaptedFastQueuePool under SQLAlchemy's asyncio engines, against
PostgreSQL: psycopg's async dialect and asyncpg, on asyncio's loop and uvloop.

A checkout that has to wait must suspend its task, not the event loop: the
tests that wait run a ticker task beside the pool and check that it kept
ticking while the others waited (a loop blocked by a waiting checkout could
not tick, and the holder could never give its connection back). Also: FIFO
hand-over, pool_timeout, cancellation (while queued, and just after being
served), pre-ping, recycle, invalidation, dispose; and SQLAlchemy's refusal of
a pool of the wrong kind."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Callable

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("greenlet")
from sqlalchemy import create_engine, exc, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

from fastpool.sqlalchemy_pool import AsyncAdaptedFastQueuePool, FastQueuePool  # noqa: E402

pytestmark = pytest.mark.postgres

# The pool timeout of the tests that wait and then are served: long, so that
# only a blocked loop could make them reach it.
POOL_WAIT = 10.0


def _creator(driver: str, dsn: str) -> Callable[[], Any]:
    """The driver's own connect coroutine function for the test server."""
    if driver == "asyncpg":
        asyncpg = pytest.importorskip("asyncpg")
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(dsn)
        kwargs = {
            "host": params.get("host"),
            "port": int(params["port"]) if "port" in params else None,
            "user": params.get("user"),
            "password": params.get("password"),
            "database": params.get("dbname"),
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return lambda: asyncpg.connect(**kwargs)
    import psycopg

    return lambda: psycopg.AsyncConnection.connect(dsn)


@pytest.fixture(params=["psycopg_async", "asyncpg"])
def make_engine(request: pytest.FixtureRequest, pg_dsn: str) -> Callable[..., AsyncEngine]:
    """``make_engine(**kw)``: an AsyncEngine of the parametrized driver on
    AsyncAdaptedFastQueuePool (pool_size=1, max_overflow=0 unless told)."""
    driver = request.param
    creator = _creator(driver, pg_dsn)

    def make(**kw: Any) -> AsyncEngine:
        kw.setdefault("pool_size", 1)
        kw.setdefault("max_overflow", 0)
        kw.setdefault("pool_timeout", POOL_WAIT)
        return create_async_engine(
            f"postgresql+{driver}://",
            poolclass=AsyncAdaptedFastQueuePool,
            async_creator=creator,
            **kw,
        )

    return make


@contextlib.asynccontextmanager
async def open_engine(make: Callable[..., AsyncEngine], **kw: Any) -> AsyncIterator[AsyncEngine]:
    """An engine that is checked at exit (nothing checked out, nobody queued,
    the ring consistent), then disposed on the test's loop."""
    engine = make(**kw)
    try:
        assert isinstance(engine.pool, AsyncAdaptedFastQueuePool)
        yield engine
        pool = engine.pool
        assert pool.checkedout() == 0 and not pool._waiting
        pool._ring.check_invariants()
    finally:
        await engine.dispose()


class Ticker:
    """A task that ticks every millisecond while the loop runs, and records the
    longest gap between two ticks."""

    def __init__(self) -> None:
        self.ticks = 0
        self.max_gap = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while not self._stop:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop = True
        assert self._task is not None
        await self._task


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition()`` holds (10 s at most: a hang)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.001)


async def pid(conn: AsyncConnection) -> int:
    return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


# -- waiting: the loop runs, FIFO, timeout, cancellation ----------------------------


def test_tasks_wait_in_order_on_one_connection_while_the_loop_runs(aio, make_engine) -> None:
    n = 12

    async def main() -> None:
        async with open_engine(make_engine) as engine, Ticker() as ticker:
            pool = engine.pool
            order: list[int] = []
            pids: set[int] = set()

            async def worker(i: int) -> None:
                async with engine.connect() as conn:
                    order.append(i)
                    pids.add(await pid(conn))

            holder = await engine.connect()
            held_pid = await pid(holder)
            tasks = []
            for i in range(n):  # one at a time, so the queue's order is known
                tasks.append(asyncio.ensure_future(worker(i)))
                await until(lambda i=i: len(pool._waiting) == i + 1, f"task {i} queued")
            ticks = ticker.ticks
            # The loop keeps running while n tasks wait in the pool.
            await until(lambda: ticker.ticks >= ticks + 5, "the ticker ticked")
            assert len(pool._waiting) == n and order == []
            await holder.close()
            await asyncio.gather(*tasks)
            assert order == list(range(n))  # first come, first served
            assert pids == {held_pid}  # the one connection, handed from task to task
            assert pool.checkedin() == 1
        assert ticker.max_gap < POOL_WAIT / 2

    aio(main())


def test_many_tasks_with_overflow(aio, make_engine) -> None:
    async def main() -> None:
        async with open_engine(make_engine, pool_size=2, max_overflow=2) as engine:
            pool = engine.pool
            pids: set[int] = set()
            most = 0

            async def worker() -> None:
                nonlocal most
                for _ in range(4):
                    async with engine.connect() as conn:
                        most = max(most, pool.checkedout())
                        pids.add(await pid(conn))
                        await asyncio.sleep(0)

            async with Ticker() as ticker:
                await asyncio.gather(*(worker() for _ in range(24)))
            assert most == 4 and len(pids) >= 2
            assert pool.checkedin() <= 2 and pool.overflow() <= 0  # overflow ones were closed
            assert ticker.ticks > 0 and ticker.max_gap < POOL_WAIT / 2

    aio(main())


def test_pool_timeout_raises_sqlalchemys_timeout_error(aio, make_engine) -> None:
    async def main() -> None:
        async with open_engine(make_engine, pool_timeout=0.2) as engine, Ticker() as ticker:
            async with engine.connect():
                ticks = ticker.ticks
                with pytest.raises(
                    exc.TimeoutError,
                    match="QueuePool limit of size 1 overflow 0 reached, connection timed out, "
                    "timeout 0.20",
                ):
                    await engine.connect()
                assert ticker.ticks > ticks  # the loop ran during the wait
                assert not engine.pool._waiting
            async with engine.connect() as conn:  # the connection is still there
                assert await pid(conn) > 0

    aio(main())


async def queue_two_workers(
    engine: AsyncEngine,
) -> tuple[AsyncConnection, asyncio.Future[None], asyncio.Future[None], list[str]]:
    """Take the pool's only connection (the holder), then queue worker tasks a and
    b in that order behind it; each appends its name to ``got`` once served.
    Returns (holder, a, b, got)."""
    got: list[str] = []

    async def worker(name: str) -> None:
        async with engine.connect() as conn:
            got.append(name)
            await pid(conn)

    holder = await engine.connect()
    a = asyncio.ensure_future(worker("a"))
    await until(lambda: len(engine.pool._waiting) == 1, "a queued")
    b = asyncio.ensure_future(worker("b"))
    await until(lambda: len(engine.pool._waiting) == 2, "b queued")
    return holder, a, b, got


def test_a_task_cancelled_while_queued_leaves_its_turn(aio, make_engine) -> None:
    async def main() -> None:
        async with open_engine(make_engine) as engine:
            pool = engine.pool
            holder, a, b, got = await queue_two_workers(engine)
            a.cancel()
            with pytest.raises(asyncio.CancelledError):
                await a
            assert len(pool._waiting) == 1  # a left the queue
            await holder.close()
            await b
            assert got == ["b"]
            assert (pool.checkedin(), pool.checkedout()) == (1, 0)

    aio(main())


def test_a_task_cancelled_just_after_the_hand_over_passes_it_on(aio, make_engine) -> None:
    async def main() -> None:
        async with open_engine(make_engine) as engine:
            pool = engine.pool
            holder, a, b, got = await queue_two_workers(engine)
            await holder.close()
            # The connection is a's now (off the ring, a off the queue), but a
            # has not run yet: cancel it before it takes the connection.
            assert len(pool._waiting) == 1 and pool.checkedout() == 1 and got == []
            a.cancel()
            with pytest.raises(asyncio.CancelledError):
                await a
            await b
            assert got == ["b"]  # a gave the connection on to the next waiter
            assert (pool.checkedin(), pool.checkedout()) == (1, 0)

    aio(main())


# -- SQLAlchemy's own work around the pool ----------------------------------------


def test_pre_ping_replaces_a_killed_connection(aio, make_engine, admin) -> None:
    async def main() -> None:
        async with open_engine(make_engine, pool_pre_ping=True) as engine:
            async with engine.connect() as conn:
                first = await pid(conn)
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
            async with engine.connect() as conn:
                assert await pid(conn) != first  # the ping found it dead; SQLAlchemy reconnected
            assert engine.pool.checkedin() == 1

    aio(main())


def test_recycle_replaces_an_old_connection(aio, make_engine) -> None:
    async def main() -> None:
        # (No count of connects: a connect slower than pool_recycle, on a busy
        # machine, is itself recycled at its first checkout.)
        async with open_engine(make_engine, pool_recycle=0.1) as engine:
            async with engine.connect() as conn:
                first = await pid(conn)
            await asyncio.sleep(0.15)
            async with engine.connect() as conn:
                assert await pid(conn) != first  # older than pool_recycle: replaced on checkout
            assert (engine.pool.checkedin(), engine.pool.checkedout()) == (1, 0)

    aio(main())


def test_invalidation_replaces_the_connection(aio, make_engine, admin) -> None:
    async def main() -> None:
        async with open_engine(make_engine) as engine:
            async with engine.connect() as conn:
                first = await pid(conn)
                await conn.invalidate()
            async with engine.connect() as conn:
                second = await pid(conn)
            assert second != first
            # A disconnect found by a query invalidates the pool's connections.
            admin.execute("SELECT pg_terminate_backend(%s)", [second])
            async with engine.connect() as conn:
                with pytest.raises(exc.DBAPIError) as err:
                    await pid(conn)
                assert err.value.connection_invalidated
            async with engine.connect() as conn:
                assert await pid(conn) not in (first, second)
            assert (engine.pool.checkedin(), engine.pool.checkedout()) == (1, 0)

    aio(main())


def test_dispose_closes_the_idle_connections(aio, make_engine) -> None:
    async def main() -> None:
        async with open_engine(make_engine, pool_size=2) as engine:
            a, b = await engine.connect(), await engine.connect()
            pids = {await pid(a), await pid(b)}
            await a.close()
            await b.close()
            old = engine.pool
            assert old.checkedin() == 2
            await engine.dispose()
            assert old.checkedin() == 0
            assert isinstance(engine.pool, AsyncAdaptedFastQueuePool) and engine.pool is not old
            assert (engine.pool.size(), engine.pool.timeout()) == (2, POOL_WAIT)
            async with engine.connect() as conn:
                assert await pid(conn) not in pids

    aio(main())


# -- the wrong kind of engine, the wrong context --------------------------------------


@pytest.mark.parametrize("driver", ["psycopg_async", "asyncpg"])
def test_an_async_engine_refuses_fastqueuepool(driver: str) -> None:
    if driver == "asyncpg":
        pytest.importorskip("asyncpg")
    with pytest.raises(
        exc.ArgumentError, match="Pool class FastQueuePool cannot be used with asyncio engine"
    ):
        create_async_engine(f"postgresql+{driver}://", poolclass=FastQueuePool)


def test_a_sync_engine_refuses_the_async_pool() -> None:
    with pytest.raises(
        exc.ArgumentError,
        match="Pool class AsyncAdaptedFastQueuePool cannot be used with non-asyncio engine",
    ):
        create_engine("postgresql+psycopg://", poolclass=AsyncAdaptedFastQueuePool)


class StubConnection:
    """A DB-API connection that needs no server (SQLAlchemy rolls it back on return)."""

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_wait_outside_sqlalchemys_asyncio_layer_is_refused_cleanly() -> None:
    pool = AsyncAdaptedFastQueuePool(StubConnection, pool_size=1, max_overflow=0, timeout=5)
    held = pool.connect()  # no wait: no event loop needed
    with pytest.raises(exc.MissingGreenlet, match="through an AsyncEngine"):
        pool.connect()  # would wait, and there is no event loop

    async def in_a_coroutine() -> None:
        pool.connect()  # a loop, but no greenlet for SQLAlchemy's await_

    with pytest.raises(exc.MissingGreenlet):
        asyncio.run(in_a_coroutine())
    assert not pool._waiting
    held.close()
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)
    with pool.connect():  # the connection was not lost
        pass
    pool._ring.check_invariants()
