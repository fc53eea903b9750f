"""``AsyncNullConnectionPool``: psycopg_pool's pool that keeps no idle connection.

Every checkout opens a connection and every return closes it, unless a client
is waiting (``max_size`` reached): then the connection goes straight to the
oldest waiter. The rules (check, lifetime, logging, statistics) are
psycopg_pool's, see ``_null_pool_logic``. Unlike psycopg_pool, connecting
happens outside the pool lock, so concurrent first requests connect in parallel
instead of one by one.

The sync pool's module is generated from the async one by
``scripts/async_to_sync.py``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from . import base
from ._null_pool_logic import CONNECT_YOURSELF, NullPoolLogic
from ._pool_threads import Holder
from .abc import ACT
from .base import AttemptWithBackoff, Stats
from .errors import PoolClosed
from .pool_async import AsyncConnectionPool, logger, monotonic
from .waiting import AsyncWaiter

if False:  # SYNC
    import threading
    import time

if TYPE_CHECKING:
    from .abc import AsyncConnectFailedCB, AsyncConnectionCB, AsyncConninfoParam, AsyncKwargsParam

if True:  # ASYNC

    async def _sleep(delay: float) -> None:
        """``asyncio.sleep(delay)`` that never ends early by ``time.monotonic()``:
        a loop's timers (uvloop's in particular) may fire a little before their
        time, and a retry or a PoolTimeout must not come before it is due."""
        when = monotonic() + delay
        await asyncio.sleep(delay)
        while (left := when - monotonic()) > 0:
            await asyncio.sleep(left)

else:
    _sleep = time.sleep


class AsyncNullConnectionPool(NullPoolLogic, AsyncConnectionPool[ACT]):
    """An async pool that opens a connection per request, bounded by ``max_size``."""

    if TYPE_CHECKING:
        # At run time NullPoolLogic.__init__ passes its arguments on to
        # AsyncConnectionPool's: the signature type checkers must see (min_size 0),
        # restated rather than derived (see the comment on PoolCommon.__init__).
        def __init__(
            self,
            conninfo: AsyncConninfoParam = "",
            *,
            connection_class: type[ACT] | None = None,
            kwargs: AsyncKwargsParam | None = None,
            min_size: int = 0,
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
        ) -> None: ...

    async def wait(self, timeout: float = 30.0) -> None:
        """Check that a connection can be made (then close it).

        A background task connects, retrying with backoff after a failure (each
        one logged); if no connection is ready within ``timeout`` seconds the pool
        is closed and PoolTimeout raised, as psycopg_pool does. That connection
        gets no ``connect_timeout`` from ``timeout`` (the pool's ``kwargs`` apply).
        """
        seconds = base.check_timeout(timeout)
        self._check_open_getconn()
        errors: list[Exception] = []
        if True:  # ASYNC
            deadline = monotonic() + seconds
            task = asyncio.get_running_loop().create_task(
                # (no stop signal: the task is cancelled when wait() ends)
                self._connect_for_wait(errors, lambda: False, asyncio.sleep),
                name=f"{self.name}-wait",
            )
            try:
                while not task.done() and (left := deadline - monotonic()) > 0:
                    await asyncio.wait({task}, timeout=left)  # (may end a little early)
            finally:
                if not task.done():  # however wait() ends, no more attempts after it
                    task.cancel()
                    await asyncio.wait({task})
            if not task.cancelled() and task.result():
                return
            # Given up before the timeout (reconnect_timeout): still wait it out.
            await _sleep(deadline - monotonic())
            await self.close()
            raise self._wait_timed_out(timeout, errors[-1] if errors else None)
        else:
            ready, stop = threading.Event(), threading.Event()

            def connect_until_ready() -> None:
                if self._connect_for_wait(errors, stop.is_set, stop.wait):
                    ready.set()

            threading.Thread(
                target=connect_until_ready, name=f"{self.name}-wait", daemon=True
            ).start()
            try:
                ok = ready.wait(base.clamp_wait(seconds))
            finally:
                stop.set()  # however wait() ends, no more attempts after it
            if not ok:
                self.close()
                raise self._wait_timed_out(timeout, errors[-1] if errors else None)

    async def _connect_for_wait(
        self, errors: list[Exception], stopped: Callable[[], bool], pause: Callable[[float], Any]
    ) -> bool:
        """wait()'s connection attempts, each failure logged (and kept last in
        ``errors``), with backoff (``pause(delay)``) until one connects (True:
        that connection is closed), ``reconnect_timeout`` passes (False, after
        the ``reconnect_failed`` callback), or ``stopped()``."""
        attempt: AttemptWithBackoff | None = None
        while not stopped() and not self._closed:
            try:
                conn = await self._connect()
            except Exception as ex:
                errors[:] = [ex]
                attempt = self._wait_connect_failed(ex, attempt)
                if attempt is None:
                    try:
                        await self.reconnect_failed()
                    except Exception as ex2:
                        logger.warning(
                            "reconnect_failed callback failed: %s: %s", type(ex2).__name__, ex2
                        )
                    return False
                await pause(attempt.delay)
                continue
            await self._close_quietly(conn)
            return True
        return False

    async def getconn(self, timeout: float | None = None) -> ACT:
        if True:  # ASYNC
            if self._loop is not None and self._loop is not asyncio.get_running_loop():
                self._raise_wrong_loop(self._loop)
        self._stats.add(Stats.REQUESTS_NUM)
        timeout = self._request_timeout(timeout)
        deadline = monotonic() + timeout
        self._check_open_getconn()
        self._refuse_if_no_time(timeout)
        attempt: AttemptWithBackoff | None = None
        # As in ConnectionPool: the waiter holds the caller's place, or the
        # connection handed over, until the caller has it (see _abandon_checkout).
        w = self._new_waiter()
        try:
            while True:
                conn = await self._getconn_unchecked(w, deadline, timeout)
                if await self._passes_check(w, conn):
                    break
                attempt = self._after_failed_check(attempt, deadline, timeout)
                await _sleep(attempt.delay)
                w = self._waiter_for_retry(w)
            self._note_checkout_of(conn)
            self._done_with_waiter(w)
        except BaseException:
            self._abandon_checkout(w)
            raise
        if True:  # ASYNC
            self._track_owner(conn)
        return conn

    async def _getconn_unchecked(self, w: AsyncWaiter, deadline: float, timeout: float) -> ACT:
        """A connection handed over by a returning client, or a new one; ``w``
        holds its slot."""
        with self._lock:
            queued = self._reserve_or_wait_locked(w, deadline, timeout)
        if queued:
            await self._await(w, deadline, timeout)
        if w.slot < 0:
            return await self._connect_new(w, deadline, timeout)
        conn = self._slots[w.slot].conn
        conn._pool = self
        return conn  # type: ignore[no-any-return, unused-ignore]  # the pool keeps its connections untyped

    async def _connect_new(self, w: AsyncWaiter, deadline: float, timeout: float) -> ACT:
        """Open a connection for the caller, whose waiter ``w`` holds a
        reserved place; on success ``w`` holds the connection's slot."""
        remaining = deadline - monotonic()
        conn = None
        try:
            if remaining <= 0:
                raise self._checkout_timed_out(timeout)
            conn = await self._connect(timeout=remaining)
            if self._install_or_none(conn, w) < 0:
                raise PoolClosed(f"the pool {self.name!r} is already closed")
            conn._pool = self
            return conn  # type: ignore[no-any-return, unused-ignore]  # _connect() returns the pool's untyped connection
        except BaseException as ex:  # (including a cancellation while connecting)
            if w.slot == CONNECT_YOURSELF:  # not installed: ours to close, and the place to free
                if conn is not None:
                    self._close_on_error(conn)
                self._connect_failed(ex, timeout, w)
            raise

    async def _passes_check(self, w: AsyncWaiter, conn: Any) -> bool:
        """Run the ``check`` callback on the connection ``w`` holds, about to be
        handed out; one that fails is given back as a return would be (False,
        and ``w`` holds nothing)."""
        slot = w.slot
        if not self._check_due(slot, monotonic()):
            return True
        try:
            await self._check(conn)
        except Exception as ex:
            logger.info("connection failed check: %s", ex)
            await self._return_connection(conn, from_getconn=True, holder=w)
            return False
        except BaseException:
            # Interrupted mid-check: the connection may be mid-query. Close it;
            # its place under max_size passes on.
            self._drop_held_now(w, conn)
            raise
        return True

    async def putconn(self, conn: Any) -> None:
        if getattr(conn, "_pool", None) is not self:
            self._raise_foreign(conn)
        if True:  # ASYNC
            owner = getattr(conn, "_fp_owner", None)
            if owner is not None:
                conn._fp_owner = None
                owner[0].remove_done_callback(owner[1])
        await self._return_connection(conn, from_getconn=False)

    async def _return_connection(
        self, conn: Any, from_getconn: bool, holder: AsyncWaiter | None = None
    ) -> None:
        """psycopg_pool's return: from putconn() with nobody waiting, close the
        connection as it is; else reset it and hand it to the oldest waiter, or
        close it if it is broken, expired or drained, or nobody waits any more.
        ``holder``, the checkout's waiter holding the slot, passes it to this
        return's own holder, which lets go of it in the same step that hands it
        over: an exception never finds it held by nobody, nor closes a
        connection already in a waiter's hands."""
        h = Holder(conn._fp_slot)
        try:
            # First: from here on, whatever happens, this call owns the connection.
            conn._pool = None
            if holder is not None:
                holder.slot = -1
            if self._leak_threshold and not from_getconn:
                self._note_return(h.slot)
            if from_getconn or not self._close_unreset(conn):
                await self._reset_connection(conn)
                if self._fit_to_hand_over(conn, h.slot, from_getconn) and self._hand_over(h):
                    return
            await self._drop_held(h, conn)
        except BaseException:
            # Interrupted (in the reset, the rollback, the close...): the
            # connection is closed and its place passed on all the same.
            if holder is not None:
                holder.slot = -1
            self._drop_held_now(h, conn)
            raise

    async def _drop_held(self, h: Holder | AsyncWaiter, conn: Any) -> None:
        """Close the connection holder ``h`` holds: its slot leaves the pool
        (``h`` then holds the connection's place under ``max_size``), and the
        place goes to the oldest waiter (who opens a connection) or is freed,
        exactly once, even if the close is interrupted."""
        try:
            self._retire_returned(h.slot, h)
            await self._close_quietly(conn)
        except BaseException:
            if h.slot == CONNECT_YOURSELF:  # retired: finish
                self._close_on_error(conn)
                self._free_connection_slot(h)
            raise
        self._free_connection_slot(h)

    def _drop_held_now(self, h: Holder | AsyncWaiter, conn: Any) -> None:
        """In an exception handler: drop what ``h`` still holds (``conn``'s
        slot, or its place once retired), if anything."""
        if h.slot >= 0:
            self._retire_returned(h.slot, h)
        if h.slot == CONNECT_YOURSELF:
            self._close_on_error(conn)
            self._free_connection_slot(h)

    def _give_back(self, slot: int) -> None:
        # Only reached from _abandon_checkout: a connection handed over (reset
        # by its returner) or just made, that an interrupted checkout never got
        # to use: the next waiter's, or closed.
        h = Holder(slot)
        if not self._hand_over(h):
            self._drop_held_now(h, self._slots[slot].conn)

    async def _reclaim_orphan(self, slot: int, conn: Any) -> None:
        # Closed, and its place under max_size passes on (a null pool replaces nothing).
        await self._drop_held(Holder(slot), conn)

    async def check(self) -> None:
        """No idle connections to check in a null pool."""

    async def drain(self) -> None:
        """Connections checked out now are closed when returned, not handed to
        a waiter (who opens a new one). There are no idle ones to replace."""
        self._drain()


__all__ = ["AsyncNullConnectionPool"]
