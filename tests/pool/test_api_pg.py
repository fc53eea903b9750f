"""ConnectionPool's psycopg_pool API against a real PostgreSQL: construction,
open/close, wait, getconn/putconn, connection(), resize, check, drain."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

import fastpool
from fastpool import ConnectionPool, PoolClosed, PoolTimeout

pytestmark = pytest.mark.postgres


def test_defaults_match_psycopg_pool(pg_dsn: str) -> None:
    p = ConnectionPool(pg_dsn, open=False)
    assert p.min_size == p.max_size == 4
    assert p.timeout == 30.0 and p.max_waiting == 0
    assert p.max_lifetime == 3600.0 and p.max_idle == 600.0
    assert p.reconnect_timeout == 300.0 and p.num_workers == 3
    assert p.close_returns is False and p.connection_class is psycopg.Connection
    assert p.name.startswith("pool-") and p.closed
    assert repr(p).startswith(f"<fastpool.pool.ConnectionPool {p.name!r} at 0x")
    assert ConnectionPool(pg_dsn, open=False).name != p.name
    with pytest.raises(AttributeError):
        p.min_size = 3  # type: ignore[misc]


def test_context_manager_opens_and_closes(pg_dsn: str) -> None:
    with ConnectionPool(pg_dsn, min_size=2) as p:
        assert not p.closed
        p.wait()
        assert p.get_stats()["pool_available"] == 2
        with p.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn._pool is p
    assert p.closed
    assert conn.closed  # returned to a closed pool: closed


def test_getconn_before_open_and_after_close(pg_dsn: str) -> None:
    p = ConnectionPool(pg_dsn, open=False, name="later")
    with pytest.raises(PoolClosed, match="the pool 'later' is not open yet"):
        p.getconn()
    p.open()
    p.close()
    with pytest.raises(PoolClosed, match="the pool 'later' is already closed"):
        p.getconn()
    with pytest.raises(PoolClosed, match="cannot be reused"):
        p.open()


def test_open_wait_fills_min_size(make_pool) -> None:
    p = make_pool(min_size=3, open=False)
    p.open(wait=True, timeout=10)
    assert p.get_stats()["pool_available"] == 3


def test_wait_timeout_closes_the_pool(make_pool) -> None:
    p = make_pool(conninfo="host=127.0.0.1 port=1 connect_timeout=1", min_size=1)
    with pytest.raises(PoolTimeout, match="pool initialization incomplete after 0.3 sec"):
        p.wait(timeout=0.3)
    assert p.closed


def test_implicit_open_warns_once_on_first_use(pg_dsn: str) -> None:
    with pytest.warns(DeprecationWarning, match="'open' parameter will become 'False'"):
        p = ConnectionPool(pg_dsn, min_size=1)
        assert not p.closed  # opened by the constructor, no warning yet
        p.wait()
    try:
        with p.connection():  # no second warning (filterwarnings=error would fail it)
            pass
    finally:
        p.close()


def test_callable_conninfo_and_kwargs_are_called_per_attempt(pg_dsn: str, make_pool) -> None:
    calls = {"conninfo": 0, "kwargs": 0}

    def conninfo() -> str:
        calls["conninfo"] += 1
        return pg_dsn

    def kwargs() -> dict:
        calls["kwargs"] += 1
        return {"application_name": f"fp-{calls['kwargs']}"}

    p = make_pool(conninfo=conninfo, kwargs=kwargs, min_size=3)
    p.wait()
    assert calls == {"conninfo": 3, "kwargs": 3}
    names = set()
    for _ in range(3):
        with p.connection() as conn:
            names.add(conn.execute("SHOW application_name").fetchone()[0])
    assert names == {"fp-1", "fp-2", "fp-3"}


def test_custom_connection_class_is_used(make_pool) -> None:
    class MyConnection(psycopg.Connection):
        pass

    p = make_pool(connection_class=MyConnection, min_size=1)
    with p.connection() as conn:
        assert type(conn) is MyConnection


def test_configure_runs_once_per_new_connection(make_pool) -> None:
    seen = []

    def configure(conn) -> None:
        seen.append(conn.info.backend_pid)
        conn.execute("SET application_name = 'configured'")
        conn.commit()

    p = make_pool(configure=configure, min_size=2)
    p.wait()
    for _ in range(4):
        with p.connection() as conn:
            assert conn.execute("SHOW application_name").fetchone() == ("configured",)
    assert len(seen) == 2


def test_configure_leaving_a_transaction_discards_the_connection(make_pool, caplog) -> None:
    def configure(conn) -> None:
        conn.execute("SELECT 1")  # opens a transaction and leaves it

    p = make_pool(configure=configure, min_size=1)
    time.sleep(0.5)
    assert p.get_stats()["pool_available"] == 0
    assert any(
        "left in status INTRANS by configure function" in m
        for m in [r.getMessage() for r in caplog.records]
    )


def test_idle_connections_are_used_round_robin(make_pool) -> None:
    p = make_pool(min_size=4)
    p.wait()
    pids = []
    for _ in range(8):
        with p.connection() as conn:
            pids.append(conn.info.backend_pid)
    assert len(set(pids)) == 4
    assert all(pids.count(pid) == 2 for pid in set(pids))


def test_resize_grows_and_shrink_keeps_min(make_pool) -> None:
    p = make_pool(min_size=1, max_size=2)
    p.wait()
    p.resize(3, 5)
    assert (p.min_size, p.max_size) == (3, 5)
    p.wait()
    assert p.get_stats()["pool_size"] == 3
    with pytest.raises(ValueError, match="max_size must be greater or equal than min_size"):
        p.resize(4, 2)
    with pytest.raises(ValueError, match="more than this pool can grow to"):
        p.resize(1, 10_000)


def test_check_replaces_a_killed_connection(make_pool, admin) -> None:
    from .conftest import kill_backend

    p = make_pool(min_size=2)
    p.wait()
    with p.connection() as conn:
        victim = conn.info.backend_pid
    kill_backend(admin, victim)
    p.check()
    p.wait()
    pids = set()
    for _ in range(2):
        with p.connection() as conn:
            pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert victim not in pids and len(pids) == 2
    assert p.get_stats()["connections_lost"] == 1


def test_check_connection_raises_on_a_dead_connection(pg_dsn: str, admin) -> None:
    from .conftest import kill_backend

    with psycopg.connect(pg_dsn) as conn:
        ConnectionPool.check_connection(conn)
        assert conn.autocommit is False
        kill_backend(admin, conn.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            ConnectionPool.check_connection(conn)


def test_drain_replaces_idle_now_and_checked_out_on_return(make_pool) -> None:
    p = make_pool(min_size=2)
    p.wait()
    held = p.getconn()
    old_pids = {held.info.backend_pid}
    with p.connection() as conn:
        old_pids.add(conn.info.backend_pid)
    p.drain()
    p.putconn(held)
    assert held.closed
    p.wait()
    for _ in range(2):
        with p.connection() as conn:
            assert conn.info.backend_pid not in old_pids


def test_close_wakes_waiters_promptly(make_pool) -> None:
    p = make_pool(min_size=1, timeout=30)
    held = p.getconn()
    errors = []

    def waiter() -> None:
        try:
            p.getconn()
        except PoolClosed as ex:
            errors.append(ex)

    ts = [threading.Thread(target=waiter) for _ in range(3)]
    for t in ts:
        t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    p.close()
    for t in ts:
        t.join(10)
    assert time.monotonic() - t0 < 10  # nobody waited for their 30 s timeout
    assert len(errors) == 3 and all("is closed" in str(e) for e in errors)
    p.putconn(held)
    assert held.closed


def test_getconn_timeout_raises_pool_timeout_without_hanging(make_pool) -> None:
    p = make_pool(min_size=1)
    held = p.getconn()
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout, match=r"couldn't get a connection after 0.20 sec"):
        p.getconn(timeout=0.2)
    assert time.monotonic() - t0 < 5
    p.putconn(held)


def test_timeout_zero_means_no_time_left(make_pool) -> None:
    # As psycopg_pool: getconn(timeout=deadline - monotonic()) past the deadline
    # fails, even with a connection idle (more: tests/reliability/test_edge_values_pg.py).
    p = make_pool(min_size=1)
    p.wait()
    with pytest.raises(PoolTimeout, match="couldn't get a connection after 0.00 sec"):
        p.getconn(timeout=0)
    assert p.get_stats()["pool_available"] == 1


def test_public_names(pg_dsn: str) -> None:
    for name in (
        "ConnectionPool",
        "NullConnectionPool",
        "PoolTimeout",
        "PoolClosed",
        "TooManyRequests",
    ):
        assert hasattr(fastpool, name)
    assert isinstance(fastpool.__version__, str)


def test_connection_goes_through_overridden_getconn_and_putconn(pg_dsn) -> None:
    calls = []

    class InstrumentedPool(ConnectionPool):
        def getconn(self, timeout=None):
            calls.append("get")
            return super().getconn(timeout)

        def putconn(self, conn):
            calls.append("put")
            super().putconn(conn)

    with InstrumentedPool(pg_dsn, min_size=1) as p:
        with p.connection() as conn:
            conn.execute("SELECT 1")
    assert calls == ["get", "put"]
