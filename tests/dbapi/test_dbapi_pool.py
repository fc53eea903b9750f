"""fastpool.Pool with each real DB-API driver: transactions on return, waiting,
pre-ping after a killed session, lifetime, stats, and threads that never share
a connection."""

from __future__ import annotations

import threading
import time

import pytest

import fastpool
from fastpool import ConnectionReturned, PooledConnection, PoolTimeout
from tests.support.stubs import settle


def insert(driver, conn, x: int) -> None:
    cur = conn.cursor()
    cur.execute(driver.sql(f"INSERT INTO {driver.table} (x) VALUES (%s)"), (x,))
    cur.close()


def test_connection_block_commits_and_rolls_back(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1)
    with pool.connection() as conn:
        assert isinstance(conn, PooledConnection)
        insert(driver, conn, 1)
    assert driver.count() == 1
    with pytest.raises(ZeroDivisionError):
        with pool.connection() as conn:
            insert(driver, conn, 2)
            1 / 0
    assert driver.count() == 1
    assert pool.get_stats()["pool_available"] == 1


def test_close_returns_the_connection_and_ends_its_transaction(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1, max_size=1)
    conn = pool.get_connection()  # MySQL Connector's spelling of getconn()
    raw = conn.raw
    insert(driver, conn, 1)  # left uncommitted
    conn.close()
    assert pool.get_stats()["pool_available"] == 1
    assert driver.count() == 0, "the open transaction must be rolled back on return"
    conn.close()  # a second close() does nothing
    with pytest.raises(ConnectionReturned):
        conn.cursor()
    with pytest.raises(ValueError, match="already returned"):
        pool.putconn(conn)
    again = pool.getconn()
    assert again.raw is raw, "the same driver connection is reused"
    assert again is not conn, "a new stand-in per checkout"
    pool.putconn(again)


def test_reset_on_return_commit(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1, reset_on_return="commit")
    conn = pool.getconn()
    insert(driver, conn, 7)
    conn.close()
    assert driver.count() == 1


def test_with_on_a_pooled_connection_commits_and_returns(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1, max_size=1)
    with pool.getconn() as conn:
        insert(driver, conn, 3)
    assert conn.closed
    assert driver.count() == 1
    assert pool.get_stats()["pool_available"] == 1


def test_waits_for_a_connection_then_times_out(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1, max_size=1)
    held = pool.getconn()
    got = []
    t = threading.Thread(target=lambda: got.append(pool.getconn(timeout=10)))
    t.start()
    while pool.get_stats().get("requests_waiting", 0) < 1:
        time.sleep(0.005)
    raw = held.raw
    held.close()
    t.join(10)
    assert got and got[0].raw is raw, "the waiter gets the returned connection"
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.1)
    got[0].close()
    stats = pool.get_stats()
    assert stats["requests_errors"] == 1 and stats["pool_size"] == 1


def test_pre_ping_replaces_a_killed_session(driver, make_dbapi_pool):
    if driver.kill is None:
        pytest.skip("sqlite3 has no server session to kill")
    pool = make_dbapi_pool(min_size=1, max_size=1, pre_ping=True)
    with pool.connection() as conn:
        old = driver.session_id(conn)
        conn.commit()
    driver.kill(old)
    time.sleep(0.2)  # let the server finish closing the session
    with pool.connection() as conn:
        new = driver.session_id(conn)
    assert new != old
    assert pool.get_stats()["connections_lost"] == 1


@pytest.mark.parametrize("give_back", ["with", "close"])
def test_a_killed_session_without_pre_ping_is_discarded_on_return(
    driver, make_dbapi_pool, give_back
):
    if driver.kill is None:
        pytest.skip("sqlite3 has no server session to kill")
    if give_back == "close" and driver.name == "mysql.connector":
        pytest.skip(
            "MySQL Connector doesn't tell a broken connection without a ping: use with or pre_ping"
        )
    pool = make_dbapi_pool(min_size=1, max_size=1)
    conn = pool.getconn()
    old = driver.session_id(conn)
    driver.kill(old)
    time.sleep(0.2)
    with pytest.raises(driver.module.Error):
        if give_back == "with":
            with conn:  # the block raised: the connection is pinged on return
                insert(driver, conn, 1)
        else:
            insert(driver, conn, 1)
    # Returned (by the with, or now): the rollback fails, or the driver says
    # closed, or the ping fails: discarded.
    conn.close()
    assert pool.get_stats()["returns_bad"] == 1
    with pool.connection(timeout=5) as conn:
        assert driver.session_id(conn) != old


def test_invalidate_closes_instead_of_reusing(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1, max_size=1)
    conn = pool.getconn()
    raw = conn.raw
    conn.invalidate()
    conn.close()
    with pool.connection() as again:
        assert again.raw is not raw


def test_max_lifetime_replaces_connections(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=1, max_size=1, max_lifetime=0.2)
    with pool.connection() as conn:
        first = conn.raw
    time.sleep(0.3)
    with pool.connection() as conn:
        assert conn.raw is not first


def test_configure_and_reset_get_the_driver_connection(driver, make_dbapi_pool):
    configured, reset = [], []
    pool = make_dbapi_pool(min_size=1, configure=configured.append, reset=reset.append)
    with pool.connection() as conn:
        raw = conn.raw
    assert configured == [raw] and reset == [raw]
    assert not isinstance(raw, PooledConnection)


def test_threads_never_share_a_connection(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=2, max_size=4, timeout=30)
    in_use: set[int] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []
    clashes = []

    def worker() -> None:
        try:
            for _ in range(40):
                with pool.connection() as conn:
                    key = id(conn.raw)
                    with lock:
                        if key in in_use:
                            clashes.append(key)
                        in_use.add(key)
                    cur = conn.cursor()
                    cur.execute("SELECT 1")
                    assert cur.fetchall()[0][0] == 1
                    cur.close()
                    with lock:
                        in_use.discard(key)
        except BaseException as ex:  # reported below
            errors.append(ex)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not clashes
    settle(pool)  # a connection asked for by the last waiters may still be on its way
    stats = pool.get_stats()
    assert stats["requests_num"] == 12 * 40
    assert stats["pool_available"] == stats["pool_size"] <= 4


def test_pool_works_as_mysql_style_and_psycopg_style(driver, make_dbapi_pool):
    pool = make_dbapi_pool(min_size=0, max_size=2, open=False)
    with pool:
        conn = pool.getconn()
        assert pool.get_stats()["pool_size"] == 1
        pool.putconn(conn)
    assert pool.closed
    with pytest.raises(fastpool.PoolClosed):
        pool.getconn()


def test_add_connection_adopts_a_driver_connection(driver, make_dbapi_pool):
    configured = []
    pool = make_dbapi_pool(min_size=0, max_size=2, configure=configured.append)
    mine = driver.connect()
    pool.add_connection(mine)
    assert configured == [mine]
    stats = pool.get_stats()
    assert (stats["pool_size"], stats["pool_available"]) == (1, 1)
    conn = pool.getconn()
    assert conn.raw is mine
    insert(driver, conn, 1)  # left uncommitted: the pool rolls it back, as for its own
    conn.close()
    assert driver.count() == 0
    pool.add_connection(driver.connect())
    extra = driver.connect()
    try:
        with pytest.raises(fastpool.PoolFull):
            pool.add_connection(extra)
    finally:
        extra.close()
    with pool.connection() as a, pool.connection() as b:
        assert mine in (a.raw, b.raw)
        assert pool.get_stats()["pool_size"] == 2, "served by the added connections, none made"
