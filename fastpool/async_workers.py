"""Background tasks of an async pool: ``num_workers`` asyncio tasks running
maintenance (connect, reconnect, shrink) from a queue, and ``loop.call_later``
timers for delayed work. The asyncio counterpart of ``fastpool.workers`` with
the same interface, so the shared pool logic schedules work the same way.

Tasks are ``(function, args)``; ``function(pool, *args)`` may return a
coroutine, which the worker awaits. The pool is held by a weak reference, so a
forgotten pool can be garbage-collected (its workers then stop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any

from .workers import STOP, BaseWorkers, Task, log_task_failure

logger: logging.Logger = logging.getLogger("psycopg.pool")


def _being_cancelled() -> bool:
    """The current task has a cancellation pending (Python 3.11+ can tell; on
    older versions assume it has, the safe answer)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or cancelling() > 0


class AsyncWorkers(BaseWorkers):
    """A task queue, its worker tasks and the pending timers of one async pool.
    Created and started inside the pool's running loop."""

    def __init__(self, pool: Any, num_workers: int, log: logging.Logger = logger) -> None:
        super().__init__(pool, log)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._num_workers = num_workers
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            self._loop.create_task(self._work(), name=f"{self._name}-worker-{i}")
            for i in range(self._num_workers)
        ]

    def _in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    def run_soon(self, task: Task, *args: Any) -> None:
        self._put((task, args))

    def _put(self, item: Any) -> None:
        if self._in_loop_thread():
            self._queue.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run_later(self, delay: float, task: Task, args: tuple[Any, ...]) -> None:
        if not self._in_loop_thread():
            self._loop.call_soon_threadsafe(self._run_later, delay, task, args)
            return
        if self._stopping:
            return
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            if not self._stopping:
                self._queue.put_nowait((task, args))

        handle = self._loop.call_later(delay, fire)
        self._timers.add(handle)

    def stop(self) -> None:
        """Ask every worker to finish; returns at once (join() waits)."""
        self._stopping = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._loop.is_closed():
            return  # the tasks and timers ended with their loop
        for _ in self.tasks:
            self._put(STOP)

    async def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the workers; cancel the ones left."""
        current = asyncio.current_task()
        tasks = [t for t in self.tasks if t is not current and not t.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            self._log.warning("couldn't stop task %r within %s seconds", t.get_name(), timeout)
            t.cancel()

    async def _work(self) -> None:
        while (call := self._next_call(await self._queue.get())) is not None:
            pool, task, args = call
            try:
                result = task(pool, *args)
                if inspect.isawaitable(result):
                    await result
            except Exception as ex:
                log_task_failure(task, ex, self._log)
            except asyncio.CancelledError as ex:
                if self._stopping or _being_cancelled():
                    raise  # this worker is cancelled (close(), loop shutdown)
                # A task's own CancelledError (a cancelled future it awaited):
                # a dead worker would leave the pool short of hands.
                log_task_failure(task, ex, self._log)
            except BaseException as ex:
                # KeyboardInterrupt, SystemExit: asyncio stops the loop with
                # these, as it should; say which task raised it.
                log_task_failure(task, ex, self._log)
                raise
            del pool, call  # don't keep the pool alive while waiting on the queue
