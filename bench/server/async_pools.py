"""The asyncio server's contenders: the async pools, each used as its
documentation shows, opened in the ASGI app's startup and closed at shutdown.
Same sizes and modes as the threaded ones (see sync_pools.py)."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .settings import ITEM, RANGE, SELECT1, Settings, txn_params
from .trace import RequestTrace, monotonic

TIMEOUT = 30.0


class AsyncPool(Protocol):
    async def open(self) -> None: ...

    async def select1(self) -> object: ...

    async def txn(self) -> object: ...

    async def close(self) -> None: ...


async def _txn_on_cursor(cur: Any, table: str) -> tuple[object, object]:
    item, span = txn_params()
    await cur.execute(ITEM.format(table=table), item)
    row = await cur.fetchone()
    await cur.execute(RANGE.format(table=table), span)
    return row, await cur.fetchone()


class AsyncPsycopgPool:
    """fastpool's or psycopg_pool's AsyncConnectionPool: ``async with pool.connection()``.
    Each request's connection wait and hold are recorded (trace.py), written
    at close if the runner asked for them."""

    def __init__(self, s: Settings, pool_class: Callable[[], type]) -> None:
        self.settings, self.pool_class = s, pool_class
        self.trace = RequestTrace(s.trace_dir)

    async def open(self) -> None:
        s = self.settings
        self.pool = self.pool_class()(
            s.dsn,
            min_size=s.pool_size,
            max_size=s.pool_size,
            kwargs={"autocommit": s.autocommit},
            timeout=TIMEOUT,
            open=False,
        )
        await self.pool.open(wait=True)

    async def select1(self) -> object:
        asked = monotonic()
        async with self.pool.connection() as conn:
            got = monotonic()
            cur = await conn.execute(SELECT1)
            row = await cur.fetchone()
        self.trace.record(asked, got, monotonic())
        return row

    async def txn(self) -> object:
        asked = monotonic()
        async with self.pool.connection() as conn:
            got = monotonic()
            async with conn.cursor() as cur:
                rows = await _txn_on_cursor(cur, self.settings.table)
        self.trace.record(asked, got, monotonic())
        return rows

    async def close(self) -> None:
        await self.pool.close()
        self.trace.write()


class AsyncSQLAlchemyEngine:
    """An async engine on the psycopg 3 dialect with an asyncio-adapted pool
    class: ``async with engine.connect()``, commit for ``txn``."""

    def __init__(self, s: Settings, poolclass: Callable[[], type]) -> None:
        self.settings, self.poolclass = s, poolclass

    async def open(self) -> None:
        import psycopg
        from sqlalchemy.ext.asyncio import create_async_engine

        s = self.settings

        async def connect() -> Any:
            return await psycopg.AsyncConnection.connect(s.dsn)

        self.engine = create_async_engine(
            "postgresql+psycopg://",
            async_creator=connect,
            poolclass=self.poolclass(),
            pool_size=s.pool_size,
            max_overflow=0,
            pool_timeout=TIMEOUT,
            isolation_level="AUTOCOMMIT" if s.autocommit else "READ COMMITTED",
        )

    async def select1(self) -> object:
        async with self.engine.connect() as conn:
            return (await conn.exec_driver_sql(SELECT1)).fetchone()

    async def txn(self) -> object:
        table = self.settings.table
        item, span = txn_params()
        async with self.engine.connect() as conn:
            row = (await conn.exec_driver_sql(ITEM.format(table=table), item)).fetchone()
            agg = (await conn.exec_driver_sql(RANGE.format(table=table), span)).fetchone()
            await conn.commit()
        return row, agg

    async def close(self) -> None:
        await self.engine.dispose()


class AsyncDedicated:
    """The ceiling: a connection per request in flight, no pool. A request takes
    an idle one from a free list or, when none is idle, opens one that it then
    keeps in the list; so there are as many as the most concurrent requests."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.idle: list[Any] = []
        self.all: list[Any] = []

    async def open(self) -> None:
        pass

    async def _take(self) -> Any:
        if self.idle:
            return self.idle.pop()
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            self.settings.dsn, autocommit=self.settings.autocommit
        )
        self.all.append(conn)
        return conn

    async def select1(self) -> object:
        conn = await self._take()
        try:
            return await (await conn.execute(SELECT1)).fetchone()
        finally:
            self.idle.append(conn)

    async def txn(self) -> object:
        conn = await self._take()
        try:
            async with conn.cursor() as cur:
                result = await _txn_on_cursor(cur, self.settings.table)
            await conn.commit()
            return result
        finally:
            self.idle.append(conn)

    async def close(self) -> None:
        for conn in self.all:
            await conn.close()


class AsyncNoDatabase:
    def __init__(self, s: Settings) -> None:
        pass

    async def open(self) -> None:
        pass

    async def select1(self) -> object:
        raise RuntimeError("the 'no database' contender serves only /nodb")

    txn = select1

    async def close(self) -> None:
        pass


def _fastpool_pool() -> type:
    from fastpool import AsyncConnectionPool

    return AsyncConnectionPool


def _psycopg_pool() -> type:
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool


def _queue_pool() -> type:
    from sqlalchemy.pool import AsyncAdaptedQueuePool

    return AsyncAdaptedQueuePool


def _fast_queue_pool() -> type:
    from fastpool import sqlalchemy_pool

    return sqlalchemy_pool.AsyncAdaptedFastQueuePool  # type: ignore[attr-defined, no-any-return]


def has_async_fast_queue_pool() -> bool:
    """fastpool's asyncio-adapted FastQueuePool is newer than this case: it
    joins the comparison in the versions that have it."""
    try:
        from fastpool import sqlalchemy_pool
    except ImportError:
        return False
    return hasattr(sqlalchemy_pool, "AsyncAdaptedFastQueuePool")


# name -> (factory, the library it needs); names as in sync_pools.CONTENDERS.
CONTENDERS: dict[str, tuple[Callable[[Settings], AsyncPool], str]] = {
    "fastpool": (lambda s: AsyncPsycopgPool(s, _fastpool_pool), "fastpool"),
    "psycopg_pool": (lambda s: AsyncPsycopgPool(s, _psycopg_pool), "psycopg_pool"),
    "sqlalchemy QueuePool": (lambda s: AsyncSQLAlchemyEngine(s, _queue_pool), "sqlalchemy"),
    "sqlalchemy FastQueuePool": (
        lambda s: AsyncSQLAlchemyEngine(s, _fast_queue_pool),
        "sqlalchemy",
    ),
    "dedicated": (AsyncDedicated, "psycopg"),
    "no database": (AsyncNoDatabase, ""),
}


def make(s: Settings) -> AsyncPool:
    try:
        factory, _ = CONTENDERS[s.contender]
    except KeyError:
        raise ValueError(
            f"unknown asyncio-server contender {s.contender!r}; choose from {list(CONTENDERS)}"
        ) from None
    return factory(s)
