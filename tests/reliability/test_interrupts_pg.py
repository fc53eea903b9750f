"""Nothing hangs, nothing is lost: an exception (KeyboardInterrupt, SystemExit,
an asynchronous exception, a cancellation) delivered anywhere in a checkout, a
hand-over to a waiting client or a return leaves every connection returned,
replaced or closed, and the exception reaches the caller.

Each scenario runs once clean to count its injection points (see
fastpool.testing.interrupts), then once per point with the exception delivered
there, on the same pool; after every run the books must balance against the
server (pool_size = idle + checked out + connecting = the pool's backends in
pg_stat_activity) and a fresh checkout must work. The figures (points, runs)
are printed for the README's reliability section."""
from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import psycopg
import pytest

import fastpool
from fastpool import ConnectionPool, NullConnectionPool
from fastpool.testing.interrupts import Injector, assert_conserved, async_exc, pool_books, run_points

pytestmark = pytest.mark.postgres

_apps = itertools.count()


def app_name(tag: str) -> str:
    return f"fastpool-intr-{tag}-{next(_apps)}"


@pytest.fixture
def make(pg_dsn: str, closing_pools: list):
    def make(cls: Any = ConnectionPool, tag: str = "p", **kwargs: Any) -> tuple[Any, str]:
        app = app_name(tag)
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("kwargs", {})
        kwargs["kwargs"] = dict(kwargs["kwargs"], application_name=app)
        p = cls(pg_dsn, open=True, **kwargs)
        closing_pools.append(p)
        if kwargs.get("min_size", 4 if cls is ConnectionPool else 0):
            p.wait(10)
        return p, app

    return make


def report(name: str, points: int) -> None:
    print(f"\n{name}: {points} injection points, {points + 1} runs, books balanced after each")


class Holder:
    """What a scenario holds across an interrupt, to give back afterwards."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.conns: list[Any] = []

    def give_back(self) -> None:
        # A connection the interrupted call had not taken yet is still ours.
        for conn in self.conns:
            if getattr(conn, "_pool", None) is self.pool:
                self.pool.putconn(conn)
        self.conns.clear()


def check_after(pool: Any, admin: Any, app: str, holder: Holder, size: int | None, name: str):
    def after(n: int, inj: Injector) -> None:
        holder.give_back()
        assert_conserved(pool, admin, app, size=size, context=f"{name} point {n} ({inj.fired})")
        with pool.connection(timeout=10) as conn:  # a fresh checkout works
            conn.execute("SELECT 1")
        assert_conserved(pool, admin, app, size=size, context=f"{name} point {n}, after a checkout")
        assert pool_books(pool).checked_out == 0

    return after


# -- checkout and return, one thread ----------------------------------------------


def test_getconn_putconn_with_check_reset_and_rollback(make, admin) -> None:
    """check on checkout, a transaction left open (rollback on return), reset."""
    resets = []

    def reset(conn: Any) -> None:
        resets.append(1)
        conn.execute("SET application_name TO DEFAULT") if False else None

    pool, app = make(min_size=2, max_size=2, check=ConnectionPool.check_connection, reset=reset)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        conn = pool.getconn()
        h.conns.append(conn)
        conn.execute("SELECT 1")  # leaves a transaction open: rolled back on return
        pool.putconn(conn)

    n = run_points(op, after=check_after(pool, admin, app, h, 2, "getconn/putconn"))
    assert n > 20 and resets
    report("getconn/putconn with check, rollback and reset", n)


def test_connection_block_commit(make, admin) -> None:
    """``with pool.connection()``: commit on exit, or rollback after an error."""
    pool, app = make(min_size=2, max_size=2)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        with pytest.raises(ZeroDivisionError):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                1 / 0

    n = run_points(op, after=check_after(pool, admin, app, h, 2, "connection()"))
    report("connection() block, commit and rollback", n)


def test_expired_connection_replaced(make, admin) -> None:
    pool, app = make(min_size=2, max_size=2, max_lifetime=600)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        with pool._lock:
            for slot in pool._ring.idle():
                pool._expire_at[slot] = 0.0  # every idle connection expired
        with pool.connection() as conn:
            conn.execute("SELECT 1")

    n = run_points(op, after=check_after(pool, admin, app, h, 2, "expired"))
    report("checkout of expired connections", n)


def test_check_and_drain(make, admin) -> None:
    pool, app = make(min_size=3, max_size=3)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        pool.check()
        pool.drain()

    n = run_points(op, after=check_after(pool, admin, app, h, 3, "check/drain"))
    report("check() and drain()", n)
