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


class Waiter:
    """One waiting client. Its lock doubles as a binary semaphore: created held,
    released by whoever serves or fails the waiter, acquired by the waiter."""

    __slots__ = ("_sem", "slot", "error")

    def __init__(self) -> None:
        self._sem = threading.Lock()
        self._sem.acquire()
        self.slot = -1
        self.error: BaseException | None = None

    def serve(self, slot: int) -> None:
        """Give the waiter a slot (pool lock held)."""
        self.slot = slot
        self._sem.release()

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
