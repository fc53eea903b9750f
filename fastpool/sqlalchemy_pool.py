"""SQLAlchemy's ``QueuePool`` and ``AsyncAdaptedQueuePool`` on fastpool's core.

    from sqlalchemy import create_engine
    from fastpool.sqlalchemy_pool import FastQueuePool

    engine = create_engine("postgresql+psycopg://...", poolclass=FastQueuePool,
                           pool_size=10, max_overflow=5, pool_timeout=30,
                           pool_recycle=3600, pool_pre_ping=True)

    from sqlalchemy.ext.asyncio import create_async_engine
    from fastpool.sqlalchemy_pool import AsyncAdaptedFastQueuePool

    engine = create_async_engine("postgresql+asyncpg://...",
                                 poolclass=AsyncAdaptedFastQueuePool, pool_size=10)

Idle connections sit in the lock-free ``SlotRing``: a checkout that finds one
takes no lock. When none is idle, a new connection is opened if the overflow
allows, otherwise the caller waits in fastpool's FIFO queue (no barging) and a
returned connection is handed straight to the oldest waiter. Everything
SQLAlchemy does around the pool is SQLAlchemy's own, unchanged: ``pool_recycle``,
``pool_pre_ping``, reset on return, invalidation, and the pool events
(``connect``, ``checkout``, ``checkin``, ...), because only ``_do_get`` and
``_do_return_conn`` are replaced.

The two classes differ only in how a checkout waits: ``FastQueuePool`` blocks
its thread, ``AsyncAdaptedFastQueuePool`` suspends its task (through
SQLAlchemy's greenlet bridge), so the event loop keeps running. Each is
refused by the other kind of engine, as SQLAlchemy's own pair is.

``pool_size=0`` means no size limit, as in QueuePool: no returned connection is
closed, and the overflow is unlimited.

``use_lifo=True`` (``create_engine(..., pool_use_lifo=True)``) hands out the
connection returned last, as QueuePool's does.

Differences from QueuePool: ``dispose()`` counts connections still checked out
against the new overflow instead of forgetting them; the pool holds at most
``pool_size + max_overflow`` connections, and an unlimited overflow
(``max_overflow=-1``, or ``pool_size=0``) is capped at 4096 connections beyond
``pool_size``: past that, a checkout waits for a returned connection (up to
``timeout``) as with any other limit, and never opens one more.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool

from ._core import MAX_CAPACITY, SlotRing
from .base import check_timeout
from .waiting import AsyncWaiter, Waiter, release_waiter, remove_waiter, thread_waiter

try:
    from sqlalchemy.util import await_
except ImportError:  # SQLAlchemy 2.0 names it await_only
    from sqlalchemy.util import await_only as await_

if TYPE_CHECKING:
    from sqlalchemy.pool import ConnectionPoolEntry

    # What QueuePool's creator is declared as: a connect function, with or without the record.
    from sqlalchemy.pool.base import _CreatorFnType, _CreatorWRecFnType

# A waiter served with this may open a connection itself: an overflow place
# was freed (a connection closed, or a connect failed).
_CONNECT_YOURSELF = -2
UNLIMITED_CAP = 4096


class _FastQueuePoolBase(Pool):
    """Everything but the wait: the slot ring, the overflow accounting, the
    FIFO hand-over and QueuePool's API. A subclass says how a checkout waits
    (``_new_waiter``, ``_wait``, ``_waiter_done``)."""

    def __init__(
        self,
        creator: _CreatorFnType | _CreatorWRecFnType,
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float = 30.0,
        use_lifo: bool = False,
        **kw: Any,
    ) -> None:
        for name, value, low in (("pool_size", pool_size, 0), ("max_overflow", max_overflow, -1)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        self._timeout = check_timeout(timeout, "timeout")
        # pool_size=0 is "no size limit" (QueuePool then ignores max_overflow);
        # an unlimited overflow stops where the ring does.
        unlimited = max_overflow == -1 or pool_size == 0
        overflow_limit = UNLIMITED_CAP if unlimited else max_overflow
        capacity = pool_size + overflow_limit
        if capacity > MAX_CAPACITY:
            raise ValueError(
                f"pool_size + max_overflow must be at most {MAX_CAPACITY}, got"
                f" pool_size={pool_size}, max_overflow={max_overflow}"
                + (f" (-1 counts as {UNLIMITED_CAP})" if unlimited else "")
            )
        Pool.__init__(self, creator, **kw)
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._overflow_limit = overflow_limit
        self._unlimited = unlimited
        # Returns close overflow connections ("queue full") unless pool_size is 0.
        self._closes_overflow = pool_size > 0
        self._overflow = 0 - pool_size  # QueuePool's meaning: connections beyond pool_size
        self._connecting = 0  # places taken by connects not in the ring yet
        self._capacity = max(1, capacity)
        # Any true value, as QueuePool takes it.
        self._use_lifo = bool(use_lifo)
        self._ring = SlotRing(self._capacity, lifo=self._use_lifo)
        # A record per slot; None only in retired slots, which are never read.
        self._records: list[ConnectionPoolEntry] = [None] * self._capacity  # type: ignore[list-item]
        # Re-entrant: SQLAlchemy returns the record of a garbage-collected
        # connection from a weakref callback, which the collector may run in
        # any allocation, including one made while this thread holds the lock.
        # Every section under it leaves the books consistent before allocating.
        self._lock = threading.RLock()
        self._waiting: deque[Any] = deque()  # Waiter (threads) or AsyncWaiter (tasks)

    # -- how a checkout waits (the subclass) ---------------------------------

    def _new_waiter(self) -> Any:
        raise NotImplementedError

    def _wait(self, w: Any) -> None:
        """Until ``w`` is served or failed, or the pool timeout passes."""
        raise NotImplementedError

    def _waiter_done(self, w: Any) -> None:
        """The checkout is done with ``w`` (it is off the queue)."""

    # -- checkout ------------------------------------------------------------

    def _do_get(self) -> ConnectionPoolEntry:
        if not self._waiting:
            slot = self._ring.try_acquire()
            if slot >= 0:
                return self._records[slot]
        return self._get_slow()

    def _get_slow(self) -> ConnectionPoolEntry:
        with self._lock:
            w = None
            slot = -1 if self._waiting else self._ring.try_acquire()
            if slot < 0:
                if self._overflow < self._overflow_limit:
                    self._overflow += 1  # a place for a new connection (in the ring), ours
                    self._connecting += 1
                else:
                    w = self._new_waiter()
                    self._waiting.append(w)
                    # A connection returned between the try_acquire (this one,
                    # or the lock-free one in _do_get) and the append would sit
                    # idle while we wait: returners look at the queue only after
                    # releasing.
                    self._serve_waiters_locked()
        if slot >= 0:
            return self._records[slot]
        if w is not None:
            slot = self._await(w)
            if slot >= 0:
                return self._records[slot]
        return self._new_record()

    def _await(self, w: Any) -> int:
        # The outcome is read under the lock, never inferred from the wake-up:
        # an interrupt just after the hand-over must not wait for it again.
        try:
            if not w.settled:  # (served at once by _get_slow: nothing to wait for)
                self._wait(w)
            with self._lock:
                remove_waiter(self._waiting, w)  # (timed out)
                slot: int = w.slot
        except BaseException:  # interrupted, cancelled: don't strand what was handed over
            with self._lock:
                remove_waiter(self._waiting, w)
                slot = w.slot
            w.slot = -1
            self._waiter_done(w)
            self._give_unclaimed(slot)
            raise
        self._waiter_done(w)
        if slot == -1:
            cap = (
                " (%s caps an unlimited overflow at %d connections)"
                % (type(self).__name__, UNLIMITED_CAP)
                if self._unlimited
                else ""
            )
            raise exc.TimeoutError(
                "QueuePool limit of size %d overflow %d reached, connection timed out, timeout %0.2f%s"
                % (self.size(), self.overflow(), self._timeout, cap),
                code="3o7r",
            )
        return slot

    def _give_unclaimed(self, slot: int) -> None:
        if slot >= 0:
            self._do_return_conn(self._records[slot])
        elif slot == _CONNECT_YOURSELF:
            self._free_place()

    def _new_record(self) -> ConnectionPoolEntry:
        try:
            record = self._create_connection()
        except BaseException:
            self._free_place()
            raise
        with self._lock:
            # Cannot fail: places (connections and connects in flight, counted
            # by _overflow even across dispose()) never outnumber the slots.
            slot = self._ring.add(acquired=True)
            self._connecting -= 1
        self._records[slot] = record
        record._fp_slot = slot  # type: ignore[attr-defined]  # records (_ConnectionRecord) have a __dict__
        return record

    def _free_place(self) -> None:
        """A connection place is free: the oldest waiter may connect, else it
        is given back to the overflow."""
        with self._lock:
            if not self._hand_over_locked(_CONNECT_YOURSELF):
                self._overflow -= 1
                self._connecting -= 1

    # -- return --------------------------------------------------------------

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        slot: int = record._fp_slot  # type: ignore[attr-defined]  # set by _new_record
        if self._waiting or (self._overflow > 0 and self._closes_overflow):
            with self._lock:
                if self._hand_over_locked(slot):
                    return
                if (
                    self._closes_overflow
                    and self._overflow > 0
                    and self._ring.idle_count() >= self._pool_size
                ):
                    # QueuePool's "queue full": an overflow connection is closed
                    self._ring.retire(slot)
                    self._records[slot] = None  # type: ignore[call-overload]  # retired
                    self._overflow -= 1
                    close = True
                else:
                    self._ring.release(slot)
                    close = False
            if close:
                record.close()
            return
        self._ring.release(slot)
        if self._waiting:  # someone queued while we released
            with self._lock:
                self._serve_waiters_locked()

    def _hand_over_locked(self, slot: int) -> bool:
        """Give ``slot`` (or _CONNECT_YOURSELF) to the oldest waiter (lock
        held); False if nobody waits. The waiter owns it before it leaves the
        queue, so an interrupt can't land while it belongs to nobody."""
        waiting = self._waiting
        while waiting:
            w = waiting[0]
            w.slot = slot
            del waiting[0]
            if w.wake() is not False:
                return True
            w.slot = -1  # a task whose event loop has closed: it would never take it
        return False

    def _serve_waiters_locked(self) -> None:
        while self._waiting:
            slot = self._ring.try_acquire()
            if slot < 0:
                return
            if not self._hand_over_locked(slot):
                self._ring.release(slot)
                return

    # -- QueuePool's API ---------------------------------------------------------

    def recreate(self) -> _FastQueuePoolBase:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            pre_ping=self._pre_ping,
            timeout=self._timeout,
            use_lifo=self._use_lifo,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        with self._lock:
            idle = []
            while True:
                slot = self._ring.try_acquire()
                if slot < 0:
                    break
                idle.append(self._records[slot])
                self._ring.retire(slot)
                self._records[slot] = None  # type: ignore[call-overload]  # retired
            # Connections still checked out, and connects in flight, keep their places.
            self._overflow = self._ring.in_use_count() + self._connecting - self._pool_size
        for record in idle:
            record.close()
        self.logger.info("Pool disposed. %s", self.status())

    def status(self) -> str:
        return (
            "Pool size: %d  Connections in pool: %d Current Overflow: %d "
            "Current Checked out connections: %d"
            % (self.size(), self.checkedin(), self.overflow(), self.checkedout())
        )

    def size(self) -> int:
        return self._pool_size

    def timeout(self) -> float:
        return self._timeout

    def checkedin(self) -> int:
        return self._ring.idle_count()

    def overflow(self) -> int:
        return self._overflow if self._pool_size else 0

    def checkedout(self) -> int:
        return self._ring.in_use_count()


