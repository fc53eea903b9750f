"""What the sync and async null pools share: the connection budget
(``max_size`` connections at most, a waiter either gets a returned connection
or the right to open its own), none of the I/O."""
from __future__ import annotations

from typing import Any

from .base import Histograms
from .errors import PoolClosed, PoolTimeout

try:
    from psycopg.errors import ConnectionTimeout
except ImportError:  # pragma: no cover - no psycopg: no such error to translate
    class ConnectionTimeout(Exception):  # type: ignore[no-redef]
        pass

# A waiter served with this instead of a slot may open its own connection: a
# connection slot was freed (a return was closed, or a connect failed).
CONNECT_YOURSELF = -2


class NullPoolLogic:
    """Mixed in before ``PoolLogic`` by NullConnectionPool and AsyncNullConnectionPool."""

    def __init__(self, conninfo: Any = "", *, min_size: int = 0, max_size: int | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("close_returns", False)
        super().__init__(conninfo, min_size=min_size, max_size=max_size, **kwargs)  # type: ignore[call-arg]
        # close() on a connection of a null pool really closes it (psycopg_pool too).
        self.close_returns = False

    def _start_workers_locked(self) -> None:
        # No background connections and no shrinking: workers only to scan for
        # leaks, when asked to.
        if self._leak_threshold:
            self._workers = self._new_workers()
            self._workers.start()
            self._workers.run_later(self._leak_scan_period(), type(self)._leak_task)

    def _note_checkout_of(self, conn: Any) -> None:
        if self._leak_threshold:
            self._note_checkout(conn._fp_slot)

    def _connect_failed(self, ex: BaseException, timeout: float, holder: Any = None) -> None:
        """A caller's own connect failed (or was cancelled): free its place for
        the next waiter (``holder``, the waiter holding that place, lets go of
        it), and raise a connect timeout as PoolTimeout."""
        self._free_connection_slot(holder)
        if isinstance(ex, ConnectionTimeout):
            raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None

    def _reserve_or_enqueue_locked(self) -> Any:
        """First step of a checkout (pool lock held): None if the caller may open
        a connection now (one is reserved for it), else its queued waiter."""
        if self._closed:
            raise PoolClosed(f"the pool {self.name!r} is already closed")
        if not self._waiting and not self._limit_reached_locked():
            self._nconns += 1
            self._hist.add(Histograms.WAIT)  # no wait (connecting is "create" time)
            return None
        return self._enqueue_locked()

    def _reserve_or_wait_locked(self, w: Any) -> bool:
        """The same for a thread, whose waiter ``w`` holds the outcome: False
        when ``w`` holds a reserved place (CONNECT_YOURSELF), True when queued."""
        if self._closed:
            raise PoolClosed(f"the pool {self.name!r} is already closed")
        if not self._waiting and not self._limit_reached_locked():
            self._nconns += 1
            w.slot = CONNECT_YOURSELF
            self._hist.add(Histograms.WAIT)
            return False
        self._enqueue_locked(w)
        return True

    def _install_or_none(self, conn: Any, holder: Any = None) -> int:
        """Put a connection the caller opened in a held slot (``holder``, the
        waiter holding the caller's place, holds the slot instead); -1 if the
        pool was closed meanwhile (the caller closes the connection)."""
        with self._lock:
            if self._closed:
                return -1
            slot = self._install(conn)
            if holder is not None:
                holder.slot = slot
            return slot

    def _hand_over(self, slot: int) -> bool:
        """Give a returned, reset connection to the oldest waiter, if any."""
        with self._lock:
            return self._hand_to_oldest_locked(slot)

    def _retire_returned(self, slot: int) -> None:
        """A returned connection will be closed: its slot leaves the pool."""
        with self._lock:
            self._conns[slot] = None
            self._ring.retire(slot)

    def _check_size(self, min_size: Any, max_size: Any) -> tuple[int, int]:
        if isinstance(min_size, bool) or not isinstance(min_size, int):
            raise TypeError(f"min_size must be an int, got {type(min_size).__name__}")
        if min_size != 0:
            raise ValueError("null pools must have min_size = 0")
        if max_size is None:
            max_size = 0
        elif isinstance(max_size, bool) or not isinstance(max_size, int):
            raise TypeError(f"max_size must be an int or None, got {type(max_size).__name__}")
        if max_size < 0:
            raise ValueError("max_size cannot be negative (0 or None means unlimited)")
        return min_size, max_size

    def _limit_reached_locked(self) -> bool:
        return self._max_size > 0 and self._nconns >= self._max_size

    def _return_unclaimed(self, slot: int) -> None:
        if slot >= 0:
            self._give_back(slot)
        elif slot == CONNECT_YOURSELF:
            self._free_connection_slot()

    def _free_connection_slot(self, holder: Any = None) -> None:
        """A reserved connection won't exist: let the oldest waiter connect
        instead. ``holder``: the waiter that held the place lets go of it."""
        with self._lock:
            if holder is not None:
                holder.slot = -1
            if not self._hand_to_oldest_locked(CONNECT_YOURSELF):
                self._nconns -= 1

    def _resize(self, min_size: int, max_size: int | None = None) -> None:
        min_size, max_size = self._check_size(min_size, max_size)
        if max_size > self._capacity:
            raise ValueError(
                f"max_size {max_size} is more than this pool can grow to ({self._capacity})"
            )
        with self._lock:
            self._min_size, self._max_size = min_size, max_size
            # Raising the limit may let queued clients connect now.
            while self._waiting and not self._limit_reached_locked():
                if not self._hand_to_oldest_locked(CONNECT_YOURSELF):
                    break
                self._nconns += 1
