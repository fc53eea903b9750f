"""The threaded server's contenders, each used the way its documentation shows
a web app using it. One object per server worker process, made when the app is
imported (after gunicorn forks the worker), closed at exit.

Every pool holds ``pool_size`` connections made up front where the library can
(fastpool, psycopg_pool, psycopg2's pools) and at most ``pool_size`` otherwise
(SQLAlchemy makes them on demand, with no overflow). The ``txn`` endpoint runs
on non-autocommit connections and commits; ``select1`` on autocommit ones.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Protocol

from .settings import ITEM, RANGE, SELECT1, Settings, txn_params
from .trace import RequestTrace, monotonic

TIMEOUT = 30.0  # seconds a request may wait for a connection


class SyncPool(Protocol):
    def select1(self) -> object: ...

    def txn(self) -> object: ...

    def close(self) -> None: ...


def _txn_on_cursor(cur: Any, table: str) -> tuple[object, object]:
    """The read transaction's two statements on a DB-API cursor (psycopg 3 or 2)."""
    item, span = txn_params()
    cur.execute(ITEM.format(table=table), item)
    row = cur.fetchone()
    cur.execute(RANGE.format(table=table), span)
    return row, cur.fetchone()


class PsycopgPool:
    """fastpool's or psycopg_pool's ConnectionPool: ``with pool.connection()``,
    which commits on the way out. Each request's connection wait and hold are
    recorded (trace.py), written at close if the runner asked for them."""

    def __init__(self, s: Settings, pool_class: type) -> None:
        self.table = s.table
        self.trace = RequestTrace(s.trace_dir)
        self.pool = pool_class(
            s.dsn,
            min_size=s.pool_size,
            max_size=s.pool_size,
            kwargs={"autocommit": s.autocommit},
            timeout=TIMEOUT,
            open=True,
        )
        self.pool.wait()

    def select1(self) -> object:
        asked = monotonic()
        with self.pool.connection() as conn:
            got = monotonic()
            row = conn.execute(SELECT1).fetchone()
        self.trace.record(asked, got, monotonic())
        return row

    def txn(self) -> object:
        asked = monotonic()
        with self.pool.connection() as conn:
            got = monotonic()
            with conn.cursor() as cur:
                rows = _txn_on_cursor(cur, self.table)
        self.trace.record(asked, got, monotonic())
        return rows

    def close(self) -> None:
        self.pool.close()
        self.trace.write()


class SQLAlchemyEngine:
    """An engine on the psycopg 3 dialect with the given pool class (QueuePool
    or fastpool's FastQueuePool): ``with engine.connect()``, commit for ``txn``."""

    def __init__(self, s: Settings, poolclass: type) -> None:
        import psycopg
        from sqlalchemy import create_engine

        self.table = s.table
        self.engine = create_engine(
            "postgresql+psycopg://",
            creator=functools.partial(psycopg.connect, s.dsn),
            poolclass=poolclass,
            pool_size=s.pool_size,
            max_overflow=0,
            pool_timeout=TIMEOUT,
            isolation_level="AUTOCOMMIT" if s.autocommit else "READ COMMITTED",
        )

    def select1(self) -> object:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(SELECT1).fetchone()

    def txn(self) -> object:
        item, span = txn_params()
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(ITEM.format(table=self.table), item).fetchone()
            agg = conn.exec_driver_sql(RANGE.format(table=self.table), span).fetchone()
            conn.commit()
        return row, agg

    def close(self) -> None:
        self.engine.dispose()


