"""The pools' background workers (fastpool.workers, fastpool.async_workers) on
their own: a task's delay or a task's exception never stops them."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading

import pytest

from fastpool.async_workers import AsyncWorkers
from fastpool.workers import Workers


class Owner:
    """What the workers need of a pool: a name, and a weak reference to it."""

    name = "owner"


def record(done: list, event: threading.Event, tag: str):
    def task(pool) -> None:
        done.append(tag)
        event.set()

    return task


@pytest.fixture
def workers():
    made = []

    def make(num_workers: int = 1) -> Workers:
        owner = Owner()
        w = Workers(owner, num_workers)
        w.owner = owner  # keep it alive: workers hold a weak reference
        w.start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()
        w.join(5)


@pytest.mark.parametrize("delay", [math.inf, 1e300, 10**19, float(threading.TIMEOUT_MAX) * 2])
def test_a_far_off_task_does_not_stop_the_scheduler(workers, delay) -> None:
    w = workers()
    done: list = []
    ran = threading.Event()
    w.run_later(delay, record(done, threading.Event(), "far"))
    w.run_later(0.01, record(done, ran, "soon"))  # the scheduler is asleep on the far one
    assert ran.wait(10), "the scheduler stopped"
    assert done == ["soon"]
    assert all(t.is_alive() for t in w.threads)


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom"), SystemExit(3), KeyboardInterrupt(), GeneratorExit()]
)
def test_a_worker_survives_a_task_that_raises(workers, caplog, exc) -> None:
    w = workers(num_workers=1)
    done: list = []
    ran = threading.Event()

    def bad(pool) -> None:
        raise exc

    w.run_soon(bad)
    w.run_soon(record(done, ran, "after"))
    assert ran.wait(10), "the only worker died"
    assert done == ["after"]
    assert all(t.is_alive() for t in w.threads)
    logged = [r for r in caplog.records if r.name == "psycopg.pool" and "bad" in r.getMessage()]
    assert len(logged) == 1 and type(exc).__name__ in logged[0].getMessage()
    # an Exception is routine (a warning); anything else is a bug worth a traceback
    assert logged[0].levelno == (logging.WARNING if isinstance(exc, Exception) else logging.ERROR)


def test_join_accepts_an_infinite_timeout(workers) -> None:
    w = workers(num_workers=2)
    w.stop()
    w.join(math.inf)
    assert not any(t.is_alive() for t in w.threads)


def run_async_workers(body, num_workers: int = 1) -> None:
    async def main() -> None:
        owner = Owner()
        w = AsyncWorkers(owner, num_workers)
        w.start()
        try:
            await body(w)
            assert not any(t.done() for t in w.tasks), "a worker task ended"
        finally:
            w.stop()
            await w.join(math.inf)
        assert all(t.done() for t in w.tasks)

    asyncio.run(main())


def test_async_far_off_task_does_not_hold_up_the_others() -> None:
    async def body(w: AsyncWorkers) -> None:
        done: list = []
        ran = asyncio.Event()
        w.run_later(math.inf, lambda pool: done.append("never"))
        w.run_later(1e300, lambda pool: done.append("far"))
        w.run_later(0.01, lambda pool: (done.append("soon"), ran.set()))
        await asyncio.wait_for(ran.wait(), 10)
        assert done == ["soon"]

    run_async_workers(body)


def test_async_worker_survives_a_task_that_raises(caplog) -> None:
    async def body(w: AsyncWorkers) -> None:
        ran = asyncio.Event()

        async def bad(pool) -> None:
            raise RuntimeError("boom")

        w.run_soon(bad)
        w.run_soon(lambda pool: ran.set())
        await asyncio.wait_for(ran.wait(), 10)

    run_async_workers(body)
    assert any("boom" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Task.cancelling() tells a task's own "
    "CancelledError from the worker's cancellation from 3.11 on",
)
def test_async_worker_survives_a_task_whose_awaitable_was_cancelled(caplog) -> None:
    async def body(w: AsyncWorkers) -> None:
        ran = asyncio.Event()

        async def awaits_a_cancelled_future(pool) -> None:
            fut = asyncio.get_running_loop().create_future()
            fut.cancel()
            await fut  # raises CancelledError; the worker itself isn't cancelled

        w.run_soon(awaits_a_cancelled_future)
        w.run_soon(lambda pool: ran.set())
        await asyncio.wait_for(ran.wait(), 10)

    run_async_workers(body)
    assert any("awaits_a_cancelled_future" in r.getMessage() for r in caplog.records)


def test_async_workers_still_stop_when_cancelled() -> None:
    async def main() -> None:
        owner = Owner()
        w = AsyncWorkers(owner, 1)
        w.start()
        started = asyncio.Event()

        async def slow(pool) -> None:
            started.set()
            await asyncio.sleep(60)

        w.run_soon(slow)
        await asyncio.wait_for(started.wait(), 10)
        w.stop()
        await w.join(0.05)  # the worker is busy: join cancels it
        await asyncio.sleep(0)
        assert all(t.done() for t in w.tasks)

    asyncio.run(main())
