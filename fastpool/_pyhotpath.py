"""Pure-Python twin of ``src/_pool_hotpath.pxi``: ConnectionPool's
checkout/return fast path. Keep the two in step."""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from typing import TYPE_CHECKING, Any, cast, final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine, Generator
    from contextlib import AbstractAsyncContextManager, AbstractContextManager

from ._constants import ASYNC_EXIT_WITHOUT_ENTER as _ASYNC_EXIT_WITHOUT_ENTER
from ._constants import ASYNC_REENTERED as _ASYNC_REENTERED
from ._constants import BOUNDS as _H_BOUNDS
from ._constants import EXIT_WITHOUT_ENTER as _EXIT_WITHOUT_ENTER
from ._constants import I_REQUESTS_NUM as _I_REQUESTS_NUM
from ._constants import I_USAGE_MS as _I_USAGE_MS
from ._constants import IDLE as _IDLE
from ._constants import REENTERED as _REENTERED
from ._constants import SUMS as _H_SUMS
from ._constants import UNKNOWN as _UNKNOWN
from ._constants import USE as _H_USE
from ._constants import WAIT as _H_WAIT

monotonic = time.monotonic
get_running_loop = asyncio.get_running_loop


# The use histogram's sum of microseconds (SUMS holds the WAIT, USE, CREATE sums).
_H_USE_SUM = _H_SUMS + 1


def histogram_bucket(seconds: float) -> int:
    """The bucket the hot path counts ``seconds`` in (for tests)."""
    return bisect.bisect_left(_H_BOUNDS, seconds)


@final
class SlotRecord:
    """What the pool keeps about one slot: its connection and that
    connection's times. One record per slot, filled before the slot is
    published in the ring, so the thread that acquires the slot reads a
    complete record. Twin of the compiled core's typed ``SlotRecord``."""

    __slots__ = (
        "checked_out_at",
        "checkout_stack",
        "conn",
        "created_at",
        "expire_at",
        "last_used",
        "leak_reported",
        "pgconn",
    )

    def __init__(
        self,
        conn: Any = None,
        pgconn: Any = None,
        created_at: float = 0.0,
        expire_at: float = 0.0,
    ) -> None:
        self.conn = conn  # None: no connection in this slot
        # conn.pgconn (psycopg never replaces it); None: not psycopg. Read by
        # the compiled twin's return path only.
        self.pgconn = pgconn
        self.created_at = created_at  # monotonic time the connection was made
        self.expire_at = expire_at  # monotonic time it expires
        self.last_used = created_at  # last successful return (check_bypass)
        # Leak detection (leak_threshold set): when and where the slot was
        # checked out, and the checkout already reported.
        self.checked_out_at = 0.0
        self.checkout_stack: Any = None
        self.leak_reported = 0.0


class PoolFastPath:
    """Base class of the sync and async pools holding what the fast path reads,
    and the fast path itself, free of I/O so both pools share it."""

    # Declared for type checkers; set by the pool.
    _ring: Any
    _counters: Any
    _hist: Any
    _slots: list[SlotRecord]  # slot -> its record
    _waiting: Any
    _check: Any
    _reset: Any
    _fast: bool = False
    _closed: bool = True
    _drained_at: float = -1.0
    _leak_threshold: float = 0.0  # > 0: record each checkout for leak reports
    _plain_hot_path: bool = True  # (the compiled twin needs it; here getconn() is always called)

    if TYPE_CHECKING:
        # Provided by the pool (see the end of the class): declared for type
        # checkers only, as a definition here would shadow the pool's.
        def _give_back(self, slot: int) -> None: ...
        def _serve_waiters(self) -> None: ...
        def _close_idle(self) -> None: ...
        def _raise_foreign(self, conn: Any) -> None: ...
        def _note_checkout(self, slot: int) -> None: ...
        def _note_return(self, slot: int) -> None: ...

    def _checkout_fast(self, timeout: Any) -> Any:
        """The lock-free checkout: a connection ready to hand out (counted in
        requests_num), or -1: nothing idle, a check to run, an expired
        connection, or not allowed now (take the slow path, which counts the
        request). A slot never leaves this method other than with its
        connection checked out, so an interrupt can't strand it in between."""
        # A timeout that isn't a plain positive number takes the slow path,
        # which rejects it with a clear error, or (<= 0: no time left, as in
        # psycopg_pool) raises PoolTimeout; fastpool.Pool serves timeout=0 there.
        if (
            self._fast
            and self._check is None
            and not self._waiting
            and (timeout is None or (type(timeout) in (float, int) and timeout > 0))
        ):
            slot = self._ring.try_acquire()
            if slot >= 0:
                rec = self._slots[slot]
                if monotonic() < rec.expire_at:
                    self._counters.add(_I_REQUESTS_NUM)
                    self._hist.add(_H_WAIT)  # no wait
                    conn = rec.conn
                    conn._pool = self
                    if self._leak_threshold > 0:
                        self._note_checkout(slot)
                    return conn
                # Expired: put it back for the slow path, which replaces it.
                self._ring.release(slot)
                if self._waiting:
                    self._serve_waiters()
        return -1

    def _return_fast(self, conn: Any) -> int:
        """The lock-free return: -1 when ``conn`` is back (in the ring or with a
        waiter, or dropped after a fork); else its slot, still held, for the
        pool's ``_putconn_slow`` (reset, rollback, expiry, closed pool).
        Raises ValueError for a connection that isn't this pool's."""
        if getattr(conn, "_pool", None) is not self:
            self._raise_foreign(conn)
            return -1
        slot: int = conn._fp_slot
        conn._pool = None
        if not 0 <= slot < len(self._slots) or self._slots[slot].conn is not conn:
            # Checked out before a fork and returned in the child: the parent owns
            # the socket. Drop it without closing.
            return -1
        rec = self._slots[slot]
        if self._leak_threshold > 0:
            self._note_return(slot)
        if not self._closed:
            now = monotonic()
            if (
                conn.pgconn.transaction_status == _IDLE
                and getattr(conn, "_tpc", None) is None  # no prepared two-phase xact
                and now < rec.expire_at
                and self._reset is None
                and rec.created_at > self._drained_at
            ):
                if self._check is not None:
                    rec.last_used = now
                if not self._waiting:
                    self._ring.release(slot)
                    if self._waiting:
                        # Someone queued while we released: the slot may sit idle.
                        self._serve_waiters()
                    elif self._closed:
                        # close() ran between our check and the release: it has
                        # already emptied the ring, so close what we put back.
                        self._close_idle()
                    return -1
                self._give_back(slot)
                return -1
        return slot

    # The pool provides _give_back, _serve_waiters, _close_idle, _raise_foreign,
    # _note_checkout and _note_return
    # (fastpool._pool_logic.PoolLogic, which comes after this class in the MRO,
    # so no placeholder may be defined here), and _getconn_slow and
    # _putconn_slow.


