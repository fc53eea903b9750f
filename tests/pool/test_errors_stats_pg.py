"""Exceptions, bad arguments, max_waiting, statistics, NullConnectionPool."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from fastpool import ConnectionPool, NullConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("cls", [PoolTimeout, PoolClosed, TooManyRequests])
def test_exceptions_are_psycopg_operational_errors(cls) -> None:
    assert issubclass(cls, psycopg.OperationalError)
    assert cls.__module__ == "fastpool"


BAD_ARGS = [
    ({"min_size": -1}, ValueError, "min_size cannot be negative"),
    ({"min_size": 4, "max_size": 2}, ValueError, "max_size must be greater or equal than min_size"),
    (
        {"min_size": 0, "max_size": 0},
        ValueError,
        "max_size must be greater than 0 when min_size is 0",
    ),
    ({"min_size": "4"}, TypeError, "min_size must be an int, got str"),
    ({"max_size": 2.5}, TypeError, "max_size must be an int or None, got float"),
    ({"num_workers": 0}, ValueError, "num_workers must be at least 1"),
    ({"timeout": -1}, ValueError, "timeout must be > 0"),
    ({"timeout": 0}, ValueError, "timeout must be > 0, got 0: with no time to wait"),
    ({"timeout": float("nan")}, ValueError, "timeout must be a number of seconds, got nan"),
    ({"max_size": 2**20 + 1}, ValueError, "max_size must be at most 1048576, got 1048577"),
    ({"min_size": 2**20 + 1}, ValueError, "min_size must be at most 1048576, got 1048577"),
    ({"timeout": "30"}, TypeError, "timeout must be a number of seconds, got str"),
    ({"max_waiting": -1}, ValueError, "max_waiting must be >= 0"),
    ({"max_lifetime": 0}, ValueError, "max_lifetime must be > 0"),
    ({"max_idle": -5}, ValueError, "max_idle must be > 0"),
    ({"reconnect_timeout": -1}, ValueError, "reconnect_timeout must be >= 0"),
    ({"check_bypass": -0.1}, ValueError, "check_bypass must be >= 0"),
    ({"name": 42}, TypeError, "name must be a str or None, got int"),
    ({"conninfo": 42}, TypeError, "conninfo must be a str or a callable returning one, got int"),
    (
        {"kwargs": ["autocommit"]},
        TypeError,
        "kwargs must be a dict, a callable returning one, or None",
    ),
    ({"configure": "setup"}, TypeError, "configure must be callable or None, got str"),
    ({"check": 1}, TypeError, "check must be callable or None, got int"),
    ({"reset": object()}, TypeError, "reset must be callable or None, got object"),
    ({"reconnect_failed": "x"}, TypeError, "reconnect_failed must be callable or None"),
    (
        {"connection_class": "psycopg.Connection"},
        TypeError,
        "connection_class must be a connection class",
    ),
    ({"open": "yes"}, TypeError, "open must be True, False or None, got str"),
]


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    BAD_ARGS,
    ids=[next(iter(a[0])) + "-" + str(i) for i, a in enumerate(BAD_ARGS)],
)
def test_bad_constructor_arguments_get_clear_errors(pg_dsn, kwargs, exc, msg) -> None:
    kwargs = dict(kwargs)
    conninfo = kwargs.pop("conninfo", pg_dsn)
    kwargs.setdefault("open", False)
    with pytest.raises(exc, match=msg):
        ConnectionPool(conninfo, **kwargs)


@pytest.mark.parametrize("timeout,exc", [("1", TypeError), (float("nan"), ValueError)])
def test_bad_getconn_timeout_is_rejected_even_with_idle_connections(
    make_pool, timeout, exc
) -> None:
    p = make_pool(min_size=1)
    p.wait()
    with pytest.raises(exc, match="timeout must be"):
        p.getconn(timeout=timeout)
    assert p.get_stats()["pool_available"] == 1


def test_too_many_requests_names_the_pool_and_the_count(make_pool) -> None:
    p = make_pool(min_size=1, max_waiting=1, name="busy")
    held = p.getconn()
    t = threading.Thread(target=lambda: pytest.raises(PoolTimeout, p.getconn, timeout=1.0))
    t.start()
    deadline = time.monotonic() + 5
    while p.get_stats()["requests_waiting"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(TooManyRequests, match="the pool 'busy' has already 1 requests waiting"):
        p.getconn(timeout=1.0)
    t.join()
    p.putconn(held)
    assert p.get_stats()["requests_errors"] == 2  # the TooManyRequests and the timeout


def test_max_waiting_counts_only_live_waiters(make_pool) -> None:
    p = make_pool(min_size=1, max_waiting=1)
    held = p.getconn()
    with pytest.raises(PoolTimeout):
        p.getconn(timeout=0.1)
    assert p.get_stats()["requests_waiting"] == 0
    # psycopg_pool would raise TooManyRequests here (it still counts the dead waiter)
    with pytest.raises(PoolTimeout):
        p.getconn(timeout=0.1)
    p.putconn(held)


def test_stats_keys_and_counters(make_pool) -> None:
    p = make_pool(min_size=2, max_size=2)
    p.wait()
    stats = p.get_stats()
    assert {
        k: stats[k]
        for k in ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting")
    } == {"pool_min": 2, "pool_max": 2, "pool_size": 2, "pool_available": 2, "requests_waiting": 0}
    assert "requests_num" not in stats  # counters appear once non-zero
    assert stats["connections_num"] == 2 and "connections_errors" not in stats
    with p.connection():
        time.sleep(0.02)
    c = p.getconn()
    p.putconn(c)
    stats = p.get_stats()
    assert stats["requests_num"] == 2
    assert stats["usage_ms"] >= 20  # only the connection() block counts
    a, b = p.getconn(), p.getconn()
    with pytest.raises(PoolTimeout):
        p.getconn(timeout=0.05)
    p.putconn(a)
    p.putconn(b)
    stats = p.pop_stats()
    assert stats["requests_queued"] == 1 and stats["requests_errors"] == 1
    assert stats["requests_wait_ms"] >= 40
    after = p.get_stats()
    assert "requests_num" not in after and after["pool_size"] == 2


def test_requests_num_counts_calls_on_a_closed_pool(make_pool) -> None:
    p = make_pool(min_size=1)
    p.close()
    with pytest.raises(PoolClosed):
        p.getconn()
    assert p.get_stats()["requests_num"] == 1


def test_connection_errors_are_counted(make_pool) -> None:
    p = make_pool(conninfo="host=127.0.0.1 port=1 connect_timeout=1", min_size=1)
    deadline = time.monotonic() + 5
    while "connections_errors" not in p.get_stats() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert p.get_stats()["connections_errors"] >= 1


def test_null_pool_requires_min_size_zero(pg_dsn) -> None:
    with pytest.raises(ValueError, match="null pools must have min_size = 0"):
        NullConnectionPool(pg_dsn, min_size=1, open=False)


def test_null_pool_opens_per_request_and_closes_on_return(make_pool) -> None:
    p = make_pool(cls=NullConnectionPool, max_size=2)
    p.wait()
    with p.connection() as c1:
        pid1 = c1.info.backend_pid
    assert c1.closed
    with p.connection() as c2:
        assert c2.info.backend_pid != pid1
    stats = p.get_stats()
    assert stats["pool_size"] == 0 and stats["connections_num"] == 3  # wait() made one too


def test_null_pool_queues_beyond_max_size_and_hands_over(make_pool) -> None:
    p = make_pool(cls=NullConnectionPool, max_size=1)
    held = p.getconn()
    got = []
    t = threading.Thread(target=lambda: got.append(p.getconn(timeout=5)))
    t.start()
    time.sleep(0.2)
    assert p.get_stats()["requests_waiting"] == 1
    p.putconn(held)
    t.join()
    assert got[0] is held and not held.closed  # handed straight to the waiter
    p.putconn(got[0])
    assert held.closed


def test_null_pool_close_really_closes(make_pool) -> None:
    p = make_pool(cls=NullConnectionPool, close_returns=True)
    assert p.close_returns is False
    conn = p.getconn()
    conn.close()
    assert conn.closed
