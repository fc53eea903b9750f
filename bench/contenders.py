"""The pools under comparison, each behind one small interface.

Every contender is built from a :class:`Setup` (real PostgreSQL or stub
connections, sizes, autocommit or transaction mode), opened and warmed before
anything is timed, and closed after its measurement (so only one pool holds
server connections at a time). The ``on_return`` of each ``CONTENDERS`` entry
says what that pool does with a connection that comes back: the safety work is
as equal as the libraries allow.

Interface: ``cycle()`` checks a connection out and back in (untimed, for ns/op);
``op(select)`` does the same with an optional ``SELECT 1`` (and a commit in
transaction mode) and returns how long the checkout waited; ``thread_setup()``
runs in each worker thread before the clock starts.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from dataclasses import dataclass
from time import perf_counter
from types import ModuleType
from typing import Callable, NamedTuple, Optional

from .stubconn import BenchConnection, stub_connect

SQL = "SELECT 1"


@dataclass(frozen=True)
class Setup:
    dsn: Optional[str]  # None: stub connections (no server)
    size: int = 10  # max connections
    min_size: Optional[int] = None  # idle connections made up front (default: size)
    autocommit: bool = True
    timeout: float = 30.0

    @property
    def stub(self) -> bool:
        return self.dsn is None

    @property
    def min(self) -> int:
        return self.size if self.min_size is None else self.min_size

    def psycopg_creator(self) -> Callable[[], object]:
        if self.stub:
            return stub_connect
        import psycopg

        return functools.partial(psycopg.connect, self.dsn, autocommit=self.autocommit)


def fastpool_module(impl: str) -> ModuleType:
    """``fastpool`` on the requested core. The package picks its core once, at
    import; for the other one, import a second copy with ``FASTPOOL_IMPL`` set
    and put the first copy back, so both run in the same process and run."""
    import fastpool

    if fastpool.__impl__ == impl:
        return fastpool
    cached = _twins.get(impl)
    if cached is not None:
        return cached
    ours = {k: m for k, m in sys.modules.items() if k == "fastpool" or k.startswith("fastpool.")}
    saved_env = os.environ.get("FASTPOOL_IMPL")
    try:
        for k in ours:
            del sys.modules[k]
        os.environ["FASTPOOL_IMPL"] = impl
        twin = importlib.import_module("fastpool")
        importlib.import_module("fastpool.pool")
    finally:
        if saved_env is None:
            os.environ.pop("FASTPOOL_IMPL", None)
        else:
            os.environ["FASTPOOL_IMPL"] = saved_env
        for k in [k for k in sys.modules if k == "fastpool" or k.startswith("fastpool.")]:
            del sys.modules[k]
        sys.modules.update(ours)
    _twins[impl] = twin
    return twin


_twins: dict[str, ModuleType] = {}


class Contender:
    """Base: a get/put pool. Subclasses set ``pool`` and may override ``op``."""

    stub_ok = True  # can hold stub connections
    requires = ""  # the library it needs, skipped (with a note) if missing
    #: the DB-API cursor path (psycopg2, DBUtils) instead of psycopg's conn.execute
    uses_cursor = False

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    def get(self):
        raise NotImplementedError

    def put(self, conn) -> None:
        conn.close()  # DB-API pools take a connection back when it is "closed"

    def cycle(self) -> None:
        self.put(self.get())

    def select(self, conn) -> None:
        if self.uses_cursor:
            cur = conn.cursor()
            cur.execute(SQL)
            cur.fetchone()
            cur.close()
        else:
            conn.execute(SQL).fetchone()
        if not self.setup.autocommit:
            conn.commit()

    def op(self, select: bool) -> float:
        t0 = perf_counter()
        conn = self.get()
        t1 = perf_counter()
        try:
            if select:
                self.select(conn)
        finally:
            self.put(conn)
        return t1 - t0

    def thread_setup(self) -> None:
        pass

    def queued_since_warm(self) -> int | None:
        """How many checkouts the pool itself says had to queue, for pools that
        count it (fastpool, psycopg_pool); None for the others."""
        return None

    def warm(self) -> None:
        """Have every connection made and used once before the clock starts."""
        held = [self.get() for _ in range(self.setup.min)]
        for c in held:
            self.put(c)
        for _ in range(100):
            self.cycle()

    def close(self) -> None:
        raise NotImplementedError


class _PsycopgPoolAPI(Contender):
    """fastpool and psycopg_pool share the API: build either the same way."""

    def make_pool(self, cls, **options):
        s = self.setup
        stub = {"connection_class": BenchConnection} if s.stub else {}
        pool = cls(
            s.dsn or "",
            **stub,
            kwargs={"autocommit": s.autocommit},
            min_size=s.min,
            max_size=s.size,
            timeout=s.timeout,
            open=True,
            **options,
        )
        pool.wait()
        return pool

    def get(self):
        return self.pool.getconn()

    def put(self, conn) -> None:
        self.pool.putconn(conn)

    def warm(self) -> None:
        super().warm()
        self.pool.pop_stats()

    def queued_since_warm(self) -> int | None:
        return self.pool.get_stats().get("requests_queued", 0)

    def close(self) -> None:
        self.pool.close()


class _ContextManaged(_PsycopgPoolAPI):
    """``with pool.connection() as conn``: commits (or rolls back) itself."""

    def cycle(self) -> None:
        with self.pool.connection():
            pass

    def op(self, select: bool) -> float:
        t0 = perf_counter()
        with self.pool.connection() as conn:
            t1 = perf_counter()
            if select:
                conn.execute(SQL).fetchone()
        return t1 - t0


class PoolGetconn(_PsycopgPoolAPI):
    """``getconn()``/``putconn()`` on fastpool (impl "c" or "python") or psycopg_pool."""

    def __init__(self, setup: Setup, impl: str) -> None:
        super().__init__(setup)
        self.pool = self.make_pool(pool_class(impl))


class PoolContext(_ContextManaged):
    """``with pool.connection()`` on fastpool (impl "c" or "python") or
    psycopg_pool; fastpool's with ``use_lifo=True`` if asked."""

    def __init__(self, setup: Setup, impl: str, use_lifo: bool = False) -> None:
        super().__init__(setup)
        self.pool = self.make_pool(pool_class(impl), **({"use_lifo": True} if use_lifo else {}))


