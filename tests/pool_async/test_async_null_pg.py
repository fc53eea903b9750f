"""AsyncNullConnectionPool against a real PostgreSQL, asyncio and uvloop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import psycopg
import pytest

from fastpool import AsyncNullConnectionPool, PoolTimeout
from fastpool.base import AttemptWithBackoff
from tests.support.stubs import AsyncStubConnection

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


# -- psycopg_pool's null pool rules, the async twin of tests/pool/test_null_pool_pg.py --


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """Messages of exactly ``level`` on psycopg_pool's logger (formatted when
    logged: a connection's repr shows its state then)."""
    return [r.message for r in caplog.records if r.name == "psycopg.pool" and r.levelno == level]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.002)


class Holder:
    """A task queued in ``getconn()`` (when ``queued()`` returns) that keeps the
    connection it gets until ``release()`` (so it never ends holding one)."""

    def __init__(self, p: Any, name: str | None, kwargs: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self.got: asyncio.Future[Any] = loop.create_future()
        self._done = asyncio.Event()
        self.task = loop.create_task(self._run(p, kwargs), name=name)

    async def _run(self, p: Any, kwargs: dict[str, Any]) -> None:
        try:
            conn = await p.getconn(**kwargs)
        except BaseException as ex:
            self.got.set_exception(ex)
            raise
        self.got.set_result(conn)
        await self._done.wait()
        await p.putconn(conn)

    async def release(self) -> None:
        self._done.set()
        await self.task


async def queued(p: Any, name: str | None = None, **kwargs: Any) -> Holder:
    waiting = p.get_stats()["requests_waiting"]
    h = Holder(p, name, kwargs)
    await until(lambda: p.get_stats()["requests_waiting"] == waiting + 1, "the getconn() is queued")
    return h


def test_check_runs_on_new_and_on_handed_over_connections(aio, pg_dsn: str) -> None:
    checked: list[Any] = []

    async def check(conn: Any) -> None:
        checked.append(conn)
        await AsyncNullConnectionPool.check_connection(conn)

    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, check=check) as p:
            first = await p.getconn()
            assert checked == [first]
            h = await queued(p)
            await p.putconn(first)
            assert await h.got is first and checked == [first, first]
            await h.release()
            assert first.closed and p.get_stats()["pool_size"] == 0

    aio(main())


def test_check_that_always_fails_ends_in_pool_timeout_after_backoff(
    aio, pg_dsn: str, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)

    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        calls: list[tuple[float, Any]] = []
        healthy = False

        async def check(conn: Any) -> None:
            if not healthy:
                calls.append((time.monotonic(), conn))
                raise RuntimeError("not the primary")

        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, check=check) as p:
            t0 = time.monotonic()
            with pytest.raises(PoolTimeout, match=r"^couldn't get a connection after 1\.00 sec$"):
                await p.getconn(timeout=1.0)
            assert time.monotonic() - t0 >= 1.0
            # A retry at once, then after 0.05 s, 0.1 s, 0.2 s, 0.4 s (±10%).
            assert 3 <= len(calls) <= 6, calls
            times = [t for t, _ in calls]
            for i in range(2, len(times)):
                assert times[i] - times[i - 1] >= 0.05 * 2 ** (i - 2) * 0.9, times
            conns = [c for _, c in calls]
            assert len({id(c) for c in conns}) == len(conns) and all(c.closed for c in conns)
            assert logged(caplog, logging.INFO) == [
                "connection failed check: not the primary"
            ] * len(calls)
            assert logged(caplog, logging.WARNING) == []
            stats = p.get_stats()
            assert stats["connections_num"] == len(calls) and stats["pool_size"] == 0
            assert "connections_lost" not in stats and "requests_errors" not in stats
            healthy = True
            conn = await p.getconn()
            assert p.get_stats()["pool_size"] == 1
            await p.putconn(conn)

    aio(main())


