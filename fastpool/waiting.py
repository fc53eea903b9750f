"""The queue of clients waiting for a connection.

Waiters are served strictly in arrival order, and a returned slot goes straight
to the oldest waiter (no barging: while anyone waits, no newcomer takes a slot).
Every decision about a waiter (served, failed, or gave up) is made under the
pool's lock, so a slot is never handed to a client that has already timed out.
Only live waiters are in the queue: one that times out removes itself, so
``max_waiting`` and ``requests_waiting`` count real clients.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Callable

from .base import clamp_wait

if TYPE_CHECKING:
    import asyncio


class BaseWaiter:
    """What a waiting thread (``Waiter``) and a waiting task (``AsyncWaiter``)
    share: the outcome, ``slot`` or ``error``, which the pool writes under its
    lock before the wake-up, so it never depends on the wake-up having been
    consumed. How a waiter sleeps and is woken is its subclass's."""

    __slots__ = ("slot", "error")

    if TYPE_CHECKING:
        # A thread's is its lock's release, a task's resolves its future.
        wake: Callable[[], object]

    def __init__(self) -> None:
        self.slot: int = -1
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        """Wake the waiter with an error (pool lock held)."""
        self.error = error
        self.wake()

    @property
    def settled(self) -> bool:
        """Served or failed (read under the pool lock, or on a task's loop
        after waking, to decide)."""
        return self.slot != -1 or self.error is not None


class Waiter(BaseWaiter):
    """One waiting thread. Its lock is only a wake-up signal: created held,
    released by whoever serves or fails the waiter, acquired by the waiter.

    A waiter interrupted (KeyboardInterrupt, an asynchronous exception) just
    after it was served finds its slot in its outcome without waiting again.
    A waiter whose outcome is set owns that slot, queued or not, until it
    hands it on."""

    __slots__ = ("_sem", "wake", "busy")

    def __init__(self) -> None:
        super().__init__()
        self._sem = threading.Lock()
        self._sem.acquire()
        # A C-level call: serving a waiter runs no Python code after the
        # outcome is written, so no exception can land between the two.
        self.wake: Callable[[], None] = self._sem.release
        self.busy: bool = False  # in use by a checkout of its thread

    def wait(self, timeout: float) -> None:
        """Block until woken, or ``timeout`` passes. Whether it was served is
        ``settled`` (under the pool lock), not what this returns."""
        if timeout > 0:  # an infinite or huge one waits as long as threading allows
            self._sem.acquire(timeout=clamp_wait(timeout))

    def clear(self) -> None:
        """Forget the last outcome and re-arm the wake-up (waiter off every
        queue: nobody can serve it meanwhile). A wake-up that was never
        consumed (the waiter was interrupted) is consumed here."""
        self.slot = -1
        self.error = None
        self._sem.acquire(False)


class _ThreadWaiters(threading.local):
    # A thread normally waits in one pool at a time, so one Waiter per thread is
    # reused instead of allocating a lock per queued request.
    def __init__(self) -> None:
        self.waiter = Waiter()


_thread_waiters = _ThreadWaiters()


def thread_waiter() -> Waiter:
    """A cleared waiter for the calling thread, marked busy until
    ``release_waiter()``. The thread's own one is reused unless it is busy: a
    signal handler that checks out a connection while its thread is queued
    (or an interrupted checkout that could not finish its clean-up) gets a
    fresh one, so two waits never share a waiter."""
    w = _thread_waiters.waiter
    if w.busy:
        w = Waiter()
    else:
        w.clear()
    w.busy = True
    return w


def release_waiter(w: Waiter) -> None:
    """The checkout that took ``w`` is done with it (it is off the queue)."""
    w.busy = False


def remove_waiter(queue: "deque[Waiter]", w: Waiter) -> bool:
    """Take ``w`` off ``queue`` (pool lock held); False if it was already served.

    The queue itself is a plain deque: the hot path tests ``if pool._waiting``
    on every return, and a deque answers that in C."""
    try:
        queue.remove(w)
    except ValueError:
        return False
    return True


class AsyncWaiter(BaseWaiter):
    """One waiting asyncio task: a future the pool resolves when it serves or
    fails the waiter (under its lock, so the outcome is set before the wake-up).

    Which of "served" and "gave up" happened is decided, as for threads, by
    whether the waiter was still in the queue when the pool or the waiter took
    the lock: never by the future, which a cancellation or a timeout may
    have settled first."""

    __slots__ = ("_loop", "_fut", "_thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._fut: asyncio.Future[None] = loop.create_future()
        self._thread = threading.get_ident()

    def wake(self) -> bool:
        """Resolve the future on its loop; False if that loop has closed (the
        task can never see it: the caller serves someone else)."""
        if self._loop.is_closed():
            return False
        if threading.get_ident() == self._thread:
            self._set()
            return True
        try:  # a putconn() from another thread (e.g. run_in_executor)
            self._loop.call_soon_threadsafe(self._set)
        except RuntimeError:  # the loop closed just now
            return False
        return True

    def _set(self) -> None:
        if not self._fut.done():
            self._fut.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Return when served or failed, or after ``timeout`` seconds; a
        cancellation of the waiting task propagates (the caller cleans up)."""
        if timeout <= 0 or self._fut.done():
            return
        timer = self._loop.call_later(timeout, self._set)
        try:
            await self._fut
        finally:
            timer.cancel()