def pool_class(impl: str) -> type:
    """The ConnectionPool class of fastpool on core ``impl``, or psycopg_pool's;
    ImportError if that one can't be loaded here."""
    if impl == "psycopg_pool":
        import psycopg_pool

        return psycopg_pool.ConnectionPool
    return fastpool_module(impl).ConnectionPool


class SQLAlchemyQueuePool(Contender):
    """The raw pool: ``pool.connect()`` and ``conn.close()`` to return."""

    requires = "sqlalchemy"

    def __init__(self, setup: Setup, fastpool: bool = False) -> None:
        super().__init__(setup)
        if fastpool:
            from fastpool.sqlalchemy_pool import FastQueuePool as QueuePool
        else:
            from sqlalchemy.pool import QueuePool

        s = setup
        self.pool = QueuePool(
            s.psycopg_creator(),
            pool_size=s.min,
            max_overflow=s.size - s.min,
            timeout=s.timeout,
            reset_on_return="rollback",
        )

    def get(self):
        return self.pool.connect()

    def close(self) -> None:
        self.pool.dispose()


class SQLAlchemyEngine(Contender):
    """``with engine.connect() as conn`` on the psycopg 3 dialect (QueuePool inside)."""

    stub_ok = False  # the dialect queries the server on first connect
    requires = "sqlalchemy"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        import psycopg
        from sqlalchemy import create_engine

        s = setup
        self.engine = create_engine(
            "postgresql+psycopg://",
            creator=functools.partial(psycopg.connect, s.dsn),
            pool_size=s.min,
            max_overflow=s.size - s.min,
            pool_timeout=s.timeout,
            isolation_level="AUTOCOMMIT" if s.autocommit else "READ COMMITTED",
        )

    def get(self):
        return self.engine.connect()

    def cycle(self) -> None:
        with self.engine.connect():
            pass

    def op(self, select: bool) -> float:
        t0 = perf_counter()
        with self.engine.connect() as conn:
            t1 = perf_counter()
            if select:
                conn.exec_driver_sql(SQL).fetchone()
                if not self.setup.autocommit:
                    conn.commit()
        return t1 - t0

    def close(self) -> None:
        self.engine.dispose()