def test_check_failing_on_a_broken_connection_counts_it_lost(
    aio, pg_dsn: str, admin, caplog
) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        checked: list[Any] = []

        async def check(conn: Any) -> None:
            checked.append(conn)
            if len(checked) == 1:  # terminate its backend, and wait until it is gone
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", [conn.info.backend_pid])
            await AsyncNullConnectionPool.check_connection(conn)

        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, check=check) as p:
            conn = await p.getconn()
            assert checked == [checked[0], conn] and checked[0].closed
            info = logged(caplog, logging.INFO)
            assert len(info) == 2 and info[0].startswith("connection failed check: ")
            assert info[1] == "not serving connection found broken"
            stats = p.get_stats()
            assert stats["connections_lost"] == 1 and "returns_bad" not in stats
            assert stats["pool_size"] == 1
            await p.putconn(conn)

    aio(main())


def test_check_failing_on_a_handed_over_connection_passes_it_to_the_next_waiter(
    aio, pg_dsn: str
) -> None:
    rejected_by: list[str] = []

    async def check(conn: Any) -> None:
        name = asyncio.current_task().get_name()
        if name == "picky" and not rejected_by:
            rejected_by.append(name)
            raise RuntimeError("not today")

    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, check=check) as p:
            held = await p.getconn()
            picky = await queued(p, "picky")
            other = await queued(p)
            await p.putconn(held)  # to picky, who rejects it: to the other waiter
            assert await other.got is held and not held.closed and rejected_by == ["picky"]
            await until(lambda: p.get_stats()["requests_waiting"] == 1, "picky is queued again")
            await other.release()  # now to picky again
            assert await picky.got is held
            await picky.release()
            assert p.get_stats()["pool_size"] == 0 and p.get_stats()["connections_num"] == 1

    aio(main())


def test_cancelled_check_closes_the_connection_and_passes_its_place_on(aio, pg_dsn: str) -> None:
    async def main() -> None:
        in_check = asyncio.Event()
        cancelled: list[Any] = []

        async def check(conn: Any) -> None:
            if not cancelled:
                cancelled.append(conn)
                in_check.set()
                await asyncio.sleep(10)

        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, check=check) as p:
            first = asyncio.ensure_future(p.getconn())
            await asyncio.wait_for(in_check.wait(), 5)
            h = await queued(p)  # max_size=1 is taken by the connection being checked
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            conn = await asyncio.wait_for(h.got, 5)
            assert conn is not cancelled[0]
            await until(lambda: cancelled[0].closed, "the interrupted connection is closed")
            assert p.get_stats()["pool_size"] == 1
            await h.release()
            assert p.get_stats()["pool_size"] == 0

    aio(main())


def test_expired_connection_is_closed_not_handed_over(aio, pg_dsn: str, caplog) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, max_lifetime=0.2) as p:
            old = await p.getconn()
            old_pid = old.info.backend_pid
            h = await queued(p)
            await asyncio.sleep(0.25)  # past max_lifetime
            await p.putconn(old)
            new = await h.got
            assert old.closed and new is not old and new.info.backend_pid != old_pid
            assert logged(caplog, logging.INFO) == ["discarding expired connection"]
            assert logged(caplog, logging.WARNING) == []
            assert p.get_stats()["pool_size"] == 1
            await h.release()
            assert p.get_stats()["pool_size"] == 0

    aio(main())


def test_connection_out_during_drain_is_closed_not_handed_over(aio, pg_dsn: str) -> None:
    async def main() -> None:
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1) as p:
            old = await p.getconn()
            h = await queued(p)
            await p.drain()
            await p.putconn(old)
            new = await h.got
            assert old.closed and new is not old
            again = await queued(p)
            await h.release()  # made after the drain: handed over as usual
            assert await again.got is new and not new.closed
            await again.release()

    aio(main())


def test_wait_raises_at_its_timeout_while_the_connection_is_still_being_made(
    aio, pg_dsn: str
) -> None:
    async def main() -> None:
        configured: list[Any] = []

        async def configure(conn: Any) -> None:
            configured.append(conn)
            await asyncio.sleep(10)

        p = AsyncNullConnectionPool(pg_dsn, configure=configure, open=False)
        await p.open()
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout, match=r"^pool initialization incomplete after 0\.3 sec$"):
            await p.wait(0.3)
        assert time.monotonic() - t0 >= 0.3
        assert p.closed  # as psycopg_pool: a failed wait() closes the pool
        assert configured[0].closed  # the attempt was cancelled, its connection closed

    aio(main())


