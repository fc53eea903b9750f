"""FastQueuePool as SQLAlchemy's poolclass, with real engines against
PostgreSQL: pool_size/max_overflow/pool_timeout, status(), pool_pre_ping,
pool_recycle, pool events, dispose, threads."""

from __future__ import annotations

import gc
import threading
import time

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")
from sqlalchemy import create_engine, event, exc, text  # noqa: E402

from fastpool.sqlalchemy_pool import FastQueuePool  # noqa: E402

pytestmark = pytest.mark.postgres


@pytest.fixture
def make_engine(pg_dsn: str):
    import psycopg

    engines = []

    def make(**kw):
        kw.setdefault("pool_size", 2)
        kw.setdefault("max_overflow", 1)
        kw.setdefault("pool_timeout", 5)
        engine = create_engine(
            "postgresql+psycopg://",
            poolclass=FastQueuePool,
            creator=lambda: psycopg.connect(pg_dsn),
            **kw,
        )
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.dispose()


def pid(conn) -> int:
    return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def test_engine_runs_queries_from_threads(make_engine) -> None:
    engine = make_engine(pool_size=3, max_overflow=2)
    assert isinstance(engine.pool, FastQueuePool)
    errors: list[str] = []
    results: list[int] = []

    def worker(i: int) -> None:
        try:
            for _ in range(25):
                with engine.connect() as conn:
                    results.append(conn.execute(text("SELECT :x"), {"x": i}).scalar())
        except Exception as ex:
            errors.append(repr(ex))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results) == sorted(i for i in range(10) for _ in range(25))
    pool = engine.pool
    assert pool.checkedout() == 0
    assert pool.checkedin() <= 3 and pool.overflow() <= 0  # overflow connections were closed
    pool._ring.check_invariants()


def test_overflow_timeout_and_status(make_engine) -> None:
    engine = make_engine(pool_size=2, max_overflow=1, pool_timeout=0.2)
    pool = engine.pool
    held = [engine.connect() for _ in range(3)]
    assert pool.checkedout() == 3 and pool.overflow() == 1
    assert pool.status() == (
        "Pool size: 2  Connections in pool: 0 Current Overflow: 1 "
        "Current Checked out connections: 3"
    )
    t0 = time.monotonic()
    with pytest.raises(exc.TimeoutError, match="QueuePool limit of size 2 overflow 1 reached"):
        engine.connect()
    assert time.monotonic() - t0 < 5
    for c in held:
        c.close()
    assert (pool.checkedin(), pool.overflow(), pool.checkedout()) == (2, 0, 0)


def assert_waiter_gets_the_returned_connection(engine) -> None:
    """With the pool's only connection held, another thread queues for one: it
    gets the held connection once that is returned."""
    held = engine.connect()
    held_pid = pid(held)
    got: list[int] = []

    def waiter() -> None:
        with engine.connect() as conn:
            got.append(pid(conn))

    t = threading.Thread(target=waiter)
    t.start()
    queued(engine)
    held.close()
    t.join(10)
    assert got == [held_pid]


def test_waiter_gets_the_returned_connection(make_engine) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    assert_waiter_gets_the_returned_connection(engine)


def test_pre_ping_replaces_a_killed_connection(make_engine, admin) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_pre_ping=True)
    with engine.connect() as conn:
        first = pid(conn)
    admin.execute("SELECT pg_terminate_backend(%s)", [first])
    with engine.connect() as conn:
        assert pid(conn) != first  # the ping found it dead; SQLAlchemy reconnected


def test_recycle_and_events(make_engine) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_recycle=1)
    seen = {"connect": 0, "checkout": 0, "checkin": 0}
    for name in seen:
        event.listen(engine, name, lambda *a, _n=name: seen.__setitem__(_n, seen[_n] + 1))
    with engine.connect() as conn:
        first = pid(conn)
    time.sleep(1.1)
    with engine.connect() as conn:
        assert pid(conn) != first  # older than pool_recycle: replaced on checkout
    assert seen == {"connect": 2, "checkout": 2, "checkin": 2}


def test_dispose_and_recreate(make_engine) -> None:
    engine = make_engine(pool_size=2, max_overflow=1)
    with engine.connect() as a, engine.connect() as b:
        pids = {pid(a), pid(b)}
    engine.dispose()
    assert engine.pool.checkedin() == 0
    with engine.connect() as conn:
        assert pid(conn) not in pids
    fresh = engine.pool.recreate()
    assert isinstance(fresh, FastQueuePool) and fresh.size() == 2 and fresh.timeout() == 5


