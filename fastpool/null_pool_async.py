"""``AsyncNullConnectionPool``: psycopg_pool's async pool that keeps no idle
connection, on the same budget logic as the sync ``NullConnectionPool``.

Every checkout opens a connection and every return closes it, unless a task
is waiting (``max_size`` reached): then the connection goes straight to the
oldest waiter. Connecting happens outside the pool lock, so concurrent first
requests connect in parallel.
"""
from __future__ import annotations

import asyncio
from typing import Any

from . import base
from ._null_pool_logic import CONNECT_YOURSELF, NullPoolLogic
from .base import UNKNOWN, Stats
from .errors import PoolClosed, PoolTimeout
from .pool_async import ACT, AsyncConnectionPool, monotonic

class AsyncNullConnectionPool(NullPoolLogic, AsyncConnectionPool[ACT]):
    """An async pool that opens a connection per request, bounded by ``max_size``."""

    async def wait(self, timeout: float = 30.0) -> None:
        """Check that a connection can be made (then close it)."""
        timeout = base.check_timeout(timeout)
        self._check_open_getconn()
        try:
            conn = await self._connect(timeout=timeout)
        except Exception as ex:
            await self.close()
            raise PoolTimeout(f"pool initialization incomplete after {timeout} sec: {ex}") from None
        await self._close_quietly(conn)

    async def getconn(self, timeout: float | None = None) -> ACT:
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._raise_wrong_loop(self._loop)
        self._stats.add(Stats.REQUESTS_NUM)
        timeout = self.timeout if timeout is None else base.check_timeout(timeout)
        deadline = monotonic() + timeout
        self._check_open_getconn()
        with self._lock:
            w = self._reserve_or_enqueue_locked()
        slot = CONNECT_YOURSELF if w is None else await self._await(w, deadline, timeout)
        if slot >= 0:  # a connection handed over by a returning task
            conn = self._conns[slot]
            conn._pool = self
        else:
            conn = await self._connect_new(deadline, timeout)
        self._note_checkout_of(conn)
        self._track_owner(conn)
        return conn

    async def _connect_new(self, deadline: float, timeout: float) -> Any:
        """Open a connection for the caller (a connection slot is reserved)."""
        remaining = deadline - monotonic()
        try:
            if remaining <= 0:
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
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

    async def putconn(self, conn: Any) -> None:
        if getattr(conn, "_pool", None) is not self:
            self._raise_foreign(conn)
        owner = getattr(conn, "_fp_owner", None)
        if owner is not None:
            conn._fp_owner = None
            owner[0].remove_done_callback(owner[1])
        slot = conn._fp_slot
        conn._pool = None
        if self._leak_threshold:
            self._note_return(slot)
        if not self._closed and self._waiting:
            try:
                await self._reset_connection(conn)
            except BaseException:  # cancelled mid-reset: close it, free its budget
                self._close_returned_soon(slot, conn)
                raise
            if conn.pgconn.transaction_status != UNKNOWN and self._hand_over(slot):
                return
        if conn.pgconn.transaction_status == UNKNOWN:
            self._stats.add(Stats.RETURNS_BAD)
        self._retire_returned(slot)
        try:
            await self._close_quietly(conn)
        finally:
            self._free_connection_slot()

    def _close_returned_soon(self, slot: int, conn: Any) -> None:
        self._retire_returned(slot)
        self._close_in_background(conn)
        self._free_connection_slot()

    def _give_back(self, slot: int) -> None:
        # Only reached when a cancelled waiter had been handed a connection it
        # never used: pass it to the next waiter, or close it.
        if not self._closed and self._hand_over(slot):
            return
        self._close_returned_soon(slot, self._conns[slot])

    async def check(self) -> None:
        """No idle connections to check in a null pool."""

    async def drain(self) -> None:
        """No idle connections to drain in a null pool."""


__all__ = ["AsyncNullConnectionPool"]