def test_wait_retries_a_failing_server_until_its_timeout(aio, caplog, monkeypatch) -> None:
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)

    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        p = AsyncNullConnectionPool("host=127.0.0.1 port=1", name="nowhere", open=False)
        await p.open()
        t0 = time.monotonic()
        with pytest.raises(
            PoolTimeout, match=r"^pool initialization incomplete after 0\.5 sec$"
        ) as info:
            await p.wait(0.5)
        assert time.monotonic() - t0 >= 0.5 and p.closed
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        warnings = logged(caplog, logging.WARNING)
        assert len(warnings) >= 2, warnings
        assert all(w.startswith("error connecting in 'nowhere': ") for w in warnings), warnings

    aio(main())


def test_wait_gives_up_after_reconnect_timeout_but_waits_out_its_timeout(
    aio, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)

    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        failed: list[Any] = []

        async def reconnect_failed(pool: Any) -> None:
            failed.append(pool)

        p = AsyncNullConnectionPool(
            "host=127.0.0.1 port=1",
            name="gone",
            reconnect_timeout=0.2,
            reconnect_failed=reconnect_failed,
            open=False,
        )
        await p.open()
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout, match="pool initialization incomplete after 0.6 sec"):
            await p.wait(0.6)
        assert time.monotonic() - t0 >= 0.6
        assert failed == [p]
        assert "reconnection attempt in pool 'gone' failed after 0.2 sec" in logged(
            caplog, logging.WARNING
        )

    aio(main())


def test_wait_logs_configure_leaving_a_transaction(aio, pg_dsn: str, caplog) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        configured: list[Any] = []

        async def configure(conn: Any) -> None:
            configured.append(conn)
            await conn.execute("SELECT 1")

        p = AsyncNullConnectionPool(pg_dsn, configure=configure, name="badconf", open=False)
        await p.open()
        with pytest.raises(PoolTimeout):
            await p.wait(0.5)
        warnings = logged(caplog, logging.WARNING)
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(
            "error connecting in 'badconf': connection left in status INTRANS"
        )
        assert configured[0].closed

    aio(main())


class RecordingAsyncConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
    """Remembers the keyword arguments of each connect()."""

    connects: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        cls.connects.append(kwargs)
        return await super().connect(conninfo, **kwargs)


def test_wait_connects_once_without_a_connect_timeout_and_closes(
    aio, pg_dsn: str, monkeypatch
) -> None:
    monkeypatch.setattr(RecordingAsyncConnection, "connects", [])

    async def main() -> None:
        async with open_pool(
            pg_dsn,
            AsyncNullConnectionPool,
            connection_class=RecordingAsyncConnection,
            kwargs={"application_name": "nullwait"},
            timeout=3.4,
        ) as p:
            await p.wait(2.6)
            assert RecordingAsyncConnection.connects == [{"application_name": "nullwait"}]
            assert p.get_stats()["connections_num"] == 1 and p.get_stats()["pool_size"] == 0
            await p.putconn(await p.getconn())
            await p.putconn(await p.getconn(timeout=0.2))
            assert [c["connect_timeout"] for c in RecordingAsyncConnection.connects[1:]] == [3, 1]

    aio(main())


def test_active_connection_returned_to_a_waiter_logs_two_warnings(aio, pg_dsn: str, caplog) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1) as p:
            conn = await p.getconn()
            h = await queued(p)
            conn.pgconn.exec_(b"COPY (SELECT 1) TO STDOUT")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
            await p.putconn(conn)
            new = await h.got
            warnings = logged(caplog, logging.WARNING)
            assert len(warnings) == 2, warnings
            assert (
                warnings[0].startswith("closing returned connection: ") and "ACTIVE" in warnings[0]
            )
            assert warnings[1].startswith("discarding closed connection: ") and "BAD" in warnings[1]
            assert new is not conn and conn.closed and p.get_stats()["returns_bad"] == 1
            await h.release()

    aio(main())


