"""fastpool.mariadb_pool.ConnectionPool against MariaDB Connector/Python's own
``mariadb.ConnectionPool``, on a real MariaDB: same constructor, methods,
errors and messages (checked side by side with mariadb's pool where they
should match), connections reset or rolled back on return, validation only
after the interval, and exhaustion that waits (FIFO) instead of failing."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

pytest.importorskip("mariadb")
import mariadb  # noqa: E402

from fastpool import PooledConnection, PoolTimeout  # noqa: E402
from fastpool.mariadb_pool import ConnectionPool, PoolExhausted  # noqa: E402
from tests.support.mariadb import connect_args_for  # noqa: E402

pytestmark = pytest.mark.mariadb


@pytest.fixture
def args(mariadb_server) -> dict:
    return connect_args_for("mariadb", mariadb_server.connect_args)


def new_name() -> str:
    return f"fp-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make():
    """make(implementation=ConnectionPool, **kwargs): a pool closed at teardown
    (a fresh pool_name unless given)."""
    pools = []

    def make(impl=ConnectionPool, **kwargs):
        kwargs.setdefault("pool_name", new_name())
        p = impl(**kwargs)
        pools.append(p)
        return p

    yield make
    for p in pools:
        if impl_is_open(p):
            p.close()


def impl_is_open(pool) -> bool:
    if isinstance(pool, ConnectionPool):
        return not pool.pool.closed
    return pool._connections_free is not None  # mariadb's pool: no public flag


@pytest.fixture
def table(args):
    """A real (transactional) table, for seeing commits from outside the pool."""
    name = f"fp_{uuid.uuid4().hex[:12]}"
    run(args, f"CREATE TABLE {name} (x INTEGER) ENGINE=InnoDB")
    yield name
    run(args, f"DROP TABLE {name}")


def run(args, *statements):
    conn = mariadb.connect(**args)
    try:
        cur = conn.cursor()
        for s in statements:
            cur.execute(s)
        conn.commit()
    finally:
        conn.close()


def scalar(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        cur.close()


def count(args, table) -> int:
    conn = mariadb.connect(**args)
    try:
        return scalar(conn, f"SELECT COUNT(*) FROM {table}")
    finally:
        conn.close()


def session_id(conn) -> int:
    return scalar(conn, "SELECT CONNECTION_ID()")


def kill(args, sid: int) -> None:
    run(args, f"KILL {int(sid)}")


def is_closed(raw) -> bool:
    """A mariadb connection refuses everything once closed."""
    try:
        raw.cursor()
    except mariadb.ProgrammingError:
        return True
    return False


def wait_for_waiters(pool: ConnectionPool, n: int) -> None:
    deadline = time.monotonic() + 10
    while pool.pool.get_stats().get("requests_waiting", 0) < n:
        assert time.monotonic() < deadline, f"never saw {n} callers waiting"
        time.sleep(0.005)


class Counting(mariadb.Connection):
    """Counts pings (mariadb.connect(connectionclass=Counting))."""

    pings = 0

    def ping(self):
        type(self).pings += 1
        return super().ping()


# ---------------------------------------------------------------------------
# Constructor and configuration: as mariadb's pool
# ---------------------------------------------------------------------------


BOTH = pytest.mark.parametrize(
    "impl", [mariadb.ConnectionPool, ConnectionPool], ids=["mariadb", "fastpool"]
)


@BOTH
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({}, mariadb.ProgrammingError, "^No pool name specified$"),
        (
            {"pool_name": "p", "pool_size": 0},
            mariadb.ProgrammingError,
            "^Pool size must be in range of 1 and 64$",
        ),
        (
            {"pool_name": "p", "pool_size": 65},
            mariadb.ProgrammingError,
            "^Pool size must be in range of 1 and 64$",
        ),
        ({"pool_name": "p", "pool_size": "many"}, ValueError, "invalid literal"),
    ],
)
def test_constructor_errors_are_mariadbs(impl, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        impl(**kwargs)


def test_interval_errors():
    with pytest.raises(mariadb.ProgrammingError, match="not both"):
        ConnectionPool(
            pool_name=new_name(), pool_validation_interval=1, pool_invalidation_interval=1
        )
    with pytest.raises(mariadb.ProgrammingError, match="pool_validation_interval must be 0"):
        ConnectionPool(pool_name=new_name(), pool_validation_interval=-1)


@BOTH
def test_an_open_pools_name_is_taken_until_it_is_closed(impl, make, args):
    name = new_name()
    first = make(impl, pool_name=name, pool_size=1, **args)
    with pytest.raises(mariadb.ProgrammingError, match=f"^Pool '{name}' already exists$"):
        impl(pool_name=name, pool_size=1, **args)
    first.close()
    make(impl, pool_name=name, pool_size=1, **args)  # free again


def test_bad_connection_arguments_fail_in_the_constructor_and_free_the_name(make, args):
    name = new_name()
    with pytest.raises(mariadb.Error):
        ConnectionPool(pool_name=name, pool_size=2, **dict(args, database="fastpool_no_such_db"))
    make(pool_name=name, pool_size=1, **args)


def test_constructor_fills_the_pool(make, args):
    pool = make(pool_size=3, **args)
    assert (pool.pool_size, pool.max_size, pool.connection_count) == (3, 64, 3)
    assert pool.pool.get_stats()["pool_available"] == 3, "all made in the constructor, idle"
    conns = [pool.get_connection() for _ in range(3)]
    assert all(
        isinstance(c, PooledConnection) and isinstance(c.raw, mariadb.Connection) for c in conns
    )
    assert len({session_id(c) for c in conns}) == 3
    for c in conns:
        c.close()
    assert pool.pool_name in repr(pool)
    assert "password" not in repr(pool)


@BOTH
def test_empty_pool_set_config_and_add_connection(impl, make, args):
    pool = make(impl, pool_size=2)
    assert pool.connection_count == 0, "no connection arguments: the pool starts empty"
    with pytest.raises(mariadb.PoolError, match="^Couldn't get configuration for pool"):
        pool.add_connection()
    with pytest.raises(mariadb.PoolError, match="^No connection available"):
        pool.get_connection()  # nothing to wait for: at once, as mariadb
    pool.set_config(**args)
    assert pool.connection_count == 0, "set_config() makes no connection"
    added = pool.add_connection()
    assert isinstance(added, mariadb.Connection)
    assert pool.connection_count == 1
    with pytest.raises(
        mariadb.ProgrammingError, match="^Passed parameter is not a connection object$"
    ):
        pool.add_connection("not a connection")
    mine = mariadb.connect(**args)
    pool.add_connection(mine)
    assert pool.connection_count == 2
    a, b = pool.get_connection(), pool.get_connection()
    raws = {id(getattr(c, "raw", c)) for c in (a, b)}
    assert raws == {id(added), id(mine)}, "the pool hands out the connections added to it"
    a.close()
    b.close()


@BOTH
def test_add_connection_when_full_is_refused(impl, make, args):
    pool = make(impl, pool_size=1, **args)
    stranger = mariadb.connect(**args)
    try:
        with pytest.raises(
            mariadb.PoolError,
            match="^Can't add connection to pool .*: No free slot available \\(1\\)\\.$",
        ):
            pool.add_connection(stranger)
        with pytest.raises(mariadb.PoolError, match="No free slot available"):
            pool.add_connection()
        assert pool.connection_count == 1
        assert not is_closed(stranger), "a refused connection stays the caller's"
    finally:
        stranger.close()


def test_added_connections_are_kept(make, args):
    """Connections added by hand are part of the pool's size: not shrunk away
    (min_size follows them), and replaced when broken."""
    pool = make(pool_size=3)
    pool.set_config(**args)
    pool.add_connection()
    pool.add_connection()
    assert pool.pool.min_size == 2 and pool.pool.max_size == 3
    conn = pool.get_connection()
    conn.invalidate()  # broken: closed on return, a new one made in its place
    conn.close()
    deadline = time.monotonic() + 10
    while pool.pool.get_stats()["pool_available"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert pool.connection_count == 2


# ---------------------------------------------------------------------------
# Return: reset or roll back
# ---------------------------------------------------------------------------


def put_state(conn, table):
    cur = conn.cursor()
    cur.execute("SET @fastpool_x = 42")
    cur.execute("CREATE TEMPORARY TABLE fp_tmp (x INTEGER) ENGINE=InnoDB")
    cur.execute(f"INSERT INTO {table} (x) VALUES (1)")  # left uncommitted
    cur.execute("INSERT INTO fp_tmp (x) VALUES (1)")
    cur.close()


def test_reset_on_return(make, args, table):
    pool = make(pool_size=1, **args)
    assert pool.pool_reset_connection is True
    conn = pool.get_connection()
    raw = conn.raw
    put_state(conn, table)
    conn.close()
    assert count(args, table) == 0, "the open transaction is gone"
    again = pool.get_connection()
    assert again.raw is raw
    assert scalar(again, "SELECT @fastpool_x") is None, "user variables are reset"
    with pytest.raises(mariadb.ProgrammingError, match="fp_tmp"):
        scalar(again, "SELECT COUNT(*) FROM fp_tmp")  # temporary tables too
    again.close()


def test_without_reset_only_the_transaction_is_rolled_back(make, args, table):
    pool = make(pool_size=1, pool_reset_connection=False, **args)
    assert pool.pool_reset_connection is False
    conn = pool.get_connection()
    put_state(conn, table)
    conn.close()
    assert count(args, table) == 0, "the open transaction is rolled back"
    again = pool.get_connection()
    assert scalar(again, "SELECT @fastpool_x") == 42, "the session is kept"
    assert scalar(again, "SELECT COUNT(*) FROM fp_tmp") == 0, (
        "temporary table kept, its insert rolled back"
    )
    again.close()


def test_pool_reset_connection_can_be_changed(make, args):
    pool = make(pool_size=1, **args)
    pool.pool_reset_connection = False
    conn = pool.get_connection()
    scalar(conn, "SELECT @fastpool_x := 7")
    conn.close()
    conn = pool.get_connection()
    assert scalar(conn, "SELECT @fastpool_x") == 7
    pool.pool_reset_connection = True
    conn.close()
    conn = pool.get_connection()
    assert scalar(conn, "SELECT @fastpool_x") is None
    conn.close()


# ---------------------------------------------------------------------------
# Validation interval
# ---------------------------------------------------------------------------


def test_a_killed_connection_is_replaced_once_the_interval_has_passed(make, args):
    pool = make(pool_size=1, pool_validation_interval=50, **args)
    conn = pool.get_connection()
    old = session_id(conn)
    conn.close()
    kill(args, old)
    time.sleep(0.2)  # past the 50 ms interval, and the server has ended the session
    conn = pool.get_connection()  # the ping fails: replaced
    assert session_id(conn) != old
    conn.close()
    assert pool.pool.get_stats()["connections_lost"] == 1


def test_within_the_interval_there_is_no_ping(make, args):
    """As in mariadb: a connection used less than the interval ago is handed out
    unchecked; a broken one is then found on return (its reset fails) and replaced."""
    pool = make(pool_size=1, pool_validation_interval=600_000, **args)
    conn = pool.get_connection()
    old = session_id(conn)
    conn.close()
    kill(args, old)
    time.sleep(0.2)
    conn = pool.get_connection()
    with pytest.raises(mariadb.Error):
        session_id(conn)
    conn.close()
    conn = pool.get_connection()
    assert session_id(conn) != old
    conn.close()


@pytest.mark.parametrize(
    "interval,pings",
    [
        ({"pool_validation_interval": 0}, 3),
        ({"pool_invalidation_interval": 0}, 3),  # the parameter's earlier name
        ({"pool_validation_interval": 600_000}, 0),
        ({}, 0),  # 500 ms by default
    ],
)
def test_pings_per_checkout(make, args, interval, pings):
    Counting.pings = 0
    pool = make(pool_size=1, connectionclass=Counting, **interval, **args)
    conn = pool.get_connection()
    assert type(conn.raw) is Counting
    conn.close()
    Counting.pings = 0  # (that checkout and return don't count)
    for _ in range(3):
        pool.get_connection().close()
    assert Counting.pings == pings, (
        "interval 0: a ping on each checkout; else none (and none on return)"
    )


# ---------------------------------------------------------------------------
# Exhaustion: wait (FIFO), then PoolExhausted
# ---------------------------------------------------------------------------


def test_exhausted_after_pool_timeout(make, args):
    pool = make(pool_size=1, pool_timeout=0.1, **args)
    held = pool.get_connection()
    with pytest.raises(mariadb.PoolError, match="^No connection available") as exc:
        pool.get_connection()
    assert isinstance(exc.value, PoolExhausted) and isinstance(exc.value, PoolTimeout)
    held.close()
    pool.get_connection().close()


def test_waiting_callers_are_served_in_order(make, args):
    pool = make(pool_size=1, pool_timeout=30, **args)
    held = pool.get_connection()
    raw = held.raw
    got: list = []
    release = {"first": threading.Event(), "second": threading.Event()}

    def wait_for_one(tag):
        conn = pool.get_connection()
        got.append((tag, conn.raw))
        release[tag].wait(30)
        conn.close()

    first = threading.Thread(target=wait_for_one, args=("first",))
    first.start()
    wait_for_waiters(pool, 1)
    second = threading.Thread(target=wait_for_one, args=("second",))
    second.start()
    wait_for_waiters(pool, 2)
    assert not got, "mariadb's pool would have raised PoolError here"
    held.close()
    deadline = time.monotonic() + 10
    while not got:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert got == [("first", raw)], "the caller waiting longest is served first"
    release["first"].set()
    first.join(30)
    release["second"].set()
    second.join(30)
    assert got == [("first", raw), ("second", raw)]


# ---------------------------------------------------------------------------
# close()
# ---------------------------------------------------------------------------


def test_close(make, args):
    pool = make(pool_size=2, **args)
    out = pool.get_connection()
    idle = pool.get_connection()
    idle_raw, out_raw = idle.raw, out.raw
    idle.close()
    pool.close()
    assert is_closed(idle_raw), "idle connections are closed at once"
    assert not is_closed(out_raw), "a checked-out one when given back"
    out.close()
    assert is_closed(out_raw)
    assert pool.connection_count == 0
    assert "closed" in repr(pool)
    with pytest.raises(mariadb.PoolError, match="closed"):
        pool.get_connection()
    with pytest.raises(mariadb.PoolError, match="closed"):
        pool.add_connection()
    pool.close()  # a second close does nothing
    make(pool_name=pool.pool_name, pool_size=1, **args)  # the name is free