class Psycopg2Threaded(Contender):
    """psycopg2's ThreadedConnectionPool raises PoolError when exhausted, so it
    is wrapped in a semaphore of the pool size: callers wait instead."""

    uses_cursor = True
    requires = "psycopg2"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        import psycopg2
        from psycopg2 import pool as pg2pool

        class StubbablePool(pg2pool.ThreadedConnectionPool):
            def _connect(inner, key=None):  # the only connect in psycopg2's pool
                if not setup.stub:
                    conn = psycopg2.connect(setup.dsn)
                    conn.autocommit = setup.autocommit
                else:
                    conn = BenchConnection.connect()
                if key is not None:
                    inner._used[key] = conn
                    inner._rused[id(conn)] = key
                else:
                    inner._pool.append(conn)
                return conn

        self.pool = StubbablePool(setup.min, setup.size)
        self.sem = threading.Semaphore(setup.size)

    def get(self):
        self.sem.acquire()
        try:
            return self.pool.getconn()
        except BaseException:
            self.sem.release()
            raise

    def put(self, conn) -> None:
        try:
            self.pool.putconn(conn)
        finally:
            self.sem.release()

    def close(self) -> None:
        self.pool.closeall()


class FastpoolPsycopg2(Contender):
    """fastpool.psycopg2_pool.ThreadedConnectionPool: psycopg2's API, waits
    (FIFO) when exhausted, so no semaphore is needed."""

    uses_cursor = True
    requires = "psycopg2"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        import psycopg2

        from fastpool.psycopg2_pool import ThreadedConnectionPool

        class StubbablePool(ThreadedConnectionPool):
            def _connect(inner):
                if setup.stub:
                    return BenchConnection.connect()
                conn = psycopg2.connect(setup.dsn)
                conn.autocommit = setup.autocommit
                return conn

        self.pool = StubbablePool(setup.min, setup.size)

    def get(self):
        return self.pool.getconn()

    def put(self, conn) -> None:
        self.pool.putconn(conn)

    def close(self) -> None:
        self.pool.closeall()


class DBUtilsPooledDB(Contender):
    requires = "dbutils"

    uses_cursor = True

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        from dbutils.pooled_db import PooledDB

        s = setup
        if s.stub:
            from . import stubconn as creator  # a DB-API "module"
        else:
            import psycopg

            # DBUtils reads threadsafety and the failure exceptions off creator.dbapi
            creator = s.psycopg_creator()
            creator.dbapi = psycopg  # type: ignore[attr-defined]
        self.pool = PooledDB(
            creator,
            mincached=s.min,
            maxcached=s.size,
            maxconnections=s.size,
            blocking=True,
            reset=True,
        )

    def get(self):
        return self.pool.connection()

    def close(self) -> None:
        self.pool.close()


