"""Run under callgrind by the instruction-count case (``bench/callgrind.py``):
``N`` and ``2N`` cycles of ``with pool.connection() as conn: pass`` on real
connections, for each named pool and each transaction mode; for the async
pools (names in ``ASYNC_POOLS``) ``async with pool.connection() as conn: pass``
in one coroutine, which the event loop runs once per region.

``python -m bench.callgrind_probe DSN N NAME[,NAME...] [M '["NAME", ...]']``
prints one JSON line: the labels of the measured regions, in the order
callgrind dumps them. The optional second list (names of
``SELECT1_CONTENDERS``) measures regions of ``M`` and ``2M`` whole requests of
one asyncio task, ``SELECT 1`` each (case 8's task, counted).

Each region is bracketed by two system calls nothing else in the process
makes: ``os.getppid()`` (callgrind zeroes its counters on entering
``getppid``) before it and ``os.getpgrp()`` (callgrind dumps them on entering
``getpgrp``) after it. A dump therefore holds the region plus the constant
cost of the two brackets, which the difference between ``2N`` and ``N``
cycles removes, together with anything else paid once per region."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .contenders import CONTENDERS, Setup, fastpool_module

MODES = {"autocommit": True, "transaction": False}
POOL_SIZE = 10
# name -> where its AsyncConnectionPool comes from: a fastpool core, or psycopg_pool
ASYNC_POOLS = {
    "fastpool.c async": "c",
    "fastpool.python async": "python",
    "psycopg_pool async": "psycopg_pool",
}


def cycles(pool: Any, n: int) -> None:
    """The measured loop, written as a user writes it. (Over repeat(), not
    range(): from 257 on, range() makes an int per step, which would count.)"""
    for _ in itertools.repeat(None, n):
        with pool.connection() as conn:  # noqa: F841 - as in user code
            pass


def region(pool: Any, n: int) -> None:
    os.getppid()  # callgrind: zero the counters
    cycles(pool, n)
    os.getpgrp()  # callgrind: dump them


async def async_cycles(pool: Any, n: int) -> None:
    """The async measured loop, as a handler writes it. Nothing in the block
    awaits, so the task suspends only where the pool itself makes it: the
    event loop's cost of running the coroutine is one step per region, paid
    alike by every pool, and the difference between regions cancels it."""
    for _ in itertools.repeat(None, n):
        async with pool.connection() as conn:  # noqa: F841 - as in user code
            pass


def async_region(loop: asyncio.AbstractEventLoop, pool: Any, n: int) -> None:
    coro = async_cycles(pool, n)  # made outside: the same in every region
    os.getppid()  # callgrind: zero the counters
    loop.run_until_complete(coro)
    os.getpgrp()  # callgrind: dump them


def async_pool(
    impl: str, dsn: str, autocommit: bool, size: int = POOL_SIZE, use_lifo: bool = False
) -> Any:
    if impl == "psycopg_pool":
        from psycopg_pool import AsyncConnectionPool
    else:
        AsyncConnectionPool = fastpool_module(impl).AsyncConnectionPool
    options = {"use_lifo": True} if use_lifo else {}
    return AsyncConnectionPool(
        dsn,
        min_size=size,
        max_size=size,
        open=False,
        kwargs={"autocommit": autocommit},
        **options,
    )


# The whole request of case 8's asyncio task: ``SELECT 1`` through a pool (or
# on one dedicated connection, no pool), autocommit. Name -> (core or
# psycopg_pool, pool size, use_lifo); None: the dedicated connection.
SELECT1_CONTENDERS: dict[str, tuple[str, int, bool] | None] = {
    "dedicated async": None,
    "fastpool.c async lifo": ("c", POOL_SIZE, True),
    "fastpool.c async, pool of 1": ("c", 1, False),
    "fastpool.c async": ("c", POOL_SIZE, False),
    "psycopg_pool async": ("psycopg_pool", POOL_SIZE, False),
}
SELECT1_MODE = "select1"


async def select1_requests(pool: Any, n: int) -> None:
    for _ in itertools.repeat(None, n):
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")


async def select1_requests_dedicated(conn: Any, n: int) -> None:
    for _ in itertools.repeat(None, n):
        await conn.execute("SELECT 1")


def measure_select1(name: str, dsn: str, n: int) -> list[dict]:
    """Regions of ``n`` and ``2n`` requests of one task; the event loop's
    trips (the request waits for the server) count, as the client pays them."""
    import psycopg

    loop = asyncio.new_event_loop()
    spec = SELECT1_CONTENDERS[name]
    conn = pool = None
    try:
        if spec is None:
            conn = loop.run_until_complete(psycopg.AsyncConnection.connect(dsn, autocommit=True))
            requests = functools.partial(select1_requests_dedicated, conn)
        else:
            impl, size, use_lifo = spec
            pool = async_pool(impl, dsn, True, size, use_lifo)
            loop.run_until_complete(pool.open(wait=True))
            requests = functools.partial(select1_requests, pool)
        loop.run_until_complete(requests(100))  # every code path taken, caches filled
        labels = []
        for k in (0, n, 2 * n, n, 2 * n):
            coro = requests(k)
            os.getppid()  # callgrind: zero the counters
            loop.run_until_complete(coro)
            os.getpgrp()  # callgrind: dump them
            labels.append({"impl": name, "mode": SELECT1_MODE, "cycles": k})
        return labels
    finally:
        if pool is not None:
            loop.run_until_complete(pool.close())
        if conn is not None:
            loop.run_until_complete(conn.close())
        loop.close()


def measure_async(name: str, dsn: str, n: int) -> list[dict]:
    labels: list[dict] = []
    for mode, autocommit in MODES.items():
        loop = asyncio.new_event_loop()
        pool = async_pool(ASYNC_POOLS[name], dsn, autocommit)
        try:
            loop.run_until_complete(pool.open(wait=True))
            loop.run_until_complete(async_cycles(pool, 200))  # as for the sync pools
            async_region(loop, pool, 0)
            labels.append({"impl": name, "mode": mode, "cycles": 0})
            for k in (n, 2 * n, n, 2 * n):
                async_region(loop, pool, k)
                labels.append({"impl": name, "mode": mode, "cycles": k})
        finally:
            loop.run_until_complete(pool.close())
            loop.close()
    return labels


def main(
    dsn: str, n: int, names: list[str], select1_n: int = 0, select1: Sequence[str] = ()
) -> list[dict]:
    labels: list[dict] = []
    for name in select1:
        labels += measure_select1(name, dsn, select1_n)
    for name in names:
        if name in ASYNC_POOLS:
            labels += measure_async(name, dsn, n)
            continue
        factory = CONTENDERS[name].factory
        for mode, autocommit in MODES.items():
            c: Any = factory(Setup(dsn, size=POOL_SIZE, autocommit=autocommit))
            try:
                c.warm()
                cycles(c.pool, 200)  # every code path taken and every cache filled
                # An empty region first: the first dump also holds what other
                # threads (the pool's workers making its connections) ran before.
                region(c.pool, 0)
                labels.append({"impl": name, "mode": mode, "cycles": 0})
                # Two (N, 2N) pairs: two estimates, which must agree.
                for k in (n, 2 * n, n, 2 * n):
                    region(c.pool, k)
                    labels.append({"impl": name, "mode": mode, "cycles": k})
            finally:
                c.close()
    return labels


if __name__ == "__main__":
    # DSN N NAMES [SELECT1_N SELECT1_NAMES]
    select1 = json.loads(sys.argv[5]) if len(sys.argv) > 5 else []  # (names hold commas)
    select1_n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    out = main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), select1_n, select1)
    print(json.dumps(out))
