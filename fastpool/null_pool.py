# Generated from fastpool/null_pool_async.py by scripts/async_to_sync.py: do not edit.
# Edit fastpool/null_pool_async.py and run `python scripts/async_to_sync.py`.
"""``NullConnectionPool``: psycopg_pool's pool that keeps no idle connection.

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

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from . import base
from ._null_pool_logic import CONNECT_YOURSELF, NullPoolLogic
from ._pool_threads import Holder
from .abc import CT
from .base import AttemptWithBackoff, Stats
from .errors import PoolClosed
from .pool import ConnectionPool, logger, monotonic
from .waiting import Waiter

if TYPE_CHECKING:
    from .abc import ConnectFailedCB, ConnectionCB, ConninfoParam, KwargsParam

_sleep = time.sleep


class NullConnectionPool(NullPoolLogic, ConnectionPool[CT]):
    """A pool that opens a connection per request, bounded by ``max_size``."""

    if TYPE_CHECKING:
        # At run time NullPoolLogic.__init__ passes its arguments on to
        # ConnectionPool's: the signature type checkers must see (min_size 0),
        # restated rather than derived (see the comment on PoolCommon.__init__).
        def __init__(
            self,
            conninfo: ConninfoParam = "",
            *,
            connection_class: type[CT] | None = None,
            kwargs: KwargsParam | None = None,
            min_size: int = 0,
            max_size: int | None = None,
            open: bool | None = None,
            configure: ConnectionCB[CT] | None = None,
            check: ConnectionCB[CT] | None = None,
            reset: ConnectionCB[CT] | None = None,
            name: str | None = None,
            close_returns: bool = False,
            timeout: float = 30.0,
            max_waiting: int = 0,
            max_lifetime: float = 60 * 60.0,
            max_idle: float = 10 * 60.0,
            reconnect_timeout: float = 5 * 60.0,
            reconnect_failed: ConnectFailedCB | None = None,
            num_workers: int = 3,
            check_bypass: float = 0.0,
            fork_safe: bool = False,
            leak_threshold: float | None = None,
        ) -> None: ...

    def wait(self, timeout: float = 30.0) -> None:
        """Check that a connection can be made (then close it).

        A background thread connects, retrying with backoff after a failure (each
        one logged); if no connection is ready within ``timeout`` seconds the pool
        is closed and PoolTimeout raised, as psycopg_pool does. That connection
        gets no ``connect_timeout`` from ``timeout`` (the pool's ``kwargs`` apply).
        """
        seconds = base.check_timeout(timeout)
        self._check_open_getconn()
        errors: list[Exception] = []
        ready, stop = threading.Event(), threading.Event()

        def connect_until_ready() -> None:
            if self._connect_for_wait(errors, stop.is_set, stop.wait):
                ready.set()

        threading.Thread(target=connect_until_ready, name=f"{self.name}-wait", daemon=True).start()
        try:
            ok = ready.wait(base.clamp_wait(seconds))
        finally:
            stop.set()  # however wait() ends, no more attempts after it
        if not ok:
            self.close()
            raise self._wait_timed_out(timeout, errors[-1] if errors else None)

    def _connect_for_wait(
        self, errors: list[Exception], stopped: Callable[[], bool], pause: Callable[[float], Any]
    ) -> bool:
        """wait()'s connection attempts, each failure logged (and kept last in
        ``errors``), with backoff (``pause(delay)``) until one connects (True:
        that connection is closed), ``reconnect_timeout`` passes (False, after
        the ``reconnect_failed`` callback), or ``stopped()``."""
        attempt: AttemptWithBackoff | None = None
        while not stopped() and not self._closed:
            try:
                conn = self._connect()
            except Exception as ex:
                errors[:] = [ex]
                attempt = self._wait_connect_failed(ex, attempt)
                if attempt is None:
                    try:
                        self.reconnect_failed()
                    except Exception as ex2:
                        logger.warning(
                            "reconnect_failed callback failed: %s: %s", type(ex2).__name__, ex2
                        )
                    return False
                pause(attempt.delay)
                continue
            self._close_quietly(conn)
            return True
        return False

    def getconn(self, timeout: float | None = None) -> CT:
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
                _sleep(attempt.delay)
                w = self._waiter_for_retry(w)
            self._note_checkout_of(conn)
            self._done_with_waiter(w)
        except BaseException:
            self._abandon_checkout(w)
            raise
        return conn

    def _getconn_unchecked(self, w: Waiter, deadline: float, timeout: float) -> CT:
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

    def _connect_new(self, w: Waiter, deadline: float, timeout: float) -> CT:
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
        except BaseException as ex:  # (including a cancellation while connecting)
            if w.slot == CONNECT_YOURSELF:  # not installed: ours to close, and the place to free
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
            # Interrupted mid-check: the connection may be mid-query. Close it;
            # its place under max_size passes on.
            self._drop_held_now(w, conn)
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
                self._reset_connection(conn)
                if self._fit_to_hand_over(conn, h.slot, from_getconn) and self._hand_over(h):
                    return
            self._drop_held(h, conn)
        except BaseException:
            # Interrupted (in the reset, the rollback, the close...): the
            # connection is closed and its place passed on all the same.
            if holder is not None:
                holder.slot = -1
            self._drop_held_now(h, conn)
            raise

    def _drop_held(self, h: Holder | Waiter, conn: Any) -> None:
        """Close the connection holder ``h`` holds: its slot leaves the pool
        (``h`` then holds the connection's place under ``max_size``), and the
        place goes to the oldest waiter (who opens a connection) or is freed,
        exactly once, even if the close is interrupted."""
        try:
            self._retire_returned(h.slot, h)
            self._close_quietly(conn)
        except BaseException:
            if h.slot == CONNECT_YOURSELF:  # retired: finish
                self._close_on_error(conn)
                self._free_connection_slot(h)
            raise
        self._free_connection_slot(h)

    def _drop_held_now(self, h: Holder | Waiter, conn: Any) -> None:
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

    def _reclaim_orphan(self, slot: int, conn: Any) -> None:
        # Closed, and its place under max_size passes on (a null pool replaces nothing).
        self._drop_held(Holder(slot), conn)

    def check(self) -> None:
        """No idle connections to check in a null pool."""

    def drain(self) -> None:
        """Connections checked out now are closed when returned, not handed to
        a waiter (who opens a new one). There are no idle ones to replace."""
        self._drain()


__all__ = ["NullConnectionPool"]
