"""``ConnectionPool``: psycopg_pool's ConnectionPool API on fastpool's core.

The hot path (an idle connection is available, the pool is healthy) is one
lock-free ``SlotRing.try_acquire()`` to check out and one ``release()`` to
return, plus a clock read each way (lifetime is enforced at checkout and on
return). No Python lock, no logging, no task queue. Everything else — waiting,
growing, replacing broken or expired connections, closing — takes the pool's
lock and lives in the ``_slow`` methods.

Per-connection bookkeeping is kept in lists indexed by slot (``_conns``,
``_expire_at``, ...), written before the slot is published to the ring, so a
thread that acquires a slot reads a complete record.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Generic, TypeVar

from . import base
from ._core import PoolHotPath, SlotRing
from .base import ACTIVE, IDLE, INERROR, INTRANS, UNKNOWN, AttemptWithBackoff, BasePool, Stats
from .errors import PoolClosed, PoolTimeout, TooManyRequests
from .waiting import Waiter, remove_waiter, thread_waiter
from .workers import Workers

try:
    import psycopg
    from psycopg import errors as e
except ImportError:  # pragma: no cover - psycopg is needed to use this pool
    psycopg = None  # type: ignore[assignment]

logger = logging.getLogger("psycopg.pool")

# psycopg >= 3.3 makes Connection.close() call pool.putconn() when the pool's
# close_returns is set; older versions need PoolConnection below.
_CLOSE_RETURNS_BUILTIN = psycopg is not None and tuple(
    int(x) for x in psycopg.__version__.split(".")[:2] if x.isdigit()
) >= (3, 3)

if psycopg is not None:

    class PoolConnection(psycopg.Connection):  # type: ignore[misc, type-arg]
        """A connection whose close() returns it to its pool if the pool says so
        (``close_returns=True``); used with psycopg < 3.3 only."""

        def close(self) -> None:
            pool = getattr(self, "_pool", None)
            if pool is not None and getattr(pool, "close_returns", False):
                pool.putconn(self)
            else:
                super().close()
monotonic = time.monotonic

CT = TypeVar("CT")



class ConnectionPool(PoolHotPath, Generic[CT], BasePool):
    """A pool of psycopg connections, drop-in for ``psycopg_pool.ConnectionPool``."""

    def __init__(
        self,
        conninfo: str | Callable[[], str] = "",
        *,
        connection_class: type | None = None,
        kwargs: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        min_size: int = 4,
        max_size: int | None = None,
        open: bool | None = None,
        configure: Callable[[Any], None] | None = None,
        check: Callable[[Any], None] | None = None,
        reset: Callable[[Any], None] | None = None,
        name: str | None = None,
        close_returns: bool = False,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float = 60 * 60.0,
        max_idle: float = 10 * 60.0,
        reconnect_timeout: float = 5 * 60.0,
        reconnect_failed: Callable[[Any], None] | None = None,
        num_workers: int = 3,
        check_bypass: float = 0.0,
        fork_safe: bool = False,
    ):
        if connection_class is None:
            if psycopg is None:
                raise ImportError("fastpool.ConnectionPool needs psycopg 3: pip install 'psycopg[binary]'")
            connection_class = psycopg.Connection
        if not isinstance(connection_class, type) or not callable(getattr(connection_class, "connect", None)):
            raise TypeError(
                f"connection_class must be a connection class with a connect() classmethod, "
                f"got {connection_class!r}"
            )
        for cb_name, cb in (("configure", configure), ("check", check), ("reset", reset)):
            base._check_callable(cb_name, cb)
        if open is not None and not isinstance(open, bool):
            raise TypeError(f"open must be True, False or None, got {type(open).__name__}")
        super().__init__(
            conninfo,
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            name=name,
            timeout=timeout,
            max_waiting=max_waiting,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
            reconnect_timeout=reconnect_timeout,
            reconnect_failed=reconnect_failed,
            num_workers=num_workers,
            check_bypass=check_bypass,
            fork_safe=fork_safe,
        )
        if close_returns and not _CLOSE_RETURNS_BUILTIN:
            # psycopg < 3.3's Connection.close() knows nothing of pools: use a
            # subclass whose close() returns the connection (as psycopg_pool does).
            if connection_class is not psycopg.Connection:
                raise TypeError(
                    "close_returns=True with a custom connection_class needs psycopg >= 3.3"
                    f" (installed: {psycopg.__version__}); or subclass fastpool.pool.PoolConnection"
                )
            connection_class = PoolConnection
        self.connection_class = connection_class
        self._configure = configure
        self._check = check
        self._reset = reset
        self.close_returns = bool(close_returns)

        self._capacity = max(base.MIN_SLOT_CAPACITY, self._max_size)
        cls = type(self)
        self._plain_hot_path = (
            cls.getconn is PoolHotPath.getconn and cls.putconn is PoolHotPath.putconn
        )
        self._init_state()
        self._open_implicit = False
        if fork_safe:
            _fork_safe_pools.add(self)
        if open is None:
            # psycopg_pool compatibility: open now, warn on first use.
            self._open_implicit = True
            self.open()
        elif open:
            self.open()

    def _init_state(self) -> None:
        """(Re)create the structures a pool starts with (also after a fork)."""
        self._lock = threading.RLock()
        self._ring = SlotRing(self._capacity)
        self._counters = self._stats.counters
        cap = self._capacity
        self._conns: list[Any] = [None] * cap        # slot -> connection
        self._expire_at: list[float] = [0.0] * cap   # slot -> monotonic expiry
        self._created_at: list[float] = [0.0] * cap
        self._last_used: list[float] = [0.0] * cap   # slot -> last successful return
        self._waiting: deque[Waiter] = deque()
        self._nconns = 0          # connections in the pool + being connected (pool_size)
        self._connecting = 0      # connection attempts scheduled or in flight
        self._drained_at = -1.0
        self._exhausted = False   # a checkout found no idle slot since the last shrink check
        self._workers: Workers | None = None
        # True when getconn() may take the lock-free path: open, not closed, and
        # no pending one-time warning. Read once per checkout.
        self._fast = False

    # ------------------------------------------------------------------
    # Open / close
    # ------------------------------------------------------------------

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        """Open the pool: start the workers and the initial connections."""
        with self._lock:
            if self._opened:
                if self._closed:
                    raise PoolClosed(
                        f"pool {self.name!r} has already been opened/closed and cannot be reused"
                    )
                # __enter__ on a pool the constructor opened implicitly clears the
                # pending warning: the fast path is allowed from now on.
                self._fast = not self._open_implicit
                return
            self._opened = True
            self._closed = False
            self._start_workers_locked()
            self._fast = not self._open_implicit
        if wait:
            self.wait(timeout=timeout)

    def _start_workers_locked(self) -> None:
        self._workers = Workers(self, self.num_workers)
        self._workers.start()
        self._grow_locked(self._min_size - self._nconns)
        self._workers.run_later(self.max_idle, ConnectionPool._shrink_task)
        self._workers.run_later(self._expiry_sweep_period(), ConnectionPool._expiry_task)

    def close(self, timeout: float = 5.0) -> None:
        """Close the pool: idle connections now, checked-out ones when returned.

        Waiting clients get PoolClosed at once. Worker threads are joined for up
        to ``timeout`` seconds."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._fast = False
            waiters = list(self._waiting)
            self._waiting.clear()
            idle = self._take_all_idle_locked()
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.stop()
        self._close_idle(idle)
        err = PoolClosed(f"the pool {self.name!r} is closed")
        with self._lock:
            for w in waiters:
                w.fail(err)
        if workers is not None:
            workers.join(timeout)

    def _close_idle(self, idle: list[tuple[int, Any]] | None = None) -> None:
        """Close idle connections of a closed pool (default: whatever is in the ring)."""
        if idle is None:
            with self._lock:
                idle = self._take_all_idle_locked()
        for slot, conn in idle:
            self._forget_slot(slot)
            self._close_quietly(conn)

    def __enter__(self) -> "ConnectionPool[CT]":
        self._open_implicit = False
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.close()

    def __del__(self) -> None:
        workers = getattr(self, "_workers", None)
        if workers is not None and not getattr(self, "_closed", True):
            workers.stop()

    def _check_open_getconn(self) -> None:
        if self._closed:
            if self._opened:
                raise PoolClosed(f"the pool {self.name!r} is already closed")
            raise PoolClosed(f"the pool {self.name!r} is not open yet")
        if self._open_implicit:
            self._open_implicit = False
            import warnings

            warnings.warn(
                f"the default for the {type(self).__name__} 'open' parameter will become"
                " 'False' in a future release. Please use open={True|False} explicitly,"
                f" or use the pool as context manager using: `with {type(self).__name__}(...)"
                " as pool: ...`",
                DeprecationWarning,
                stacklevel=3,
            )
            with self._lock:
                self._fast = not self._closed

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until the pool holds ``min_size`` connections.

        On timeout the pool is closed and PoolTimeout raised (as psycopg_pool)."""
        timeout = base.check_timeout(timeout)
        self._check_open_getconn()
        deadline = monotonic() + timeout
        while True:
            with self._lock:
                ready = self._ring.size() >= self._min_size
                closed = self._closed
            if ready:
                return
            if closed:
                raise PoolClosed(f"the pool {self.name!r} is closed")
            if monotonic() >= deadline:
                self.close()
                raise PoolTimeout(f"pool initialization incomplete after {timeout} sec") from None
            time.sleep(0.005)

    # ------------------------------------------------------------------
    # Checkout
    # ------------------------------------------------------------------

    def _getconn_slow(self, timeout: float | None, counted: bool) -> CT:
        if not counted:
            self._counters.add(base.I_REQUESTS_NUM)
        if timeout is None:
            timeout = self.timeout
        else:
            timeout = base.check_timeout(timeout)
        deadline = monotonic() + timeout
        self._check_open_getconn()
        while True:
            slot = self._wait_for_slot(deadline, timeout)
            conn = self._checkout_checked(slot, monotonic())
            if conn is not None:
                return conn

    def _wait_for_slot(self, deadline: float, timeout: float) -> int:
        """Get a held slot: an idle one, or one handed over while queued."""
        with self._lock:
            if self._closed:
                raise PoolClosed(f"the pool {self.name!r} is already closed")
            if not self._waiting:
                slot = self._ring.try_acquire()
                if slot >= 0:
                    return slot
            self._exhausted = True
            w = self._enqueue_locked()
            # A slot released between our try_acquire above (or the lock-free one
            # in getconn) and the append would otherwise sit idle while we wait:
            # returners only look at the queue after releasing.
            self._serve_waiters_locked()
            self._grow_for_waiters_locked()
        return self._await(w, deadline, timeout)

    def _enqueue_locked(self) -> Waiter:
        """Queue the calling thread (pool lock held), or raise TooManyRequests."""
        if self.max_waiting and len(self._waiting) >= self.max_waiting:
            self._stats.add(Stats.REQUESTS_ERRORS)
            raise TooManyRequests(
                f"the pool {self.name!r} has already {len(self._waiting)} requests waiting"
            )
        w = thread_waiter()
        self._waiting.append(w)
        self._stats.add(Stats.REQUESTS_QUEUED)
        return w

    def _await(self, w: Waiter, deadline: float, timeout: float) -> int:
        """Wait (pool lock not held) until ``w`` is served; its slot, or raise."""
        t0 = monotonic()
        try:
            served = w.wait(deadline - t0)
        except BaseException:
            # Interrupted (KeyboardInterrupt): don't strand what was handed to us.
            self._abandon_wait(w)
            raise
        if not served:
            with self._lock:
                gave_up = remove_waiter(self._waiting, w)
            if not gave_up:
                w.collect()  # served while we were timing out: take it
        slot, error = w.reset()
        self._stats.add_ms(Stats.REQUESTS_WAIT_MS, monotonic() - t0)
        if error is not None:
            self._stats.add(Stats.REQUESTS_ERRORS)
            raise error
        if slot == -1:
            self._stats.add(Stats.REQUESTS_ERRORS)
            raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
        return slot

    def _abandon_wait(self, w: Waiter) -> None:
        with self._lock:
            if remove_waiter(self._waiting, w):
                w.reset()
                return
        w.collect()
        slot, _ = w.reset()
        self._return_unclaimed(slot)

    def _return_unclaimed(self, slot: int) -> None:
        """Give back what an interrupted waiter was handed."""
        if slot >= 0:
            self._give_back(slot)

    def _checkout_checked(self, slot: int, now: float) -> CT | None:
        """Finish a checkout of a held slot: enforce lifetime/drain and run the
        ``check`` callback. None if the connection was discarded (retry)."""
        conn = self._conns[slot]
        if now >= self._expire_at[slot] or self._created_at[slot] <= self._drained_at:
            logger.info("discarding expired connection %s", conn)
            self._discard(slot, conn)
            return None
        if self._check is not None and not (
            self.check_bypass and now - self._last_used[slot] < self.check_bypass
        ):
            try:
                self._check(conn)
            except Exception as ex:
                logger.info("connection failed check: %s", ex)
                self._stats.add(Stats.CONNECTIONS_LOST)
                self._discard(slot, conn)
                return None
            except BaseException:
                self._give_back(slot)
                raise
        conn._pool = self
        return conn

    # ------------------------------------------------------------------
    # Return
    # ------------------------------------------------------------------

    def _raise_foreign(self, conn: Any) -> None:
        other = getattr(conn, "_pool", None)
        slot = getattr(conn, "_fp_slot", None)
        if other is None and slot is not None and self._conns[slot] is conn:
            raise ValueError(
                f"can't return connection to pool {self.name!r}: it was already returned: {conn}"
            )
        if other is not None:
            msg = f"it comes from pool {getattr(other, 'name', other)!r}"
        else:
            msg = "it doesn't come from any pool"
        raise ValueError(f"can't return connection to pool {self.name!r}, {msg}: {conn}")

    def _putconn_slow(self, slot: int, conn: Any) -> None:
        if self._closed:
            self._forget_slot(slot)
            self._close_quietly(conn)
            return
        self._reset_connection(conn)
        status = conn.pgconn.transaction_status
        if status == UNKNOWN:
            self._stats.add(Stats.RETURNS_BAD)
            logger.warning("discarding closed connection: %s", conn)
            self._discard(slot, conn)
            return
        now = monotonic()
        if now >= self._expire_at[slot] or self._created_at[slot] <= self._drained_at:
            logger.info("discarding expired connection")
            self._discard(slot, conn)
            return
        self._last_used[slot] = now
        self._give_back(slot)

    def _reset_connection(self, conn: Any) -> None:
        """Bring a returned connection back to IDLE, or close it (psycopg_pool's rules)."""
        status = conn.pgconn.transaction_status
        if status == IDLE:
            pass
        elif status == ACTIVE:
            logger.warning("closing returned connection: %s", conn)
            conn.close()
        elif status in (INTRANS, INERROR):
            logger.warning("rolling back returned connection: %s", conn)
            try:
                conn.rollback()
            except Exception as ex:
                logger.warning(
                    "rollback failed: %s: %s. Discarding connection %s", ex.__class__.__name__, ex, conn
                )
                conn.close()
        if self._reset is not None and conn.pgconn.transaction_status != UNKNOWN:
            try:
                self._reset(conn)
                status = conn.pgconn.transaction_status
                if status != IDLE:
                    sname = base.STATUS_NAMES.get(status, status)
                    raise e.ProgrammingError(
                        f"connection left in status {sname} by reset function {self._reset}: discarded"
                    )
            except Exception as ex:
                logger.warning("error resetting connection: %s", ex)
                conn.close()

    def _give_back(self, slot: int) -> None:
        """Return a held slot: to the oldest waiter if any, else to the ring."""
        if self._waiting:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().serve(slot)
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

    def _serve_waiters(self) -> None:
        with self._lock:
            self._serve_waiters_locked()

    def _serve_waiters_locked(self) -> None:
        while self._waiting:
            slot = self._ring.try_acquire()
            if slot < 0:
                return
            self._waiting.popleft().serve(slot)

    # ------------------------------------------------------------------
    # Slots and connections
    # ------------------------------------------------------------------

    def _take_all_idle_locked(self) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        while True:
            slot = self._ring.try_acquire()
            if slot < 0:
                return out
            out.append((slot, self._conns[slot]))

    def _forget_slot(self, slot: int) -> None:
        """Take a held slot out of the pool (its connection is going away)."""
        with self._lock:
            self._conns[slot] = None
            self._ring.retire(slot)
            self._nconns -= 1

    def _discard(self, slot: int, conn: Any) -> None:
        """Close a held slot's connection and have a new one made in its place."""
        self._forget_slot(slot)
        self._close_quietly(conn)
        with self._lock:
            if not self._closed:
                self._grow_locked(max(1 if self._waiting else 0, self._min_size - self._nconns))

    @staticmethod
    def _close_quietly(conn: Any) -> None:
        conn._pool = None
        try:
            conn.close()
        except Exception as ex:  # a broken socket must not break the pool
            logger.warning("error closing connection %s: %s", conn, ex)

    def _grow_locked(self, n: int) -> None:
        """Schedule ``n`` new connections (bounded by max_size)."""
        workers = self._workers
        if workers is None:
            return
        n = min(n, self._max_size - self._nconns)
        for _ in range(max(0, n)):
            self._nconns += 1
            self._connecting += 1
            workers.run_soon(ConnectionPool._add_connection_task, None)

    def _grow_for_waiters_locked(self) -> None:
        # Connect in parallel, but only as many as there are waiters not already
        # covered by a connection attempt in flight (HikariCP's "elision").
        self._grow_locked(min(len(self._waiting) - self._connecting, self.num_workers))

    def _connect(self, timeout: float | None = None) -> Any:
        """Open a connection and run ``configure``; raise on any failure."""
        kwargs = self._resolve_kwargs()
        if timeout is not None:
            kwargs = dict(kwargs, connect_timeout=max(round(timeout), 1))
        conninfo = self._resolve_conninfo()
        self._stats.add(Stats.CONNECTIONS_NUM)
        t0 = monotonic()
        try:
            conn = self.connection_class.connect(conninfo, **kwargs)  # type: ignore[attr-defined]
        except Exception:
            self._stats.add(Stats.CONNECTIONS_ERRORS)
            raise
        self._stats.add_ms(Stats.CONNECTIONS_MS, monotonic() - t0)
        conn._pool = None
        if self._configure is not None:
            try:
                self._configure(conn)
                status = conn.pgconn.transaction_status
                if status != IDLE:
                    sname = base.STATUS_NAMES.get(status, status)
                    raise e.ProgrammingError(
                        f"connection left in status {sname} by configure function {self._configure}: discarded"
                    )
            except BaseException:
                self._close_quietly(conn)
                raise
        return conn

    def _install(self, conn: Any) -> int:
        """Put a new connection in a fresh slot, held by the caller (pool lock held)."""
        slot = self._ring.add(acquired=True)
        now = monotonic()
        self._conns[slot] = conn
        self._created_at[slot] = now
        self._expire_at[slot] = now + self._jitter(self.max_lifetime, -0.05, 0.0)
        self._last_used[slot] = now
        conn._fp_slot = slot
        return slot

    # ------------------------------------------------------------------
    # Maintenance tasks (run in worker threads; first argument is the pool)
    # ------------------------------------------------------------------

    def _add_connection_task(self, attempt: AttemptWithBackoff | None) -> None:
        if self._closed:
            with self._lock:
                self._nconns -= 1
                self._connecting -= 1
            return
        try:
            conn = self._connect()
        except Exception as ex:
            logger.warning("error connecting in %r: %s", self.name, ex)
            self._retry_connection(attempt)
            return
        with self._lock:
            self._connecting -= 1
            if self._closed:
                self._nconns -= 1
                slot = -1
            else:
                slot = self._install(conn)
        if slot < 0:
            self._close_quietly(conn)
            return
        self._give_back(slot)
        with self._lock:
            if self._waiting and not self._closed:
                self._grow_for_waiters_locked()

    def _retry_connection(self, attempt: AttemptWithBackoff | None) -> None:
        now = monotonic()
        if attempt is None:
            attempt = AttemptWithBackoff(timeout=self.reconnect_timeout)
        attempt.update_delay(now)
        if not attempt.time_to_give_up(now):
            if self._workers is not None:
                self._workers.run_later(attempt.delay, ConnectionPool._add_connection_task, attempt)
            return
        logger.warning(
            "reconnection attempt in pool %r failed after %s sec", self.name, self.reconnect_timeout
        )
        with self._lock:
            self._nconns -= 1
            self._connecting -= 1
        try:
            self.reconnect_failed()
        except Exception as ex:
            logger.warning("reconnect_failed callback failed: %s", ex)
        # Unlike psycopg_pool, don't stay below min_size until a client shows up:
        # start a new round of attempts after a pause.
        workers = self._workers
        if workers is not None:
            workers.run_later(min(attempt.delay or AttemptWithBackoff.INITIAL_DELAY,
                                  AttemptWithBackoff.MAX_DELAY), ConnectionPool._refill_task)

    def _refill_task(self) -> None:
        with self._lock:
            if not self._closed:
                self._grow_locked(self._min_size - self._nconns)

    def _shrink_task(self) -> None:
        workers = self._workers
        if self._closed or workers is None:
            return
        workers.run_later(self.max_idle, ConnectionPool._shrink_task)
        with self._lock:
            exhausted, self._exhausted = self._exhausted, False
            if exhausted or self._nconns <= self._min_size:
                return
            slot = self._ring.try_acquire()
            if slot < 0:
                return
            conn = self._conns[slot]
        logger.info(
            "shrinking pool %r to %s because some connections were unused in the last %s sec",
            self.name, self._nconns - 1, self.max_idle,
        )
        self._forget_slot(slot)
        self._close_quietly(conn)

    def _expiry_sweep_period(self) -> float:
        # Lifetimes are spread over the last 5% of max_lifetime; sweeping a few
        # times within that window replaces most connections before a client
        # meets them expired (checkout would still refuse to hand them out).
        return min(max(self.max_lifetime / 40, 0.05), 30.0)

    def _expiry_task(self) -> None:
        workers = self._workers
        if self._closed or workers is None:
            return
        workers.run_later(self._expiry_sweep_period(), ConnectionPool._expiry_task)
        now = monotonic()
        # Claim each idle slot with try_acquire (so no checkout can race us), keep
        # it for a few microseconds, and give back the ones still within lifetime.
        for _ in range(self._ring.idle_count()):
            slot = self._ring.try_acquire()
            if slot < 0:
                return
            conn = self._conns[slot]
            if now >= self._expire_at[slot]:
                logger.info("discarding expired connection %s", conn)
                self._discard(slot, conn)
            else:
                self._give_back(slot)

    # ------------------------------------------------------------------
    # Sizing, health, statistics
    # ------------------------------------------------------------------

    def resize(self, min_size: int, max_size: int | None = None) -> None:
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

    def check(self) -> None:
        """Verify the state of the idle connections; replace the broken ones."""
        with self._lock:
            if self._closed:
                return
            idle = self._take_all_idle_locked()
        now = monotonic()
        for slot, conn in idle:
            if now >= self._expire_at[slot]:
                logger.info("discarding expired connection")
                self._discard(slot, conn)
                continue
            try:
                self.check_connection(conn)
            except Exception as ex:
                self._stats.add(Stats.CONNECTIONS_LOST)
                logger.warning("discarding broken connection: %s", ex)
                self._discard(slot, conn)
            else:
                self._give_back(slot)
        with self._lock:
            if not self._closed:
                self._grow_locked(self._min_size - self._nconns)

    @staticmethod
    def check_connection(conn: Any) -> None:
        """A simple check to verify that a connection is still working
        (usable as the ``check`` parameter)."""
        if conn.autocommit:
            conn.execute("")
        else:
            conn.autocommit = True
            try:
                conn.execute("")
            finally:
                try:
                    conn.autocommit = False
                except Exception:
                    pass  # the connection is broken: keep the original error

    def drain(self) -> None:
        """Replace every connection: idle ones now, checked-out ones on return."""
        with self._lock:
            if self._closed:
                return
            self._drained_at = monotonic()
            idle = self._take_all_idle_locked()
        for slot, conn in idle:
            self._discard(slot, conn)

    def _get_measures(self) -> dict[str, int]:
        return {
            "pool_min": self._min_size,
            "pool_max": self._max_size,
            "pool_size": self._nconns,
            "pool_available": self._ring.idle_count(),
            "requests_waiting": len(self._waiting),
        }

    # ------------------------------------------------------------------
    # Fork
    # ------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Re-initialise in a forked child: forget (don't close) the parent's
        connections, whose sockets the parent still uses, and start afresh."""
        was_open = self._opened and not self._closed
        self._init_state()
        if was_open:
            self._start_workers_locked()
            self._fast = not self._open_implicit


_fork_safe_pools: "weakref.WeakSet[ConnectionPool[Any]]" = weakref.WeakSet()


def _reinit_pools_after_fork() -> None:
    for pool in list(_fork_safe_pools):
        pool._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_pools_after_fork)
