"""``AsyncConnectionPool``: psycopg_pool's AsyncConnectionPool API on fastpool's core.

The bookkeeping (slots, the FIFO waiter queue, growth) is ``PoolLogic`` and the
lock-free checkout/return (one ``SlotRing.try_acquire()``, one ``release()``
and a clock read each way) is the compiled core's. This module adds only what
blocks or awaits: connecting, closing, rolling back, the
``configure``/``check``/``reset`` callbacks, and waiting for a connection.

Per-connection bookkeeping is kept in one record per slot (``_slots``: the
connection, its expiry, ...), written before the slot is published to the ring,
so a client that acquires a slot reads a complete record.

Neither a cancelled task nor an interrupted thread (KeyboardInterrupt...)
loses a connection: a checkout gives back a connection handed to it in the
meantime, and a connection whose reset or check was cut short (its state is
unknown) is discarded and replaced.

Both pools are written once, in the async module: ``scripts/async_to_sync.py``
generates the sync one from it (what differs is in ``if True:  # ASYNC`` and
``if False:  # SYNC`` blocks, see the script).
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Generic, cast

from . import base
from ._conn_protocol import PSYCOPG
from ._core import AsyncPoolHotPath
from ._pool_logic import DISCARDED, FAILED_CHECK, REPLACING, PoolLogic
from ._pool_threads import CLOSE_RETURNS_BUILTIN, Holder
from .abc import ACT, AsyncConnectFailedCB, AsyncConnectionCB, AsyncConninfoParam, AsyncKwargsParam
from .async_workers import AsyncWorkers
from .base import ACTIVE, IDLE, INERROR, INTRANS, AttemptWithBackoff, BasePool, PoolCommon, Stats
from .errors import PoolClosed, PoolTimeout
from .waiting import AsyncWaiter

# sync: from ._fork import reinit_in_forked_child
if False:  # SYNC
    from ._pool_threads import PoolConnection
    from .waiting import Waiter, release_waiter, thread_waiter

if TYPE_CHECKING:  # type checkers check the code as it runs with psycopg installed
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    import psycopg
    from typing_extensions import Self
else:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is needed to use this pool
        psycopg = None

logger: logging.Logger = logging.getLogger("psycopg.pool")
monotonic: Callable[[], float] = time.monotonic


if True:  # ASYNC

    async def _resolved(value: Any) -> Any:
        """``value()`` if callable, awaited if that is awaitable (sync or async
        ``conninfo``/``kwargs``/``reconnect_failed`` are all accepted)."""
        if callable(value):
            value = value()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        return value


class AsyncPoolCore(AsyncPoolHotPath, PoolLogic, PoolCommon):
    """The pool machinery both pool families share: open/close, waiting and
    slow checkout, workers and maintenance, sizing, ``check()``/``drain()``, fork
    handling. A family subclasses it with its constructor, its connect and
    return paths, and its connection protocol (``_protocol``, a strategy of
    ``fastpool._conn_protocol``): ``AsyncConnectionPool`` here; the sync core
    is also the base of the DB-API ``fastpool.Pool``, a sibling of the psycopg
    pool rather than a subclass."""

    if True:  # ASYNC
        # Set by the constructor.
        _background: set[asyncio.Task[Any]]
        _loop: asyncio.AbstractEventLoop | None

        if TYPE_CHECKING:
            # The family's return path (a failed ``check`` goes back through it).
            async def _putconn_slow(
                self, slot: int, conn: Any, from_getconn: bool = False
            ) -> None: ...

    async def _connect(self, timeout: float | None = None) -> Any:
        """Open a connection for the pool (the family's connect and
        ``configure``); raise on any failure."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    # Open / close
    # ------------------------------------------------------------------

    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        """Open the pool: start the workers and the initial connections (an
        async pool needs a running event loop: the only one it will serve)."""
        timeout = base.check_timeout(timeout)
        if True:  # ASYNC
            self._open()
        else:
            with self._lock:
                self._open_locked()
        if wait:
            await self.wait(timeout=timeout)

    if True:  # ASYNC

        def _open(self) -> None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(f"{type(self).__name__} open with no running loop") from None
            with self._lock:
                if self._loop is not None and self._loop is not loop and not self._closed:
                    self._raise_wrong_loop(self._loop)
                self._open_locked()
                self._loop = loop

        def _raise_wrong_loop(self, loop: asyncio.AbstractEventLoop) -> None:
            if loop.is_closed():
                raise RuntimeError(
                    f"{type(self).__name__} {self.name!r} was opened in an event loop that has"
                    " closed since: it can't serve another one. Close it (await pool.close() works"
                    " in any loop) and open a new pool in the running loop"
                )
            raise RuntimeError(
                f"{type(self).__name__} {self.name!r} belongs to another event loop: a pool"
                " serves only the loop it was opened in"
            )

    def _new_workers(self) -> AsyncWorkers:
        return AsyncWorkers(self, self.num_workers, self._protocol.logger)

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool: idle connections now, checked-out ones when returned.

        Waiting clients get PoolClosed at once, before any connection is
        closed. The workers get ``timeout`` seconds to finish (worker tasks are
        then cancelled)."""
        timeout = base.check_timeout(timeout)
        with self._lock:
            closing = self._begin_close_locked()
        if closing is None:
            return
        idle, workers = closing
        if workers is not None:
            workers.stop()
        await self._close_all(self._forget_all(idle))
        # Connections already unreachable (a thread died holding one, a task
        # dropped one) would never come back to be closed: close them now.
        await self._reclaim_orphans_async(confirmed_only=False)
        if True:  # ASYNC
            if self._loop is not None and self._loop.is_closed():
                return  # its workers and background closes went with it
        if workers is not None:
            await workers.join(timeout)
        if True:  # ASYNC
            if self._background:
                await asyncio.wait(list(self._background), timeout=timeout)

    if True:  # ASYNC

        def _close_idle(self) -> None:
            """Close what is idle in a closed pool (close() raced a return):
            called from sync code, so in background tasks."""
            for conn in self._forget_all_idle():
                self._close_in_background(conn)

        def _close_in_background(self, conn: Any) -> None:
            task = asyncio.get_running_loop().create_task(self._close_quietly(conn))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
    else:

        def _close_idle(self) -> None:
            """Close what is idle in a closed pool (close() raced a return)."""
            self._close_all(self._forget_all_idle())

    async def _close_all(self, conns: list[Any]) -> None:
        """Close connections no longer in the pool; if that is interrupted, the
        others are still closed (``_close_on_error``), then the exception goes on."""
        rest = iter(conns)
        try:
            for conn in rest:
                await self._close_quietly(conn)
        except BaseException:
            for conn in rest:
                self._close_on_error(conn)
            raise

    async def __aenter__(self) -> Self:
        self._open_implicit = False
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    if True:  # ASYNC

        def _warn_open_async(self) -> None:
            warnings.warn(
                f"opening the async pool {type(self).__name__} in the constructor"
                " is deprecated and will not be supported anymore in a future"
                " release. Please use `await pool.open()`, or use the pool as context"
                f" manager using: `async with {type(self).__name__}(...) as pool: `...",
                RuntimeWarning,
                stacklevel=3,
            )

    else:

        def __del__(self) -> None:
            workers = getattr(self, "_workers", None)
            if workers is not None and not getattr(self, "_closed", True):
                workers.stop()

    def _check_open_getconn(self) -> None:
        self._raise_if_closed()
        if self._open_implicit:
            self._open_implicit = False
            if True:  # ASYNC
                self._warn_open_async()
            else:
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

    async def wait(self, timeout: float = 30.0) -> None:
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
                await self.close()
                raise PoolTimeout(f"pool initialization incomplete after {timeout} sec") from None
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------
    # Checkout
    # ------------------------------------------------------------------

    async def _getconn_slow(self, timeout: float | None, counted: bool) -> Any:
        if not counted:
            self._counters.add(base.I_REQUESTS_NUM)
        timeout = self._request_timeout(timeout)
        deadline = monotonic() + timeout
        self._check_open_getconn()
        self._refuse_if_no_time(timeout)
        attempt = None
        # The waiter holds the slot from the moment it is taken or handed over
        # until the connection is returned to the caller, so wherever an
        # exception lands (a cancellation, a KeyboardInterrupt, a raising
        # callback) the handler below finds what to give back.
        w = self._new_waiter()  # (the last step before the try: it holds the waiter)
        try:
            while True:
                with self._lock:
                    queued = self._slot_or_wait_locked(w)
                if queued:
                    await self._await(w, deadline, timeout)
                outcome = await self._checkout_checked(w, monotonic())
                if outcome is not DISCARDED and outcome is not FAILED_CHECK:
                    self._done_with_waiter(w)
                    return outcome
                if outcome is FAILED_CHECK:
                    attempt = self._after_failed_check(attempt, deadline, timeout)
                    await asyncio.sleep(attempt.delay)
                    self._raise_if_past(deadline, timeout)
                w = self._waiter_for_retry(w)
        except BaseException:
            self._abandon_checkout(w)
            raise

    # The waiter primitives: what a waiting task and a waiting thread do differently.
    if True:  # ASYNC

        def _new_waiter(self) -> AsyncWaiter:
            return AsyncWaiter(asyncio.get_running_loop())

        def _waiter_for_retry(self, w: AsyncWaiter) -> AsyncWaiter:
            """The waiter for the next try of a checkout (``w`` holds nothing
            and is off the queue): a new one, a future resolves only once."""
            return self._new_waiter()

        def _done_with_waiter(self, w: AsyncWaiter) -> None:
            """The checkout that took ``w`` is done with it (nothing to do)."""
    else:

        def _new_waiter(self) -> Waiter:
            return thread_waiter()

        def _waiter_for_retry(self, w: Waiter) -> Waiter:
            """The waiter for the next try of a checkout: the same one."""
            return w

        def _done_with_waiter(self, w: Waiter) -> None:
            """The checkout that took ``w`` is done with it (the thread may reuse it)."""
            release_waiter(w)

    async def _await(self, w: AsyncWaiter, deadline: float, timeout: float) -> int:
        """Wait (pool lock not held) until ``w`` is served or failed, or the
        deadline passes; its slot (still held by ``w``), or raise. Whether it
        was served is decided by its outcome under the lock, never by the
        wake-up, which an interrupt may have consumed or not. Interrupted
        while waiting, what it was handed meanwhile goes back."""
        t0 = monotonic()
        try:
            await w.wait(deadline - t0)
        except BaseException:
            self._abandon_checkout(w)
            raise
        if not w.settled:
            self._stop_waiting(w)  # timed out, unless it was served just now
        return self._wait_outcome(w, monotonic() - t0, timeout)

    def _abandon_checkout(self, w: AsyncWaiter) -> None:
        """An exception ended a checkout: take ``w`` off the queue and give
        back what it holds (a slot handed over, or one whose checkout was not
        finished; or finish a discard it was in the middle of), without
        waiting for anything."""
        self._replace_discarded(w)  # a discard it was in the middle of
        with self._lock:
            self._stop_waiting(w)
            slot = w.slot  # final: a server writes it under this lock
        w.slot = -1
        if slot >= 0:
            conn = self._slots[slot].conn
            if getattr(conn, "_pool", None) is self:  # checked out, not yet returned to the caller
                conn._pool = None
                if self._leak_threshold:
                    self._note_return(slot)
        self._return_unclaimed(slot)  # (or a null pool's right to connect)
        self._done_with_waiter(w)

    async def _checkout_checked(self, w: AsyncWaiter, now: float) -> object:
        """Finish the checkout of the slot ``w`` holds: enforce lifetime/drain
        and run the ``check`` callback. The connection, now the caller's (and
        referenced from here on, so the orphan scan never mistakes it for
        dropped); or DISCARDED: it was stale and is being replaced (retry
        now); or FAILED_CHECK: it went back to the pool as psycopg_pool does
        (retry after a backoff). ``w`` holds nothing unless it succeeded."""
        slot = w.slot
        conn = self._slots[slot].conn
        if self._is_stale(slot, now):
            self._protocol.logger.info("discarding expired connection %s", conn)
            await self._discard_held(w, conn)
            return DISCARDED
        if self._check_due(slot, now):
            try:
                await self._check(conn)
            except Exception as ex:
                self._protocol.logger.info("connection failed check: %s", ex)
                return await self._failed_check(w, conn)
            except BaseException:
                # Interrupted mid-check: the connection may be mid-query.
                self._discard_held_now(w)
                raise
        conn._pool = self
        if self._leak_threshold:
            self._note_checkout(slot)
        return conn

    if True:  # ASYNC

        def _track_owner(self, conn: Any) -> None:
            task = asyncio.current_task()
            if task is None:
                return
            callback = partial(self._owner_done, conn)
            task.add_done_callback(callback)
            conn._fp_owner = (task, callback)

        def _owner_done(self, conn: Any, task: asyncio.Task[Any]) -> None:
            owner = getattr(conn, "_fp_owner", None)
            if owner is not None and owner[0] is task and getattr(conn, "_pool", None) is self:
                conn._fp_owner = None
                self._protocol.logger.warning(
                    "task %r finished while holding connection %s from pool %r:"
                    " return it with putconn() or use pool.connection()",
                    # str(): the record must not keep the connection alive (orphan scan)
                    task.get_name(),
                    str(conn),
                    self.name,
                )

    # ------------------------------------------------------------------
    # Return
    # ------------------------------------------------------------------

    async def _failed_check(self, w: AsyncWaiter, conn: Any) -> object:
        """What a connection that failed its ``check`` becomes: each family
        says (DISCARDED: retry now; FAILED_CHECK: retry after a backoff)."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    # Connections
    # ------------------------------------------------------------------

    # Every step that holds a slot keeps it in a holder (a ``Holder``, a
    # checkout's waiter: ``.slot``, -1 for nothing), and the one handler of
    # the operation gives back or discards what the holder still holds. A
    # cancelled task and an interrupted thread (KeyboardInterrupt...) are the
    # same case; they differ only in how a connection is closed while the
    # exception is on its way (``_close_on_error``).

    async def _discard(self, slot: int, conn: Any) -> None:
        """Close a held slot's connection and have a new one made in its place
        (if interrupted before the slot left the pool, the caller still holds it)."""
        h = Holder(slot)
        try:
            await self._discard_held(h, conn)
        except BaseException:
            self._replace_discarded(h)  # (if it was not asked for yet)
            raise

    async def _discard_held(self, h: Holder | Any, conn: Any) -> None:
        """``_discard`` for the slot holder ``h`` holds: it lets go of it in
        the same step that takes it out of the pool (if that step was not
        reached, it still holds it, for the caller's handler). Once out of the
        pool, the connection is closed even if that is interrupted, and
        replaced once (``h`` holds REPLACING until that is asked for: a
        handler that finds it there asks)."""
        try:
            self._forget_slot(h.slot, h)
            await self._close_quietly(conn)
        except BaseException:
            if h.slot == REPLACING:
                self._close_on_error(conn)
                self._replace_discarded(h)
            raise
        self._replace_discarded(h)

    def _discard_held_now(self, h: Holder | Any) -> None:
        """In an exception handler: discard what ``h`` still holds, if
        anything (its connection is in an unknown state), or finish the
        discard it was in the middle of."""
        if h.slot >= 0:
            conn = self._slots[h.slot].conn
            self._forget_slot(h.slot, h)
            self._close_on_error(conn)
        self._replace_discarded(h)

    def _give_back_held(self, h: Holder | Any) -> None:
        """Return the slot holder ``h`` holds (see ``_give_back``)."""
        slot, h.slot = h.slot, -1
        self._give_back(slot)

    def _drop_interrupted(self, slot: int, conn: Any) -> None:
        """An exception interrupted the return of ``conn`` before its slot was
        handed on: if the slot is still held here, take it out of the pool and
        have a new connection made (if it is out already, whoever took it out
        made one); close the connection."""
        with self._lock:
            held = self._slots[slot].conn is conn and self._ring.is_in_use(slot)
        if held:
            self._forget_slot(slot)
        self._close_on_error(conn)
        if held:
            self._replace_discarded()

    if True:  # ASYNC

        def _close_on_error(self, conn: Any) -> None:
            """Close a connection out of the pool while an exception is on its
            way: in a background task (an await in a cancelled task could be
            cancelled again), so nothing here can hide the exception."""
            self._close_in_background(conn)
    else:

        def _close_on_error(self, conn: Any) -> None:
            """Close a connection out of the pool while an exception is on its
            way: now, and nothing raised here may hide it."""
            try:
                self._close_quietly(conn)
            except BaseException:  # noqa: BLE001 - a second interrupt: the first one wins
                pass

    @classmethod
    async def _close_quietly(cls, conn: Any) -> None:
        conn._pool = None
        try:
            await conn.close()
        except Exception as ex:  # a broken socket must not break the pool
            cls._protocol.logger.warning("error closing connection %s: %s", conn, ex)

    async def _ping_idle(self, conn: Any) -> None:
        """``check()``'s test of an idle connection (raise if it is broken)."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    # Maintenance tasks (run by the workers; first argument is the pool)
    # ------------------------------------------------------------------

    async def _add_connection_task(self, attempt: AttemptWithBackoff | None) -> None:
        if self._closed:
            with self._lock:
                self._attempt_ended_locked()
            return
        try:
            conn = await self._connect()
        except Exception as ex:
            self._protocol.logger.warning("error connecting in %r: %s", self.name, ex)
            await self._retry_connection(attempt)
            return
        except BaseException:
            # Not a failure to connect: the attempt was cancelled (close() timed
            # out, or the attempt alone) or a callback raised SystemExit in a
            # worker thread. The attempt must not stay counted as in flight
            # forever, or the pool would neither grow nor refill for it: it is
            # retried as a failed one is (a closed pool ends it), then the
            # exception goes on, for the worker to log (and survive).
            await self._retry_connection(attempt)
            raise
        slot = self._install_connected(conn)
        if slot < 0:
            await self._close_quietly(conn)
            return
        self._hand_out_connected(slot)

    async def _retry_connection(self, attempt: AttemptWithBackoff | None) -> None:
        gave_up = self._retry_or_give_up(attempt)
        if gave_up is None:
            return
        try:
            await self.reconnect_failed()
        except Exception as ex:
            self._protocol.logger.warning(
                "reconnect_failed callback failed: %s: %s", type(ex).__name__, ex
            )
        self._refill_later(gave_up)

    if True:  # ASYNC

        async def reconnect_failed(self) -> None:  # type: ignore[override]  # a coroutine here, as in psycopg_pool
            """Called when reconnecting gives up; runs the ``reconnect_failed``
            callback (sync or async)."""
            if self._reconnect_failed:
                await _resolved(partial(self._reconnect_failed, self))

        async def _orphan_task(self) -> None:  # type: ignore[override]  # a coroutine here: the async workers await it
            """Maintenance task: reclaim orphans every ``_orphan_scan_period``."""
            if self._orphan_scan_due():
                await self._reclaim_orphans_async()

        async def _reclaim_orphans_async(self, confirmed_only: bool = True) -> None:
            for slot, conn in self._find_orphans(confirmed_only):
                self._report_orphan(slot, conn)
                await self._reclaim_orphan(slot, conn)

    async def _reclaim_orphan(self, slot: int, conn: Any) -> None:
        """A checked-out connection nobody can return: out of the pool, closed,
        and replaced while the pool is open."""
        await self._discard(slot, conn)

    async def _shrink_task(self) -> None:
        victim = self._shrink_candidate()
        if victim is not None:
            self._forget_slot(victim[0])
            await self._close_quietly(victim[1])

    async def _expiry_task(self) -> None:
        await self._discard_claimed(self._take_expired_idle, "discarding expired connection %s")

    async def _discard_claimed(
        self, claim: Callable[[list[tuple[int, Any]]], None], log_each: str | None = None
    ) -> None:
        """Discard the idle slots ``claim(into)`` claims (logging ``log_each``
        % conn first, if given). Interrupted, it still discards them all (the
        ones not reached yet, stale or expired, must not be served again)."""
        h = Holder()
        claimed: list[tuple[int, Any]] = []
        try:
            claim(claimed)
            while claimed:
                h.slot, conn = claimed.pop()
                if log_each is not None:
                    self._protocol.logger.info(log_each, conn)
                await self._discard_held(h, conn)
        except BaseException:
            self._discard_held_now(h)
            while claimed:
                h.slot = claimed.pop()[0]
                self._discard_held_now(h)
            raise

    # ------------------------------------------------------------------
    # Sizing, health
    # ------------------------------------------------------------------

    async def resize(self, min_size: int, max_size: int | None = None) -> None:
        """Change the size of the pool during runtime."""
        self._resize(min_size, max_size)

    async def check(self) -> None:
        """Verify the state of the idle connections; replace the broken ones.

        They are all claimed at once, as psycopg_pool does. Interrupted (a
        cancellation, a KeyboardInterrupt...), the one being checked is
        discarded and replaced, the others go back untouched."""
        h = Holder()
        idle: list[tuple[int, Any]] = []
        try:
            self._claim_all_idle(idle)
            while idle:
                h.slot, conn = idle.pop()
                if monotonic() >= self._slots[h.slot].expire_at:
                    self._protocol.logger.info("discarding expired connection %s", conn)
                    await self._discard_held(h, conn)
                    continue
                try:
                    await self._ping_idle(conn)
                except Exception:
                    self._stats.add(Stats.CONNECTIONS_LOST)
                    self._protocol.logger.warning("discarding broken connection: %s", conn)
                    await self._discard_held(h, conn)
                    continue
                self._give_back_held(h)
        except BaseException:
            self._discard_held_now(h)  # interrupted mid-check: its state is unknown
            for slot, _ in reversed(idle):
                self._give_back(slot)  # not reached yet: untouched, in their order
            raise
        with self._lock:
            if not self._closed:
                self._grow_locked(self._min_size - self._nconns)

    async def drain(self) -> None:
        """Replace every connection: idle ones now, checked-out ones on return
        (all of them, even if interrupted)."""
        await self._discard_claimed(partial(self._claim_all_idle, drain=True))

    if False:  # SYNC
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


class AsyncConnectionPool(AsyncPoolCore, BasePool, Generic[ACT]):
    """A pool of psycopg async connections, drop-in for ``psycopg_pool.AsyncConnectionPool``.

    Generic in its connection type, as psycopg_pool's: ``connection_class``
    binds it (default ``psycopg.AsyncConnection[TupleRow]``)."""

    _protocol = PSYCOPG

    if True:  # ASYNC

        async def reconnect_failed(self) -> None:  # type: ignore[override]  # a coroutine here, as in psycopg_pool
            """Called when reconnecting gives up (the core's coroutine, over
            BasePool's plain method)."""
            await AsyncPoolCore.reconnect_failed(self)

    conninfo: AsyncConninfoParam
    kwargs: AsyncKwargsParam | None
    connection_class: type[ACT]
    close_returns: bool

    def __init__(
        self,
        conninfo: AsyncConninfoParam = "",
        *,
        connection_class: type[ACT] | None = None,
        kwargs: AsyncKwargsParam | None = None,
        min_size: int = 4,
        max_size: int | None = None,
        open: bool | None = None,
        configure: AsyncConnectionCB[ACT] | None = None,
        check: AsyncConnectionCB[ACT] | None = None,
        reset: AsyncConnectionCB[ACT] | None = None,
        name: str | None = None,
        close_returns: bool = False,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float = 60 * 60.0,
        max_idle: float = 10 * 60.0,
        reconnect_timeout: float = 5 * 60.0,
        reconnect_failed: AsyncConnectFailedCB | None = None,
        num_workers: int = 3,
        check_bypass: float = 0.0,
        # sync: fork_safe: bool = False,
        leak_threshold: float | None = None,
        use_lifo: bool = False,
    ) -> None:
        if connection_class is None:
            if psycopg is None:
                raise ImportError(
                    "fastpool.AsyncConnectionPool needs psycopg 3: pip install 'psycopg[binary]'"
                )
            connection_class = cast("type[ACT]", psycopg.AsyncConnection)
        base.check_pool_arguments(
            connection_class, open, configure=configure, check=check, reset=reset
        )
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
            fork_safe=False,  # sync: fork_safe=fork_safe,
            leak_threshold=leak_threshold,
        )
        if close_returns and not CLOSE_RETURNS_BUILTIN:
            if True:  # ASYNC
                raise TypeError(
                    "close_returns=True in an async pool needs psycopg >= 3.3"
                    f" (installed: {psycopg.__version__})"
                )
            else:
                # psycopg < 3.3's Connection.close() knows nothing of pools: use a
                # subclass whose close() returns the connection (as psycopg_pool does).
                if connection_class is not psycopg.Connection:
                    raise TypeError(
                        "close_returns=True with a custom connection_class needs psycopg >= 3.3"
                        f" (installed: {psycopg.__version__}); or subclass fastpool.pool.PoolConnection"
                    )
                connection_class = cast("type[ACT]", PoolConnection)
        self.connection_class = connection_class
        self.close_returns = bool(close_returns)
        self._init_pool(
            configure,
            check,
            reset,
            AsyncConnectionPool,  # sync: PoolFastPath,
            use_lifo,
        )
        if True:  # ASYNC
            # Connections being closed by a task nobody awaits (a sync code path
            # had to drop them): kept here so the tasks aren't garbage-collected.
            self._background = set()
            # The event loop the pool was opened in: the only one it can serve
            # (its waiters, workers and timers live there).
            self._loop = None
            if open:
                self._warn_open_async()
            if open is None:
                open = self._open_implicit = True
            if open:
                self._open()
        else:
            # sync: if fork_safe:
            # sync:     reinit_in_forked_child(self, type(self)._after_fork_in_child)
            if open is None:
                # psycopg_pool compatibility: open now, warn on first use.
                self._open_implicit = True
                self.open()
            elif open:
                self.open()

    if True:  # ASYNC

        async def getconn(self, timeout: float | None = None) -> ACT:
            """Take a connection out of the pool; give it back with ``putconn()``.

            Waits up to ``timeout`` seconds (default: the pool's ``timeout``), then
            raises PoolTimeout. If the calling task ends still holding the
            connection, a warning is logged."""
            conn: ACT = await self._getconn(timeout)
            self._track_owner(conn)
            return conn

        async def _getconn(self, timeout: float | None) -> Any:
            if self._loop is not None and self._loop is not asyncio.get_running_loop():
                self._raise_wrong_loop(self._loop)
            got = self._checkout_fast(timeout)
            if type(got) is not int:
                return got
            return await self._getconn_slow(timeout, False)
    else:
        if TYPE_CHECKING:
            # Inherited at run time from the compiled PoolHotPath (or its twin,
            # fastpool._pyhotpath), which can't be generic: its typed signatures.
            def getconn(self, timeout: float | None = None) -> ACT:
                """Take a connection out of the pool; give it back with ``putconn()``.

                Waits up to ``timeout`` seconds (default: the pool's ``timeout``), then
                raises PoolTimeout."""
                ...

    async def _failed_check(self, w: AsyncWaiter, conn: Any) -> object:
        """psycopg_pool's answer to a failed ``check``: the connection goes
        back through the return path (kept if it still looks healthy, else
        counted lost and replaced) and the checkout retries after a backoff."""
        slot, w.slot = w.slot, -1
        await self._putconn_slow(slot, conn, from_getconn=True)
        return FAILED_CHECK

    if True:  # ASYNC

        async def putconn(self, conn: ACT) -> None:
            """Give back a connection obtained with ``getconn()``."""
            owner = getattr(conn, "_fp_owner", None)
            if owner is not None and getattr(conn, "_pool", None) is self:
                conn._fp_owner = None  # type: ignore[attr-defined]  # the pool's own mark on a psycopg connection
                owner[0].remove_done_callback(owner[1])
            slot = self._return_fast(conn)
            if slot >= 0:
                await self._putconn_slow(slot, conn)
    else:
        if TYPE_CHECKING:

            def putconn(self, conn: ACT) -> None:
                """Give back a connection obtained with ``getconn()``."""
                ...

    async def _putconn_slow(self, slot: int, conn: Any, from_getconn: bool = False) -> None:
        """The return path (rollback, reset, expiry, a closed pool), also taken
        by a connection that failed the ``check`` callback (``from_getconn``)."""
        # Anything raised before the slot is handed on (a cancellation or a
        # KeyboardInterrupt in the rollback or the reset callback...) leaves the
        # connection in an unknown state: it is closed and replaced, then the
        # exception goes on. Once the slot is handed on it is no longer ours (it
        # may be idle again, or in another caller's hands): ``given_back`` is
        # set in the same step as the call (no statement, no signal check in
        # between), and from then on an exception leaves the slot alone.
        given_back = -1
        try:
            if self._closed:
                self._forget_slot(slot)
                await self._close_quietly(conn)
                return
            await self._reset_connection(conn)
            if PSYCOPG.is_broken(conn):
                self._count_broken_return(conn, from_getconn)
                await self._discard(slot, conn)
                return
            now = monotonic()
            if self._is_stale(slot, now):
                logger.info("discarding expired connection")
                await self._discard(slot, conn)
                return
            if not from_getconn:  # (a failed check is no proof of health for check_bypass)
                self._slots[slot].last_used = now
            self._give_back(given_back := slot)
        except BaseException:
            if given_back != slot:
                self._drop_interrupted(slot, conn)
            raise

    async def _reset_connection(self, conn: Any) -> None:
        """Bring a returned connection back to IDLE, or close it (psycopg_pool's rules)."""
        status = PSYCOPG.transaction_status(conn)
        if status == IDLE:
            if base.prepared_two_phase(conn):
                await self._close_quietly(conn)
        elif status == ACTIVE:
            logger.warning("closing returned connection: %s", conn)
            await self._close_quietly(conn)
        elif status in (INTRANS, INERROR):
            logger.warning("rolling back returned connection: %s", conn)
            try:
                await conn.rollback()
            except Exception as ex:
                logger.warning(
                    "rollback failed: %s: %s. Discarding connection %s",
                    ex.__class__.__name__,
                    ex,
                    conn,
                )
                await self._close_quietly(conn)
        if self._reset is not None and not PSYCOPG.is_broken(conn):
            try:
                await self._reset(conn)
                base.check_left_idle(conn, "reset", self._reset)
            except Exception as ex:
                logger.warning("error resetting connection: %s", ex)
                await self._close_quietly(conn)

    if TYPE_CHECKING:
        # Inherited at run time from the compiled AsyncPoolHotPath (or its twin,
        # fastpool._pyhotpath), which can't be generic: its typed signature.
        def connection(
            self, timeout: float | None = None
        ) -> AbstractAsyncContextManager[ACT, None]:
            """Context manager: a connection for the block, committed on
            success, rolled back on error, then returned to the pool."""
            ...

    async def _connect(self, timeout: float | None = None) -> Any:
        """Open a connection and run ``configure``; raise on any failure."""
        if True:  # ASYNC
            kwargs = await _resolved(self.kwargs)
            kwargs = self._check_kwargs(kwargs)
        else:
            kwargs = self._resolve_kwargs()
        limit = None if timeout is None else base.connect_timeout(timeout)
        if limit is not None:
            kwargs = dict(kwargs, connect_timeout=limit)
        if True:  # ASYNC
            conninfo = self._check_conninfo(await _resolved(self.conninfo))
        else:
            conninfo = self._resolve_conninfo()
        t0 = self._connect_started()
        try:
            conn = await self.connection_class.connect(conninfo, **kwargs)
        except Exception:
            self._connect_ended(t0, False)
            raise
        # From here the connection is ours to close if anything goes wrong
        # (configure fails: closed before the error goes on; or an interrupt
        # lands before the caller has it).
        try:
            self._connect_ended(t0, True)
            conn._pool = None
            if self._configure is not None:
                await self._configure(conn)
                base.check_left_idle(conn, "configure", self._configure)
            return conn
        except Exception:
            await self._close_quietly(conn)
            raise
        except BaseException:
            self._close_on_error(conn)
            raise

    @staticmethod
    async def check_connection(conn: psycopg.AsyncConnection[Any]) -> None:
        """A simple check to verify that a connection is still working
        (usable as the ``check`` parameter)."""
        if conn.autocommit:
            await conn.execute("")
            return
        await conn.set_autocommit(True)  # sync: conn.autocommit = True
        try:
            await conn.execute("")
        finally:
            try:
                await conn.set_autocommit(False)  # sync: conn.autocommit = False
            except Exception:
                pass  # the connection is broken: keep the original error

    async def _ping_idle(self, conn: Any) -> None:
        await self.check_connection(conn)


if True:  # ASYNC
    __all__ = ["AsyncConnectionPool"]
