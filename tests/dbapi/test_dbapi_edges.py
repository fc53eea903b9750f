"""fastpool.Pool at the edges (sqlite3 connections: no server needed).

* Timeouts: here ``timeout`` is how long to wait, so 0 means "don't wait" (an
  idle connection is still handed out), as in the pools of psycopg2, MySQL
  Connector and SQLAlchemy; a negative one is an error; ``inf`` and huge
  values wait without limit. (The psycopg pools follow psycopg_pool instead:
  tests/reliability/test_edge_values_pg.py.)
* sqlite3 connections made with ``check_same_thread=True`` (sqlite3's
  default) can't be shared between threads: the pool says so at once, and
  how to fix it, instead of failing every use and reconnecting.
"""

from __future__ import annotations

import math
import sqlite3
import threading

import pytest

from fastpool import Pool, PoolTimeout
from fastpool.base import AttemptWithBackoff
from tests.support.waiting import wait_until


def shareable(path: str = ":memory:"):
    return lambda: sqlite3.connect(path, check_same_thread=False)


@pytest.fixture
def one():
    """A pool of exactly one connection, made."""
    p = Pool(shareable(), min_size=1, max_size=1, timeout=5)
    p.wait()
    yield p
    p._ring.check_invariants()
    p.close()


def test_timeout_zero_hands_out_an_idle_connection(one) -> None:
    with one.connection(timeout=0) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    conn = one.getconn(timeout=0.0)
    conn.close()
    assert one.get_stats()["requests_num"] == 2


def test_timeout_zero_does_not_wait_when_none_is_idle(one) -> None:
    held = one.getconn()
    with pytest.raises(PoolTimeout, match="couldn't get a connection after 0.00 sec"):
        one.getconn(timeout=0)
    stats = one.get_stats()
    assert stats["requests_errors"] == 1 and stats["requests_waiting"] == 0
    held.close()
    assert one.get_stats()["pool_available"] == 1  # not handed to the one that gave up


def test_a_pool_timeout_of_zero_never_waits() -> None:
    # pool_timeout=0 in the psycopg2 and MySQL drop-ins: their drivers' own behaviour
    with Pool(shareable(), min_size=1, max_size=1, timeout=0) as p:
        p.wait()
        held = p.getconn()
        with pytest.raises(PoolTimeout):
            p.getconn()
        held.close()
        p.getconn().close()


@pytest.mark.parametrize(
    "bad,exc,msg",
    [
        (-1, ValueError, "timeout must be >= 0, got -1"),
        (-0.001, ValueError, "timeout must be >= 0"),
        (float("nan"), ValueError, "timeout must be a number of seconds, got nan"),
        ("1", TypeError, "timeout must be a number of seconds, got str"),
    ],
)
def test_what_is_not_a_wait_is_an_error(one, bad, exc, msg) -> None:
    with pytest.raises(exc, match=msg):
        one.getconn(timeout=bad)
    with pytest.raises(exc, match=msg):
        Pool(shareable(), timeout=bad, open=False)
    assert one.get_stats()["pool_available"] == 1


@pytest.mark.parametrize(
    "timeout", [math.inf, 1e10, 10**19, 10**400], ids=["inf", "1e10", "10**19", "10**400"]
)
def test_huge_timeouts_wait_for_a_returned_connection(timeout) -> None:
    kwargs = dict.fromkeys(
        (
            "timeout",
            "max_lifetime",
            "max_idle",
            "reconnect_timeout",
            "leak_threshold",
            "check_bypass",
        ),
        timeout,
    )
    with Pool(shareable(), min_size=1, max_size=1, **kwargs) as p:
        p.open(wait=True, timeout=timeout)
        held = p.getconn(timeout=timeout)
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(p.getconn(timeout=timeout)))
        waiter.start()
        wait_until(lambda: p.get_stats()["requests_waiting"] == 1, "the waiter to queue")
        raw = held.raw
        held.close()
        waiter.join(10)
        assert got and got[0].raw is raw
        got[0].close()
        assert all(t.is_alive() for t in p._workers.threads)
        p.close(timeout=timeout)


