"""Edge values of times, for the four psycopg pools against a real server.

* ``inf`` means "no limit" everywhere a number of seconds is taken, and so does
  a value too large for the threading primitives (``1e10``, ``10**19``,
  ``10**400``): nothing raises OverflowError, and a far-off maintenance time
  (``max_idle=inf``) doesn't stop the other maintenance tasks.
* A getconn() timeout <= 0 means the caller has no time left, as in
  psycopg_pool: PoolTimeout, even with a connection idle, counted in
  requests_num but not in requests_errors (psycopg_pool's stats).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading

import pytest

from fastpool import (
    AsyncConnectionPool,
    AsyncNullConnectionPool,
    ConnectionPool,
    NullConnectionPool,
    PoolClosed,
    PoolTimeout,
)
from fastpool.base import AttemptWithBackoff
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.postgres

HUGE = [math.inf, 1e10, 10**19, 10**400]
HUGE_IDS = ["inf", "1e10", "10**19", "10**400"]
# (timeout, how the PoolTimeout message shows it)
NO_TIME_LEFT = [
    (0, "0.00"),
    (0.0, "0.00"),
    (-0.0, "-0.00"),
    (-1e-9, "-0.00"),
    (-2.5, "-2.50"),
    (-math.inf, "-inf"),
    (-(10**400), "-inf"),
]


def counted(pool) -> tuple[int, int]:
    stats = pool.get_stats()
    return stats.get("requests_num", 0), stats.get("requests_errors", 0)


# -- getconn() with no time left ---------------------------------------------


@pytest.mark.parametrize("timeout,shown", NO_TIME_LEFT, ids=[s for _, s in NO_TIME_LEFT])
@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_no_time_left_is_a_timeout_even_with_a_connection_idle(pg_dsn, timeout, shown, cls) -> None:
    sized = {"min_size": 1} if cls is ConnectionPool else {"max_size": 2}
    with cls(pg_dsn, open=True, **sized) as pool:
        pool.wait()
        before = pool.get_stats()
        for get in (pool.getconn, lambda t: pool.connection(t).__enter__()):
            with pytest.raises(PoolTimeout, match=f"^couldn't get a connection after {shown} sec$"):
                get(timeout)
        after = pool.get_stats()
        assert after.get("requests_num", 0) == before.get("requests_num", 0) + 2
        assert "requests_errors" not in after  # psycopg_pool doesn't count them either
        # nothing was taken, queued or connected
        for key in ("pool_size", "pool_available", "requests_waiting", "connections_num"):
            assert after.get(key) == before.get(key), key
        assert "requests_queued" not in after
        with pool.connection(timeout=5) as conn:  # and the pool still serves
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("timeout,shown", NO_TIME_LEFT, ids=[s for _, s in NO_TIME_LEFT])
@pytest.mark.parametrize("cls", [AsyncConnectionPool, AsyncNullConnectionPool])
def test_async_no_time_left_is_a_timeout_even_with_a_connection_idle(
    pg_dsn, timeout, shown, cls
) -> None:
    async def main() -> None:
        sized = {"min_size": 1} if cls is AsyncConnectionPool else {"max_size": 2}
        async with cls(pg_dsn, open=False, **sized) as pool:
            await pool.wait()
            before = pool.get_stats()
            with pytest.raises(PoolTimeout, match=f"^couldn't get a connection after {shown} sec$"):
                await pool.getconn(timeout)
            with pytest.raises(PoolTimeout, match=f"^couldn't get a connection after {shown} sec$"):
                async with pool.connection(timeout):
                    pass
            after = pool.get_stats()
            assert after.get("requests_num", 0) == before.get("requests_num", 0) + 2
            assert "requests_errors" not in after
            for key in ("pool_size", "pool_available", "requests_waiting", "connections_num"):
                assert after.get(key) == before.get(key), key
            async with pool.connection(timeout=5) as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)

    asyncio.run(main())


@pytest.mark.parametrize(
    "cls", [ConnectionPool, NullConnectionPool, AsyncConnectionPool, AsyncNullConnectionPool]
)
def test_a_closed_pool_says_closed_before_no_time_left(pg_dsn, cls) -> None:
    # psycopg_pool's order: the pool's state first, then the caller's time.
    pool = cls(pg_dsn, open=False, name="shut", min_size=0, max_size=1)
    with pytest.raises(PoolClosed, match="the pool 'shut' is not open yet"):
        if cls in (AsyncConnectionPool, AsyncNullConnectionPool):
            asyncio.run(pool.getconn(timeout=0))
        else:
            pool.getconn(timeout=0)
    assert counted(pool) == (1, 0)


@pytest.mark.parametrize(
    "bad,exc,msg",
    [
        (float("nan"), ValueError, "timeout must be a number of seconds, got nan"),
        ("0", TypeError, "timeout must be a number of seconds, got str"),
    ],
)
@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_what_is_not_a_number_of_seconds_is_still_an_error(pg_dsn, bad, exc, msg, cls) -> None:
    with cls(pg_dsn, open=True, **({"min_size": 1} if cls is ConnectionPool else {})) as pool:
        pool.wait()
        with pytest.raises(exc, match=msg):
            pool.getconn(bad)


def test_the_pool_timeout_must_leave_time_to_wait(pg_dsn) -> None:
    for cls in (ConnectionPool, NullConnectionPool, AsyncConnectionPool, AsyncNullConnectionPool):
        for value in (0, 0.0, -1):
            with pytest.raises(
                ValueError, match="timeout must be > 0.*every getconn.. would raise PoolTimeout"
            ):
                cls(pg_dsn, open=False, timeout=value)


# -- infinite and huge waits ------------------------------------------------------


@pytest.mark.parametrize("timeout", HUGE, ids=HUGE_IDS)
@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_huge_getconn_timeout_waits_for_a_returned_connection(pg_dsn, timeout, cls) -> None:
    with cls(
        pg_dsn, open=True, **({"min_size": 1} if cls is ConnectionPool else {"max_size": 1})
    ) as pool:
        pool.wait(timeout=timeout)
        held = pool.getconn(timeout=timeout)  # idle (or connected: the null pool) at once
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(pool.getconn(timeout=timeout)))
        waiter.start()
        wait_until(lambda: pool.get_stats()["requests_waiting"] == 1, "the waiter to queue")
        pool.putconn(held)
        waiter.join(10)
        assert got and got[0] is held  # handed over, nothing raised
        pool.putconn(got[0])
        with pool.connection(timeout=timeout) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert "requests_errors" not in pool.get_stats()


@pytest.mark.parametrize("timeout", HUGE, ids=HUGE_IDS)
@pytest.mark.parametrize("cls", [AsyncConnectionPool, AsyncNullConnectionPool])
def test_async_huge_getconn_timeout_waits_for_a_returned_connection(pg_dsn, timeout, cls) -> None:
    async def main() -> None:
        sized = {"min_size": 1} if cls is AsyncConnectionPool else {"max_size": 1}
        async with cls(pg_dsn, open=False, **sized) as pool:
            await pool.wait(timeout=timeout)
            held = await pool.getconn(timeout=timeout)
            waiter = asyncio.ensure_future(pool.getconn(timeout=timeout))
            await async_wait_until(
                lambda: pool.get_stats()["requests_waiting"] == 1, "the waiter to queue"
            )
            await pool.putconn(held)
            got = await asyncio.wait_for(waiter, 10)
            assert got is held
            await pool.putconn(got)
            async with pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
            assert "requests_errors" not in pool.get_stats()

    asyncio.run(main())


@pytest.mark.parametrize("timeout", HUGE, ids=HUGE_IDS)
def test_huge_open_wait_and_close_timeouts(pg_dsn, timeout) -> None:
    for cls in (ConnectionPool, NullConnectionPool):
        pool = cls(pg_dsn, open=False, **({"min_size": 1} if cls is ConnectionPool else {}))
        pool.open(wait=True, timeout=timeout)
        pool.wait(timeout=timeout)
        workers = list(getattr(pool._workers, "threads", []))
        pool.close(timeout=timeout)  # joins the workers: no OverflowError
        assert pool.closed and not any(t.is_alive() for t in workers)

    async def main() -> None:
        for cls in (AsyncConnectionPool, AsyncNullConnectionPool):
            pool = cls(
                pg_dsn, open=False, **({"min_size": 1} if cls is AsyncConnectionPool else {})
            )
            await pool.open(wait=True, timeout=timeout)
            await pool.wait(timeout=timeout)
            await pool.close(timeout=timeout)
            assert pool.closed

    asyncio.run(main())


NO_LIMIT = (
    "timeout",
    "max_lifetime",
    "max_idle",
    "reconnect_timeout",
    "check_bypass",
    "leak_threshold",
)


@pytest.mark.parametrize("value", HUGE, ids=HUGE_IDS)
def test_every_time_argument_takes_no_limit(pg_dsn, value) -> None:
    kwargs = {k: value for k in NO_LIMIT}
    seconds = math.inf if value == 10**400 else float(value)
    checks: list = []
    with ConnectionPool(pg_dsn, min_size=1, open=True, check=checks.append, **kwargs) as pool:
        pool.wait()
        for _ in range(3):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
        # check_bypass: every connection was used (made) less than that ago
        assert checks == []
        # leak_threshold=inf: never reported, so not watched (no stack captured)
        assert pool.leak_threshold == (None if seconds == math.inf else seconds)
        assert pool.timeout == pool.max_idle == pool.max_lifetime == seconds
        workers = pool._workers.threads
        assert all(t.is_alive() for t in workers)
    with NullConnectionPool(pg_dsn, open=True, **kwargs) as null:
        with null.connection() as conn:
            conn.execute("SELECT 1")
        assert null.timeout == seconds

    async def main() -> None:
        async with AsyncConnectionPool(pg_dsn, min_size=1, open=False, **kwargs) as apool:
            await apool.wait()
            async with apool.connection() as conn:
                await conn.execute("SELECT 1")
            assert apool.leak_threshold == (None if seconds == math.inf else seconds)
        async with AsyncNullConnectionPool(pg_dsn, open=False, **kwargs) as anull:
            async with anull.connection() as conn:
                await conn.execute("SELECT 1")
            assert anull.timeout == seconds

    asyncio.run(main())


# -- maintenance goes on when one of its periods is infinite ---------------------


@pytest.mark.parametrize("max_idle", [math.inf, 1e300, 10**19], ids=["inf", "1e300", "10**19"])
def test_expiry_goes_on_with_a_far_off_max_idle(pg_dsn, max_idle) -> None:
    # The shrink task is due "never": the scheduler must still run the expiry
    # sweep, again and again (each sweep replaces the idle, expired connection).
    with ConnectionPool(pg_dsn, min_size=1, max_lifetime=0.2, max_idle=max_idle, open=True) as pool:
        pool.wait()
        wait_until(
            lambda: pool.get_stats().get("connections_num", 0) >= 4, "expired connections replaced"
        )
        assert all(t.is_alive() for t in pool._workers.threads)


@pytest.mark.parametrize("max_lifetime", [math.inf, 1e300], ids=["inf", "1e300"])
def test_shrinking_goes_on_with_an_infinite_lifetime(pg_dsn, max_lifetime) -> None:
    with ConnectionPool(
        pg_dsn, min_size=1, max_size=2, max_idle=0.2, max_lifetime=max_lifetime, open=True
    ) as pool:
        pool.wait()
        a = pool.getconn()
        b = pool.getconn(timeout=10)  # grows to 2
        pool.putconn(a)
        pool.putconn(b)
        wait_until(lambda: pool.get_stats()["pool_size"] == 1, "the unused connection closed")
        with pool.connection() as conn:  # never expires: the same one keeps serving
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_async_expiry_and_shrinking_go_on_with_infinite_periods(pg_dsn) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(
            pg_dsn, min_size=1, max_lifetime=0.2, max_idle=math.inf, open=False
        ) as pool:
            await pool.wait()
            await async_wait_until(
                lambda: pool.get_stats().get("connections_num", 0) >= 4,
                "expired connections replaced",
            )
        async with AsyncConnectionPool(
            pg_dsn, min_size=1, max_size=2, max_idle=0.2, max_lifetime=math.inf, open=False
        ) as pool:
            await pool.wait()
            a = await pool.getconn()
            b = await pool.getconn(timeout=10)
            await pool.putconn(a)
            await pool.putconn(b)
            await async_wait_until(
                lambda: pool.get_stats()["pool_size"] == 1, "the unused connection closed"
            )

    asyncio.run(main())


def test_reconnection_goes_on_without_a_time_limit(pg_dsn, monkeypatch) -> None:
    # reconnect_timeout=inf: never give up (and never call reconnect_failed).
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.01)
    gave_up: list = []
    failures = [1, 2, 3]

    def configure(conn) -> None:
        if failures:
            failures.pop()
            raise RuntimeError("not yet")

    with ConnectionPool(
        pg_dsn,
        min_size=1,
        reconnect_timeout=math.inf,
        configure=configure,
        reconnect_failed=gave_up.append,
        open=True,
    ) as pool:
        pool.wait(timeout=20)
        assert not failures and gave_up == []


# -- a task that raises doesn't stop the pool's workers --------------------------


def test_a_callback_raising_systemexit_in_a_worker_does_not_stop_the_pool(
    pg_dsn, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.01)
    calls: list = []

    def configure(conn) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit("configure wants out")

    with ConnectionPool(pg_dsn, min_size=1, num_workers=1, configure=configure, open=True) as pool:
        pool.wait(timeout=20)  # the one worker lived on, and the attempt was retried
        assert len(calls) == 2
        assert all(t.is_alive() for t in pool._workers.threads)
        stats = pool.get_stats()
        assert (stats["pool_size"], stats["pool_available"]) == (1, 1)
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and "SystemExit" in r.getMessage()
    ]
    assert len(errors) == 1


def test_async_configure_raising_cancelled_error_does_not_stop_the_pool(
    pg_dsn, monkeypatch, caplog
) -> None:
    import sys

    if sys.version_info < (3, 11):
        pytest.skip("a task's own CancelledError is told apart from 3.11 on")
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.01)
    calls: list = []

    async def configure(conn) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise asyncio.CancelledError()  # not a cancellation of the worker

    async def main() -> None:
        async with AsyncConnectionPool(
            pg_dsn, min_size=1, num_workers=1, configure=configure, open=False
        ) as pool:
            await pool.wait(timeout=20)
            assert len(calls) == 2
            assert not any(t.done() for t in pool._workers.tasks)
            stats = pool.get_stats()
            assert (stats["pool_size"], stats["pool_available"]) == (1, 1)

    asyncio.run(main())
    assert any("CancelledError" in r.getMessage() for r in caplog.records)


# -- sizes past the ring's capacity ---------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"min_size": 0, "max_size": 2**20 + 1}, "max_size"),
        ({"min_size": 2**20 + 1}, "min_size"),
        ({"min_size": 1, "max_size": 10**30}, "max_size"),
    ],
)
def test_sizes_past_the_capacity_name_the_argument(pg_dsn, kwargs, name) -> None:
    for cls in (ConnectionPool, AsyncConnectionPool):
        with pytest.raises(ValueError, match=f"^{name} must be at most 1048576, got"):
            cls(pg_dsn, open=False, **kwargs)
    if name == "max_size":
        for cls in (NullConnectionPool, AsyncNullConnectionPool):
            with pytest.raises(ValueError, match="^max_size must be at most 1048576, got"):
                cls(pg_dsn, open=False, max_size=kwargs["max_size"])