class PoolHotPath(PoolFastPath):
    """Base class of ConnectionPool: the sync getconn/putconn/connection on the
    shared fast path."""

    if TYPE_CHECKING:
        # The sync pool's slow paths.
        def _getconn_slow(self, timeout: float | None, counted: bool) -> Any: ...
        def _putconn_slow(self, slot: int, conn: Any) -> None: ...

    def getconn(self, timeout: float | None = None) -> Any:
        """Take a connection out of the pool; give it back with ``putconn()``.

        Waits up to ``timeout`` seconds (default: the pool's ``timeout``), then
        raises PoolTimeout."""
        r = self._checkout_fast(timeout)
        if type(r) is not int:
            return r
        return self._getconn_slow(timeout, False)

    def putconn(self, conn: Any) -> None:
        """Give back a connection obtained with ``getconn()``."""
        slot = self._return_fast(conn)
        if slot >= 0:
            self._putconn_slow(slot, conn)

    def connection(self, timeout: float | None = None) -> AbstractContextManager[Any, None]:
        """Context manager: a connection for the block, committed on success,
        rolled back on error, then returned to the pool."""
        return ConnectionContext(self, timeout)


def commit_sends_nothing(conn: Any, status: int, failed: bool = True) -> bool:
    """True where psycopg's commit() (or, ``failed``: the block raised,
    rollback()) would send nothing and raise nothing: an IDLE connection
    outside a prepared two-phase transaction and a transaction() block, and
    for rollback() a pipeline (commit() at IDLE returns before it would sync
    one). UNKNOWN is a closed or broken connection, which psycopg's __exit__
    skips too."""
    if status == _UNKNOWN:
        return True
    return (
        status == _IDLE
        and getattr(conn, "_tpc", None) is None
        and not getattr(conn, "_num_transactions", 0)
        and not (failed and getattr(conn, "_pipeline", None) is not None)
    )


