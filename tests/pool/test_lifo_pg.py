"""``use_lifo=True``: the connection returned last is handed out next; the ones
left idle longest sink to the bottom, where ``max_idle`` shrinking, and the
maintenance that visits every idle connection, find them."""

from __future__ import annotations

import time

import psycopg
import pytest

import fastpool
from fastpool import ConnectionPool, NullConnectionPool
from tests.support.waiting import wait_until

from .conftest import kill_backend

pytestmark = pytest.mark.postgres


def pid_of(conn) -> int:
    return conn.info.backend_pid


def idle_pids(pool) -> list[int]:
    """Backend pids of the idle connections, returned longest ago first."""
    return [pid_of(pool._slots[s].conn) for s in pool._ring.idle()]


def backends(admin, app: str) -> set[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app]
    ).fetchall()
    return {r[0] for r in rows}


def test_default_is_fifo_as_psycopg_pool(make_pool) -> None:
    p = make_pool(min_size=3)
    p.wait()
    assert p.use_lifo is False
    with p.connection() as conn:
        first = pid_of(conn)
    with p.connection() as conn:
        assert pid_of(conn) != first  # the one returned longest ago


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_use_lifo_must_be_a_bool(pg_dsn, bad) -> None:
    with pytest.raises(
        TypeError, match=f"use_lifo must be True or False, got {type(bad).__name__}"
    ):
        ConnectionPool(pg_dsn, use_lifo=bad, open=False)


@pytest.mark.parametrize("cls", [NullConnectionPool, fastpool.AsyncNullConnectionPool])
def test_null_pools_take_no_use_lifo(pg_dsn, cls) -> None:
    with pytest.raises(TypeError, match="takes no use_lifo argument: it keeps no idle connections"):
        cls(pg_dsn, use_lifo=True, open=False)


def test_the_connection_returned_last_is_handed_out_next(make_pool) -> None:
    p = make_pool(min_size=4, use_lifo=True)
    p.wait()
    assert p.use_lifo is True
    conns = [p.getconn() for _ in range(4)]
    pids = [pid_of(c) for c in conns]
    assert len(set(pids)) == 4
    for i in (2, 0, 3, 1):
        p.putconn(conns[i])
    assert idle_pids(p) == [pids[2], pids[0], pids[3], pids[1]]
    # One caller at a time keeps getting the same backend.
    for _ in range(5):
        with p.connection() as conn:
            assert pid_of(conn) == pids[1]
    two = [p.getconn(), p.getconn()]
    assert [pid_of(c) for c in two] == [pids[1], pids[3]]
    for c in two:
        p.putconn(c)
    p._ring.check_invariants()


def test_max_idle_closes_the_connections_idle_longest(make_pool, admin) -> None:
    app = "fp_lifo_shrink"
    p = make_pool(
        min_size=1,
        max_size=4,
        max_idle=0.2,
        use_lifo=True,
        kwargs={"application_name": app},
    )
    conns = [p.getconn() for _ in range(4)]  # grows to 4
    for c in conns:
        p.putconn(c)
    hot = pid_of(conns[-1])  # returned last: on top
    assert hot in backends(admin, app) <= {pid_of(c) for c in conns}
    deadline = time.monotonic() + 15
    # One caller using the pool sequentially: the pool is never exhausted, so
    # every max_idle period closes one idle connection, always one of those
    # left at the bottom, never the one in use.
    while p.get_stats()["pool_size"] > 1:
        assert time.monotonic() < deadline, "timed out waiting for the shrink to min_size"
        with p.connection() as conn:
            assert pid_of(conn) == hot
            conn.execute("SELECT 1")
        time.sleep(0.01)
    wait_until(lambda: backends(admin, app) == {hot}, "the shrunk backends to go")
    with p.connection() as conn:
        assert pid_of(conn) == hot


