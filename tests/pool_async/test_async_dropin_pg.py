"""Async twins of tests/pool/test_dropin_pg.py: typed connection classes, what
usage_ms measures, drain() keeping the size, one async with-block per
connection() object, two-phase transactions left prepared in a block."""

from __future__ import annotations

import asyncio
import contextlib
import typing
import uuid
from typing import TypeVar

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from fastpool import AsyncConnectionPool, AsyncNullConnectionPool, PoolTimeout

from .conftest import open_pool

pytestmark = pytest.mark.postgres

POOL_CLASSES = [AsyncConnectionPool, AsyncNullConnectionPool]
R = TypeVar("R")


class MyAsyncConnection(psycopg.AsyncConnection[R]):
    """A user's generic async connection subclass."""


def _sizes(cls: type) -> dict[str, int]:
    return {"min_size": 0, "max_size": 1} if cls is AsyncNullConnectionPool else {"min_size": 1}


@pytest.mark.parametrize("cls", POOL_CLASSES)
@pytest.mark.parametrize(
    "connection_class",
    [psycopg.AsyncConnection[DictRow], MyAsyncConnection[DictRow]],
    ids=["AsyncConnection[DictRow]", "subclass[DictRow]"],
)
def test_parametrised_connection_class_is_accepted(aio, pg_dsn: str, cls, connection_class) -> None:
    async def main() -> None:
        async with open_pool(
            pg_dsn,
            cls,
            connection_class=connection_class,
            kwargs={"row_factory": dict_row},
            **_sizes(cls),
        ) as p:
            assert p.connection_class is connection_class
            async with p.connection() as conn:
                cur = await conn.execute("SELECT 1 AS one")
                assert await cur.fetchone() == {"one": 1}
                assert isinstance(conn, typing.get_origin(connection_class))

    aio(main())


@pytest.mark.parametrize("cls", POOL_CLASSES)
@pytest.mark.parametrize(
    "bad", [int, list[int], "psycopg.AsyncConnection", psycopg.AsyncConnection.connect]
)
def test_a_non_connection_class_is_refused_clearly(pg_dsn: str, cls, bad) -> None:
    with pytest.raises(TypeError, match="connection_class must be a connection class"):
        cls(pg_dsn, connection_class=bad, open=False)


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_usage_ms_counts_from_hand_out_not_from_the_request(aio, pg_dsn: str, cls) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, cls, **_sizes(cls)) as p:
            held = await p.getconn()
            p.pop_stats()

            async def block() -> None:
                async with p.connection():
                    pass

            task = asyncio.ensure_future(block())
            while p.get_stats()["requests_waiting"] == 0:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.3)
            await p.putconn(held)
            await asyncio.wait_for(task, 10)
            stats = p.get_stats()
            assert stats["requests_wait_ms"] >= 300
            assert stats.get("usage_ms", 0) < stats["requests_wait_ms"] / 2, stats

    aio(main())