class FastQueuePool(_FastQueuePoolBase):
    """A drop-in for ``sqlalchemy.pool.QueuePool`` (``poolclass=FastQueuePool``).

    A checkout waits by blocking its thread, so ``create_async_engine()``
    refuses it (``ArgumentError``), as it refuses QueuePool: use
    ``AsyncAdaptedFastQueuePool`` there."""

    # What SQLAlchemy's engines check to refuse a pool of the wrong kind (a
    # class attribute, as on QueuePool, over Pool's property).
    _is_asyncio = False  # pyright: ignore[reportAssignmentType]

    def _new_waiter(self) -> Waiter:
        return thread_waiter()

    def _wait(self, w: Waiter) -> None:
        w.wait(self._timeout)

    def _waiter_done(self, w: Waiter) -> None:
        release_waiter(w)


class AsyncAdaptedFastQueuePool(_FastQueuePoolBase):
    """A drop-in for ``sqlalchemy.pool.AsyncAdaptedQueuePool``, for
    ``create_async_engine(..., poolclass=AsyncAdaptedFastQueuePool)``.

    A checkout that has to wait suspends its task on the running event loop
    (SQLAlchemy runs the pool in a greenlet of that task): other tasks keep
    running, waiters are served oldest first, ``pool_timeout`` raises
    SQLAlchemy's ``TimeoutError``, and a task cancelled while it waits gives
    back any connection handed to it meanwhile. ``create_engine()`` refuses
    it (``ArgumentError``)."""

    _is_asyncio = True  # pyright: ignore[reportAssignmentType]
    # The stand-in dialect SQLAlchemy gives its own asyncio pool when no engine
    # supplies one: it tells SQLAlchemy not to do I/O from garbage collection.
    _dialect = AsyncAdaptedQueuePool._dialect

    def _new_waiter(self) -> AsyncWaiter:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise exc.MissingGreenlet(
                f"{type(self).__name__} waits for a connection on the running event loop:"
                " check connections out through an AsyncEngine (create_async_engine)"
            ) from None
        return AsyncWaiter(loop)

    def _wait(self, w: AsyncWaiter) -> None:
        # Hands the wait to the event loop and resumes here when it is over:
        # raises MissingGreenlet outside SQLAlchemy's asyncio layer.
        await_(w.wait(self._timeout))


__all__ = ["AsyncAdaptedFastQueuePool", "FastQueuePool"]