def test_return_with_nobody_waiting_closes_without_logging(aio, pg_dsn: str, caplog) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=2) as p:
            active, intrans = await p.getconn(), await p.getconn()
            active.pgconn.exec_(b"COPY (SELECT 1) TO STDOUT")
            await intrans.execute("SELECT 1")
            await p.putconn(active)
            await p.putconn(intrans)
            assert active.closed and intrans.closed
            assert logged(caplog, logging.WARNING) == [] and logged(caplog, logging.INFO) == []
            assert "returns_bad" not in p.get_stats() and p.get_stats()["pool_size"] == 0

    aio(main())


def test_transaction_returned_to_a_waiter_is_rolled_back_with_one_warning(
    aio, pg_dsn: str, caplog
) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1) as p:
            conn = await p.getconn()
            await conn.execute("CREATE TEMP TABLE null_pool_rollback ()")
            h = await queued(p)
            await p.putconn(conn)
            assert await h.got is conn
            warnings = logged(caplog, logging.WARNING)
            assert len(warnings) == 1 and warnings[0].startswith(
                "rolling back returned connection: "
            )
            assert "INTRANS" in warnings[0]
            cur = await conn.execute("SELECT to_regclass('pg_temp.null_pool_rollback')")
            assert await cur.fetchone() == (None,)
            await conn.rollback()
            await h.release()

    aio(main())


def test_failed_rollback_for_a_waiter_logs_three_warnings(
    aio, pg_dsn: str, caplog, monkeypatch
) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1) as p:
            conn = await p.getconn()
            with pytest.raises(psycopg.errors.UndefinedTable):
                await conn.execute("SELECT * FROM no_such_table")
            real_rollback = conn.rollback

            async def broken_rollback() -> None:
                conn.pgconn.finish()
                await real_rollback()

            monkeypatch.setattr(conn, "rollback", broken_rollback)
            h = await queued(p)
            await p.putconn(conn)
            new = await h.got
            warnings = logged(caplog, logging.WARNING)
            assert len(warnings) == 3, warnings
            assert (
                warnings[0].startswith("rolling back returned connection: ")
                and "INERROR" in warnings[0]
            )
            assert warnings[1].startswith("rollback failed: OperationalError: ")
            assert warnings[2].startswith("discarding closed connection: ") and "BAD" in warnings[2]
            assert new is not conn
            await h.release()

    aio(main())


def test_closed_connection_returned_to_a_waiter_logs_one_warning(aio, pg_dsn: str, caplog) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1) as p:
            conn = await p.getconn()
            h = await queued(p)
            await conn.close()
            await p.putconn(conn)
            new = await h.got
            warnings = logged(caplog, logging.WARNING)
            assert len(warnings) == 1 and warnings[0].startswith("discarding closed connection: ")
            assert new is not conn and p.get_stats()["returns_bad"] == 1
            await h.release()

    aio(main())


@pytest.mark.parametrize("fault", ["raises", "leaves a transaction"])
def test_configure_failing_on_checkout_raises_closes_and_logs_nothing(
    aio, pg_dsn: str, caplog, fault: str
) -> None:
    async def main() -> None:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="psycopg.pool")
        configured: list[Any] = []

        async def configure(conn: Any) -> None:
            configured.append(conn)
            if fault == "raises":
                raise RuntimeError("configure exploded")
            await conn.execute("SELECT 1")

        async with open_pool(pg_dsn, AsyncNullConnectionPool, max_size=1, configure=configure) as p:
            expected = RuntimeError if fault == "raises" else psycopg.ProgrammingError
            with pytest.raises(expected):
                await p.getconn()
            assert configured[0].closed
            assert logged(caplog, logging.WARNING) == [] and logged(caplog, logging.INFO) == []
            stats = p.get_stats()
            assert stats["pool_size"] == 0 and "connections_errors" not in stats

    aio(main())


