"""``NullConnectionPool``: psycopg_pool's pool that keeps no idle connection.

Every checkout opens a connection and every return closes it, unless a client
is waiting (``max_size`` reached): then the connection goes straight to the
oldest waiter. Unlike psycopg_pool, connecting happens outside the pool lock,
so concurrent first requests connect in parallel instead of one by one.
"""
from __future__ import annotations

from typing import Any

from . import base
from .errors import PoolClosed, PoolTimeout
from .pool import CT, ConnectionPool, monotonic
from ._null_pool_logic import CONNECT_YOURSELF, NullPoolLogic
from .base import UNKNOWN, Stats
from .waiting import Waiter, release_waiter

class NullConnectionPool(NullPoolLogic, ConnectionPool[CT]):
    """A pool that opens a connection per request, bounded by ``max_size``."""

    def wait(self, timeout: float = 30.0) -> None:
        """Check that a connection can be made (then close it)."""
        timeout = base.check_timeout(timeout)
        self._check_open_getconn()
        try:
            conn = self._connect(timeout=timeout)
        except Exception as ex:
            self.close()
            raise PoolTimeout(f"pool initialization incomplete after {timeout} sec: {ex}") from None
        self._close_quietly(conn)

    def getconn(self, timeout: float | None = None) -> CT:
        self._stats.add(Stats.REQUESTS_NUM)
        timeout = self.timeout if timeout is None else base.check_timeout(timeout)
        deadline = monotonic() + timeout
        self._check_open_getconn()
        # As in ConnectionPool: the waiter holds the caller's place, or the
        # connection handed over, until the caller has it (see _abandon_checkout).
        w = self._new_waiter()
        try:
            with self._lock:
                queued = self._reserve_or_wait_locked(w)
            if queued:
                self._await(w, deadline, timeout)
            if w.slot >= 0:  # a connection handed over by a returning client
                conn = self._conns[w.slot]
                conn._pool = self
            else:
                conn = self._connect_new(w, deadline, timeout)
            self._note_checkout_of(conn)
            release_waiter(w)
            return conn  # type: ignore[no-any-return]
        except BaseException:
            self._abandon_checkout(w)
            raise

    def _connect_new(self, w: Waiter, deadline: float, timeout: float) -> CT:
        """Open a connection for the caller, whose waiter ``w`` holds a
        reserved place; on success ``w`` holds the connection's slot."""
        remaining = deadline - monotonic()
        conn = None
        try:
            if remaining <= 0:
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
            conn = self._connect(timeout=remaining)
            if self._install_or_none(conn, w) < 0:
                raise PoolClosed(f"the pool {self.name!r} is already closed")
            conn._pool = self
            return conn
        except BaseException as ex:
            if w.slot == CONNECT_YOURSELF:  # not installed: ours to close, and the place to free
                if conn is not None:
                    self._close_quietly_now(conn)
                self._connect_failed(ex, timeout, w)
            raise

    def putconn(self, conn: Any) -> None:
        if getattr(conn, "_pool", None) is not self:
            self._raise_foreign(conn)
        slot = conn._fp_slot
        conn._pool = None
        try:
            if self._leak_threshold:
                self._note_return(slot)
            if not self._closed and self._waiting:
                self._reset_connection(conn)
                if conn.pgconn.transaction_status != UNKNOWN and self._hand_over(slot):
                    return
            if conn.pgconn.transaction_status == UNKNOWN:
                self._stats.add(Stats.RETURNS_BAD)
            self._retire_returned(slot)
            self._close_quietly(conn)
            self._free_connection_slot()
        except BaseException:
            # Interrupted (in the reset, the rollback, the close...): the
            # connection is closed and its place freed all the same.
            if self._conns[slot] is conn:
                self._retire_returned(slot)
            self._close_quietly_now(conn)
            self._free_connection_slot()
            raise

    def _give_back(self, slot: int) -> None:
        # Only reached from _abandon_checkout: a handed-over connection nobody took.
        conn = self._conns[slot]
        conn._pool = self
        self.putconn(conn)

    def check(self) -> None:
        """No idle connections to check in a null pool."""

    def drain(self) -> None:
        """No idle connections to drain in a null pool."""


__all__ = ["NullConnectionPool"]
