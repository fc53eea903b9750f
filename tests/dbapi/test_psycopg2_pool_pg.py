"""fastpool.psycopg2_pool.ThreadedConnectionPool against psycopg2's own API,
on a real PostgreSQL: same calls, but exhaustion waits instead of failing."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("psycopg2")
import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402
import psycopg2.pool  # noqa: E402

from fastpool.psycopg2_pool import PoolExhausted, ThreadedConnectionPool  # noqa: E402


@pytest.fixture
def tpool(pg_dsn):
    pools = []

    def make(minconn=1, maxconn=2, **kwargs):
        p = ThreadedConnectionPool(minconn, maxconn, pg_dsn, **kwargs)
        pools.append(p)
        return p

    yield make
    for p in pools:
        if not p.closed:
            p.closeall()


def test_hands_out_psycopg2_connections_and_takes_them_back(tpool):
    pool = tpool(minconn=2, maxconn=3)
    assert pool.pool.get_stats()["pool_size"] == 2, (
        "minconn connections are made in the constructor"
    )
    conn = pool.getconn()
    assert type(conn) is psycopg2.extensions.connection
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    pool.putconn(conn)
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    # The ring hands idle connections out oldest-returned first.
    assert conn in (pool.getconn(), pool.getconn())


def test_keys_give_the_same_connection(tpool):
    pool = tpool()
    a = pool.getconn("job-1")
    assert pool.getconn("job-1") is a
    b = pool.getconn("job-2")
    assert b is not a
    pool.putconn(a, "job-1")
    pool.putconn(b)  # the key is found from the connection, as in psycopg2
    assert pool.pool.get_stats()["pool_available"] == 2


def test_waits_when_exhausted_instead_of_failing(tpool):
    pool = tpool(minconn=1, maxconn=1, pool_timeout=10)
    held = pool.getconn()
    got = []
    t = threading.Thread(target=lambda: got.append(pool.getconn()))
    t.start()
    time.sleep(0.2)
    assert not got, "psycopg2's pool would have raised PoolError here"
    pool.putconn(held)
    t.join(10)
    assert got == [held]
    pool.putconn(held)


def test_exhausted_after_pool_timeout(tpool):
    pool = tpool(minconn=1, maxconn=1, pool_timeout=0.1)
    held = pool.getconn()
    with pytest.raises(psycopg2.pool.PoolError, match="exhausted") as exc:
        pool.getconn()
    assert isinstance(exc.value, PoolExhausted)
    pool.putconn(held)


def test_pool_timeout_zero_fails_at_once_as_psycopg2_does(tpool):
    # psycopg2's own behaviour when exhausted, but an idle connection is still served.
    pool = tpool(minconn=1, maxconn=1, pool_timeout=0)
    held = pool.getconn()
    with pytest.raises(PoolExhausted, match="exhausted"):
        pool.getconn()
    pool.putconn(held)
    assert pool.getconn() is held
    pool.putconn(held)


def test_putconn_close_true_discards(tpool):
    pool = tpool(minconn=1, maxconn=1)
    conn = pool.getconn()
    pool.putconn(conn, close=True)
    assert conn.closed
    again = pool.getconn()
    assert again is not conn and not again.closed
    pool.putconn(again)


def test_foreign_and_double_putconn_raise_pool_error(tpool, pg_dsn):
    pool = tpool()
    stranger = psycopg2.connect(pg_dsn)
    try:
        with pytest.raises(psycopg2.pool.PoolError, match="unkeyed"):
            pool.putconn(stranger)
    finally:
        stranger.close()
    conn = pool.getconn()
    pool.putconn(conn)
    with pytest.raises(psycopg2.pool.PoolError, match="unkeyed"):
        pool.putconn(conn)


def test_closeall_closes_everything_and_closes_the_pool(tpool):
    pool = tpool(minconn=1, maxconn=2)
    out = pool.getconn()
    pool.closeall()
    assert pool.closed and out.closed
    with pytest.raises(psycopg2.pool.PoolError, match="closed"):
        pool.getconn()
    with pytest.raises(psycopg2.pool.PoolError, match="closed"):
        pool.closeall()


def test_bad_dsn_fails_in_the_constructor(pg_dsn):
    with pytest.raises(psycopg2.OperationalError):
        ThreadedConnectionPool(1, 2, pg_dsn + " dbname=fastpool_no_such_db")


def test_pool_options_pass_through(tpool, admin):
    pool = tpool(minconn=1, maxconn=1, pool_pre_ping=True)
    conn = pool.getconn()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    pool.putconn(conn)
    admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    conn = pool.getconn()  # the ping finds the dead one and a new one is made
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] != pid
    pool.putconn(conn)


def simple_pool_session(pool_class, dsn):
    """Code written for psycopg2's SimpleConnectionPool (single-threaded use):
    what it sees, step by step."""
    seen = []
    pool = pool_class(1, 2, dsn=dsn)  # connection arguments by keyword, too
    seen.append(("closed", pool.closed))
    conn = pool.getconn()
    with conn.cursor() as cur:
        cur.execute("SELECT 40 + 2")
        seen.append(("query", cur.fetchone()[0]))
    conn.commit()
    pool.putconn(conn)
    again = pool.getconn()
    seen.append(("reused", again is conn))
    keyed = pool.getconn("report")
    seen.append(("key", pool.getconn("report") is keyed, keyed is not again))
    pool.putconn(keyed, "report")
    pool.putconn(again, close=True)
    seen.append(("closed by putconn", again.closed != 0))
    pool.closeall()
    seen.append(("closeall", pool.closed, keyed.closed != 0))
    try:
        pool.getconn()
    except psycopg2.pool.PoolError as ex:
        seen.append(("after closeall", str(ex)))
    return seen


def test_simple_connection_pool_code_runs_unchanged(pg_dsn):
    from fastpool.psycopg2_pool import SimpleConnectionPool

    expected = simple_pool_session(psycopg2.pool.SimpleConnectionPool, pg_dsn)
    assert expected[-1] == (
        "after closeall",
        "connection pool is closed",
    )  # the script got to the end
    assert simple_pool_session(SimpleConnectionPool, pg_dsn) == expected