class SmallRingAsyncPool(AsyncNullConnectionPool):  # type: ignore[type-arg]
    _min_slot_capacity = 2  # the ring starts small and must grow


def test_unlimited_pool_grows_its_ring_and_serves_real_connections(aio, pg_dsn: str, admin) -> None:
    async def main() -> None:
        async with open_pool(
            pg_dsn, SmallRingAsyncPool, max_size=0, kwargs={"application_name": "anull-unlimited"}
        ) as p:
            assert p._ring.capacity == 2
            conns = await asyncio.gather(*(p.getconn() for _ in range(7)))
            assert len({c.info.backend_pid for c in conns}) == 7
            assert p.get_stats()["pool_size"] == 7 and p.get_stats()["connections_num"] == 7
            p._ring.check_invariants()
            for c in conns:
                await p.putconn(c)
            assert all(c.closed for c in conns) and p.get_stats()["pool_size"] == 0
        await until(
            lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'anull-unlimited'"
            ).fetchone()
            == (0,),
            "the server has no connection of the pool left",
        )

    aio(main())


def test_ring_growth_and_the_slot_limit_on_stub_connections(aio) -> None:
    class Capped(SmallRingAsyncPool):
        _slot_limit = 5

    async def main() -> None:
        async with open_pool("", Capped, connection_class=AsyncStubConnection) as p:
            assert p._ring.capacity == 2
            conns = [await p.getconn() for _ in range(5)]
            assert p._ring.capacity == 5 and len(p._slots) == 5
            with pytest.raises(PoolTimeout):
                await p.getconn(timeout=0.05)
            assert p.get_stats()["connections_num"] == 5 and p.get_stats()["pool_size"] == 5
            h = await queued(p)
            await p.putconn(conns[0])
            assert await h.got is conns[0]  # handed over, no sixth connection
            await h.release()
            for c in conns[1:]:
                await p.putconn(c)
            assert p.get_stats()["pool_size"] == 0 and p.get_stats()["connections_num"] == 5
            await p.resize(0, 3)
            with pytest.raises(ValueError, match="more than a pool can hold"):
                await p.resize(0, 6)

    aio(main())


def test_budget_survives_failing_checks_cancellations_and_timeouts(aio, monkeypatch) -> None:
    # Stub connections, many tasks, max_size=3: checks fail (some breaking the
    # connection, some slow), tasks are cancelled at random points, requests
    # time out. After all that, nothing is held, no place under max_size is
    # lost, and every connection made was closed.
    import random

    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.001)
    made: list[Any] = []

    class Tracked(AsyncStubConnection):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            conn = await super().connect(conninfo, **kwargs)
            made.append(conn)
            return conn

    async def check(conn: Any) -> None:
        r = random.random()
        if r < 0.1:
            await conn.close()
            raise OSError("broken")
        if r < 0.3:
            raise RuntimeError("not now")
        if r < 0.4:
            await asyncio.sleep(0.001)

    async def main() -> None:
        async with open_pool(
            "", AsyncNullConnectionPool, connection_class=Tracked, max_size=3, check=check
        ) as p:

            async def work() -> None:
                for _ in range(40):
                    try:
                        conn = await p.getconn(timeout=random.choice([0.0, 0.01, 0.5]))
                    except PoolTimeout:
                        continue
                    try:
                        await asyncio.sleep(random.random() * 0.002)
                        if random.random() < 0.1:
                            await conn.close()
                    finally:  # also when cancelled meanwhile
                        await p.putconn(conn)

            for _ in range(5):
                tasks = [asyncio.ensure_future(work()) for _ in range(8)]
                await asyncio.sleep(random.random() * 0.02)
                for t in random.sample(tasks, 3):
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await until(lambda: not p._background, "background closes are done")
            stats = p.get_stats()
            assert stats["pool_size"] == 0 and stats["requests_waiting"] == 0, stats
            assert all(c.closed for c in made)
            held = [await p.getconn(timeout=1) for _ in range(3)]
            for c in held:
                await p.putconn(c)

    aio(main())