class ConnectionContext:
    """``with pool.connection() as conn:`` — psycopg's ``with conn:`` semantics,
    minus commit()/rollback() where they would send nothing. Used once: a
    second ``with`` on the same object is refused (it would hand one
    connection to two blocks)."""

    __slots__ = ("pool", "timeout", "conn", "t0", "entered")

    def __init__(self, pool: Any, timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn: Any = None
        self.entered = False

    def __enter__(self) -> Any:
        if self.entered:
            raise RuntimeError(_REENTERED)
        self.entered = True
        self.conn = self.pool.getconn(self.timeout)
        # usage_ms counts from hand-out to return, as psycopg_pool's does.
        self.t0 = monotonic()
        return self.conn

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        # (The compiled twin first tries one fused return, _return_clean_c,
        # which takes the same decisions with each attribute read once.)
        conn = self.conn
        if conn is None:
            raise RuntimeError(_EXIT_WITHOUT_ENTER)
        pool: Any = self.pool
        self.conn = None
        try:
            status = conn.pgconn.transaction_status
            if not commit_sends_nothing(conn, status, exc_type is not None):
                if exc_type is None:
                    conn.commit()
                else:
                    try:
                        conn.rollback()
                    except Exception as ex2:
                        # psycopg's own record (its connection's __exit__ logs it)
                        logging.getLogger("psycopg").warning(
                            "error ignored in rollback on %s: %s", conn, ex2
                        )
        finally:
            # Already returned if the block called conn.close() with close_returns.
            if getattr(conn, "_pool", None) is pool:
                self.pool.putconn(conn)
            _count_use(pool, monotonic() - self.t0)


def _count_use(pool: Any, used: float) -> None:
    """A connection's use of ``used`` seconds, in the usage_ms statistic and
    the use histogram (the compiled twin's _count_use)."""
    used_us = int(used * 1_000_000)
    pool._counters.add(_I_USAGE_MS, used_us)
    pool._hist.add2(_H_USE + histogram_bucket(used), 1, _H_USE_SUM, used_us)


# -- The async pool's ``async with pool.connection()`` ----------------------


@final
class _Ready:
    """An awaitable already done: ``await`` gives ``value`` at once, without
    suspending the task. Awaited once: then None."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        value, self.value = self.value, None
        yield from ()
        return value


class AsyncConnectionContext:
    """``async with pool.connection() as conn:`` — psycopg's ``async with conn:``
    semantics (commit on success, rollback on error, minus commit()/rollback()
    where they would send nothing), then the connection goes back to the pool
    even if the task is cancelled meanwhile. Used once: a second ``async with``
    on the same object is refused.

    Where an idle connection is at hand, ``__aenter__`` takes it at once and
    returns an awaitable already done; else a coroutine doing the rest (the
    async pool's slow checkout, or getconn() when a subclass overrides it).
    ``__aexit__`` is a coroutine (the compiled twin first tries one fused
    return, _return_clean_c, and where it succeeds returns an awaitable
    already done)."""

    __slots__ = ("pool", "timeout", "conn", "t0", "entered")

    if TYPE_CHECKING:
        # The async pool's (fastpool.pool_async.AsyncConnectionPool).
        class _AsyncPool(PoolFastPath):
            _loop: asyncio.AbstractEventLoop | None

            async def getconn(self, timeout: float | None = None) -> Any: ...
            async def putconn(self, conn: Any) -> None: ...
            async def _getconn(self, timeout: float | None) -> Any: ...
            async def _putconn_slow(self, slot: int, conn: Any) -> None: ...

        pool: _AsyncPool

    def __init__(self, pool: Any, timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn: Any = None
        self.entered = False

    def __aenter__(self) -> Awaitable[Any]:
        if self.entered:
            raise RuntimeError(_ASYNC_REENTERED)
        self.entered = True
        pool = self.pool
        if pool._plain_hot_path:
            loop = pool._loop
            if loop is None or loop is get_running_loop():
                got = pool._checkout_fast(self.timeout)
                if type(got) is not int:
                    self.conn = got
                    # usage_ms counts from hand-out to return, as psycopg_pool's does.
                    self.t0 = monotonic()
                    return _Ready(got)
        return self._enter_slow()

    async def _enter_slow(self) -> Any:
        pool = self.pool
        if pool._plain_hot_path:
            # (the wrong-loop refusal, the fast checkout again, then the slow one)
            self.conn = await pool._getconn(self.timeout)
        else:
            self.conn = await pool.getconn(self.timeout)
        self.t0 = monotonic()
        return self.conn

    def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> Coroutine[Any, Any, None]:
        conn = self.conn
        if conn is None:
            raise RuntimeError(_ASYNC_EXIT_WITHOUT_ENTER)
        self.conn = None
        return self._exit_slow(conn, exc_type)

    async def _exit_slow(self, conn: Any, exc_type: Any) -> None:
        pool = self.pool
        try:
            status = conn.pgconn.transaction_status
            if not commit_sends_nothing(conn, status, exc_type is not None):
                if exc_type is None:
                    await conn.commit()
                else:
                    try:
                        await conn.rollback()
                    except Exception as ex2:
                        # psycopg's own record (its connection's __aexit__ logs it)
                        logging.getLogger("psycopg").warning(
                            "error ignored in rollback on %s: %s", conn, ex2
                        )
        finally:
            # Already returned if the block called conn.close() with close_returns.
            if getattr(conn, "_pool", None) is pool:
                if pool._plain_hot_path:
                    # putconn() inline (a connection of this context has no
                    # owner to forget: only getconn() records one).
                    slot = pool._return_fast(conn)
                    if slot >= 0:
                        await pool._putconn_slow(slot, conn)
                else:
                    await pool.putconn(conn)
            _count_use(pool, monotonic() - self.t0)


class AsyncPoolHotPath(PoolFastPath):
    """Base class of AsyncConnectionPool: its ``connection()`` (getconn() and
    putconn() are coroutines, written in fastpool.pool_async)."""

    def connection(self, timeout: float | None = None) -> AbstractAsyncContextManager[Any, None]:
        """Async context manager: a connection for the block, committed on
        success, rolled back on error, then returned to the pool."""
        # (its __aenter__/__aexit__ return awaitables, which async with takes,
        # where the protocol declares coroutines)
        return cast("AbstractAsyncContextManager[Any, None]", AsyncConnectionContext(self, timeout))