class Psycopg2Pool:
    """getconn/putconn on psycopg2's ThreadedConnectionPool (behind a semaphore
    of the pool size, since it raises rather than waits when exhausted) or on
    fastpool's drop-in for it (which waits). The psycopg2 driver, not psycopg 3."""

    def __init__(self, s: Settings, fastpool: bool) -> None:
        self.table, self.autocommit = s.table, s.autocommit
        if fastpool:
            from fastpool.psycopg2_pool import ThreadedConnectionPool

            self.pool: Any = ThreadedConnectionPool(
                s.pool_size, s.pool_size, s.dsn, pool_timeout=TIMEOUT
            )
            self.sem: threading.Semaphore | None = None
        else:
            from psycopg2.pool import ThreadedConnectionPool as Psycopg2Threaded

            self.pool = Psycopg2Threaded(s.pool_size, s.pool_size, s.dsn)
            self.sem = threading.Semaphore(s.pool_size)

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        if self.sem is not None and not self.sem.acquire(timeout=TIMEOUT):
            raise TimeoutError(f"no connection within {TIMEOUT} s")
        try:
            conn = self.pool.getconn()
            try:
                # psycopg2.connect takes no autocommit argument: set it on first use
                # (an attribute check afterwards), the same for both pools.
                if conn.autocommit != self.autocommit:
                    conn.autocommit = self.autocommit
                yield conn
            except BaseException:
                if not conn.closed and not self.autocommit:
                    conn.rollback()
                raise
            finally:
                self.pool.putconn(conn)
        finally:
            if self.sem is not None:
                self.sem.release()

    def select1(self) -> object:
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(SELECT1)
            return cur.fetchone()

    def txn(self) -> object:
        with self._conn() as conn:
            with conn.cursor() as cur:
                result = _txn_on_cursor(cur, self.table)
            conn.commit()
            return result

    def close(self) -> None:
        self.pool.closeall()


class Dedicated:
    """The ceiling: each server thread opens its own psycopg connection on its
    first request and keeps it; no pool at all."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.local = threading.local()
        self.lock = threading.Lock()
        self.conns: list[Any] = []

    def _conn(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            import psycopg

            conn = psycopg.connect(self.settings.dsn, autocommit=self.settings.autocommit)
            with self.lock:
                self.conns.append(conn)
            self.local.conn = conn
        return conn

    def select1(self) -> object:
        return self._conn().execute(SELECT1).fetchone()

    def txn(self) -> object:
        conn = self._conn()
        with conn.cursor() as cur:
            result = _txn_on_cursor(cur, self.settings.table)
        conn.commit()
        return result

    def close(self) -> None:
        with self.lock:
            for conn in self.conns:
                conn.close()


class NoDatabase:
    """The server alone: the ``nodb`` endpoint's contender, which holds nothing."""

    def __init__(self, s: Settings) -> None:
        pass

    def select1(self) -> object:
        raise RuntimeError("the 'no database' contender serves only /nodb")

    txn = select1

    def close(self) -> None:
        pass


def _fastpool_pool() -> type:
    from fastpool import ConnectionPool

    return ConnectionPool


def _psycopg_pool() -> type:
    from psycopg_pool import ConnectionPool

    return ConnectionPool


def _queue_pool() -> type:
    from sqlalchemy.pool import QueuePool

    return QueuePool


def _fast_queue_pool() -> type:
    from fastpool.sqlalchemy_pool import FastQueuePool

    return FastQueuePool


# name -> (factory, the library it needs). Names match the asyncio contenders'
# where the pool is the same, so one --server-contenders list selects both.
CONTENDERS: dict[str, tuple[Callable[[Settings], SyncPool], str]] = {
    "fastpool": (lambda s: PsycopgPool(s, _fastpool_pool()), "fastpool"),
    "psycopg_pool": (lambda s: PsycopgPool(s, _psycopg_pool()), "psycopg_pool"),
    "sqlalchemy QueuePool": (lambda s: SQLAlchemyEngine(s, _queue_pool()), "sqlalchemy"),
    "sqlalchemy FastQueuePool": (
        lambda s: SQLAlchemyEngine(s, _fast_queue_pool()),
        "sqlalchemy",
    ),
    "psycopg2 pool+sem": (lambda s: Psycopg2Pool(s, fastpool=False), "psycopg2"),
    "fastpool psycopg2_pool": (lambda s: Psycopg2Pool(s, fastpool=True), "psycopg2"),
    "dedicated": (Dedicated, "psycopg"),
    "no database": (NoDatabase, ""),
}


def make(s: Settings) -> SyncPool:
    try:
        factory, _ = CONTENDERS[s.contender]
    except KeyError:
        raise ValueError(
            f"unknown threaded-server contender {s.contender!r}; choose from {list(CONTENDERS)}"
        ) from None
    return factory(s)
