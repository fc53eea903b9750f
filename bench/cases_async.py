"""Async pools against each other (case 6 of the comparison): asyncio tasks
sharing a pool of 10 real connections, with and without a ``SELECT 1``.

Contenders, each used the way its docs recommend:

* fastpool (compiled core and pure-Python twin) and psycopg_pool's
  AsyncConnectionPool: ``async with pool.connection() as conn`` (psycopg 3);
* asyncpg's pool: ``async with pool.acquire() as conn``. A different driver
  with its own protocol, so a reference point only; and its release resets
  the session (a round trip) where the psycopg pools send nothing for an idle
  connection, so its no-query cycle is not like for like;
* SQLAlchemy's ``AsyncAdaptedQueuePool`` and fastpool's
  ``AsyncAdaptedFastQueuePool``: an AsyncEngine on psycopg's async dialect,
  ``async with engine.connect() as conn`` (AUTOCOMMIT; SQLAlchemy's own work
  per checkout and return included, the same for both);
* dedicated: one psycopg AsyncConnection per task, no pool (SELECT 1 only,
  the ceiling).

Each repeat runs on a fresh event loop (``--loop uvloop`` to use uvloop),
builds the pool, warms it, measures for ``--seconds`` and closes it."""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from typing import Awaitable, Callable

from .contenders import fastpool_module
from .harness import Result, interleaved
from .report import Table

POOL_SIZE = 10
BASELINE = "psycopg_pool async"
CEILING = "dedicated async"
ASYNCPG = "asyncpg pool (other driver)"
SQLA = "sqlalchemy AsyncAdaptedQueuePool"
SQLA_FAST = "sqlalchemy AsyncAdaptedFastQueuePool"


def _yield() -> Awaitable[None]:
    """The no-query cycle holds the connection across one trip through the event
    loop, as a real handler holds it across its awaits: the other tasks run
    meanwhile, so with more tasks than connections checkouts really wait. (A
    checkout that finds an idle connection does not suspend, so without this
    a task would never give the loop back.)"""
    return asyncio.sleep(0)


class AsyncContender:
    """Base: ``open()``/``close()`` the pool, ``op(select)`` one use of a
    connection; returns the seconds the checkout waited."""

    def __init__(self, dsn: str, tasks: int) -> None:
        self.dsn, self.tasks = dsn, tasks

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        await self.pool.close()

    async def warm(self) -> None:
        for _ in range(POOL_SIZE * 2):
            await self.op(True)


class PsycopgPoolAsync(AsyncContender):
    """fastpool or psycopg_pool: the same API, so one class."""

    def __init__(
        self, dsn: str, tasks: int, impl: str, use_lifo: bool = False, size: int = POOL_SIZE
    ) -> None:
        super().__init__(dsn, tasks)
        self.impl = impl
        self.options = {"use_lifo": True} if use_lifo else {}
        self.size = size

    async def open(self) -> None:
        if self.impl == "psycopg_pool":
            from psycopg_pool import AsyncConnectionPool
        else:
            AsyncConnectionPool = fastpool_module(self.impl).AsyncConnectionPool
        self.pool = AsyncConnectionPool(
            self.dsn,
            min_size=self.size,
            max_size=self.size,
            open=False,
            kwargs={"autocommit": True},
            timeout=60,
            **self.options,
        )
        await self.pool.open(wait=True)

    async def op(self, select: bool) -> float:
        t0 = time.perf_counter()
        async with self.pool.connection() as conn:
            waited = time.perf_counter() - t0
            await (conn.execute("SELECT 1") if select else _yield())
        return waited


