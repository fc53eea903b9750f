"""What the sync and async null pools share: the connection budget
(``max_size`` connections at most, a waiter either gets a returned connection
or the right to open its own), what a return or a failed check does with a
connection, and the retry policies; none of the I/O.

The rules are psycopg_pool's null pool's:

* a checkout opens a connection, or queues when ``max_size`` are out, and runs
  the ``check`` callback on whatever it got (new or handed over); a failed check
  gives the connection back (as a return would) and retries after a backoff
  (immediately, then 1 s, 2 s, 4 s... as reconnection does) until ``timeout``;
* a return with nobody waiting just closes the connection (no reset, no log);
  with someone waiting the connection is reset and, if still healthy, not past
  ``max_lifetime`` and not made before a ``drain()``, handed to the oldest
  waiter; otherwise it is closed and that waiter may open one instead.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from ._core import MAX_CAPACITY, SlotRing
from .base import UNKNOWN, AttemptWithBackoff, Histograms, Stats, check_capacity
from .errors import PoolClosed, PoolInternalError, PoolTimeout

if TYPE_CHECKING:
    from psycopg.errors import ConnectionTimeout

    from ._pool_logic import PoolLogic
    from .base import BasePool

    # NullPoolLogic is mixed in before PoolLogic (whose methods it uses and
    # overrides) in psycopg pools (BasePool: it takes a conninfo); only type
    # checkers see it as a subclass.
    class _NullLogicBase(PoolLogic, BasePool): ...
else:
    _NullLogicBase = object
    try:
        from psycopg.errors import ConnectionTimeout
    except ImportError:  # pragma: no cover - no psycopg: no such error to translate

        class ConnectionTimeout(Exception):
            pass


logger = logging.getLogger("psycopg.pool")
monotonic = time.monotonic

# A waiter served with this instead of a slot may open its own connection: a
# connection slot was freed (a return was closed, or a connect failed).
CONNECT_YOURSELF = -2


class NullPoolLogic(_NullLogicBase):
    """Mixed in before ``PoolLogic`` by NullConnectionPool and AsyncNullConnectionPool."""

    # Connections open at once with max_size=0 ("unlimited"): the ring grows up
    # to this; beyond it requests queue (before connecting) until one is returned.
    _slot_limit = MAX_CAPACITY

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # What inspect.signature() shows for the pool (help(), IDEs, frameworks
        # that inspect a constructor): the parameters of the pool this one
        # passes them on to, with the null pool's min_size default and without
        # use_lifo, as psycopg_pool's null pools have (rather than this
        # __init__'s **kwargs). Type checkers see the declared __init__.
        # A subclass with an __init__ of its own gets inspect's usual answer.
        signature = None
        if cls.__init__ is NullPoolLogic.__init__:
            passed_to = inspect.signature(super(NullPoolLogic, cls).__init__)
            params = [
                p.replace(default=0) if p.name == "min_size" else p
                for p in list(passed_to.parameters.values())[1:]  # (not self)
                if p.name != "use_lifo"
            ]
            signature = passed_to.replace(parameters=params)
        # (through type: type checkers know no __signature__ attribute on a class)
        type.__setattr__(cls, "__signature__", signature)

    def __init__(
        self, conninfo: Any = "", *, min_size: int = 0, max_size: int | None = None, **kwargs: Any
    ) -> None:
        if "use_lifo" in kwargs:
            # Not one of its arguments (as SQLAlchemy's NullPool takes no
            # use_lifo either): said so here, since ConnectionPool would take it.
            raise TypeError(
                f"{type(self).__name__} takes no use_lifo argument: it keeps no idle"
                " connections, so there is no order to choose"
            )
        kwargs.setdefault("close_returns", False)
        super().__init__(conninfo, min_size=min_size, max_size=max_size, **kwargs)
        # close() on a connection of a null pool really closes it (psycopg_pool too).
        self.close_returns = False

    def _start_workers_locked(self) -> None:
        # No background connections and no shrinking: workers only to reclaim
        # orphaned connections and, when asked to, to scan for leaks.
        cls = type(self)
        self._workers = self._new_workers()
        self._workers.start()
        self._workers.run_later(self._orphan_scan_period, cls._orphan_task)
        if self._leak_threshold:
            self._workers.run_later(self._leak_scan_period(), cls._leak_task)

    def _note_checkout_of(self, conn: Any) -> None:
        if self._leak_threshold:
            self._note_checkout(conn._fp_slot)

    # Checkout ---------------------------------------------------------------

    def _reserve_or_wait_locked(self, w: Any, deadline: float, timeout: float) -> bool:
        """First step of a checkout (pool lock held), whose waiter ``w`` holds
        the outcome: False when ``w`` holds a reserved place (CONNECT_YOURSELF:
        the caller may open a connection now), True when queued."""
        if self._may_connect_locked(deadline, timeout):
            w.slot = CONNECT_YOURSELF
            return False
        self._enqueue_locked(w)
        return True

    def _may_connect_locked(self, deadline: float, timeout: float) -> bool:
        """Whether the caller may open a connection now (then its place under
        max_size is counted), or must queue. Out of time (``timeout=0``, or a
        retry after a failed check) is PoolTimeout before anything is counted,
        as in psycopg_pool."""
        if self._closed:
            raise PoolClosed(f"the pool {self.name!r} is already closed")
        self._raise_if_past(deadline, timeout)
        if not self._waiting and not self._limit_reached_locked():
            self._nconns += 1
            self._hist.add(Histograms.WAIT)  # no wait (connecting is "create" time)
            return True
        return False

    def _limit_reached_locked(self) -> bool:
        return self._nconns >= self._connection_limit()

    def _connection_limit(self) -> int:
        # max_size=0 ("unlimited") is limited by the slot ring all the same.
        return self._max_size or self._slot_limit

    def _idle_limit(self) -> int:
        return 0  # no connection is kept idle

    def _connect_failed(self, ex: BaseException, timeout: float, holder: Any = None) -> None:
        """A caller's own connect failed (or was cancelled): free its place for
        the next waiter (``holder``, the waiter holding that place, lets go of
        it), and raise a connect timeout as PoolTimeout."""
        self._free_connection_slot(holder)
        if isinstance(ex, ConnectionTimeout):
            raise self._checkout_timed_out(timeout) from None

    def _install_or_none(self, conn: Any, holder: Any = None) -> int:
        """Put a connection the caller opened in a held slot (``holder``, the
        waiter holding the caller's place, holds the slot instead); -1 if the
        pool was closed meanwhile (the caller closes the connection)."""
        with self._lock:
            if self._closed:
                return -1
            if self._ring.size() >= self._capacity:
                self._grow_ring_locked()
            slot = self._install(conn)
            if holder is not None:
                holder.slot = slot
            return slot

    def _grow_ring_locked(self) -> None:
        """Double the slot capacity (pool lock held). Only called with the ring
        full, and a null pool's slots are all held (never idle), so the bigger
        ring is the old one rebuilt: ``add`` takes the lowest absent index, so
        re-adding ``capacity`` held slots restores indexes 0..capacity-1."""
        old, capacity = self._ring, self._capacity
        if old.idle_count() or old.in_use_count() != capacity:
            raise PoolInternalError(
                f"null pool {self.name!r}: ring to grow isn't full of held slots: {old!r}"
            )
        new_capacity = min(2 * capacity, self._slot_limit)
        ring = SlotRing(new_capacity)
        for _ in range(capacity):
            ring.add(acquired=True)
        self._grow_slot_state(new_capacity)  # first: readers index the records by slot
        self._ring, self._capacity = ring, new_capacity

    # Return -----------------------------------------------------------------

    def _close_unreset(self, conn: Any) -> bool:
        """A return's first decision: with the pool closed or nobody waiting the
        connection is closed as it is (no reset, no log; a broken one counts in
        ``returns_bad``). True if so."""
        if not self._closed and self._waiting:
            return False
        if conn.pgconn.transaction_status == UNKNOWN:
            self._stats.add(Stats.RETURNS_BAD)
        return True

    def _fit_to_hand_over(self, conn: Any, slot: int, from_getconn: bool) -> bool:
        """Whether a reset connection may go to a waiter: not broken, not past its
        lifetime, not made before a drain(); logged and counted if not. A broken
        one is ``connections_lost`` when it comes from a checkout (failed check,
        or handed to a waiter that gave up), else ``returns_bad``."""
        if conn.pgconn.transaction_status == UNKNOWN:
            self._count_broken_return(conn, from_getconn)
            return False
        now = monotonic()
        if self._is_stale(slot, now):
            logger.info("discarding expired connection")
            return False
        self._slots[slot].last_used = now
        return True

    def _hand_over(self, holder: Any) -> bool:
        """Give the connection ``holder`` holds to the oldest waiter, if any
        (and the pool is open): ``holder`` lets go of it in the same step."""
        with self._lock:
            if self._closed or not self._hand_to_oldest_locked(holder.slot):
                return False
            holder.slot = -1
            return True

    def _retire_returned(self, slot: int, holder: Any = None) -> None:
        """A returned connection will be closed: its slot leaves the pool.
        ``holder``, holding the slot, then holds the connection's place under
        ``max_size`` (CONNECT_YOURSELF) until ``_free_connection_slot(holder)``."""
        with self._lock:
            if holder is not None:
                holder.slot = CONNECT_YOURSELF
            self._clear_slot(slot)
            self._ring.retire(slot)

    def _return_unclaimed(self, slot: int) -> None:
        if slot >= 0:
            self._give_back(slot)
        elif slot == CONNECT_YOURSELF:
            self._free_connection_slot()

    def _free_connection_slot(self, holder: Any = None) -> None:
        """A reserved connection won't exist: let the oldest waiter connect
        instead. ``holder``: only if it holds the place (CONNECT_YOURSELF),
        which it lets go of in the same step (so the place passes on once)."""
        with self._lock:
            if holder is not None:
                if holder.slot != CONNECT_YOURSELF:
                    return
                holder.slot = -1
            if not self._hand_to_oldest_locked(CONNECT_YOURSELF):
                self._nconns -= 1

    # wait() -----------------------------------------------------------------

    def _wait_connect_failed(
        self, ex: Exception, attempt: AttemptWithBackoff | None
    ) -> AttemptWithBackoff | None:
        """wait()'s connection attempt failed: log it; the attempt to retry
        after ``attempt.delay``, or None past ``reconnect_timeout`` (give up)."""
        logger.warning("error connecting in %r: %s", self.name, ex)
        now = monotonic()
        if attempt is None:
            attempt = AttemptWithBackoff(timeout=self.reconnect_timeout)
        if attempt.time_to_give_up(now):
            logger.warning(
                "reconnection attempt in pool %r failed after %s sec",
                self.name,
                self.reconnect_timeout,
            )
            return None
        attempt.update_delay(now)
        return attempt

    def _wait_timed_out(self, timeout: float, error: BaseException | None) -> PoolTimeout:
        ex = PoolTimeout(f"pool initialization incomplete after {timeout} sec")
        ex.__cause__ = error  # the last connection error, if any: what to fix
        return ex

    # Sizing -----------------------------------------------------------------

    def _check_size(self, min_size: Any, max_size: Any) -> tuple[int, int]:
        if isinstance(min_size, bool) or not isinstance(min_size, int):
            raise TypeError(f"min_size must be an int, got {type(min_size).__name__}")
        if min_size != 0:
            raise ValueError("null pools must have min_size = 0")
        if max_size is None:
            max_size = 0
        elif isinstance(max_size, bool) or not isinstance(max_size, int):
            raise TypeError(f"max_size must be an int or None, got {type(max_size).__name__}")
        if max_size < 0:
            raise ValueError("max_size cannot be negative (0 or None means unlimited)")
        check_capacity("max_size", max_size)
        return min_size, max_size

    def _resize(self, min_size: int, max_size: int | None = None) -> None:
        min_size, max_size = self._check_size(min_size, max_size)
        if max_size > self._slot_limit:
            raise ValueError(
                f"max_size {max_size} is more than a pool can hold ({self._slot_limit})"
            )
        with self._lock:
            self._min_size, self._max_size = min_size, max_size
            # Raising the limit may let queued clients connect now.
            while self._waiting and not self._limit_reached_locked():
                if not self._hand_to_oldest_locked(CONNECT_YOURSELF):
                    break
                self._nconns += 1

    def _drain(self) -> None:
        # No idle connection to close: connections out now are not handed to a
        # waiter when returned, but closed (the waiter opens a new one).
        with self._lock:
            if not self._closed:
                self._drained_at = monotonic()
