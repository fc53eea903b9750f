"""Background threads of a pool: ``num_workers`` workers running maintenance
tasks (connect, reconnect, shrink) from a queue, and one scheduler that turns
delayed tasks into queued ones. Neither ever runs on a client's thread.

Tasks are ``(function, args)`` where ``function(pool, *args)`` is called with
the pool dereferenced from a weak reference: a forgotten pool can still be
garbage-collected (and then its threads stop), as with psycopg_pool.
``BaseWorkers`` is what these and the async pools' task workers
(``fastpool.async_workers``) share.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
import time
import weakref
from typing import Any, Callable

from .base import clamp_wait

logger: logging.Logger = logging.getLogger("psycopg.pool")

Task = Callable[..., Any]
# Queued once per worker by stop(): that worker ends.
STOP = object()


# The scheduler sleeps at most this long between looks at its heap, so a task
# due at a far-off time (max_idle=inf: never) costs one wake-up per period.
_MAX_SLEEP = 600.0


def log_task_failure(task: Task, ex: BaseException, log: logging.Logger = logger) -> None:
    """A maintenance task raised: log it (on its pool family's logger) and keep
    the worker going."""
    if isinstance(ex, Exception):
        log.warning(
            "task run %s failed: %s: %s", getattr(task, "__name__", task), ex.__class__.__name__, ex
        )
    else:  # SystemExit and the like: unexpected in a pool task, worth a traceback
        log.error(
            "task run %s raised %s: %s (the pool's worker goes on)",
            getattr(task, "__name__", task),
            ex.__class__.__name__,
            ex,
            exc_info=ex,
        )


class BaseWorkers:
    """What the thread workers (``Workers``) and the task workers
    (``AsyncWorkers``) of a pool share: the pool held by a weak reference, the
    order to stop, and delays. How tasks are queued, run and delayed is each
    subclass's."""

    def __init__(self, pool: Any, log: logging.Logger) -> None:
        self._pool_ref = weakref.ref(pool)
        self._log = log  # the pool family's logger
        self._name = pool.name
        self._stopping = False

    def run_later(self, delay: float, task: Task, *args: Any) -> None:
        """Run ``task`` in ``delay`` seconds; an infinite delay is never."""
        if delay != math.inf:
            self._run_later(delay, task, args)

    def _run_later(self, delay: float, task: Task, args: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _next_call(self, item: Any) -> tuple[Any, Task, tuple[Any, ...]] | None:
        """What a worker calls for an ``item`` taken off the queue: the pool,
        the task and its arguments; None when the worker ends instead (it was
        told to stop, or its pool was garbage-collected)."""
        if item is STOP:
            return None
        pool = self._pool_ref()
        if pool is None:
            return None
        task, args = item
        return pool, task, args


class Workers(BaseWorkers):
    """A task queue, its worker threads and a scheduler thread for one pool."""

    def __init__(self, pool: Any, num_workers: int, log: logging.Logger = logger) -> None:
        super().__init__(pool, log)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Scheduler state: a heap of (when, seq, task, args) guarded by _cond.
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Task, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.threads: list[threading.Thread] = [
            threading.Thread(target=self._work, name=f"{self._name}-worker-{i}", daemon=True)
            for i in range(num_workers)
        ]
        self.threads.append(
            threading.Thread(
                target=self._schedule_loop, name=f"{self._name}-scheduler", daemon=True
            )
        )

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def run_soon(self, task: Task, *args: Any) -> None:
        self._queue.put((task, args))

    def _run_later(self, delay: float, task: Task, args: tuple[Any, ...]) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), task, args))
            self._cond.notify()

    def stop(self) -> None:
        """Ask every thread to finish; returns at once (join() waits)."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify()
        for _ in range(len(self.threads) - 1):
            self._queue.put(STOP)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            if t is threading.current_thread() or not t.is_alive():
                continue
            t.join(clamp_wait(max(0.0, deadline - time.monotonic())))
            if t.is_alive():
                self._log.warning("couldn't stop thread %r within %s seconds", t.name, timeout)

    def _work(self) -> None:
        while (call := self._next_call(self._queue.get())) is not None:
            pool, task, args = call
            try:
                task(pool, *args)
            except BaseException as ex:  # a dead worker would leave its tasks undone
                log_task_failure(task, ex, self._log)
            del pool, call  # don't keep the pool alive while blocked on the queue

    def _schedule_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if not self._heap:
                    self._cond.wait(_MAX_SLEEP)
                    continue
                when = self._heap[0][0]
                if when > now:
                    # Bounded: a far-future time (a huge max_idle) must not
                    # overflow the wait and kill this thread.
                    self._cond.wait(min(when - now, _MAX_SLEEP))
                    continue
                _, _, task, args = heapq.heappop(self._heap)
                self._queue.put((task, args))