class AsyncpgPool(AsyncContender):
    async def open(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(
            _asyncpg_dsn(self.dsn), min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=60
        )

    async def op(self, select: bool) -> float:
        t0 = time.perf_counter()
        async with self.pool.acquire() as conn:
            waited = time.perf_counter() - t0
            await (conn.fetchval("SELECT 1") if select else _yield())
        return waited


class SQLAlchemyAsyncEngine(AsyncContender):
    """An AsyncEngine (psycopg's async dialect) on SQLAlchemy's asyncio pool or
    on fastpool's."""

    def __init__(self, dsn: str, tasks: int, fastpool: bool) -> None:
        super().__init__(dsn, tasks)
        self.fastpool = fastpool

    async def open(self) -> None:
        import psycopg
        from sqlalchemy.ext.asyncio import create_async_engine

        if self.fastpool:
            from fastpool.sqlalchemy_pool import AsyncAdaptedFastQueuePool as poolclass
        else:
            from sqlalchemy.pool import AsyncAdaptedQueuePool as poolclass

        self.engine = create_async_engine(
            "postgresql+psycopg_async://",
            poolclass=poolclass,
            async_creator=functools.partial(psycopg.AsyncConnection.connect, self.dsn),
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=60,
            isolation_level="AUTOCOMMIT",
        )

    async def warm(self) -> None:
        # SQLAlchemy connects on demand: open all POOL_SIZE first, as the
        # psycopg pools do (min_size), so no connect lands in the measurement.
        held = [await self.engine.connect() for _ in range(POOL_SIZE)]
        for conn in held:
            await conn.close()
        await super().warm()

    async def close(self) -> None:
        await self.engine.dispose()

    async def op(self, select: bool) -> float:
        t0 = time.perf_counter()
        async with self.engine.connect() as conn:
            waited = time.perf_counter() - t0
            await (conn.exec_driver_sql("SELECT 1") if select else _yield())
        return waited


class DedicatedAsync(AsyncContender):
    """One connection per task: each task takes its own from a free list."""

    async def open(self) -> None:
        import psycopg

        self.free = [
            await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            for _ in range(self.tasks)
        ]

    async def close(self) -> None:
        for conn in self.free:
            await conn.close()

    async def op(self, select: bool) -> float:
        conn = self.free.pop()
        try:
            await conn.execute("SELECT 1")
        finally:
            self.free.append(conn)
        return 0.0


def _asyncpg_dsn(dsn: str) -> str:
    """asyncpg takes URLs only: turn a libpq key=value string into one."""
    if "://" in dsn:
        return dsn
    parts = dict(item.split("=", 1) for item in dsn.split())
    user = parts.get("user", "")
    password = f":{parts['password']}" if "password" in parts else ""
    auth = f"{user}{password}@" if user or password else ""
    host = parts.get("host", "127.0.0.1")
    if host.startswith("/"):  # a Unix socket directory goes in the query string
        return f"postgresql://{auth}/{parts.get('dbname', '')}?host={host}&port={parts.get('port', 5432)}"
    return f"postgresql://{auth}{host}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


CONTENDERS: dict[str, Callable[[str, int], AsyncContender]] = {
    "fastpool.c async": functools.partial(PsycopgPoolAsync, impl="c"),
    "fastpool.python async": functools.partial(PsycopgPoolAsync, impl="python"),
    BASELINE: functools.partial(PsycopgPoolAsync, impl="psycopg_pool"),
    ASYNCPG: AsyncpgPool,
    SQLA: functools.partial(SQLAlchemyAsyncEngine, fastpool=False),
    SQLA_FAST: functools.partial(SQLAlchemyAsyncEngine, fastpool=True),
    CEILING: DedicatedAsync,
}


async def run_tasks(
    c: AsyncContender, select: bool, tasks: int, seconds: float
) -> tuple[float, dict]:
    """``tasks`` tasks call ``c.op`` in a loop for ``seconds``: ops/s, plus the
    checkout waits and the fewest operations a task completed."""
    stop = False
    counts = [0] * tasks
    waits: list[float] = []
    errors: list[str] = []

    async def worker(i: int) -> None:
        n = 0
        try:
            while not stop:
                waits.append(await c.op(select))
                n += 1
        except Exception as ex:  # reported in the table, never hidden
            errors.append(f"{type(ex).__name__}: {ex}")
        counts[i] = n

    workers = [asyncio.ensure_future(worker(i)) for i in range(tasks)]
    await asyncio.sleep(0)  # let every task start before the clock does
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - t0
    waits.sort()
    ms = [w * 1000 for w in waits] or [0.0]
    return sum(counts) / elapsed, {
        "unit": "ops/s",
        "higher_is_better": True,
        "wait_p50_ms": ms[len(ms) // 2],
        "wait_p99_ms": ms[int(len(ms) * 0.99)],
        "wait_max_ms": ms[-1],
        "min_task_ops": min(counts),
        "starved": counts.count(0),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _measure_once(
    factory: Callable[[str, int], AsyncContender],
    args: argparse.Namespace,
    select: bool,
    tasks: int,
) -> tuple[float, dict]:
    async def main() -> tuple[float, dict]:
        c = factory(args.dsn, tasks)
        await c.open()
        try:
            await c.warm()
            return await run_tasks(c, select, tasks, args.seconds)
        finally:
            await c.close()

    loop = _new_loop(args.loop)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def available(names: list[str]) -> dict[str, Callable[[str, int], AsyncContender]]:
    import importlib

    sqla = ("sqlalchemy", "greenlet")  # greenlet: SQLAlchemy's asyncio layer
    needs = {ASYNCPG: ("asyncpg",), BASELINE: ("psycopg_pool",), SQLA: sqla, SQLA_FAST: sqla}
    out = {}
    for name in names:
        try:
            for module in needs.get(name, ()):
                importlib.import_module(module)
            if name.startswith("fastpool.python"):
                fastpool_module("python")
        except ImportError as exc:
            print(f"(skipping {name}: {exc})")
            continue
        out[name] = CONTENDERS[name]
    return out


def case_async(args: argparse.Namespace) -> list[Table]:
    """6. asyncio tasks on a pool of 10: checkout + return, and SELECT 1."""
    from .cases_pools import WAIT_COLUMNS, _share_of

    columns = {k: v for k, v in WAIT_COLUMNS.items() if k != "fewest ops by a thread"}
    columns["fewest ops by a task"] = lambda res: str(
        min(e.get("min_task_ops", 0) for e in res.extra)
    )
    tables = []
    for select in (False, True):
        names = [n for n in CONTENDERS if select or n != CEILING]
        for tasks in args.async_tasks:
            impls = {
                name: functools.partial(_measure_once, factory, args, select, tasks)
                for name, factory in available(names).items()
            }
            results: dict[str, Result] = interleaved(impls, args.repeats)
            what = "SELECT 1 end to end" if select else "checkout + return (no query)"
            extra = (
                {"% of dedicated": _share_of(results, CEILING), **columns} if select else columns
            )
            tables.append(
                Table(
                    f"async_{'select1' if select else 'cycle'}_{tasks}",
                    f"6. asyncio ({args.loop} loop): {what}, {tasks} tasks on a pool of {POOL_SIZE}, "
                    f"autocommit (ops/s, higher is better)",
                    results,
                    [BASELINE],
                    extra,
                    note="asyncpg is a different driver (its own protocol, no psycopg) and resets the "
                    "session when a connection is released: a reference point, not like for like. "
                    "The sqlalchemy rows go through an AsyncEngine (its work per checkout and return "
                    "included): compare them with each other.",
                )
            )
    return tables
