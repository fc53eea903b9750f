"""An async pool belongs to the event loop it was opened in. Used from another
loop after that one has closed (a second ``asyncio.run()``, a test runner's
fresh loop), it refuses clearly instead of queueing a waiter nobody can wake,
and it loses nothing: returns, close() and the books all still work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastpool import AsyncConnectionPool, AsyncNullConnectionPool

pytestmark = pytest.mark.postgres

POOL_CLASSES = [AsyncConnectionPool, AsyncNullConnectionPool]


def _sizes(cls: type) -> dict[str, int]:
    return {"min_size": 0, "max_size": 1} if cls is AsyncNullConnectionPool else {"min_size": 1}


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_a_pool_whose_loop_closed_refuses_checkouts_and_loses_nothing(pg_dsn: str, cls) -> None:
    async def open_and_hold() -> tuple[Any, Any]:
        p = cls(pg_dsn, open=False, timeout=5, **_sizes(cls))
        await p.open()
        return p, await p.getconn()

    p, held = asyncio.run(open_and_hold())  # the loop is closed after this

    async def later() -> None:
        with pytest.raises(RuntimeError, match="event loop that has closed"):
            await p.getconn()
        with pytest.raises(RuntimeError, match="event loop that has closed"):
            async with p.connection():
                pass  # pragma: no cover - refused
        with pytest.raises(RuntimeError, match="event loop that has closed"):
            await p.open()
        await p.putconn(held)  # a return is never refused
        stats = p.get_stats()
        assert stats["requests_waiting"] == 0
        if cls is AsyncConnectionPool:
            assert stats["pool_size"] == stats["pool_available"] == 1
        else:
            assert held.closed and stats["pool_size"] == 0
        await p.close()
        assert p.closed

    asyncio.run(later())
    assert held.closed


def test_a_waiter_orphaned_by_its_closed_loop_does_not_swallow_a_connection(pg_dsn: str) -> None:
    # A loop closed without cancelling its tasks leaves a task queued in
    # getconn(). The next return must skip it rather than hand it the
    # connection (which nobody could ever give back).
    loop = asyncio.new_event_loop()
    p = AsyncConnectionPool(pg_dsn, min_size=1, max_size=1, open=False, timeout=5)
    loop.run_until_complete(p.open(wait=True))
    held = loop.run_until_complete(p.getconn())
    orphan = loop.create_task(p.getconn())
    loop.run_until_complete(asyncio.sleep(0.05))
    assert p.get_stats()["requests_waiting"] == 1
    tasks = [orphan, *p._workers.tasks]  # kept alive: closing the loop does not end them
    loop.close()

    async def later() -> None:
        await p.putconn(held)
        assert p.get_stats()["pool_available"] == 1  # back in the pool, not with the orphan
        await p.close()

    asyncio.run(later())
    assert held.closed
    for t in tasks:  # end the stranded coroutines ourselves, quietly
        try:
            t.get_coro().close()
        except RuntimeError:
            pass  # their cleanup can't reach the closed loop
