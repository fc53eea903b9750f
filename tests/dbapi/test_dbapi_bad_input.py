"""fastpool.Pool: wrong arguments and misuse give clear errors and leave the
pool consistent (sqlite3 connections: no server needed)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from fastpool import ConnectionReturned, Pool, PoolClosed, PooledConnection, PoolFull


def connect() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        (("sqlite3",), {}, TypeError, "connect must be a callable"),
        ((connect,), {"open": "yes"}, TypeError, "open must be True or False"),
        ((connect,), {"pre_ping": 1}, TypeError, "pre_ping must be True or False"),
        (
            (connect,),
            {"pre_ping": True, "check": Pool.check_connection},
            ValueError,
            "either check or pre_ping",
        ),
        ((connect,), {"reset_on_return": "yes"}, ValueError, "reset_on_return must be"),
        ((connect,), {"configure": 3}, TypeError, "configure must be callable"),
        ((connect,), {"check": "ping"}, TypeError, "check must be callable"),
        ((connect,), {"reset": []}, TypeError, "reset must be callable"),
        ((connect,), {"min_size": 3, "max_size": 2}, ValueError, "max_size must be greater"),
        ((connect,), {"min_size": "4"}, TypeError, "min_size must be an int"),
        ((connect,), {"timeout": -1}, ValueError, "timeout must be >= 0"),
        ((connect,), {"max_lifetime": 0}, ValueError, "max_lifetime must be > 0"),
    ],
)
def test_constructor_rejects(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Pool(*args, **kwargs)


@pytest.fixture
def pool():
    p = Pool(connect, min_size=1, max_size=2, timeout=2)
    p.wait()
    yield p
    p._ring.check_invariants()
    p.close()


def test_putconn_of_a_driver_connection_is_a_type_error(pool):
    raw = connect()
    with pytest.raises(TypeError, match="putconn\\(\\) takes a connection from pool"):
        pool.putconn(raw)
    raw.close()


def test_putconn_to_another_pool_is_refused_and_nothing_is_lost(pool):
    other = Pool(connect, min_size=1, timeout=2)
    try:
        conn = other.getconn()
        with pytest.raises(ValueError, match="comes from pool"):
            pool.putconn(conn)
        assert not conn.closed, "still checked out of its own pool"
        conn.close()
        assert other.get_stats()["pool_available"] == 1
    finally:
        other.close()


def test_a_raising_connect_is_retried_and_reported(caplog):
    calls = []

    def flaky() -> sqlite3.Connection:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("server not there yet")
        return connect()

    from fastpool.base import AttemptWithBackoff

    old = AttemptWithBackoff.INITIAL_DELAY
    AttemptWithBackoff.INITIAL_DELAY = 0.05
    try:
        with Pool(flaky, min_size=1, timeout=5) as p:
            with p.connection() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            assert p.get_stats()["connections_errors"] == 1
    finally:
        AttemptWithBackoff.INITIAL_DELAY = old
    assert "server not there yet" in caplog.text


def test_a_raising_check_discards_and_retries(pool):
    failures = [True]

    def check(raw):
        if failures:
            failures.pop()
            raise sqlite3.OperationalError("pretend it broke")

    p = Pool(connect, min_size=1, check=check, timeout=2)
    try:
        with p.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert p.get_stats()["connections_lost"] == 1
    finally:
        p.close()


def test_a_raising_reset_discards_the_connection(caplog):
    def reset(raw):
        raise RuntimeError("reset broke")

    with Pool(connect, min_size=1, reset=reset, timeout=2) as p:
        conn = p.getconn()
        raw = conn.raw
        conn.close()
        assert p.get_stats()["returns_bad"] == 1
        with p.connection() as again:
            assert again.raw is not raw
    assert "reset broke" in caplog.text


def test_use_after_return_and_after_pool_close(pool):
    conn = pool.getconn()
    conn.close()
    for use in (
        lambda: conn.cursor(),
        lambda: conn.raw,
        lambda: conn.execute("SELECT 1"),
        lambda: setattr(conn, "isolation_level", None),
    ):
        with pytest.raises(ConnectionReturned):
            use()
    assert "returned" in repr(conn)
    held = pool.getconn()
    raw = held.raw
    pool.close()
    raw.execute("SELECT 1")  # a checked-out connection outlives close()...
    held.close()  # ...and is closed when it comes back, without an error
    assert held.closed
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        raw.execute("SELECT 1")


def test_attributes_are_forwarded(pool):
    with pool.connection() as conn:
        assert isinstance(conn, PooledConnection)
        conn.isolation_level = None  # set on the driver's connection
        assert conn.raw.isolation_level is None
        assert conn.total_changes == conn.raw.total_changes


class SilentlyBroken:
    """A driver connection that, like MySQL Connector's, says it is in no
    transaction and doesn't say when it has broken; only a ping tells."""

    in_transaction = False  # so the pool neither commits nor rolls back

    def __init__(self) -> None:
        self.pings = 0
        self.alive = True

    def cursor(self) -> "SilentlyBroken":
        self.alive = False  # the link drops during this query
        raise OSError("connection reset by peer")

    def ping(self) -> None:
        self.pings += 1
        if not self.alive:
            raise OSError("gone")

    def close(self) -> None:
        pass


