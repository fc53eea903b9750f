"""``async with pool.connection()``'s fast path (an idle connection at hand):
``__aenter__`` hands the connection out without a coroutine, and the block is
counted as psycopg_pool counts it. Runs against the core this run selected."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from fastpool import AsyncConnectionPool
from fastpool.base import Stats
from tests.support.stubs import AsyncStubConnection


async def _open_pool() -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "", connection_class=AsyncStubConnection, min_size=1, max_size=1, open=False
    )
    await pool.open(wait=True, timeout=5)
    pool.pop_stats()  # the connect's own counters
    return pool


def test_fast_checkout_is_counted_without_a_coroutine(aio: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, Any, Any, dict[str, int], list[int]]:
        pool = await _open_pool()
        try:
            ctx: Any = pool.connection()
            entering = ctx.__aenter__()
            is_coroutine = asyncio.iscoroutine(entering)
            conn = await entering
            # usage_ms counts whole milliseconds; (not asyncio.sleep(): uvloop's
            # timers have millisecond granularity and may fire early)
            time.sleep(0.002)
            await ctx.__aexit__(None, None, None)
            async with pool.connection() as again:
                pass
            stats = pool.get_stats()
            wait_counts, _ = pool.get_metrics().histograms["wait"]
            return is_coroutine, conn, again, stats, wait_counts
        finally:
            await pool.close()

    is_coroutine, conn, again, stats, wait_counts = aio(main())
    assert not is_coroutine
    assert isinstance(conn, AsyncStubConnection)
    assert again is conn  # given back, then handed out again
    assert wait_counts[0] == 2  # no wait: both checkouts took the fast path
    counted = {k: v for k, v in stats.items() if k in Stats.KEYS}
    assert set(counted) == {"requests_num", "usage_ms"}, counted
    assert counted["requests_num"] == 2
    assert counted["usage_ms"] >= 2


def test_fast_path_awaitables_work_as_futures(aio: Callable[..., Any]) -> None:
    # asyncio.ensure_future() wraps a non-coroutine awaitable in a coroutine
    # iterating its __await__(): the path a tracer's `await` takes too.
    async def main() -> tuple[Any, Any, int]:
        pool = await _open_pool()
        try:
            ctx: Any = pool.connection()
            conn = await asyncio.ensure_future(ctx.__aenter__())
            exited = await asyncio.ensure_future(ctx.__aexit__(None, None, None))
            return conn, exited, pool.get_stats()["pool_available"]
        finally:
            await pool.close()

    conn, exited, available = aio(main())
    assert isinstance(conn, AsyncStubConnection)
    assert exited is None
    assert available == 1
