"""FastQueuePool as SQLAlchemy's poolclass, with real engines against
PostgreSQL: pool_size/max_overflow/pool_timeout, status(), pool_pre_ping,
pool_recycle, pool events, dispose, threads."""
from __future__ import annotations

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
        engine = create_engine("postgresql+psycopg://", poolclass=FastQueuePool,
                               creator=lambda: psycopg.connect(pg_dsn), **kw)
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
    assert pool.status() == ("Pool size: 2  Connections in pool: 0 Current Overflow: 1 "
                             "Current Checked out connections: 3")
    t0 = time.monotonic()
    with pytest.raises(exc.TimeoutError, match="QueuePool limit of size 2 overflow 1 reached"):
        engine.connect()
    assert time.monotonic() - t0 < 5
    for c in held:
        c.close()
    assert (pool.checkedin(), pool.overflow(), pool.checkedout()) == (2, 0, 0)


def test_waiter_gets_the_returned_connection(make_engine) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    held = engine.connect()
    held_pid = pid(held)
    got: list[int] = []

    def waiter() -> None:
        with engine.connect() as conn:
            got.append(pid(conn))

    t = threading.Thread(target=waiter)
    t.start()
    while not engine.pool._waiting:
        time.sleep(0.001)
    held.close()
    t.join(10)
    assert got == [held_pid]


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


@pytest.mark.parametrize("kw,exc_type,msg", [
    ({"pool_size": -1}, ValueError, "pool_size must be >= 0"),
    ({"max_overflow": -2}, ValueError, "max_overflow must be >= -1"),
    ({"pool_size": "5"}, TypeError, "pool_size must be an int, got str"),
    ({"timeout": -1}, ValueError, "timeout must be >= 0"),
    ({"use_lifo": True}, ValueError, "use_lifo=True is not supported"),
])
def test_bad_arguments(kw, exc_type, msg) -> None:
    with pytest.raises(exc_type, match=msg):
        FastQueuePool(lambda: None, **kw)
