"""A connection pool under load, for the reliability tests: worker threads run
queries through a fixed-size pool while the test does something bad to it
(kills backends, restarts the server, puts PgBouncer in between, or just lets
it run a long time); then the test checks that the pool's books balance.

    with pool_under_load(dsn, select_one, size=10, threads=64, timeout=30) as load:
        time.sleep(3.0)  # ... something bad happens meanwhile
        load.finish()  # workers stopped and joined: none hung
        assert load.failures == []
        load.assert_books_balance()
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from fastpool import ConnectionPool

# What a worker does with a connection it got from the pool:
# query(conn, thread index, number of the call in that thread).
Query = Callable[[Any, int, int], object]


def select_one(conn: Any, i: int, n: int) -> None:
    conn.execute("SELECT 1")


@dataclass(frozen=True)
class Call:
    """One call of a worker: when it started (time.monotonic()), how long it
    took, and the class of the exception it raised (None: it succeeded)."""

    start: float
    duration: float
    error: type[Exception] | None


@dataclass(frozen=True)
class Failure:
    """An exception a worker's call raised. The class and text only: a kept
    exception would keep its traceback's frames, and their connections, alive."""

    error: type[Exception]
    text: str


class Load:
    """The workers (and side threads) running against ``pool``; see pool_under_load."""

    def __init__(
        self,
        pool: ConnectionPool,
        query: Query,
        *,
        size: int,
        threads: int,
        calls_per_thread: int | None,
        pause_after_error: float,
        record_calls: bool,
        side: Sequence[Callable[[threading.Event], object]],
    ) -> None:
        self.pool = pool
        self.size = size
        self.stop = threading.Event()
        self.ops = [0] * threads  # successful calls, per worker
        self.failures: list[Failure] = []
        self._query = query
        self._calls_per_thread = calls_per_thread
        self._pause_after_error = pause_after_error
        self._record_calls = record_calls
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, args=(i,)) for i in range(threads)]
        self._side = [threading.Thread(target=fn, args=(self.stop,)) for fn in side]

    def _work(self, i: int) -> None:
        n = 0
        while not self.stop.is_set() and (
            self._calls_per_thread is None or n < self._calls_per_thread
        ):
            t0 = time.monotonic()
            error: type[Exception] | None = None
            try:
                with self.pool.connection() as conn:
                    self._query(conn, i, n)
                self.ops[i] += 1
            except Exception as ex:  # what a caller would see: the test judges it
                error = type(ex)
                with self._lock:
                    self.failures.append(Failure(error, repr(ex)))
            if self._record_calls:
                with self._lock:
                    self._calls.append(Call(t0, time.monotonic() - t0, error))
            if error is not None and self._pause_after_error:
                time.sleep(self._pause_after_error)
            n += 1

    def start(self) -> None:
        for t in [*self._side, *self._workers]:
            t.start()

    def finish(self, join_timeout: float = 60.0) -> None:
        """Stop the workers (or, with calls_per_thread, let them finish their
        calls), then the side threads; fail if any thread hung."""
        if self._calls_per_thread is None:
            self.stop.set()
        for t in self._workers:
            t.join(join_timeout)
        self.stop.set()
        for t in self._side:
            t.join(join_timeout)
        assert not any(t.is_alive() for t in [*self._workers, *self._side]), "a thread hung"

    def calls(self) -> list[Call]:
        """The calls so far (record_calls=True), oldest first."""
        with self._lock:
            return list(self._calls)

    def assert_books_balance(self) -> None:
        """The pool is back at its size and its ring's books balance."""
        stats = self.pool.get_stats()
        assert stats["pool_size"] == self.size, stats
        self.pool._ring.check_invariants()


@contextmanager
def pool_under_load(
    dsn: str,
    query: Query,
    *,
    size: int,
    threads: int,
    calls_per_thread: int | None = None,
    pause_after_error: float = 0.0,
    record_calls: bool = False,
    side: Sequence[Callable[[threading.Event], object]] = (),
    **pool_options: Any,
) -> Iterator[Load]:
    """Open a ConnectionPool of ``size`` connections (min = max; ``pool_options``
    go to the pool), wait until it is full, then start ``threads`` workers, each
    calling ``query`` with a connection from the pool until stopped (or
    ``calls_per_thread`` times), and a thread per ``side`` function, called with
    the stop event. Errors do not stop a worker: they go to ``load.failures``
    (and, with ``pause_after_error``, the worker pauses before its next call).
    ``record_calls`` keeps every call's timing (not for long runs: it grows).
    On exit the workers are told to stop and the pool is closed."""
    pool = ConnectionPool(dsn, min_size=size, max_size=size, open=True, **pool_options)
    load = Load(
        pool,
        query,
        size=size,
        threads=threads,
        calls_per_thread=calls_per_thread,
        pause_after_error=pause_after_error,
        record_calls=record_calls,
        side=side,
    )
    try:
        pool.wait(30)
        load.start()
        yield load
    finally:
        load.stop.set()
        pool.close()