def test_max_idle_shrinks_in_least_recently_used_order(make_pool) -> None:
    p = make_pool(min_size=1, max_size=4, max_idle=0.3, use_lifo=True)
    conns = [p.getconn() for _ in range(4)]
    pids = [pid_of(c) for c in conns]
    for i in (1, 3, 0, 2):  # so the order of use is not the order of creation
        p.putconn(conns[i])
    order = [pids[1], pids[3], pids[0], pids[2]]
    deadline = time.monotonic() + 15
    while True:  # one shrink per period, down to min_size
        left = idle_pids(p)
        assert left == order[len(order) - len(left) :]  # the oldest went first
        if len(left) == 1:
            break
        assert time.monotonic() < deadline, f"timed out shrinking, still {left}"
        time.sleep(0.01)
    assert p.get_stats()["pool_size"] == 1


def test_expiry_sweep_visits_every_idle_connection(make_pool) -> None:
    # The sweep claims each idle connection once, oldest first: a LIFO stack
    # must not show it its top over and over. Here the top never expires, the
    # two below it do.
    p = make_pool(min_size=3, max_lifetime=1.0, use_lifo=True)
    p.wait()
    below, top = idle_pids(p)[:2], p._ring.idle()[-1]
    p._slots[top].expire_at = time.monotonic() + 3600
    wait_until(
        lambda: len(idle_pids(p)) == 3 and not set(below) & set(idle_pids(p)),
        "the sweep to replace the expired idle connections",
    )
    assert p._slots[top].conn is not None and p.get_stats()["pool_size"] == 3


def test_check_visits_each_idle_connection_once_and_keeps_the_order(make_pool, admin) -> None:
    p = make_pool(min_size=4, use_lifo=True)
    p.wait()
    conns = [p.getconn() for _ in range(4)]
    pids = [pid_of(c) for c in conns]
    for i in (2, 0, 3, 1):
        p.putconn(conns[i])
    kill_backend(admin, pids[3])
    checked: list[int] = []
    original = ConnectionPool.check_connection

    def counting(conn) -> None:
        checked.append(pid_of(conn))
        original(conn)

    p.check_connection = counting  # type: ignore[method-assign]
    p.check()
    assert checked == [pids[2], pids[0], pids[3], pids[1]]  # each once, oldest first
    assert p.get_stats()["connections_lost"] == 1
    wait_until(lambda: p.get_stats()["pool_available"] == 4, "the replacement")
    survivors = [pid for pid in idle_pids(p) if pid in pids]
    assert survivors == [pids[2], pids[0], pids[1]]  # still least recently used first


def test_drain_replaces_every_idle_connection(make_pool) -> None:
    p = make_pool(min_size=3, use_lifo=True)
    p.wait()
    old = set(idle_pids(p))
    p.drain()
    wait_until(lambda: len(idle_pids(p)) == 3, "the replacements")
    assert not old & set(idle_pids(p))


def test_a_killed_backend_is_replaced_and_close_closes_all(make_pool, admin) -> None:
    app = "fp_lifo_reconnect"
    p = make_pool(min_size=2, use_lifo=True, kwargs={"application_name": app})
    p.wait()
    with p.connection() as conn:
        hot = pid_of(conn)
    kill_backend(admin, hot)
    with pytest.raises(psycopg.OperationalError):
        with p.connection() as conn:
            assert pid_of(conn) == hot  # the top of the stack, now broken
            conn.execute("SELECT 1")
    wait_until(lambda: p.get_stats()["pool_available"] == 2, "the replacement")
    with p.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pid_of(conn) != hot
    wait_until(lambda: len(backends(admin, app)) == 2, "the server to forget the killed one")
    p.close()
    wait_until(lambda: not backends(admin, app), "close() to close every connection")


@pytest.mark.parametrize("use_lifo", [False, True], ids=["fifo", "lifo"])
def test_generic_pool_honours_use_lifo(pg_dsn, use_lifo) -> None:
    with fastpool.Pool(lambda: psycopg.connect(pg_dsn), min_size=3, use_lifo=use_lifo) as p:
        p.wait()
        assert p.use_lifo is use_lifo
        pids = []
        for _ in range(3):
            with p.connection() as conn:
                pids.append(conn.raw.info.backend_pid)
        assert len(set(pids)) == (1 if use_lifo else 3)