@pytest.mark.parametrize(
    "kw,exc_type,msg",
    [
        ({"pool_size": -1}, ValueError, "pool_size must be >= 0"),
        ({"max_overflow": -2}, ValueError, "max_overflow must be >= -1"),
        ({"pool_size": "5"}, TypeError, "pool_size must be an int, got str"),
        ({"timeout": -1}, ValueError, "timeout must be >= 0"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a number of seconds, got nan"),
        (
            {"pool_size": 2**20, "max_overflow": 1},
            ValueError,
            r"pool_size \+ max_overflow must be at most 1048576, got pool_size=1048576, max_overflow=1$",
        ),
        (
            {"pool_size": 2**20, "max_overflow": -1},
            ValueError,
            r"max_overflow=-1 \(-1 counts as 4096\)",
        ),
    ],
)
def test_bad_arguments(kw, exc_type, msg) -> None:
    with pytest.raises(exc_type, match=msg):
        FastQueuePool(lambda: None, **kw)


@pytest.mark.parametrize("use_lifo", [False, True], ids=["fifo", "lifo"])
def test_pool_use_lifo_hands_out_as_queuepool_does(make_any_engine, use_lifo) -> None:
    from sqlalchemy.pool import QueuePool

    orders = []
    for poolclass in (QueuePool, FastQueuePool):
        engine = make_any_engine(poolclass, pool_size=3, max_overflow=0, pool_use_lifo=use_lifo)
        held = [engine.connect() for _ in range(3)]
        pids = [pid(c) for c in held]
        for i in (1, 2, 0):
            held[i].close()
        got = []
        for _ in range(2):
            with engine.connect() as conn:
                got.append(pids.index(pid(conn)))
        orders.append(got)
        if poolclass is FastQueuePool:
            assert engine.pool.recreate()._ring.lifo is use_lifo
    assert orders[0] == orders[1] == ([0, 0] if use_lifo else [1, 2])


# -- no size limit, and the cap on an unlimited overflow --------------------------


@pytest.fixture
def make_any_engine(pg_dsn: str):
    """An engine on ``poolclass`` that counts the connections it opens."""
    import psycopg

    engines = []

    def make(poolclass, **kw):
        opened: list = []

        def creator():
            opened.append(1)
            return psycopg.connect(pg_dsn)

        engine = create_engine("postgresql+psycopg://", poolclass=poolclass, creator=creator, **kw)
        engine.opened = opened
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.dispose()


def queued(engine, timeout: float = 10.0) -> None:
    """Wait until a checkout is queued in the engine's FastQueuePool."""
    deadline = time.monotonic() + timeout
    while not engine.pool._waiting:
        assert time.monotonic() < deadline, "no checkout queued"
        time.sleep(0.001)


@pytest.mark.parametrize("poolclass", [sqlalchemy.pool.QueuePool, FastQueuePool])
def test_pool_size_zero_means_no_size_limit(make_any_engine, poolclass) -> None:
    # The same expectations for SQLAlchemy's QueuePool and FastQueuePool.
    engine = make_any_engine(poolclass, pool_size=0, max_overflow=2, pool_timeout=5)
    for _ in range(50):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert len(engine.opened) == 1  # one connection, kept between checkouts
    held = [engine.connect() for _ in range(6)]  # max_overflow doesn't apply
    assert len(engine.opened) == 6
    for c in held:
        c.close()
    pool = engine.pool
    # every returned connection is kept: no size limit on what sits idle
    assert (pool.checkedin(), pool.checkedout(), pool.overflow(), pool.size()) == (6, 0, 0, 0)
    for _ in range(20):
        with engine.connect():
            pass
    assert len(engine.opened) == 6


def test_an_unlimited_overflow_waits_at_the_cap_instead_of_leaking(
    make_any_engine, monkeypatch
) -> None:
    from fastpool import sqlalchemy_pool

    monkeypatch.setattr(sqlalchemy_pool, "UNLIMITED_CAP", 2)  # room for 1 + 2 connections
    engine = make_any_engine(FastQueuePool, pool_size=1, max_overflow=-1, pool_timeout=10)
    held = [engine.connect() for _ in range(3)]
    assert len(engine.opened) == 3
    first_pid = pid(held[0])
    got: list[int] = []

    def fourth() -> None:
        with engine.connect() as conn:
            got.append(pid(conn))

    t = threading.Thread(target=fourth)
    t.start()
    queued(engine)  # it waits: the cap is reached
    held[0].close()
    t.join(10)
    assert got == [first_pid]  # served with the returned connection...
    assert len(engine.opened) == 3  # ...and none opened past the cap
    for c in held[1:]:
        c.close()
    engine.pool._ring.check_invariants()


@pytest.mark.parametrize("pool_size,max_overflow", [(1, -1), (0, 10)])
def test_the_cap_times_out_like_any_limit_and_says_why(
    make_any_engine, monkeypatch, pool_size, max_overflow
) -> None:
    from fastpool import sqlalchemy_pool

    monkeypatch.setattr(sqlalchemy_pool, "UNLIMITED_CAP", 2)
    engine = make_any_engine(
        FastQueuePool, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=0
    )
    held = [engine.connect() for _ in range(pool_size + 2)]
    with pytest.raises(exc.TimeoutError, match="caps an unlimited overflow at 2 connections"):
        engine.connect()
    assert len(engine.opened) == pool_size + 2
    for c in held:
        c.close()
    assert engine.pool.checkedout() == 0


class StubDBAPIConnection:
    """A DB-API connection that needs no server: enough for the pool's own
    bookkeeping (SQLAlchemy resets it with rollback() on return)."""

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_4097th_overflow_checkout_opens_nothing() -> None:
    # The real cap, on connections that cost nothing: the first checkout past
    # it times out (timeout=0: no wait) without opening a connection.
    opened: list = []

    def creator():
        opened.append(1)
        return StubDBAPIConnection()

    from fastpool.sqlalchemy_pool import UNLIMITED_CAP

    pool = FastQueuePool(creator, pool_size=0, max_overflow=-1, timeout=0)
    cap = UNLIMITED_CAP
    held = [pool.connect() for _ in range(cap)]
    assert len(opened) == cap == 4096
    with pytest.raises(exc.TimeoutError):
        pool.connect()
    assert len(opened) == cap
    for c in held:
        c.close()
    assert pool.checkedin() == cap  # pool_size=0: all kept
    pool._ring.check_invariants()
    pool.dispose()


def test_dispose_keeps_the_place_of_a_connect_in_flight(pg_dsn) -> None:
    import psycopg

    entered, release = threading.Event(), threading.Event()
    opened: list = []

    def creator():
        opened.append(1)
        if len(opened) == 1:
            entered.set()
            release.wait(10)
        return psycopg.connect(pg_dsn)

    engine = create_engine(
        "postgresql+psycopg://",
        poolclass=FastQueuePool,
        creator=creator,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.1,
    )
    try:
        pool = engine.pool
        first: list = []
        t = threading.Thread(target=lambda: first.append(engine.connect()))
        t.start()
        assert entered.wait(10)
        pool.dispose()  # the connect in flight still owns the pool's only place
        with pytest.raises(exc.TimeoutError):
            engine.connect()
        release.set()
        t.join(10)
        assert len(first) == 1 and len(opened) == 1  # no second connection, nothing lost
        assert pid(first[0]) > 0
        first[0].close()
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)
        pool._ring.check_invariants()
    finally:
        release.set()
        engine.dispose()


