"""AsyncConnectionPool's psycopg_pool API against a real PostgreSQL, on asyncio
and uvloop: open/close rules and warnings, getconn/putconn, connection(),
waiting and timeouts, async callbacks, resize, check, drain, stats."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from fastpool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from .conftest import open_pool

pytestmark = pytest.mark.postgres


def test_constructor_outside_a_loop_needs_open_false(pg_dsn: str) -> None:
    with pytest.raises(RuntimeError, match="AsyncConnectionPool open with no running loop"):
        AsyncConnectionPool(pg_dsn)  # open=None opens, and needs a running loop
    p = AsyncConnectionPool(pg_dsn, open=False)
    assert p.closed and p.min_size == p.max_size == 4
    assert p.connection_class is psycopg.AsyncConnection


def test_context_manager_opens_and_closes(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(pg_dsn, min_size=2, open=False) as p:
            assert not p.closed
            await p.wait()
            assert p.get_stats()["pool_available"] == 2
            async with p.connection() as conn:
                cur = await conn.execute("SELECT 1")
                assert await cur.fetchone() == (1,)
                assert conn._pool is p
        assert p.closed
        assert conn.closed  # idle at close: closed

    aio(main())


def test_open_true_in_constructor_warns_and_open_none_warns_on_first_use(aio, pg_dsn: str) -> None:
    async def main() -> None:
        with pytest.warns(
            RuntimeWarning, match="opening the async pool AsyncConnectionPool in the constructor"
        ):
            p = AsyncConnectionPool(pg_dsn, min_size=1, open=True)
        await p.close()
        p = AsyncConnectionPool(pg_dsn, min_size=1)  # open=None: no warning yet
        with pytest.warns(RuntimeWarning, match="await pool.open()"):
            async with p.connection():
                pass
        async with p.connection():  # once only
            pass
        await p.close()

    aio(main())


def test_getconn_before_open_and_after_close(aio, pg_dsn: str) -> None:
    async def main() -> None:
        p = AsyncConnectionPool(pg_dsn, open=False, name="later")
        with pytest.raises(PoolClosed, match="the pool 'later' is not open yet"):
            await p.getconn()
        await p.open()
        await p.close()
        with pytest.raises(PoolClosed, match="the pool 'later' is already closed"):
            await p.getconn()
        with pytest.raises(PoolClosed, match="cannot be reused"):
            await p.open()

    aio(main())


def test_wait_timeout_closes_the_pool(aio) -> None:
    async def main() -> None:
        p = AsyncConnectionPool("host=127.0.0.1 port=1 connect_timeout=1", min_size=1, open=False)
        await p.open()
        with pytest.raises(PoolTimeout, match="pool initialization incomplete"):
            await p.wait(timeout=0.3)
        assert p.closed

    aio(main())


def test_connection_block_commits_and_rolls_back(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1) as p:
            async with p.connection() as conn:
                await conn.execute("CREATE TEMP TABLE t (x int)")
            async with p.connection() as conn:
                await conn.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(ZeroDivisionError):
                async with p.connection() as conn:
                    await conn.execute("INSERT INTO t VALUES (2)")
                    1 / 0
            async with p.connection() as conn:
                cur = await conn.execute("SELECT x FROM t")
                assert await cur.fetchall() == [(1,)]
                assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE

    aio(main())


def test_putconn_in_transaction_rolls_back_with_a_warning(aio, pg_dsn: str, caplog) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1) as p:
            conn = await p.getconn()
            await conn.execute("SELECT 1")
            await p.putconn(conn)
            assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert not conn.closed
            assert p.get_stats()["pool_available"] == 1

    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    aio(main())
    assert any("rolling back returned connection" in r.getMessage() for r in caplog.records)


def test_putconn_refuses_foreign_and_double_returns(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with (
            open_pool(pg_dsn, min_size=1, name="a") as a,
            open_pool(pg_dsn, min_size=1, name="b") as b,
        ):
            conn = await a.getconn()
            with pytest.raises(ValueError, match="it comes from pool 'a'"):
                await b.putconn(conn)
            await a.putconn(conn)
            with pytest.raises(ValueError, match="it was already returned"):
                await a.putconn(conn)
            other = await psycopg.AsyncConnection.connect(pg_dsn)
            with pytest.raises(ValueError, match="it doesn't come from any pool"):
                await a.putconn(other)
            await other.close()
            assert a.get_stats()["pool_available"] == 1

    aio(main())


def test_waiters_are_served_in_arrival_order(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1) as p:
            held = await p.getconn()
            order: list[int] = []

            async def client(i: int) -> None:
                async with p.connection():
                    order.append(i)

            tasks = []
            for i in range(6):
                tasks.append(asyncio.ensure_future(client(i)))
                await asyncio.sleep(0.01)  # queue them in a known order
            assert p.get_stats()["requests_waiting"] == 6
            await p.putconn(held)
            await asyncio.gather(*tasks)
            assert order == list(range(6))

    aio(main())


def test_getconn_timeout_and_max_waiting(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1, max_waiting=1, name="tight") as p:
            held = await p.getconn()
            with pytest.raises(PoolTimeout, match="couldn't get a connection after 0.10 sec"):
                await p.getconn(timeout=0.1)
            with pytest.raises(PoolTimeout, match="after 0.00 sec"):
                await p.getconn(timeout=0)  # no time left: not an error of the pool's
            waiter = asyncio.ensure_future(p.getconn(timeout=5))
            await asyncio.sleep(0.02)
            with pytest.raises(
                TooManyRequests, match="the pool 'tight' has already 1 requests waiting"
            ):
                await p.getconn()
            await p.putconn(held)
            await p.putconn(await waiter)
            stats = p.get_stats()
            assert stats["requests_errors"] == 2 and stats["requests_waiting"] == 0

    aio(main())


@pytest.mark.parametrize("timeout,exc", [("1", TypeError), (float("nan"), ValueError)])
def test_bad_timeout_is_rejected_even_with_idle_connections(aio, pg_dsn: str, timeout, exc) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1) as p:
            await p.wait()
            with pytest.raises(exc, match="timeout"):
                await p.getconn(timeout)

    aio(main())


def test_close_fails_waiters_promptly(aio, pg_dsn: str) -> None:
    async def main() -> None:
        p = AsyncConnectionPool(pg_dsn, min_size=1, open=False, timeout=30)
        await p.open()
        held = await p.getconn()
        waiters = [asyncio.ensure_future(p.getconn()) for _ in range(3)]
        await asyncio.sleep(0.02)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await p.close()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, PoolClosed) for r in results), results
        assert loop.time() - t0 < 5
        await p.putconn(held)
        assert held.closed

    aio(main())


def test_async_callbacks_configure_check_reset(aio, pg_dsn: str) -> None:
    calls: list[str] = []

    async def configure(conn) -> None:
        calls.append("configure")
        await conn.execute("SET application_name = 'fp-async'")
        await conn.commit()

    async def check(conn) -> None:
        calls.append("check")
        await conn.execute("SELECT 1")
        await conn.rollback()

    async def reset(conn) -> None:
        calls.append("reset")
        await conn.execute("RESET search_path")
        await conn.commit()

    async def conninfo() -> str:
        calls.append("conninfo")
        return pg_dsn

    async def main() -> None:
        async with open_pool("", min_size=1, configure=configure, check=check, reset=reset) as p:
            p.conninfo = conninfo
            await p.wait()
            await p.drain()  # a new connection made with the async conninfo
            async with p.connection() as conn:
                cur = await conn.execute("SHOW application_name")
                assert await cur.fetchone() == ("fp-async",)

    aio(main())
    assert calls.count("conninfo") >= 1 and "configure" in calls
    assert calls[-2:] == ["check", "reset"]


def test_resize_check_drain(aio, pg_dsn: str, admin) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=1, max_size=4) as p:
            await p.resize(3, 4)
            await p.wait()
            assert p.get_stats()["pool_size"] == 3 and p.min_size == 3
            with pytest.raises(ValueError, match="max_size must be greater or equal than min_size"):
                await p.resize(3, 2)
            # kill one idle backend; check() finds and replaces it
            conn = await p.getconn()
            pid = conn.info.backend_pid
            await p.putconn(conn)
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            await p.check()
            await p.wait()
            assert p.get_stats()["connections_lost"] == 1
            pids = set()
            for _ in range(3):
                async with p.connection() as c:
                    pids.add(c.info.backend_pid)
            assert pid not in pids
            before = p.get_stats()["connections_num"]
            await p.drain()
            await p.wait()
            assert p.get_stats()["connections_num"] == before + 3

    aio(main())


def test_stats_count_requests_and_usage(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, min_size=2) as p:
            await p.wait()

            async def one() -> None:
                async with p.connection() as conn:
                    await conn.execute("SELECT pg_sleep(0.01)")

            await asyncio.gather(*(one() for _ in range(10)))
            stats = p.pop_stats()
            assert stats["requests_num"] == 10
            assert stats["requests_queued"] >= 1
            assert stats["usage_ms"] >= 100
            assert p.get_stats().get("requests_num", 0) == 0

    aio(main())


def test_connection_goes_through_overridden_getconn_and_putconn(aio, pg_dsn: str) -> None:
    seen: list[str] = []

    class Tracing(AsyncConnectionPool):
        async def getconn(self, timeout=None):
            seen.append("get")
            return await super().getconn(timeout)

        async def putconn(self, conn) -> None:
            seen.append("put")
            await super().putconn(conn)

    async def main() -> None:
        async with open_pool(pg_dsn, Tracing, min_size=1) as p:
            async with p.connection():
                pass

    aio(main())
    assert seen == ["get", "put"]


def test_reconnect_failed_async_callback(aio, monkeypatch) -> None:
    from fastpool import base

    monkeypatch.setattr(base.AttemptWithBackoff, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(base.AttemptWithBackoff, "DELAY_JITTER", 0.0)

    async def main() -> None:
        done = asyncio.Event()

        async def reconnect_failed(pool) -> None:
            done.set()

        p = AsyncConnectionPool(
            "host=127.0.0.1 port=1 connect_timeout=1",
            min_size=1,
            open=False,
            reconnect_timeout=0.1,
            reconnect_failed=reconnect_failed,
        )
        await p.open()
        await asyncio.wait_for(done.wait(), 10)
        assert p.get_stats()["connections_errors"] >= 1
        await p.close()

    aio(main())