def test_drain_keeps_the_pool_size(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1, max_size=4) as p:
            held = [await p.getconn() for _ in range(4)]
            old_pids = {c.info.backend_pid for c in held}
            checked_out = held.pop()
            for c in held:
                await p.putconn(c)
            assert p.get_stats()["pool_size"] == 4
            await p.drain()
            await p.putconn(checked_out)  # made before the drain: replaced on return
            assert checked_out.closed
            for _ in range(1000):
                if p.get_stats()["pool_available"] == 4:
                    break
                await asyncio.sleep(0.01)
            assert p.get_stats()["pool_size"] == p.get_stats()["pool_available"] == 4
            conns = [await p.getconn() for _ in range(4)]
            assert not {c.info.backend_pid for c in conns} & old_pids
            for c in conns:
                await p.putconn(c)

    aio(main())


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_a_connection_context_is_entered_once(aio, pg_dsn: str, cls) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, cls, min_size=0, max_size=2) as p:
            ctx = p.connection()
            async with ctx as conn:
                with pytest.raises(RuntimeError, match="already entered"):
                    await ctx.__aenter__()
                await conn.execute("SELECT 1")
            with pytest.raises(RuntimeError, match="already entered"):
                async with ctx:
                    pass  # pragma: no cover - refused
            assert p.get_stats().get("requests_num", 0) == 1
            async with p.connection() as c2:
                async with p.connection() as c3:
                    assert c2 is not c3
            with pytest.raises(RuntimeError, match="without a connection"):
                await p.connection().__aexit__(None, None, None)

    aio(main())


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_a_connection_context_works_in_async_exit_stack_and_explicit_calls(
    aio, pg_dsn: str, cls
) -> None:
    # AsyncExitStack looks __aenter__/__aexit__ up on the class, `async with`
    # on the instance: the compiled context serves both.
    async def main() -> None:
        async with open_pool(pg_dsn, cls, min_size=0, max_size=1) as p:
            async with contextlib.AsyncExitStack() as stack:
                conn = await stack.enter_async_context(p.connection())
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
            ctx = p.connection()
            conn = await ctx.__aenter__()
            assert await (await conn.execute("SELECT 2")).fetchone() == (2,)
            with pytest.raises(ZeroDivisionError):
                async with contextlib.AsyncExitStack() as stack:
                    stack.push_async_exit(ctx)
                    1 / 0
            async with p.connection() as conn2:  # the one place went back both times
                assert await (await conn2.execute("SELECT 3")).fetchone() == (3,)
            assert p.get_stats()["requests_num"] == 3
            # __aenter__ takes no arguments, whichever way it is looked up.
            with pytest.raises(TypeError):
                p.connection().__aenter__(1)  # type: ignore[call-arg]

    aio(main())


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_prepared_two_phase_transaction_in_a_block_is_reported_and_never_reused(
    aio, tpc_dsn: str, cls, caplog
) -> None:
    gid = f"fastpool-{uuid.uuid4().hex}"

    async def main() -> None:
        async with open_pool(tpc_dsn, cls, **_sizes(cls)) as p:
            with pytest.raises(psycopg.ProgrammingError, match="two-phase"):
                async with p.connection() as conn:
                    await conn.tpc_begin(gid)
                    await conn.execute("SELECT 1")
                    await conn.tpc_prepare()
            for _ in range(3):
                async with p.connection() as conn:
                    await conn.execute("SELECT 1")
            assert p.get_stats()["pool_size"] <= 1
            if cls is AsyncConnectionPool:
                assert any(
                    "two-phase" in r.getMessage()
                    for r in caplog.records
                    if r.name == "psycopg.pool"
                )

    try:
        aio(main())
    finally:
        with psycopg.connect(tpc_dsn, autocommit=True) as admin:
            admin.execute(f"ROLLBACK PREPARED '{gid}'")


def test_failing_check_returns_the_connection_and_tries_another(aio, pg_dsn: str) -> None:
    # psycopg_pool's rule: a connection that fails the check but still looks
    # healthy goes back to the pool, uncounted; the request tries another.
    bad: set[int] = set()

    async def check(conn) -> None:
        if conn.info.backend_pid in bad:
            raise RuntimeError("looks bad")

    async def main() -> None:
        async with open_pool(pg_dsn, min_size=2, check=check) as p:
            await p.wait()
            async with p.connection() as conn:
                bad.add(conn.info.backend_pid)
            for _ in range(3):
                async with p.connection() as conn:
                    assert conn.info.backend_pid not in bad
            stats = p.get_stats()
            assert "connections_lost" not in stats and stats["connections_num"] == 2

    aio(main())


def test_check_that_always_fails_times_out_without_a_connect_storm(aio, pg_dsn: str) -> None:
    async def check(conn) -> None:
        raise RuntimeError("never good")

    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1, check=check) as p:
            await p.wait()
            with pytest.raises(PoolTimeout, match=r"couldn't get a connection after 1.50 sec"):
                await p.getconn(timeout=1.5)
            stats = p.get_stats()
            assert stats["connections_num"] == 1 and stats["pool_available"] == 1, stats

    aio(main())


def test_check_that_closes_the_connection_counts_it_lost(aio, pg_dsn: str) -> None:
    closed: list = []

    async def check(conn) -> None:
        if not closed:
            closed.append(conn)
            await conn.close()
            raise RuntimeError("closed it")

    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1, check=check) as p:
            await p.wait()
            async with p.connection() as conn:
                assert conn is not closed[0]
            assert p.get_stats()["connections_lost"] == 1

    aio(main())
