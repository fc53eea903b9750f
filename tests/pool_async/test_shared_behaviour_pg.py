"""Behaviour the sync and async pools share because it is written once (their
algorithms live in ``pool_async.py``, the sync module is generated), where
the two used to differ. Each test runs the same body against
``ConnectionPool`` and ``AsyncConnectionPool`` on real PostgreSQL: a sync
pool's calls are made from the coroutine, blocking it, and ``ready()``
passes their results through; an interrupted thread (KeyboardInterrupt) and
a cancelled task (CancelledError) are the same case."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from typing import Any, AsyncIterator, Callable

import psycopg
import pytest

import fastpool

pytestmark = pytest.mark.postgres

KINDS = ["sync", "async"]
# With the DB-API pool (fastpool.Pool, on psycopg connections): for what it
# shares with the sync psycopg pool (the core's check() and drain()).
WITH_GENERIC = [*KINDS, "generic"]


async def ready(result: Any) -> Any:
    """Await what the async pool returns; the sync pool's result as it is."""
    return await result if inspect.isawaitable(result) else result


def pool_class(kind: str) -> Any:
    return fastpool.ConnectionPool if kind == "sync" else fastpool.AsyncConnectionPool


def interrupt(kind: str) -> type[BaseException]:
    return asyncio.CancelledError if kind == "async" else KeyboardInterrupt


class RaiseOnce:
    """Called, raises ``error`` once it was armed (``arm()``), then disarms."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.armed = False

    def arm(self) -> None:
        self.armed = True

    def __call__(self) -> None:
        if self.armed:
            self.armed = False
            raise self.error


def connection_class(kind: str, on_close: Callable[[], None]) -> Any:
    """A connection class whose ``close()`` closes, then calls ``on_close()``
    (which may raise)."""
    if kind != "async":

        class SyncConnection(psycopg.Connection[Any]):
            def close(self) -> None:
                super().close()
                on_close()

        return SyncConnection

    class AsyncConnection(psycopg.AsyncConnection[Any]):
        async def close(self) -> None:
            await super().close()
            on_close()

    return AsyncConnection


@contextlib.asynccontextmanager
async def opened(kind: str, dsn: str, **kwargs: Any) -> AsyncIterator[Any]:
    """A pool of ``kind``, opened and waited for; closed at exit."""
    if kind == "generic":
        connect = kwargs.pop("connection_class", psycopg.Connection).connect
        pool = fastpool.Pool(lambda: connect(dsn), open=False, **kwargs)
    else:
        pool = pool_class(kind)(dsn, open=False, **kwargs)
    await ready(pool.open(wait=True, timeout=10))
    try:
        yield pool
    finally:
        await ready(pool.close())


def callback(kind: str, function: Callable[[Any], None]) -> Any:
    """``function`` as a pool callback of ``kind`` (a coroutine function for
    the async pool)."""
    if kind == "sync":
        return function

    async def async_callback(conn: Any) -> None:
        function(conn)

    return async_callback


def pool_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]


async def backend_pids(pool: Any, n: int) -> set[int]:
    """The server pids of ``n`` connections checked out together (then returned)."""
    conns = [await ready(pool.getconn(timeout=10)) for _ in range(n)]
    pids = {conn.info.backend_pid for conn in conns}
    for conn in conns:
        await ready(pool.putconn(conn))
    return pids


async def settled(pool: Any, size: int) -> None:
    """Wait (bounded) until the pool holds ``size`` idle connections."""
    for _ in range(1000):
        stats = pool.get_stats()
        if stats["pool_available"] == stats["pool_size"] == size:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"pool did not settle to {size} idle: {pool.get_stats()}")


@pytest.mark.parametrize("kind", WITH_GENERIC)
def test_check_claims_every_idle_connection_at_once(aio, pg_dsn: str, kind: str) -> None:
    # As psycopg_pool's check(): the idle connections are all claimed first,
    # and each goes back once tested (the sync pool used to claim them one
    # at a time, leaving the others available).
    async def main() -> None:
        async with opened(kind, pg_dsn, min_size=3, max_size=3) as pool:
            available_while_checking: list[int] = []
            ping = pool._ping_idle

            def recording_ping(conn: Any) -> Any:
                available_while_checking.append(pool.get_stats()["pool_available"])
                return ping(conn)

            pool._ping_idle = recording_ping
            await ready(pool.check())
            assert available_while_checking == [0, 1, 2]
            assert pool.get_stats()["pool_available"] == 3

    aio(main())


@pytest.mark.parametrize("kind", WITH_GENERIC)
def test_interrupted_drain_still_discards_every_idle_connection(
    aio, pg_dsn: str, kind: str
) -> None:
    # drain() interrupted while closing its first connection: that one and
    # the ones not reached yet are all discarded and replaced (the sync pool
    # used to leave those idle, and its checkout served them again). No
    # connection drained is ever served again.
    on_close = RaiseOnce(interrupt(kind)("interrupted while closing"))

    async def main() -> None:
        async with opened(
            kind,
            pg_dsn,
            min_size=3,
            max_size=3,
            connection_class=connection_class(kind, on_close),
        ) as pool:
            drained = await backend_pids(pool, 3)
            on_close.arm()
            with pytest.raises(interrupt(kind)):
                await ready(pool.drain())
            assert not drained & await backend_pids(pool, 3)
            await settled(pool, 3)

    aio(main())


@pytest.mark.parametrize("kind", KINDS)
def test_a_close_that_fails_does_not_fail_the_return(
    aio, pg_dsn: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The return path closes a connection that its reset left unusable, and
    # an error of that close is logged, not raised from putconn() (the sync
    # pool used to raise it); the connection is replaced.
    on_close = RaiseOnce(RuntimeError("close failed"))

    def failing_reset(conn: Any) -> None:
        on_close.arm()
        raise psycopg.OperationalError("reset failed")

    async def main() -> None:
        async with opened(
            kind,
            pg_dsn,
            min_size=1,
            max_size=1,
            connection_class=connection_class(kind, on_close),
            reset=callback(kind, failing_reset),
        ) as pool:
            conn = await ready(pool.getconn())
            first = conn.info.backend_pid
            await ready(pool.putconn(conn))
            assert not on_close.armed  # the close did fail
            messages = pool_messages(caplog)
            assert any(m.startswith("error resetting connection: reset failed") for m in messages)
            assert any(m.startswith("error closing connection") for m in messages)
            assert first not in await backend_pids(pool, 1)

    aio(main())


@pytest.mark.parametrize("kind", KINDS)
def test_an_attempt_ended_by_an_interrupt_is_retried(
    aio, pg_dsn: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A worker's connection attempt ended by an interrupt from the configure
    # callback (a task's CancelledError, a thread's KeyboardInterrupt) is no
    # failure to connect: not logged as "error connecting" (the sync pool
    # logged it), and retried like a failed attempt (the async pool replaced
    # it at once, with no backoff): the pool still reaches its size, and the
    # connection configure was running on is closed.
    raised: list[Any] = []

    def configure(conn: Any) -> None:
        if not raised:
            raised.append(conn)
            raise interrupt(kind)("interrupted in configure")

    async def main() -> None:
        async with opened(
            kind,
            pg_dsn,
            min_size=1,
            max_size=1,
            name="interrupted",
            configure=callback(kind, configure),
        ) as pool:
            assert len(raised) == 1
            await settled(pool, 1)
            for _ in range(500):
                if raised[0].closed:
                    break
                await asyncio.sleep(0.01)
            assert raised[0].closed
            messages = pool_messages(caplog)
            assert not [m for m in messages if m.startswith("error connecting")]

    aio(main())