@pytest.mark.parametrize(
    "timeout", [float("inf"), 1e10, 10**19, 10**400], ids=["inf", "1e10", "10**19", "10**400"]
)
def test_an_infinite_pool_timeout_waits_for_a_returned_connection(make_engine, timeout) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_timeout=timeout)
    assert_waiter_gets_the_returned_connection(engine)


class RingThatCollects:
    """The pool's ring, except that the failing ``try_acquire`` made under the
    pool's lock (the second one of a checkout: the first is the lock-free
    fast path) runs the garbage collector: as Python may, in any allocation."""

    def __init__(self, ring, pool) -> None:
        self.ring, self.pool = ring, pool
        self.misses = 0
        self.returned_meanwhile: int | None = None

    def __getattr__(self, name):
        return getattr(self.ring, name)

    def try_acquire(self) -> int:
        slot = self.ring.try_acquire()
        if slot < 0:
            self.misses += 1
            if self.misses == 2:
                gc.collect()
                self.returned_meanwhile = self.ring.idle_count()
        return slot


def test_a_connection_collected_while_the_lock_is_held_is_returned_and_handed_over() -> None:
    # SQLAlchemy returns the record of a garbage-collected connection from a
    # weakref callback, in whatever the thread was doing: here, a checkout
    # holding the pool's lock, between its try_acquire and its queueing. The
    # return must neither deadlock on that lock nor be missed by the checkout
    # (timeout=0: no wait, so only a hand-over can serve it).
    opened: list = []

    def creator():
        opened.append(1)
        return StubDBAPIConnection()

    pool = FastQueuePool(creator, pool_size=1, max_overflow=1, timeout=0)
    first = pool.connect()
    lost = [pool.connect()]  # the overflow connection, soon in a cycle nobody refers to
    lost.append(lost)
    got: list = []
    gc.disable()  # it runs when the ring says so
    try:
        del lost
        pool._ring = ring = RingThatCollects(pool._ring, pool)

        def checkout() -> None:
            try:
                got.append(pool.connect())
            except Exception as ex:
                got.append(ex)

        t = threading.Thread(target=checkout, daemon=True)
        t.start()
        t.join(10)
        assert not t.is_alive(), "the checkout deadlocked on the pool's own lock"
    finally:
        gc.enable()
    assert ring.returned_meanwhile == 1  # the callback ran inside the checkout
    assert len(got) == 1 and not isinstance(got[0], Exception), got
    assert len(opened) == 2  # served with the returned one, none opened
    assert (pool.checkedout(), pool.checkedin(), pool.overflow()) == (2, 0, 1)
    got[0].close()
    first.close()
    pool._ring = ring.ring
    assert (pool.checkedout(), pool.checkedin(), pool.overflow()) == (0, 1, 0)
    pool._ring.check_invariants()
    pool.dispose()