@pytest.mark.parametrize(
    "kwargs,name", [({"max_size": 2**20 + 1}, "max_size"), ({"min_size": 2**20 + 1}, "min_size")]
)
def test_sizes_past_the_capacity_name_the_argument(kwargs, name) -> None:
    with pytest.raises(ValueError, match=f"{name} must be at most 1048576"):
        Pool(shareable(), open=False, **kwargs)


# -- sqlite3 and check_same_thread ------------------------------------------------


def test_a_thread_bound_sqlite3_connection_is_refused_with_the_fix(tmp_path, monkeypatch) -> None:
    # No reconnection attempt during the test: every connection made is one a
    # request asked for.
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 3600.0)
    path = str(tmp_path / "db.sqlite")
    made: list = []

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path)  # check_same_thread=True: sqlite3's default
        made.append(conn)
        return conn

    p = Pool(connect, min_size=0, max_size=2, timeout=30)
    try:
        # Nothing idle: the request waits for a new connection, which is refused;
        # the waiting request gets that error instead of waiting out its 30 s.
        with pytest.raises(sqlite3.ProgrammingError, match="check_same_thread=False") as first:
            p.getconn()
        assert "sqlite3.connect(..., check_same_thread=False)" in str(first.value)
        # Later requests get it at once, without another connection being made.
        n = len(made)
        for _ in range(3):
            with pytest.raises(sqlite3.ProgrammingError, match="check_same_thread=False"):
                with p.connection():
                    pass
        assert len(made) == n == 1
        stats = p.get_stats()
        assert stats["requests_num"] == 4 and stats["requests_errors"] == 4
        assert stats["pool_available"] == 0
    finally:
        p.close()
    for conn in made:  # every refused connection was closed, none leaked
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            conn.in_transaction  # (the one use sqlite3 allows from any thread)


def test_filling_in_the_calling_thread_refuses_a_thread_bound_connection() -> None:
    # Pool.filled() (the psycopg2 and MySQL drop-ins' way) connects in the
    # caller's thread, where the connection would work: still refused, since
    # the pool will hand it to other threads.
    with pytest.raises(sqlite3.ProgrammingError, match="check_same_thread=False"):
        Pool.filled(lambda: sqlite3.connect(":memory:"), 1, 1)


def test_a_shareable_sqlite3_connection_serves_every_thread(tmp_path) -> None:
    path = str(tmp_path / "db.sqlite")
    with Pool(shareable(path), min_size=1, max_size=1, timeout=10) as p:
        p.wait()
        errors: list = []

        def use() -> None:
            try:
                with p.connection() as conn:
                    conn.execute("SELECT 1").fetchone()
            except Exception as ex:  # noqa: BLE001 - recorded for the test
                errors.append(ex)

        threads = [threading.Thread(target=use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        stats = p.get_stats()
        assert stats["connections_num"] == 1 and "returns_bad" not in stats


def test_add_connection_refuses_a_thread_bound_sqlite3_connection() -> None:
    with Pool(shareable(), min_size=0, max_size=2) as p:
        bound = sqlite3.connect(":memory:")
        with pytest.raises(sqlite3.ProgrammingError, match="check_same_thread=False"):
            p.add_connection(bound)
        assert bound.execute("SELECT 1").fetchone() == (1,)  # still the caller's, open
        assert p.get_stats()["pool_size"] == 0
        p.add_connection(sqlite3.connect(":memory:", check_same_thread=False))
        assert p.get_stats()["pool_size"] == 1
        bound.close()


def test_a_refused_connect_leaves_waiting_for_a_good_connection_possible(monkeypatch) -> None:
    # The pool holds a usable connection (added by hand): a request that finds
    # it checked out waits for its return even though every connect is refused.
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 3600.0)
    with Pool(lambda: sqlite3.connect(":memory:"), min_size=0, max_size=2, timeout=10) as p:
        p.add_connection(sqlite3.connect(":memory:", check_same_thread=False))
        held = p.getconn()
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(p.getconn()))
        waiter.start()
        wait_until(lambda: p.get_stats().get("connections_num") == 1, "the refused connect")
        assert p.get_stats()["requests_waiting"] == 1  # still waiting, not failed
        raw = held.raw
        held.close()
        waiter.join(10)
        assert got and got[0].raw is raw
        got[0].close()
