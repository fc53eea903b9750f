"""Fixtures for the async pools: every test runs on asyncio's own loop and,
where it is installed, on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable, Coroutine

import pytest

import fastpool

try:
    import uvloop
except ImportError:  # pragma: no cover - not on Windows / PyPy
    uvloop = None  # type: ignore[assignment]

LOOPS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(
        "uvloop",
        id="uvloop",
        marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"),
    ),
]


@pytest.fixture(params=LOOPS)
def aio(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``aio(coro)`` runs ``coro`` to completion on a fresh loop of the
    parametrized kind and closes the loop; fails if tasks were left running."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = factory()
        try:
            result = loop.run_until_complete(coro)
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            assert not left, f"tasks left running: {left}"
            return result
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    run.loop_kind = request.param  # type: ignore[attr-defined]
    return run


@contextlib.asynccontextmanager
async def open_pool(
    dsn: str, cls: type = fastpool.AsyncConnectionPool, *, expect_held: int = 0, **kwargs: Any
) -> AsyncIterator[Any]:
    """An open pool that is checked at exit: books balanced, no connection
    still held (beyond ``expect_held``), then closed."""
    kwargs.setdefault("timeout", 5.0)
    p = cls(dsn, open=False, **kwargs)
    await p.open()
    try:
        yield p
        if not p.closed:
            p._ring.check_invariants()
            assert len(p._ring.in_use()) == expect_held, p._ring.in_use()
            assert p.get_stats()["requests_waiting"] == 0
    finally:
        await p.close()
