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
from typing import TYPE_CHECKING, Any

from . import base
from ._null_pool_logic import CONNECT_YOURSELF, NullPoolLogic
from .abc import ACT
from .base import AttemptWithBackoff, Stats
from .errors import PoolClosed
from .pool_async import AsyncConnectionPool, logger, monotonic

if False:  # SYNC
    import threading
    import time

    from .waiting import Waiter, release_waiter

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
                self._connect_for_wait(errors), name=f"{self.name}-wait"
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
            threading.Thread(
                target=self._connect_for_wait,
                args=(ready, stop, errors),
                name=f"{self.name}-wait",
                daemon=True,
            ).start()
            try:
                ok = ready.wait(base.clamp_wait(seconds))
            finally:
                stop.set()  # however wait() ends, no more attempts after it
            if not ok:
                self.close()
                raise self._wait_timed_out(timeout, errors[-1] if errors else None)

    if True:  # ASYNC

        async def _connect_for_wait(self, errors: list[Exception]) -> bool:
            attempt: AttemptWithBackoff | None = None
            while not self._closed:
                try:
                    conn = await self._connect()
                except Exception as ex:
                    errors[:] = [ex]
                    attempt = self._wait_connect_failed(ex, attempt)
                    if attempt is None:
                        try:
                            await self.reconnect_failed()
                        except Exception as ex2:
                            logger.warning("reconnect_failed callback failed: %s", ex2)
                        return False
                    await asyncio.sleep(attempt.delay)
                    continue
                await self._close_quietly(conn)
                return True
            return False

        async def getconn(self, timeout: float | None = None) -> ACT:
            if self._loop is not None and self._loop is not asyncio.get_running_loop():
                self._raise_wrong_loop(self._loop)
            self._stats.add(Stats.REQUESTS_NUM)
            timeout = self._request_timeout(timeout)
            deadline = monotonic() + timeout
            self._check_open_getconn()
            self._refuse_if_no_time(timeout)
            attempt: AttemptWithBackoff | None = None
            while True:
                conn = await self._getconn_unchecked(deadline, timeout)
                if await self._passes_check(conn):
                    break
                attempt = self._after_failed_check(attempt, deadline, timeout)
                await _sleep(attempt.delay)
            self._note_checkout_of(conn)
            self._track_owner(conn)
            # The pool keeps its connections untyped (it sets attributes of its own on them).
            return conn  # type: ignore[no-any-return]

        async def _getconn_unchecked(self, deadline: float, timeout: float) -> Any:
            """A connection handed over by a returning task, or a new one."""
            with self._lock:
                w = self._reserve_or_enqueue_locked(deadline, timeout)
            slot = CONNECT_YOURSELF if w is None else await self._await(w, deadline, timeout)
            if slot < 0:
                return await self._connect_new(deadline, timeout)
            conn = self._slots[slot].conn
            conn._pool = self
            return conn

        async def _connect_new(self, deadline: float, timeout: float) -> Any:
            """Open a connection for the caller (a connection slot is reserved)."""
            remaining = deadline - monotonic()
            try:
                if remaining <= 0:
                    raise self._checkout_timed_out(timeout)
                conn = await self._connect(timeout=remaining)
            except BaseException as ex:  # including cancellation while connecting
                self._connect_failed(ex, timeout)
                raise
            slot = self._install_or_none(conn)
            if slot < 0:
                await self._close_quietly(conn)
                raise PoolClosed(f"the pool {self.name!r} is already closed")
            conn._pool = self
            return conn

        async def _passes_check(self, conn: Any) -> bool:
            """Run the ``check`` callback on a connection about to be handed out; one
            that fails is given back as a return would be (False)."""
            slot = conn._fp_slot
            if not self._check_due(slot, monotonic()):
                return True
            try:
                await self._check(conn)
            except Exception as ex:
                logger.info("connection failed check: %s", ex)
                await self._return_connection(conn, from_getconn=True)
                return False
            except BaseException:
                # Cancelled mid-check: the connection may be mid-query. Close it;
                # its place under max_size passes on.
                self._close_returned_soon(slot, conn)
                raise
            return True

        async def putconn(self, conn: Any) -> None:
            if getattr(conn, "_pool", None) is not self:
                self._raise_foreign(conn)
            owner = getattr(conn, "_fp_owner", None)
            if owner is not None:
                conn._fp_owner = None
                owner[0].remove_done_callback(owner[1])
            if self._leak_threshold:
                self._note_return(conn._fp_slot)
            if self._close_unreset(conn):
                await self._drop(conn._fp_slot, conn)
            else:
                await self._return_connection(conn, from_getconn=False)

        async def _return_connection(self, conn: Any, from_getconn: bool) -> None:
            """Reset a connection and hand it to the oldest waiter; or close it if it
            is broken, expired or drained, or nobody waits any more."""
            slot = conn._fp_slot
            conn._pool = None
            try:
                await self._reset_connection(conn)
            except BaseException:  # cancelled mid-rollback/reset: state unknown
                self._close_returned_soon(slot, conn)
                raise
            if not (self._fit_to_hand_over(conn, slot, from_getconn) and self._hand_over(slot)):
                await self._drop(slot, conn)

        async def _drop(self, slot: int, conn: Any) -> None:
            """Close a held connection: its place under ``max_size`` goes to the
            oldest waiter (who opens a connection) or is freed."""
            self._retire_returned(slot)
            try:
                await self._close_quietly(conn)
            finally:
                self._free_connection_slot()

        def _close_returned_soon(self, slot: int, conn: Any) -> None:
            """``_drop`` for a task being cancelled: nothing here awaits."""
            self._retire_returned(slot)
            self._close_in_background(conn)
            self._free_connection_slot()
    else:

        def _connect_for_wait(
            self, ready: threading.Event, stop: threading.Event, errors: list[Exception]
        ) -> None:
            attempt: AttemptWithBackoff | None = None
            while not stop.is_set() and not self._closed:
                try:
                    conn = self._connect()
                except Exception as ex:
                    errors[:] = [ex]
                    attempt = self._wait_connect_failed(ex, attempt)
                    if attempt is None:
                        try:
                            self.reconnect_failed()
                        except Exception as ex2:
                            logger.warning("reconnect_failed callback failed: %s", ex2)
                        return
                    stop.wait(attempt.delay)
                    continue
                self._close_quietly(conn)
                ready.set()
                return

        def getconn(self, timeout: float | None = None) -> ACT:
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
                    conn = self._getconn_unchecked(w, deadline, timeout)
                    if self._passes_check(w, conn):
                        break
                    attempt = self._after_failed_check(attempt, deadline, timeout)
                    time.sleep(attempt.delay)
                self._note_checkout_of(conn)
                release_waiter(w)
                return conn
            except BaseException:
                self._abandon_checkout(w)
                raise

        def _getconn_unchecked(self, w: Waiter, deadline: float, timeout: float) -> ACT:
            """A connection handed over by a returning client, or a new one; ``w``
            holds its slot."""
            with self._lock:
                queued = self._reserve_or_wait_locked(w, deadline, timeout)
            if queued:
                self._await(w, deadline, timeout)
            if w.slot < 0:
                return self._connect_new(w, deadline, timeout)
            conn = self._slots[w.slot].conn
            conn._pool = self
            return conn  # type: ignore[no-any-return, unused-ignore]  # the pool keeps its connections untyped

        def _connect_new(self, w: Waiter, deadline: float, timeout: float) -> ACT:
            """Open a connection for the caller, whose waiter ``w`` holds a
            reserved place; on success ``w`` holds the connection's slot."""
            remaining = deadline - monotonic()
            conn = None
            try:
                if remaining <= 0:
                    raise self._checkout_timed_out(timeout)
                conn = self._connect(timeout=remaining)
                if self._install_or_none(conn, w) < 0:
                    raise PoolClosed(f"the pool {self.name!r} is already closed")
                conn._pool = self
                return conn  # type: ignore[no-any-return, unused-ignore]  # _connect() returns the pool's untyped connection
            except BaseException as ex:
                if (
                    w.slot == CONNECT_YOURSELF
                ):  # not installed: ours to close, and the place to free
                    if conn is not None:
                        self._close_on_error(conn)
                    self._connect_failed(ex, timeout, w)
                raise

        def _passes_check(self, w: Waiter, conn: Any) -> bool:
            """Run the ``check`` callback on the connection ``w`` holds, about to be
            handed out; one that fails is given back as a return would be (False,
            and ``w`` holds nothing)."""
            slot = w.slot
            if not self._check_due(slot, monotonic()):
                return True
            try:
                self._check(conn)
            except Exception as ex:
                logger.info("connection failed check: %s", ex)
                self._return_connection(conn, from_getconn=True, holder=w)
                return False
            except BaseException:
                # Interrupted mid-check (KeyboardInterrupt): the connection may be
                # mid-query. Close it; its place under max_size passes on.
                self._drop_now(slot, conn, w)
                raise
            return True

        def putconn(self, conn: Any) -> None:
            if getattr(conn, "_pool", None) is not self:
                self._raise_foreign(conn)
            self._return_connection(conn, from_getconn=False)

        def _return_connection(
            self, conn: Any, from_getconn: bool, holder: Waiter | None = None
        ) -> None:
            """psycopg_pool's return: from putconn() with nobody waiting, close the
            connection as it is; else reset it and hand it to the oldest waiter, or
            close it if it is broken, expired or drained, or nobody waits any more.
            ``holder``, the checkout's waiter holding the slot, lets go of it."""
            slot = conn._fp_slot
            handed = False
            try:
                # First: from here on, whatever happens, this call owns the connection.
                conn._pool = None
                if holder is not None:
                    holder.slot = -1
                if self._leak_threshold and not from_getconn:
                    self._note_return(slot)
                if from_getconn or not self._close_unreset(conn):
                    self._reset_connection(conn)
                    if self._fit_to_hand_over(conn, slot, from_getconn):
                        handed = self._hand_over(slot)
                        if handed:
                            return
                self._retire_returned(slot)
                self._close_quietly(conn)
                self._free_connection_slot()
            except BaseException:
                # Interrupted (in the reset, the rollback, the close...): the
                # connection is closed and its place freed all the same.
                if holder is not None:
                    holder.slot = -1
                if not handed:
                    if self._slots[slot].conn is conn:
                        self._retire_returned(slot)
                    self._close_on_error(conn)
                    self._free_connection_slot()
                raise

        def _drop_now(self, slot: int, conn: Any, holder: Waiter | None = None) -> None:
            """In an exception handler: close a held connection (``holder`` lets go
            of it); its place under ``max_size`` goes to the oldest waiter (who
            opens a connection) or is freed."""
            with self._lock:
                if holder is not None:
                    holder.slot = -1
                self._clear_slot(slot)
                self._ring.retire(slot)
            self._close_on_error(conn)
            self._free_connection_slot()

    if True:  # ASYNC

        def _give_back(self, slot: int) -> None:
            # Only reached when a cancelled waiter had been handed a connection it
            # never used (already reset by its returner): the next waiter's, or closed.
            if not self._hand_over(slot):
                self._close_returned_soon(slot, self._slots[slot].conn)

        async def _reclaim_orphan(self, slot: int, conn: Any) -> None:
            # Closed, and its place under max_size passes on (a null pool replaces nothing).
            await self._drop(slot, conn)
    else:

        def _give_back(self, slot: int) -> None:
            # Only reached from _abandon_checkout: a connection handed over (reset
            # by its returner) or just made, that an interrupted checkout never got
            # to use: the next waiter's, or closed.
            if not self._hand_over(slot):
                self._drop_now(slot, self._slots[slot].conn)

        def _reclaim_orphan(self, slot: int, conn: Any) -> None:
            # Closed, and its place under max_size passes on (a null pool replaces nothing).
            self._retire_returned(slot)
            self._close_quietly(conn)
            self._free_connection_slot()

    async def check(self) -> None:
        """No idle connections to check in a null pool."""

    async def drain(self) -> None:
        """Connections checked out now are closed when returned, not handed to
        a waiter (who opens a new one). There are no idle ones to replace."""
        self._drain()


__all__ = ["AsyncNullConnectionPool"]
