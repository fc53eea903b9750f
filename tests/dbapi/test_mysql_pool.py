"""fastpool.mysql_pool.MySQLConnectionPool against MySQL Connector's API, on a
real MariaDB: same calls, sessions reset on return, exhaustion waits."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("mysql.connector")
from mysql.connector.errors import PoolError  # noqa: E402

from fastpool.mysql_pool import MySQLConnectionPool, PoolExhausted  # noqa: E402

pytestmark = pytest.mark.mariadb


@pytest.fixture
def mpool(mariadb_server):
    pools = []

    def make(**kwargs):
        p = MySQLConnectionPool(**server_args(mariadb_server), **kwargs)
        pools.append(p)
        return p

    yield make
    for p in pools:
        p.close()


def server_args(server) -> dict:
    return dict(server.connect_args)


def user_variable(cnx) -> object:
    cur = cnx.cursor()
    cur.execute("SELECT @fastpool_x")
    value = cur.fetchall()[0][0]
    cur.close()
    return value


def test_close_returns_and_the_session_is_reset(mpool):
    pool = mpool(pool_name="web", pool_size=1)
    assert (pool.pool_name, pool.pool_size) == ("web", 1)
    assert pool.pool.get_stats()["pool_size"] == 1, (
        "pool_size connections are made in the constructor"
    )
    cnx = pool.get_connection()
    raw = cnx.raw
    cur = cnx.cursor()
    cur.execute("SET @fastpool_x = 42")
    cur.close()
    assert user_variable(cnx) == 42
    cnx.close()
    again = pool.get_connection()
    assert again.raw is raw
    assert user_variable(again) is None, "pool_reset_session=True resets the session"
    again.close()


def test_no_session_reset_when_asked(mpool):
    pool = mpool(pool_size=1, pool_reset_session=False)
    cnx = pool.get_connection()
    cur = cnx.cursor()
    cur.execute("SET @fastpool_x = 7")
    cur.close()
    cnx.close()
    cnx = pool.get_connection()
    assert user_variable(cnx) == 7
    cnx.close()


def test_waits_when_exhausted_then_times_out(mpool):
    pool = mpool(pool_size=1, pool_timeout=10)
    held = pool.get_connection()
    got = []
    t = threading.Thread(target=lambda: got.append(pool.get_connection()))
    t.start()
    time.sleep(0.2)
    assert not got, "MySQL Connector's pool would have raised PoolError here"
    held.close()
    t.join(10)
    assert len(got) == 1
    short = mpool(pool_size=1, pool_timeout=0.1)
    held = short.get_connection()
    with pytest.raises(PoolError, match="pool exhausted") as exc:
        short.get_connection()
    assert isinstance(exc.value, PoolExhausted)
    held.close()
    got[0].close()


def test_pool_timeout_zero_fails_at_once_as_mysql_connector_does(mpool):
    pool = mpool(pool_size=1, pool_timeout=0)
    held = pool.get_connection()
    with pytest.raises(PoolExhausted, match="pool exhausted"):
        pool.get_connection()
    raw = held.raw
    held.close()
    again = pool.get_connection()  # an idle connection is still served
    assert again.raw is raw
    again.close()


def test_bad_arguments_fail_in_the_constructor(mariadb_server):
    import mysql.connector

    with pytest.raises(AttributeError, match="pool_size"):
        MySQLConnectionPool(pool_size=0, **server_args(mariadb_server))
    with pytest.raises(mysql.connector.Error):
        MySQLConnectionPool(
            pool_size=1, **dict(server_args(mariadb_server), database="fastpool_no_such_db")
        )


def test_closed_pool_raises_pool_error(mpool):
    pool = mpool(pool_size=1)
    pool.close()
    with pytest.raises(PoolError, match="closed"):
        pool.get_connection()
