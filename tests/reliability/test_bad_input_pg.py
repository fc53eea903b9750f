"""Bad input, table-driven, for the four pool classes: every wrong argument to
a method gets an error whose type and message say what to fix, and leaves the
pool as it was (same connections, all idle, books balanced). Also: use after
close, callbacks that raise, and no DSN password in any repr, log line,
statistic or exception. (Constructor arguments: tests/pool/test_errors_stats_pg.py.)"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
import pytest

from fastpool import (
    AsyncConnectionPool,
    AsyncNullConnectionPool,
    ConnectionPool,
    NullConnectionPool,
    PoolClosed,
    PoolTimeout,
)

pytestmark = pytest.mark.postgres

# (method, args, exception, message) on an open ConnectionPool(min_size=2, max_size=4)
BAD_CALLS = [
    ("getconn", ("1",), TypeError, "timeout must be a number of seconds, got str"),
    # A timeout <= 0 is no time left (psycopg_pool): PoolTimeout, nothing taken.
    ("getconn", (-1,), PoolTimeout, "couldn't get a connection after -1.00 sec"),
    ("getconn", (0,), PoolTimeout, "couldn't get a connection after 0.00 sec"),
    ("getconn", (float("nan"),), ValueError, "timeout must be a number of seconds, got nan"),
    ("getconn", (True,), TypeError, "timeout must be a number of seconds, got bool"),
    ("connection", (-0.5,), PoolTimeout, "couldn't get a connection after -0.50 sec"),
    ("wait", ("soon",), TypeError, "timeout must be a number of seconds, got str"),
    ("open", (False, -1), ValueError, "timeout must be >= 0"),
    ("resize", (-1,), ValueError, "min_size cannot be negative"),
    ("resize", (3, 2), ValueError, "max_size must be greater or equal than min_size"),
    ("resize", ("2",), TypeError, "min_size must be an int, got str"),
    ("resize", (2, 4.0), TypeError, "max_size must be an int or None, got float"),
    ("resize", (2, 10**6), ValueError, "is more than this pool can grow to"),
    ("putconn", (None,), ValueError, "it doesn't come from any pool"),
    ("putconn", (42,), ValueError, "it doesn't come from any pool"),
    ("close", ("now",), TypeError, "timeout must be a number of seconds, got str"),
]


def assert_unchanged(pool, size: int) -> None:
    stats = pool.get_stats()
    assert (stats["pool_size"], stats["pool_available"], stats["requests_waiting"]) == (
        size,
        size,
        0,
    ), stats
    assert not pool.closed
    pool._ring.check_invariants()


@pytest.mark.parametrize(
    "method,args,exc,msg", BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)]
)
def test_sync_bad_call(pg_dsn: str, method: str, args, exc, msg) -> None:
    with ConnectionPool(pg_dsn, min_size=2, max_size=4) as pool:
        pool.wait()
        with pytest.raises(exc, match=msg):
            result = getattr(pool, method)(*args)
            if method == "connection":
                with result:
                    pass
        assert_unchanged(pool, 2)


@pytest.mark.parametrize(
    "method,args,exc,msg", BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)]
)
def test_async_bad_call(pg_dsn: str, method: str, args, exc, msg) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(pg_dsn, min_size=2, max_size=4, open=False) as pool:
            await pool.wait()
            with pytest.raises(exc, match=msg):
                if method == "connection":
                    async with pool.connection(*args):
                        pass
                else:
                    await getattr(pool, method)(*args)
            assert_unchanged(pool, 2)

    asyncio.run(main())


@pytest.mark.parametrize("cls", [NullConnectionPool, AsyncNullConnectionPool])
@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        ({"min_size": 1}, ValueError, "null pools must have min_size = 0"),
        ({"max_size": -1}, ValueError, "max_size cannot be negative"),
        ({"max_size": "4"}, TypeError, "max_size must be an int or None, got str"),
        ({"timeout": -1}, ValueError, "timeout must be > 0"),
        ({"timeout": 0}, ValueError, "every getconn.. would raise PoolTimeout"),
        ({"max_size": 2**20 + 1}, ValueError, "max_size must be at most 1048576"),
    ],
)
def test_null_pool_bad_arguments(pg_dsn: str, cls, kwargs, exc, msg) -> None:
    with pytest.raises(exc, match=msg):
        cls(pg_dsn, open=False, **kwargs)


def test_double_and_foreign_putconn_leave_the_pool_consistent(pg_dsn: str) -> None:
    with (
        ConnectionPool(pg_dsn, min_size=2, name="a") as a,
        ConnectionPool(pg_dsn, min_size=1, name="b") as b,
    ):
        a.wait()
        b.wait()
        conn = a.getconn()
        with pytest.raises(ValueError, match="it comes from pool 'a'"):
            b.putconn(conn)
        a.putconn(conn)
        with pytest.raises(ValueError, match="it was already returned"):
            a.putconn(conn)
        assert_unchanged(a, 2)
        assert_unchanged(b, 1)


def test_every_method_after_close(pg_dsn: str) -> None:
    pool = ConnectionPool(pg_dsn, min_size=1, name="done", open=True)
    pool.wait()
    held = pool.getconn()
    pool.close()
    for call in (pool.getconn, pool.wait, lambda: pool.connection().__enter__()):
        with pytest.raises(PoolClosed, match="the pool 'done' is already closed"):
            call()
    with pytest.raises(PoolClosed, match="cannot be reused"):
        pool.open()
    pool.check()  # no-op on a closed pool
    pool.drain()  # no-op
    pool.close()  # idempotent
    pool.putconn(held)  # accepted, and closed
    assert held.closed
    assert pool.get_stats()["pool_size"] == 0


def test_callbacks_that_raise(pg_dsn: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")

    def configure(conn) -> None:
        raise RuntimeError("configure exploded")

    pool = ConnectionPool(
        pg_dsn,
        min_size=1,
        configure=configure,
        reconnect_timeout=0.5,
        reconnect_failed=lambda p: 1 / 0,
        open=True,
    )
    with pytest.raises(PoolTimeout, match="pool initialization incomplete"):
        pool.wait(timeout=1.0)
    assert pool.closed
    messages = [r.getMessage() for r in caplog.records]
    assert any("configure exploded" in m for m in messages), messages

    calls = {"check": 0, "reset": 0}

    def check(conn) -> None:
        calls["check"] += 1
        if calls["check"] == 1:
            raise RuntimeError("check exploded")

    def reset(conn) -> None:
        calls["reset"] += 1
        raise RuntimeError("reset exploded")

    with ConnectionPool(pg_dsn, min_size=2, check=check, reset=reset, timeout=5) as pool:
        pool.wait()
        # The first check fails: as in psycopg_pool, that connection goes back
        # through the return path, whose reset explodes (closed: counted lost),
        # and another connection is used.
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pool.get_stats()["connections_lost"] == 1
        # the failing reset discarded the returned connection; the pool refills
        deadline = time.monotonic() + 10
        while pool.get_stats()["pool_available"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert_unchanged(pool, 2)
    assert calls["reset"] == 2  # the connection that failed its check, then the one returned


def test_no_password_in_reprs_logs_stats_or_errors(pg_dsn: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-Pa55"
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    info["password"] = secret  # ignored by a trust server, still in every connect
    dsn = psycopg.conninfo.make_conninfo(**info)
    texts: list[str] = []
    with ConnectionPool(dsn, min_size=1, timeout=0.2) as pool:
        assert secret in pool.conninfo  # it is used, as given
        pool.wait()
        held = pool.getconn()
        texts += [repr(pool), str(pool), repr(held), str(pool.get_stats())]
        try:
            pool.getconn()
        except PoolTimeout as ex:
            texts.append(repr(ex))
        pool.putconn(held)
    bad = psycopg.conninfo.make_conninfo(dsn, port=1, connect_timeout=1)
    with ConnectionPool(bad, min_size=1) as pool:
        try:
            pool.wait(timeout=0.5)
        except PoolTimeout as ex:
            texts.append(repr(ex))
        texts.append(repr(pool))
    texts += [r.getMessage() for r in caplog.records]
    assert any("connect" in t for t in texts)  # the failed connects were logged
    leaked = [t for t in texts if secret in t]
    assert leaked == []