def test_a_block_that_raised_has_its_connection_pinged_on_return():
    with Pool(SilentlyBroken, min_size=1, max_size=1, timeout=2) as p:
        with pytest.raises(OSError, match="reset by peer"):
            with p.connection() as conn:
                first = conn.raw
                conn.cursor()
        assert first.pings == 1
        assert p.get_stats()["returns_bad"] == 1, "the broken connection was discarded"
        with p.connection(timeout=2) as conn:
            second = conn.raw
            assert second is not first
        assert second.pings == 0, "a block that ended well costs no ping"


# Pool.add_connection(): a connection made elsewhere joins the pool ------------


class SaysClosed:
    """A driver connection that says it is closed (as psycopg2's ``closed``)."""

    closed = True

    def close(self) -> None:
        pass


def test_add_connection_refuses_what_it_cannot_take(pool):
    out = pool.getconn()
    for wrong in (None, out):
        with pytest.raises(TypeError, match="add_connection\\(\\) takes a driver connection"):
            pool.add_connection(wrong)
    out.close()  # given back, not left to the garbage collector (sqlite3 warns from 3.13)
    with pytest.raises(ValueError, match="closed connection"):
        pool.add_connection(SaysClosed())
    pool.add_connection(connect())  # pool_size 2 of max_size 2 now
    extra = connect()
    with pytest.raises(PoolFull, match="max_size=2"):
        pool.add_connection(extra)
    assert extra.execute("SELECT 1").fetchone() == (1,), "a refused connection is left open"
    assert pool.get_stats()["pool_size"] == 2, "nothing counted for the refusals"
    pool.close()
    with pytest.raises(PoolClosed):
        pool.add_connection(extra)
    extra.close()


def test_add_connection_runs_configure_and_undoes_it_on_failure():
    def configure(raw):
        if getattr(raw, "refuse", False):
            raise RuntimeError("configure refused it")
        raw.execute("CREATE TEMP TABLE configured (x)")

    class Refused(sqlite3.Connection):
        refuse = True

    p = Pool(connect, min_size=0, max_size=1, configure=configure, timeout=2)
    try:
        bad = sqlite3.connect(":memory:", factory=Refused, check_same_thread=False)
        with pytest.raises(RuntimeError, match="configure refused it"):
            p.add_connection(bad)
        assert bad.execute("SELECT 1").fetchone() == (1,), "still the caller's, open"
        bad.close()
        assert p.get_stats()["pool_size"] == 0
        mine = connect()
        p.add_connection(mine)
        with p.connection() as conn:
            assert conn.raw is mine
            assert conn.execute("SELECT COUNT(*) FROM configured").fetchone() == (0,)
        p._ring.check_invariants()
    finally:
        p.close()


def test_an_added_connection_goes_to_the_oldest_waiter():
    def never() -> sqlite3.Connection:
        raise OSError("no server")  # the growth for the waiter never succeeds

    p = Pool(never, min_size=0, max_size=2, timeout=10)
    got: list = []
    t = threading.Thread(target=lambda: got.append(p.getconn()))
    try:
        t.start()
        deadline = time.monotonic() + 10
        while p.get_stats().get("requests_waiting", 0) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        mine = connect()
        p.add_connection(mine)
        t.join(10)
        assert got and got[0].raw is mine
        got[0].close()
    finally:
        p.close()
