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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio


class Waiter:
    """One waiting client. Its lock doubles as a binary semaphore: created held,
    released by whoever serves or fails the waiter, acquired by the waiter."""

    __slots__ = ("_sem", "slot", "error")

    def __init__(self) -> None:
        self._sem = threading.Lock()
        self._sem.acquire()
        self.slot = -1
        self.error: BaseException | None = None

    def serve(self, slot: int) -> bool:
        """Give the waiter a slot (pool lock held). Always taken (True): a
        waiting thread is alive until it leaves the queue itself."""
        self.slot = slot
        self._sem.release()
        return True

    def fail(self, error: BaseException) -> None:
        """Wake the waiter with an error (pool lock held)."""
        self.error = error
        self._sem.release()

    def wait(self, timeout: float) -> bool:
        """Block until served or failed, or ``timeout`` passes (then False)."""
        return self._sem.acquire(timeout=timeout) if timeout > 0 else self._sem.acquire(False)

    def collect(self) -> None:
        """Consume the wake-up of a waiter that was served while it was giving up
        (it was taken off the queue under the lock, so the release has happened)."""
        self._sem.acquire()

    def reset(self) -> tuple[int, BaseException | None]:
        """Take the outcome and make the waiter reusable."""
        slot, error = self.slot, self.error
        self.slot, self.error = -1, None
        return slot, error


class _ThreadWaiters(threading.local):
    # A thread waits in at most one pool at a time, so one Waiter per thread is
    # reused instead of allocating a lock per queued request.
    def __init__(self) -> None:
        self.waiter = Waiter()


_thread_waiters = _ThreadWaiters()


def thread_waiter() -> Waiter:
    return _thread_waiters.waiter


def remove_waiter(queue: "deque[Waiter]", w: Waiter) -> bool:
    """Take ``w`` off ``queue`` (pool lock held); False if it was already served.

    The queue itself is a plain deque: the hot path tests ``if pool._waiting``
    on every return, and a deque answers that in C."""
    try:
        queue.remove(w)
    except ValueError:
        return False
    return True


class AsyncWaiter:
    """One waiting asyncio task: a future the pool resolves when it serves or
    fails the waiter (under its lock, so the outcome is set before the wake-up).

    Which of "served" and "gave up" happened is decided, as for threads, by
    whether the waiter was still in the queue when the pool or the waiter took
    the lock: never by the future, which a cancellation or a timeout may
    have settled first."""

    __slots__ = ("_loop", "_fut", "_thread", "slot", "error")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fut: asyncio.Future[None] = loop.create_future()
        self._thread = threading.get_ident()
        self.slot = -1
        self.error: BaseException | None = None

    def serve(self, slot: int) -> bool:
        """Give the waiter a slot (pool lock held); False if its event loop has
        closed (its task can never take the slot: serve someone else)."""
        self.slot = slot
        if self._wake():
            return True
        self.slot = -1
        return False

    def fail(self, error: BaseException) -> None:
        """Wake the waiter with an error (pool lock held)."""
        self.error = error
        self._wake()

    @property
    def settled(self) -> bool:
        """Served or failed (read on the waiter's loop after waking)."""
        return self.slot != -1 or self.error is not None

    def _wake(self) -> bool:
        """Resolve the future on its loop; False if that loop has closed."""
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

    def reset(self) -> tuple[int, BaseException | None]:
        """Take the outcome (an AsyncWaiter is used once)."""
        return self.slot, self.error
