"""``AsyncNullConnectionPool``: psycopg_pool's async pool that keeps no idle
connection, on the same rules as the sync ``NullConnectionPool`` (see
``_null_pool_logic``).

Every checkout opens a connection and every return closes it, unless a task
is waiting (``max_size`` reached): then the connection goes straight to the
oldest waiter. Connecting happens outside the pool lock, so concurrent first
requests connect in parallel.
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

if TYPE_CHECKING:
    from .abc import AsyncConnectFailedCB, AsyncConnectionCB, AsyncConninfoParam, AsyncKwargsParam


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
        # AsyncConnectionPool's: the signature type checkers must see (min_size 0).
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
        deadline = monotonic() + seconds
        errors: list[Exception] = []
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

    def _give_back(self, slot: int) -> None:
        # Only reached when a cancelled waiter had been handed a connection it
        # never used (already reset by its returner): the next waiter's, or closed.
        if not self._hand_over(slot):
            self._close_returned_soon(slot, self._slots[slot].conn)

    async def _reclaim_orphan(self, slot: int, conn: Any) -> None:
        # Closed, and its place under max_size passes on (a null pool replaces nothing).
        await self._drop(slot, conn)

    async def check(self) -> None:
        """No idle connections to check in a null pool."""

    async def drain(self) -> None:
        """Connections checked out now are closed when returned, not handed to
        a waiter (who opens a new one). There are no idle ones to replace."""
        self._drain()


__all__ = ["AsyncNullConnectionPool"]