class NoPool(Contender):
    """Connect for every request and close after it."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.connect = setup.psycopg_creator()

    def get(self):
        return self.connect()

    def warm(self) -> None:
        self.cycle()

    def close(self) -> None:
        pass


class Dedicated(Contender):
    """The ceiling: every thread owns one connection, no pool at all."""

    stub_ok = False

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.connect = setup.psycopg_creator()
        self.local = threading.local()
        self.all: list = []
        self.lock = threading.Lock()

    def thread_setup(self) -> None:
        conn = self.connect()
        with self.lock:
            self.all.append(conn)
        self.local.conn = conn

    def get(self):
        return self.local.conn

    def put(self, conn) -> None:
        pass

    def warm(self) -> None:
        pass

    def close(self) -> None:
        for conn in self.all:
            conn.close()


class Entry(NamedTuple):
    factory: Callable[[Setup], Contender]
    on_return: str  # what the pool does with a connection that comes back
    cases: frozenset[str]  # the cases of cases_pools.py it runs in (see in_case)

    @property
    def cls(self) -> type[Contender]:
        """The Contender class (a factory may be a functools.partial of one)."""
        return getattr(self.factory, "func", self.factory)


ALL_CASES = frozenset({"cycle", "e2e", "spike", "memory"})

# One row per contender, in the order the cases run and list them.
CONTENDERS: dict[str, Entry] = {
    "fastpool.c": Entry(
        functools.partial(PoolContext, impl="c"),
        "`with pool.connection()`: commit/rollback only if a transaction is open; "
        "a broken or expired connection is replaced",
        ALL_CASES,
    ),
    "fastpool.c getconn": Entry(
        functools.partial(PoolGetconn, impl="c"),
        "getconn/putconn: rollback (with a warning) if returned in a transaction",
        frozenset({"cycle"}),
    ),
    "fastpool.python": Entry(
        functools.partial(PoolContext, impl="python"),
        "as fastpool.c, on the pure-Python twin of the core",
        ALL_CASES,
    ),
    "fastpool.c lifo": Entry(
        functools.partial(PoolContext, impl="c", use_lifo=True),
        "as fastpool.c, with use_lifo=True: the connection returned last is handed out next",
        frozenset(),
    ),
    "fastpool.python lifo": Entry(
        functools.partial(PoolContext, impl="python", use_lifo=True),
        "as fastpool.c lifo, on the pure-Python twin of the core",
        frozenset(),
    ),
    "psycopg_pool": Entry(
        functools.partial(PoolContext, impl="psycopg_pool"),
        "`with pool.connection()`: commit/rollback via the connection's context, "
        "status check, expiry check",
        ALL_CASES,
    ),
    "psycopg_pool getconn": Entry(
        functools.partial(PoolGetconn, impl="psycopg_pool"),
        "getconn/putconn: status check, rollback if needed",
        frozenset({"cycle"}),
    ),
    "sqlalchemy QueuePool": Entry(
        SQLAlchemyQueuePool,
        "raw `QueuePool.connect()`/`close()`: always rollback "
        "(reset_on_return; psycopg skips it on an idle connection)",
        ALL_CASES,
    ),
    "sqlalchemy FastQueuePool": Entry(
        functools.partial(SQLAlchemyQueuePool, fastpool=True),
        "as sqlalchemy QueuePool, with fastpool's FastQueuePool as the pool",
        frozenset({"cycle", "e2e"}),
    ),
    "sqlalchemy engine": Entry(
        SQLAlchemyEngine,
        "`with engine.connect()`: rollback on return, as above",
        frozenset({"cycle", "e2e"}),
    ),
    "psycopg2 pool+sem": Entry(
        Psycopg2Threaded,
        "psycopg2 driver (not psycopg 3); ThreadedConnectionPool behind a "
        "semaphore; rollback only if not idle",
        ALL_CASES,
    ),
    "fastpool psycopg2_pool": Entry(
        FastpoolPsycopg2,
        "psycopg2 driver; fastpool.psycopg2_pool.ThreadedConnectionPool "
        "(waits when exhausted); rollback only if in a transaction",
        frozenset({"cycle", "e2e"}),
    ),
    "DBUtils PooledDB": Entry(
        DBUtilsPooledDB,
        "`PooledDB(blocking=True, reset=True)`: always rollback",
        ALL_CASES,
    ),
    "no pool": Entry(
        NoPool,
        "connect per request, close after",
        frozenset({"e2e", "spike"}),
    ),
    "dedicated": Entry(
        Dedicated,
        "each thread keeps its own connection (the ceiling)",
        frozenset({"e2e"}),
    ),
}


def in_case(case: str) -> list[str]:
    """The contenders that run in ``case``, in table order."""
    return [name for name, entry in CONTENDERS.items() if case in entry.cases]


def available(names: list[str], setup: Setup) -> dict[str, Callable[[], Contender]]:
    """Factories for the named contenders that can run here with ``setup``;
    a missing library or core is reported once and skipped."""
    out = {}
    for name in names:
        factory, cls = CONTENDERS[name].factory, CONTENDERS[name].cls
        if setup.stub and not cls.stub_ok:
            continue
        try:
            if cls.requires:
                importlib.import_module(cls.requires)
            if "impl" in getattr(factory, "keywords", {}):
                pool_class(factory.keywords["impl"])
        except ImportError as exc:
            _skip(name, str(exc))
            continue
        out[name] = functools.partial(factory, setup)
    return out


_skipped: set[str] = set()


def _skip(name: str, why: str) -> None:
    if name not in _skipped:
        _skipped.add(name)
        print(f"note: {name} skipped: {why}")
