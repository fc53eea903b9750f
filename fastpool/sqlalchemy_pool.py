"""``FastQueuePool``: SQLAlchemy's ``QueuePool`` on fastpool's core.

    from sqlalchemy import create_engine
    from fastpool.sqlalchemy_pool import FastQueuePool

    engine = create_engine("postgresql+psycopg://...", poolclass=FastQueuePool,
                           pool_size=10, max_overflow=5, pool_timeout=30,
                           pool_recycle=3600, pool_pre_ping=True)

Idle connections sit in the lock-free ``SlotRing``: a checkout that finds one
takes no lock. When none is idle, a new connection is opened if the overflow
allows, otherwise the caller waits in fastpool's FIFO queue (no barging) and a
returned connection is handed straight to the oldest waiter. Everything
SQLAlchemy does around the pool is SQLAlchemy's own, unchanged: ``pool_recycle``,
``pool_pre_ping``, reset on return, invalidation, and the pool events
(``connect``, ``checkout``, ``checkin``, ...), because only ``_do_get`` and
``_do_return_conn`` are replaced.

``pool_size=0`` means no size limit, as in QueuePool: no returned connection is
closed, and the overflow is unlimited.

Differences from QueuePool: ``use_lifo=True`` is refused (connections are
handed out oldest first); ``dispose()`` counts connections still checked out
against the new overflow instead of forgetting them; the pool holds at most
``pool_size + max_overflow`` connections, and an unlimited overflow
(``max_overflow=-1``, or ``pool_size=0``) is capped at 4096 connections beyond
``pool_size``: past that, a checkout waits for a returned connection (up to
``timeout``) as with any other limit, and never opens one more.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc
from sqlalchemy.pool import Pool

from ._core import MAX_CAPACITY, SlotRing
from .base import check_timeout
from .waiting import Waiter, release_waiter, remove_waiter, thread_waiter

if TYPE_CHECKING:
    from sqlalchemy.pool import ConnectionPoolEntry

    # What QueuePool's creator is declared as: a connect function, with or without the record.
    from sqlalchemy.pool.base import _CreatorFnType, _CreatorWRecFnType

# A waiter served with this may open a connection itself: an overflow place
# was freed (a connection closed, or a connect failed).
_CONNECT_YOURSELF = -2
UNLIMITED_CAP = 4096


class FastQueuePool(Pool):
    """A drop-in for ``sqlalchemy.pool.QueuePool`` (``poolclass=FastQueuePool``)."""

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
        if use_lifo:
            raise ValueError(
                "FastQueuePool hands out idle connections oldest first: use_lifo=True "
                "is not supported (use sqlalchemy's QueuePool for LIFO)"
            )
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
        self._ring = SlotRing(self._capacity)
        # A record per slot; None only in retired slots, which are never read.
        self._records: list[ConnectionPoolEntry] = [None] * self._capacity  # type: ignore[list-item]
        self._lock = threading.Lock()
        self._waiting: deque[Waiter] = deque()

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
                    w = thread_waiter()
                    self._waiting.append(w)
        if slot >= 0:
            return self._records[slot]
        if w is not None:
            slot = self._await(w)
            if slot >= 0:
                return self._records[slot]
        return self._new_record()

    def _await(self, w: Waiter) -> int:
        # The outcome is read under the lock, never inferred from the wake-up:
        # an interrupt just after the hand-over must not wait for it again.
        try:
            w.wait(self._timeout)
            with self._lock:
                remove_waiter(self._waiting, w)  # (timed out)
                slot = w.slot
        except BaseException:  # interrupted: don't strand what was handed over
            with self._lock:
                remove_waiter(self._waiting, w)
                slot = w.slot
            w.slot = -1
            release_waiter(w)
            self._give_unclaimed(slot)
            raise
        release_waiter(w)
        if slot == -1:
            cap = (
                " (FastQueuePool caps an unlimited overflow at %d connections)" % UNLIMITED_CAP
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
            if self._waiting:
                self._waiting.popleft().serve(_CONNECT_YOURSELF)
            else:
                self._overflow -= 1
                self._connecting -= 1

    # -- return --------------------------------------------------------------

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        slot: int = record._fp_slot  # type: ignore[attr-defined]  # set by _new_record
        if self._waiting or (self._overflow > 0 and self._closes_overflow):
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().serve(slot)
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
                while self._waiting:
                    slot = self._ring.try_acquire()
                    if slot < 0:
                        break
                    self._waiting.popleft().serve(slot)

    # -- QueuePool's API ---------------------------------------------------------

    def recreate(self) -> "FastQueuePool":
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            pre_ping=self._pre_ping,
            timeout=self._timeout,
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


__all__ = ["FastQueuePool"]
