"""What the sync and async pools share: every decision about slots, waiters
and growth, none of the I/O.

``ConnectionPool`` (threads) and ``AsyncConnectionPool`` (asyncio) both inherit
this class and add only what does I/O or waits: connecting, closing, rolling
back, running callbacks, blocking on a waiter. Everything here runs under the
pool's ``threading.RLock`` or touches only the lock-free ring, never awaits and
never blocks for long, so the same code is correct for both: an asyncio pool
holds the lock for microseconds at a time, like a thread pool does.
Growth and maintenance tasks are named by method (``_add_connection_task``,
``_refill_task``...) and run by the pool's workers: threads for the sync pool,
asyncio tasks for the async one.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback
import types
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ._core import SlotRecord, SlotRing
from .base import MIN_SLOT_CAPACITY, AttemptWithBackoff, Histograms, PoolMetrics, Stats
from .errors import PoolClosed, TooManyRequests
from .waiting import remove_waiter

if TYPE_CHECKING:
    from ._conn_protocol import ConnProtocol
    from .async_workers import AsyncWorkers
    from .base import PoolCommon
    from .waiting import AsyncWaiter, Waiter
    from .workers import Workers

    # PoolLogic is mixed in beside PoolCommon (whose attributes it uses); only
    # type checkers see it as a subclass, the run-time MRO is the pools' own.
    _LogicBase = PoolCommon
else:
    _LogicBase = object

monotonic: Callable[[], float] = time.monotonic

# What a holder (a ``Holder``, a checkout's waiter) holds once the slot it held
# is out of the pool, until the replacement of its connection is asked for:
# see ``_forget_slot`` and ``_replace_discarded``.
REPLACING = -3  # (not -2: a null pool waiter's CONNECT_YOURSELF)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# What finishing a checkout of a held slot came to, when not the connection
# itself (``_checkout_checked``).
DISCARDED = "discarded"  # stale: being replaced; retry at once
FAILED_CHECK = "failed check"  # back in the pool; retry after a backoff


def _is_scan_frame(obj: Any) -> bool:
    """The orphan scan's own frame (materialised only under a tracer), whose
    ``conn`` variable is the scan's reference, not a user's."""
    return isinstance(obj, types.FrameType) and obj.f_code is PoolLogic._find_orphans.__code__


class PoolLogic(_LogicBase):
    """Slot, waiter and growth bookkeeping of a pool (see the module docstring).

    Expects the pool to provide ``_new_waiter()``, ``_new_workers()`` (an
    object with ``start``, ``run_soon`` and ``run_later``), ``_close_idle()``,
    the maintenance tasks ``_add_connection_task``, ``_shrink_task`` and
    ``_expiry_task``, ``_reclaim_orphan()`` (close and replace an orphaned
    checkout), and ``_protocol``: its family's connection protocol, whose
    logger gets the records written here."""

    # Seconds between two scans for checked-out connections nobody can return
    # (a class attribute: tests scan more often).
    _orphan_scan_period = 2.0

    # A class attribute of each pool family (fastpool._conn_protocol).
    _protocol: ConnProtocol

    # Set by the pool's constructor.
    _capacity: int
    _min_size: int
    _max_size: int
    _closed: bool
    _stats: Stats
    name: str
    max_waiting: int
    max_lifetime: float
    num_workers: int
    # Slots a ring has at least (a seam: tests of a null pool's ring growth
    # use a small one instead of opening 1,025 connections).
    _min_slot_capacity = MIN_SLOT_CAPACITY

    if TYPE_CHECKING:
        # Provided by each pool (see the class docstring).
        def _new_waiter(self) -> Waiter | AsyncWaiter: ...
        def _new_workers(self) -> Workers | AsyncWorkers: ...
        def _close_idle(self) -> None: ...
        # Maintenance tasks: the async pool's are coroutine functions.
        def _add_connection_task(self, attempt: AttemptWithBackoff | None) -> object: ...
        def _shrink_task(self) -> object: ...
        def _expiry_task(self) -> object: ...
        # The async pools' is a coroutine function.
        def _reclaim_orphan(self, slot: int, conn: Any) -> object: ...

    def _init_pool(
        self,
        configure: Any,
        check: Any,
        reset: Any,
        api: Any,
        use_lifo: bool = False,
    ) -> None:
        """The constructors' common tail, after the arguments were checked:
        callbacks, slot capacity, and the per-slot state. ``api`` is the class
        whose getconn/putconn the fast ``connection()`` context may bypass.
        ``use_lifo``: hand out the connection returned last (see ``use_lifo``)."""
        if type(use_lifo) is not bool:
            raise TypeError(f"use_lifo must be True or False, got {type(use_lifo).__name__}")
        self._use_lifo = use_lifo
        self._configure = configure
        self._check = check
        self._reset = reset
        self._capacity = max(self._min_slot_capacity, self._max_size)
        # False when a subclass overrides getconn()/putconn(): then connection()
        # must go through the overrides, as psycopg_pool's does.
        cls: Any = type(self)
        self._plain_hot_path = cls.getconn is api.getconn and cls.putconn is api.putconn
        self._init_state()
        self._open_implicit = False

    def _init_state(self) -> None:
        """(Re)create the structures a pool starts with (also after a fork)."""
        self._lock = threading.RLock()
        self._ring = SlotRing(self._capacity, lifo=self._use_lifo)
        self._counters = self._stats.counters
        self._hist = self._histograms.counters
        # slot -> its record (connection, times, leak detection); an empty one
        # (conn None) where the slot has no connection
        self._slots: list[SlotRecord] = [SlotRecord() for _ in range(self._capacity)]
        # slot -> id() of its connection, seen unreachable by the last orphan scan
        self._orphan_suspects: dict[int, int] = {}
        self._waiting: deque[Any] = deque()  # Waiter (threads) or AsyncWaiter
        self._nconns = 0  # connections in the pool + being connected (pool_size)
        self._connecting = 0  # connection attempts scheduled or in flight
        self._drained_at = -1.0
        self._exhausted = False  # a checkout found no idle slot since the last shrink check
        self._workers: Any = None  # Workers or AsyncWorkers, while open
        # True when getconn() may take the lock-free path: open, not closed, and
        # no pending one-time warning. Read once per checkout.
        self._fast = False

    @property
    def use_lifo(self) -> bool:
        """True: a checkout gets the idle connection returned most recently
        (its server process is likely still warm, and the ones left idle
        longest are the ones ``max_idle`` closes); False (default, as
        psycopg_pool): the one returned longest ago."""
        return self._ring.lifo

    def _grow_slot_state(self, capacity: int) -> None:
        """Lengthen the slot records of ``_init_state`` to ``capacity`` (a null
        pool's ring grows on demand). Extended in place: a thread that read the
        list before the growth still finds the same records in it."""
        slots = self._slots
        for _ in range(capacity - len(slots)):  # (a loop: a comprehension is a frame of its own)
            slots.append(SlotRecord())

    def _enqueue_locked(self, w: Any = None) -> Any:
        """Queue the caller's waiter ``w`` (a new one if None; pool lock held),
        or raise TooManyRequests."""
        if self.max_waiting and len(self._waiting) >= self.max_waiting:
            self._count_failed_request()
            raise TooManyRequests(
                f"the pool {self.name!r} has already {len(self._waiting)} requests waiting"
            )
        if w is None:
            w = self._new_waiter()
        self._waiting.append(w)
        self._stats.add(Stats.REQUESTS_QUEUED)
        return w

    def _return_unclaimed(self, slot: int) -> None:
        """Give back what an interrupted waiter was handed."""
        if slot >= 0:
            self._give_back(slot)

    def _raise_foreign(self, conn: Any) -> None:
        other = getattr(conn, "_pool", None)
        slot = getattr(conn, "_fp_slot", None)
        if other is None and slot is not None and self._slots[slot].conn is conn:
            raise ValueError(
                f"can't return connection to pool {self.name!r}: it was already returned: {conn}"
            )
        if other is not None:
            msg = f"it comes from pool {getattr(other, 'name', other)!r}"
        else:
            msg = "it doesn't come from any pool"
        raise ValueError(f"can't return connection to pool {self.name!r}, {msg}: {conn}")

    def _give_back(self, slot: int) -> None:
        """Return a held slot: to the oldest waiter if any, else to the ring."""
        if self._waiting:
            with self._lock:
                if self._hand_to_oldest_locked(slot):
                    return
                self._ring.release(slot)
            return
        self._ring.release(slot)
        if self._waiting:
            # Someone queued while we were releasing: the slot may be sitting idle.
            with self._lock:
                self._serve_waiters_locked()
        elif self._closed:
            self._close_idle()  # close() emptied the ring just before our release

    def _hand_to_oldest_locked(self, slot: int) -> bool:
        """Give ``slot`` to the oldest waiter (pool lock held); False if none.

        The slot is written into the waiter before it leaves the queue, with no
        call in between, so an exception (an asynchronous one, a signal) can't
        land while the slot belongs to nobody: from then on the waiter owns it,
        woken or not (it looks at its outcome when its wait ends anyway)."""
        waiting = self._waiting
        while waiting:
            w = waiting[0]
            if w.slot != -1 or w.error is not None:
                del waiting[0]  # already settled (its server was interrupted): skip
                continue
            w.slot = slot
            del waiting[0]
            if w.wake() is False:
                # An async waiter whose event loop has closed: its task is
                # gone and would never take the slot. Serve the next one.
                w.slot = -1
                continue
            return True
        return False

    def _serve_waiters(self) -> None:
        with self._lock:
            self._serve_waiters_locked()

    def _serve_waiters_locked(self) -> None:
        while self._waiting:
            slot = self._ring.try_acquire()
            if slot < 0:
                return
            if not self._hand_to_oldest_locked(slot):
                self._ring.release(slot)
                return

    def _take_all_idle_locked(self) -> list[tuple[int, Any]]:
        """Claim every idle slot, oldest first: giving them back in this order
        keeps the order they were returned in (FIFO or LIFO)."""
        out: list[tuple[int, Any]] = []
        while True:
            slot = self._ring.try_acquire()
            if slot < 0:
                break
            out.append((slot, self._slots[slot].conn))
        if self._ring.lifo:
            out.reverse()  # taken from the top of the stack
        return out

    def _claim_all_idle(self, into: list[tuple[int, Any]], drain: bool = False) -> None:
        """Claim every idle slot for ``check()`` or ``drain()`` (which first
        marks every connection made until now as stale) into the caller's list
        ``into`` (so that, whatever lands after, the caller's handler finds
        them); none in a closed pool. Newest first: popped, they come oldest
        first, and given back in reverse they keep the order they were
        returned in."""
        with self._lock:
            if self._closed:
                return
            if drain:
                self._drained_at = monotonic()
            into.extend(self._take_all_idle_locked()[::-1])

    def _forget_all(self, claimed: list[tuple[int, Any]]) -> list[Any]:
        """Take claimed slots out of the pool; their connections, to close."""
        conns = []
        with self._lock:
            for slot, conn in claimed:
                self._forget_slot(slot)
                conns.append(conn)
        return conns

    def _forget_all_idle(self) -> list[Any]:
        """Take every idle slot out of a closed pool; their connections, to close."""
        with self._lock:
            return self._forget_all(self._take_all_idle_locked())

    def _try_acquire_oldest(self) -> int:
        """Claim the idle slot returned longest ago, or -1: how maintenance
        visits idle slots (each once, in n claims and give-backs, which leave
        their order as it was) and picks the one to shrink. To reach the
        bottom of a LIFO stack the core detaches it for an instant: a checkout
        that found it empty then may have queued, so serve the queue (the
        pool lock is an RLock: callers may hold it)."""
        slot = self._ring.try_acquire_oldest()
        if self._waiting:
            self._serve_waiters()
        return slot

    def _forget_slot(self, slot: int, holder: Any = None) -> None:
        """Take a held slot out of the pool (its connection is going away);
        ``holder``, holding the slot, lets go of it in the same step: it holds
        REPLACING until ``_replace_discarded(holder)``."""
        with self._lock:
            if holder is not None:
                holder.slot = REPLACING
            self._clear_slot(slot)
            self._ring.retire(slot)
            self._nconns -= 1

    def _clear_slot(self, slot: int) -> None:
        """Empty a held slot's record: its connection is leaving the pool."""
        self._slots[slot] = SlotRecord()

    def _grow_locked(self, n: int) -> None:
        """Schedule ``n`` new connections (bounded by max_size)."""
        workers = self._workers
        if workers is None:
            return
        n = min(n, self._max_size - self._nconns)
        for _ in range(max(0, n)):
            self._nconns += 1
            self._connecting += 1
            workers.run_soon(type(self)._add_connection_task, None)

    def _grow_for_waiters_locked(self) -> None:
        # Connect in parallel, but only as many as there are waiters not already
        # covered by a connection attempt in flight (HikariCP's "elision").
        self._grow_locked(min(len(self._waiting) - self._connecting, self.num_workers))

    def _install(self, conn: Any) -> int:
        """Put a new connection in a fresh slot, held by the caller (pool lock held)."""
        # The pgconn saves the compiled return path an attribute lookup
        # (psycopg never replaces it; None for a DB-API connection). (Not
        # conn.__dict__ for psycopg's plain attributes: making a connection
        # materialise its __dict__ slows every attribute access of psycopg's
        # own code, by more than the pool would save: measured.)
        pgconn = getattr(conn, "pgconn", None)
        slot = self._ring.add(acquired=True)
        now = monotonic()
        # A complete record, in place before the slot can be published to the
        # ring (when its holder gives it back).
        expire_at = now + self._jitter(self.max_lifetime, -0.05, 0.0)
        self._slots[slot] = SlotRecord(conn, pgconn, now, expire_at)
        conn._fp_slot = slot
        return slot

    def _refill_task(self) -> None:
        with self._lock:
            if not self._closed:
                self._grow_locked(self._min_size - self._nconns)

    def _expiry_sweep_period(self) -> float:
        # Lifetimes are spread over the last 5% of max_lifetime; sweeping a few
        # times within that window replaces most connections before a client
        # meets them expired (checkout would still refuse to hand them out).
        return min(max(self.max_lifetime / 40, 0.05), 30.0)

    def _resize(self, min_size: int, max_size: int | None = None) -> None:
        """Change the size of the pool during runtime."""
        min_size, max_size = self._check_size(min_size, max_size)
        if max_size > self._capacity:
            raise ValueError(
                f"max_size {max_size} is more than this pool can grow to ({self._capacity});"
                " create the pool with a larger max_size"
            )
        with self._lock:
            self._min_size = min_size
            self._max_size = max_size
            if not self._closed:
                self._grow_locked(min_size - self._nconns)

    def _get_measures(self) -> dict[str, int]:
        return {
            "pool_min": self._min_size,
            "pool_max": self._max_size,
            "pool_size": self._nconns,
            "pool_available": self._ring.idle_count(),
            "requests_waiting": len(self._waiting),
        }

    def get_metrics(self) -> PoolMetrics:
        """Return the pool's metrics now (see ``PoolCommon.get_metrics``)."""
        ring = self._ring
        return PoolMetrics(
            pool_name=self.name,
            idle=ring.idle_count(),
            # Slots held: checked out, or being checked, reset or replaced;
            # connections still being made are in neither state.
            used=ring.in_use_count(),
            idle_min=self._min_size,
            idle_max=self._idle_limit(),
            max=self._connection_limit(),
            pending_requests=len(self._waiting),
            timeouts=self._histograms.timeouts(),
            histograms=self._histograms.snapshot(),
        )

    def _connection_limit(self) -> int:
        """Connections the pool may have open at once."""
        return self._max_size

    def _idle_limit(self) -> int:
        """Connections that may be idle at once: no limit of its own."""
        return self._max_size

    def _slot_or_wait_locked(self, w: Any) -> bool:
        """First step of a checkout that missed the fast path (pool lock
        held), whose waiter ``w`` holds the outcome (so an exception can't
        separate the slot from its holder): False when ``w.slot`` got an idle
        slot (nobody queued), True when ``w`` was queued (raises PoolClosed or
        TooManyRequests)."""
        if self._closed:
            raise PoolClosed(f"the pool {self.name!r} is already closed")
        if not self._waiting:
            w.slot = self._ring.try_acquire()
            if w.slot >= 0:
                self._hist.add(Histograms.WAIT)  # found one idle: no wait
                return False
        self._queue_locked(w)
        return True

    def _queue_locked(self, w: Any) -> Any:
        self._exhausted = True
        self._enqueue_locked(w)
        # A slot released between the caller's try_acquire (or the lock-free
        # one in getconn) and the append would otherwise sit idle while we
        # wait: returners only look at the queue after releasing.
        self._serve_waiters_locked()
        self._grow_for_waiters_locked()
        return w

    def _stop_waiting(self, w: Any) -> bool:
        """A waiter gives up (timeout, cancellation): True if it was still queued
        and is now gone; False if it was served or failed first, so its outcome
        must be taken."""
        with self._lock:
            return remove_waiter(self._waiting, w)

    def _wait_outcome(self, w: Waiter | AsyncWaiter, waited: float, timeout: float) -> int:
        """The slot a finished wait got (left in ``w``, which still owns it),
        after counting the wait; or raise its error, or PoolTimeout if it got
        nothing."""
        self._stats.add_ms(Stats.REQUESTS_WAIT_MS, waited)
        self._histograms.observe(Histograms.WAIT, waited)
        if w.error is not None:
            self._count_failed_request()
            raise w.error
        if w.slot == -1:
            self._count_failed_request()
            raise self._checkout_timed_out(timeout)
        return w.slot

    def _after_failed_check(
        self, attempt: AttemptWithBackoff | None, deadline: float, timeout: float
    ) -> AttemptWithBackoff:
        """A connection failed the ``check`` callback and went back to the
        pool: psycopg_pool's backoff before the next try (the first at once,
        then about 1, 2, 4... s within what is left of the timeout). Returns
        the attempt to sleep ``attempt.delay`` for, or raises PoolTimeout."""
        now = monotonic()
        if attempt is None:
            attempt = AttemptWithBackoff(timeout=deadline - now)
        else:
            attempt.update_delay(now)
        if attempt.time_to_give_up(now):
            raise self._checkout_timed_out(timeout)
        self._raise_if_past(deadline, timeout)
        return attempt

    def _raise_if_past(self, deadline: float, timeout: float) -> None:
        """No new try once the deadline has passed (psycopg_pool's rule: a
        retry that would start with no time left raises PoolTimeout)."""
        if monotonic() >= deadline:
            raise self._checkout_timed_out(timeout)

    def _count_broken_return(self, conn: Any, from_getconn: bool) -> None:
        """A connection came back closed or broken (psycopg_pool's records):
        counted as lost if it was found so by the ``check`` callback, as a bad
        return otherwise."""
        if from_getconn:
            self._stats.add(Stats.CONNECTIONS_LOST)
            self._protocol.logger.info("not serving connection found broken")
        else:
            self._stats.add(Stats.RETURNS_BAD)
            self._protocol.logger.warning("discarding closed connection: %s", conn)

    # Leak detection --------------------------------------------------------

    def _note_checkout(self, slot: int) -> None:
        """Record when and from where a slot was checked out (leak_threshold set).
        Costs a stack capture (tens of microseconds): opt-in for that reason."""
        rec = self._slots[slot]
        rec.checked_out_at = monotonic()
        rec.checkout_stack = [
            f for f in traceback.extract_stack()[:-1] if not f.filename.startswith(_PACKAGE_DIR)
        ]

    def _note_return(self, slot: int) -> None:
        rec = self._slots[slot]
        rec.checked_out_at = 0.0
        rec.checkout_stack = None

    def _leak_scan_period(self) -> float:
        return min(max(self._leak_threshold / 4, 0.01), 5.0)

    def _leak_task(self) -> None:
        """Maintenance task: report connections held longer than leak_threshold,
        each checkout once, with the stack that checked it out."""
        workers = self._workers
        if self._closed or workers is None:
            return
        workers.run_later(self._leak_scan_period(), type(self)._leak_task)
        now = monotonic()
        for slot in self._ring.in_use():
            rec = self._slots[slot]
            at = rec.checked_out_at
            if not at or now - at <= self._leak_threshold or rec.leak_reported == at:
                continue
            rec.leak_reported = at
            self._stats.add(Stats.CONNECTIONS_LEAKED)
            stack = "".join(traceback.format_list(rec.checkout_stack or []))
            self._protocol.logger.warning(
                "connection %s of pool %r has been checked out for %.1f sec (leak_threshold=%s);"
                " possible leak, checked out at:\n%s",
                # str(): a log record (kept by a buffering handler) must not keep
                # a connection alive, or the orphan scan could never reclaim it
                str(rec.conn),
                self.name,
                now - at,
                self._leak_threshold,
                stack.rstrip(),
            )

    # Orphans: checked-out connections nobody can return -----------------------

    def _find_orphans(self, confirmed_only: bool = True) -> list[tuple[int, Any]]:
        """Checked-out connections that nothing outside the pool refers to any
        more: the thread that held one ended, or code dropped it without
        returning it. Nobody can ever give them back, and their server
        sessions may sit in a transaction holding locks (psycopg_pool lets the
        garbage collector close them; fastpool holds each connection in its
        slot, so it must do that itself). A connection is one only if it is
        marked checked out (``_pool`` is this pool: a checkout in progress or
        an idle slot claimed by maintenance is not), its reference count shows
        no holder but its slot record, and the garbage collector confirms it.
        With ``confirmed_only`` it must also have looked so at the previous
        scan, so no instant between two steps of a checkout is ever mistaken
        for one."""
        slots = self._slots
        suspects: dict[int, int] = {}
        orphans = []
        # What getrefcount says of an object held only by a slot record and a
        # local read the same way (3 on CPython <= 3.13; interpreters that
        # borrow references may say less): calibrated, not assumed.
        probe = SlotRecord(object())
        only_ours = probe.conn
        held_by_nobody = sys.getrefcount(only_ours)
        for slot in self._ring.in_use():
            rec = slots[slot]
            conn = rec.conn
            if conn is None or getattr(conn, "_pool", None) is not self:
                continue
            if sys.getrefcount(conn) > held_by_nobody:
                continue
            if any(r is not rec and not _is_scan_frame(r) for r in gc.get_referrers(conn)):
                continue
            if not confirmed_only or self._orphan_suspects.get(slot) == id(conn):
                orphans.append((slot, conn))
            else:
                suspects[slot] = id(conn)  # (an id, not the object: no new reference)
        self._orphan_suspects = suspects
        return orphans

    def _report_orphan(self, slot: int, conn: Any) -> None:
        """Count and log a reclaimed orphan (with where it was checked out,
        when leak detection recorded it); the caller closes it."""
        self._stats.add(Stats.CONNECTIONS_LOST)
        where = self._slots[slot].checkout_stack
        self._protocol.logger.warning(
            "connection %s of pool %r was checked out and never returned, and nothing refers to"
            " it any more (its thread ended, or the code dropped it): closed%s",
            conn,
            self.name,
            ", checked out at:\n" + "".join(traceback.format_list(where)).rstrip() if where else "",
        )

    def _reclaim_orphans(self, confirmed_only: bool = True) -> None:
        """Close (and, while open, replace) the orphans found: sync pools."""
        for slot, conn in self._find_orphans(confirmed_only):
            self._report_orphan(slot, conn)
            self._reclaim_orphan(slot, conn)

    def _orphan_task(self) -> None:
        """Maintenance task (sync pools): reclaim orphans every ``_orphan_scan_period``."""
        if self._orphan_scan_due():
            self._reclaim_orphans()

    def _orphan_scan_due(self) -> bool:
        """The scan task's own bookkeeping (it reschedules itself): False once
        the pool is closed."""
        workers = self._workers
        if self._closed or workers is None:
            return False
        workers.run_later(self._orphan_scan_period, type(self)._orphan_task)
        return True

    def _count_failed_request(self) -> None:
        self._stats.add(Stats.REQUESTS_ERRORS)

    # Open, close, connection lifecycle: the locked halves both pools share ----

    def _open_locked(self) -> None:
        """open() under the pool lock: refuse a closed pool, start the workers
        once; a second open() (e.g. ``with`` on a pool opened implicitly) only
        clears the pending warning, allowing the fast path from now on."""
        if self._opened:
            if self._closed:
                raise PoolClosed(
                    f"pool {self.name!r} has already been opened/closed and cannot be reused"
                )
            self._fast = not self._open_implicit
            return
        self._opened = True
        self._closed = False
        self._start_workers_locked()
        self._fast = not self._open_implicit

    def _start_workers_locked(self) -> None:
        cls = type(self)
        self._workers = self._new_workers()
        self._workers.start()
        self._grow_locked(self._min_size - self._nconns)
        self._workers.run_later(self.max_idle, cls._shrink_task)
        self._workers.run_later(self._expiry_sweep_period(), cls._expiry_task)
        if self._leak_threshold:
            self._workers.run_later(self._leak_scan_period(), cls._leak_task)
        self._workers.run_later(self._orphan_scan_period, cls._orphan_task)

    def _begin_close_locked(self) -> Any:
        """close() under the pool lock: None if already closed, else what the
        caller must finish outside it: (idle connections to close, the workers
        to stop). Waiting clients get PoolClosed now, under the same lock hold
        that empties the queue: a waiter off the queue is always settled."""
        if self._closed:
            return None
        self._closed = True
        self._fast = False
        err = PoolClosed(f"the pool {self.name!r} is closed")
        self._fail_all_waiting_locked(lambda: err)
        idle = self._take_all_idle_locked()
        workers, self._workers = self._workers, None
        return idle, workers

    def _fail_all_waiting_locked(self, make_error: Callable[[], BaseException]) -> None:
        """Wake every queued client with an error of ``make_error()`` (pool lock
        held): what they wait for won't come. As for a hand-over, the outcome
        is written before the waiter leaves the queue; one already settled
        (its server was interrupted) is only taken off."""
        waiting = self._waiting
        while waiting:
            w = waiting[0]
            if w.slot == -1 and w.error is None:
                w.error = make_error()
                del waiting[0]
                w.wake()
            else:
                del waiting[0]

    def _fail_waiting(self, make_error: Callable[[], BaseException]) -> None:
        """``_fail_all_waiting_locked`` for a connection the pool can't use."""
        with self._lock:
            self._fail_all_waiting_locked(make_error)

    def _raise_if_closed(self) -> None:
        if self._closed:
            if self._opened:
                raise PoolClosed(f"the pool {self.name!r} is already closed")
            raise PoolClosed(f"the pool {self.name!r} is not open yet")

    def _is_stale(self, slot: int, now: float) -> bool:
        """Past its lifetime, or made before the last drain(): to be replaced."""
        rec = self._slots[slot]
        return now >= rec.expire_at or rec.created_at <= self._drained_at

    def _check_due(self, slot: int, now: float) -> bool:
        """The ``check`` callback must run on this checkout (check_bypass aside)."""
        return self._check is not None and not (
            self.check_bypass and now - self._slots[slot].last_used < self.check_bypass
        )

    def _replace_discarded(self, holder: Any = None) -> None:
        """A connection was discarded (broken, expired, drained, failed its
        check): make one in its place, as psycopg_pool does, so the pool keeps
        its size. Shrinking is the ``max_idle`` task's job alone.

        With ``holder``, only if it holds REPLACING, which it lets go of in the
        same step: however an exception lands, a discard through a holder asks
        for its replacement exactly once."""
        with self._lock:
            if holder is not None:
                if holder.slot != REPLACING:
                    return
                holder.slot = -1
            if not self._closed:
                self._grow_locked(1)

    def _attempt_ended_locked(self) -> None:
        """A scheduled connection attempt will not produce a connection."""
        self._nconns -= 1
        self._connecting -= 1

    def _connect_started(self) -> float:
        """Count a connection attempt; its start time for ``_connect_ended``."""
        self._stats.add(Stats.CONNECTIONS_NUM)
        return monotonic()

    def _connect_ended(self, t0: float, ok: bool) -> None:
        """Count how long the attempt started at ``t0`` took, and a failure."""
        elapsed = monotonic() - t0
        if ok:
            self._stats.add_ms(Stats.CONNECTIONS_MS, elapsed)
        else:
            self._stats.add(Stats.CONNECTIONS_ERRORS)
        self._histograms.observe(Histograms.CREATE, elapsed)

    def _install_connected(self, conn: Any) -> int:
        """A worker's new connection: its held slot, or -1 if the pool closed
        meanwhile (the caller closes the connection)."""
        with self._lock:
            self._connecting -= 1
            if self._closed:
                self._nconns -= 1
                return -1
            return self._install(conn)

    def _hand_out_connected(self, slot: int) -> None:
        """Publish a new connection: to the oldest waiter, else idle; connect
        more if waiters remain."""
        self._give_back(slot)
        with self._lock:
            if self._waiting and not self._closed:
                self._grow_for_waiters_locked()

    def _retry_or_give_up(self, attempt: Any) -> Any:
        """After a failed connect: schedule the next attempt with backoff and
        return None, or, past reconnect_timeout, give this attempt up and return
        it (the caller runs reconnect_failed, then ``_refill_later``)."""
        now = monotonic()
        if attempt is None:
            attempt = AttemptWithBackoff(timeout=self.reconnect_timeout)
        attempt.update_delay(now)
        if not attempt.time_to_give_up(now):
            workers = self._workers
            if workers is not None:
                workers.run_later(attempt.delay, type(self)._add_connection_task, attempt)
            else:  # closed meanwhile: nothing will try again
                with self._lock:
                    self._attempt_ended_locked()
            return None
        self._protocol.logger.warning(
            "reconnection attempt in pool %r failed after %s sec", self.name, self.reconnect_timeout
        )
        with self._lock:
            self._attempt_ended_locked()
        return attempt

    def _refill_later(self, attempt: Any) -> None:
        # Unlike psycopg_pool, don't stay below min_size until a client shows up:
        # start a new round of attempts after a pause.
        workers = self._workers
        if workers is not None:
            workers.run_later(
                min(
                    attempt.delay or AttemptWithBackoff.INITIAL_DELAY, AttemptWithBackoff.MAX_DELAY
                ),
                type(self)._refill_task,
            )

    def _shrink_candidate(self) -> Any:
        """The shrink task's decision (rescheduling itself): the (slot, conn) of
        an idle connection to close, or None."""
        workers = self._workers
        if self._closed or workers is None:
            return None
        workers.run_later(self.max_idle, type(self)._shrink_task)
        with self._lock:
            exhausted, self._exhausted = self._exhausted, False
            if exhausted or self._nconns <= self._min_size:
                return None
            slot = self._try_acquire_oldest()  # idle longest
            if slot < 0:
                return None
            conn = self._slots[slot].conn
        self._protocol.logger.info(
            "shrinking pool %r to %s because some connections were unused in the last %s sec",
            self.name,
            self._nconns - 1,
            self.max_idle,
        )
        return slot, conn

    def _take_expired_idle(self, expired: list[tuple[int, Any]]) -> None:
        """The expiry sweep's decision (rescheduling itself): claim the idle
        connections past their lifetime into the caller's list ``expired``,
        give the others back at once."""
        workers = self._workers
        if self._closed or workers is None:
            return
        workers.run_later(self._expiry_sweep_period(), type(self)._expiry_task)
        now = monotonic()
        # Claim each idle slot (so no checkout can race us), oldest first, keep
        # it for a few microseconds, and give back the ones still within lifetime.
        for _ in range(self._ring.idle_count()):
            slot = self._try_acquire_oldest()
            if slot < 0:
                break
            rec = self._slots[slot]
            if now >= rec.expire_at:
                expired.append((slot, rec.conn))
            else:
                self._give_back(slot)
