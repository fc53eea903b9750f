"""MariaDB Connector/Python's ``mariadb.ConnectionPool`` on fastpool: swap the import.

    from fastpool.mariadb_pool import ConnectionPool
    pool = ConnectionPool(pool_name="web", pool_size=5, host="db", user="app", database="app")
    conn = pool.get_connection()
    ...
    conn.close()          # back to the pool

Same constructor (``pool_name``, required; ``pool_size``, 1 to 64, default 5;
``pool_reset_connection``; ``pool_validation_interval``, or its earlier name
``pool_invalidation_interval``; and the connection arguments, with which the
``pool_size`` connections are made in the constructor, so bad arguments fail
there; without them the pool starts empty), the same methods
(``get_connection()``, ``add_connection(connection=None)``, ``set_config()``,
``close()``) and properties (``pool_name``, ``pool_size``, ``max_size``,
``connection_count``, ``pool_reset_connection``), the same errors and messages
(``ProgrammingError`` for a missing or taken pool name or a bad size,
``PoolError`` for a full or unconfigured pool).

Connections are used as in mariadb: with ``pool_reset_connection=True`` (the
default) each returned connection is reset (``reset()``: user variables,
temporary tables and the open transaction are gone), with False only an open
transaction is rolled back. A connection idle for longer than
``pool_validation_interval`` milliseconds (default 500; 0: every time) is
pinged before it is handed out, and replaced if the ping fails.

The one deliberate difference: mariadb raises ``PoolError`` at once when all
connections are out; this pool waits for one (FIFO) for up to ``pool_timeout``
seconds (default 30), then raises ``PoolExhausted``, a subclass of both
``mariadb.PoolError`` and ``fastpool.PoolTimeout``. While callers wait, a pool
holding fewer than ``pool_size`` connections (filled with ``add_connection()``)
may open more from its configuration, up to ``pool_size``; connections beyond
those added close again after ``max_idle`` (10 minutes) unused.

The connection handed out is a ``fastpool.PooledConnection``, not a
``mariadb.Connection``: it forwards everything to the driver's connection
(``conn.raw`` is that connection), and its ``close()`` gives it back to the pool,
as a pooled mariadb connection's does. Leaving ``with conn:`` commits (or rolls
back on an error) before giving it back, as fastpool's connections do; mariadb's
only gives it back. ``mariadb.connect(pool_name=...)`` looks in mariadb's own
pools and doesn't find this one: call ``pool.get_connection()``.
"""

from __future__ import annotations

import threading
from typing import Any, NoReturn

import mariadb

from .dbapi import Pool, PooledConnection, PoolFull
from .errors import PoolClosed, PoolTimeout

__all__ = ["MAX_POOL_SIZE", "ConnectionPool", "PoolExhausted"]

MAX_POOL_SIZE = 64  # mariadb's limit for pool_size

# SERVER_STATUS_IN_TRANS of the server status flags (mariadb.constants.STATUS.IN_TRANS).
_IN_TRANS = 1

# Names of the open pools: a name is taken until its pool is closed, as in mariadb.
_open_names: set[str] = set()
_names_lock = threading.Lock()


class PoolExhausted(mariadb.PoolError, PoolTimeout):  # type: ignore[misc]  # PoolError is untyped
    """No connection became free within ``pool_timeout`` seconds."""

    __module__ = "fastpool.mariadb_pool"


class ConnectionPool:
    """A pool of MariaDB Connector connections that waits, rather than fails, when exhausted."""

    def __init__(
        self,
        *,
        pool_name: str | None = None,
        pool_size: int | str = 5,  # as mariadb: "5" is 5
        pool_reset_connection: bool = True,
        pool_validation_interval: int | str | None = None,
        pool_invalidation_interval: int | str | None = None,
        pool_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        if pool_name is None:
            raise mariadb.ProgrammingError("No pool name specified")
        if pool_validation_interval is not None and pool_invalidation_interval is not None:
            raise mariadb.ProgrammingError(
                "give pool_validation_interval or its earlier name pool_invalidation_interval, not both"
            )
        if pool_validation_interval is None:
            pool_validation_interval = pool_invalidation_interval
        size = int(pool_size)  # as mariadb: "5" is 5
        if not 0 < size <= MAX_POOL_SIZE:
            raise mariadb.ProgrammingError(f"Pool size must be in range of 1 and {MAX_POOL_SIZE}")
        interval_ms = 500 if pool_validation_interval is None else int(pool_validation_interval)
        if interval_ms < 0:
            raise mariadb.ProgrammingError(
                "pool_validation_interval must be 0 (check every time) or more milliseconds,"
                f" got {interval_ms}"
            )
        with _names_lock:
            if pool_name in _open_names:
                raise mariadb.ProgrammingError(f"Pool '{pool_name}' already exists")
            _open_names.add(pool_name)
        self._name = pool_name
        self._size = size
        self._reset_connection = bool(pool_reset_connection)
        self._conn_args = kwargs
        self._lock = threading.Lock()  # one add_connection() at a time
        # The connections the pool keeps (its min_size): those made in the
        # constructor and those added since. Only waiters make it grow beyond.
        self._kept = size if kwargs else 0
        options: dict[str, Any] = dict(
            name=str(pool_name),
            timeout=pool_timeout,
            reset=self._reset,
            reset_on_return=None,  # _reset ends the transaction, as mariadb does
            # "ping only if idle longer than the interval": fastpool's check_bypass.
            pre_ping=True,
            check_bypass=interval_ms / 1000,
        )
        try:
            if kwargs:
                self._pool = Pool.filled(self._connect, size, size, **options)
            else:  # as mariadb: empty until set_config() and add_connection()
                self._pool = Pool(self._connect, min_size=0, max_size=size, **options)
        except BaseException:
            self._release_name()
            raise

    def _connect(self) -> mariadb.Connection:
        args = self._conn_args
        if not args:
            raise mariadb.PoolError(f"Couldn't get configuration for pool {self._name}")
        return mariadb.connect(**args)

    def _reset(self, conn: mariadb.Connection) -> None:
        # Read on every return: pool_reset_connection can be changed at any time.
        if self._reset_connection:
            conn.reset()
        elif conn.server_status & _IN_TRANS:
            conn.rollback()

    def _release_name(self) -> None:
        with _names_lock:
            _open_names.discard(self._name)

    def __repr__(self) -> str:
        if self._pool.closed:
            return f"<fastpool.mariadb_pool.ConnectionPool object (closed) at 0x{id(self):x}>"
        return (
            f"<fastpool.mariadb_pool.ConnectionPool object (name={self._name}) at 0x{id(self):x}>"
        )

    @property
    def pool(self) -> Pool[mariadb.Connection]:
        """The fastpool.Pool underneath (stats, check, drain)."""
        return self._pool

    @property
    def pool_name(self) -> str:
        return self._name

    @property
    def pool_size(self) -> int:
        return self._size

    @property
    def max_size(self) -> int:
        """The largest ``pool_size`` allowed (64, as in mariadb)."""
        return MAX_POOL_SIZE

    @property
    def connection_count(self) -> int:
        """Connections in the pool, idle or checked out (0 once closed)."""
        if self._pool.closed:
            return 0
        return int(self._pool.get_stats()["pool_size"])

    @property
    def pool_reset_connection(self) -> bool:
        """Reset each returned connection (True), or only roll back its transaction."""
        return self._reset_connection

    @pool_reset_connection.setter
    def pool_reset_connection(self, reset: bool) -> None:
        self._reset_connection = bool(reset)

    def get_connection(self) -> PooledConnection[mariadb.Connection]:
        """A connection whose ``close()`` gives it back; waits up to
        ``pool_timeout`` seconds for one, then raises PoolExhausted."""
        if not self._conn_args and self.connection_count == 0 and not self._pool.closed:
            # None to wait for and none can be made: say so now, as mariadb does.
            raise mariadb.PoolError(
                f"No connection available: pool '{self._name}' is empty and has no configuration"
                " (call set_config() and add_connection())"
            )
        try:
            return self._pool.getconn()
        except PoolClosed:
            raise mariadb.PoolError(f"pool '{self._name}' is closed") from None
        except PoolTimeout as ex:
            raise PoolExhausted(f"No connection available in pool '{self._name}': {ex}") from None

    def add_connection(self, connection: mariadb.Connection | None = None) -> mariadb.Connection:
        """Add ``connection`` (a mariadb connection), or a new one made with the
        pool's configuration, to the pool; returns the connection added. Raises
        PoolError if the pool has no configuration or already ``pool_size``
        connections, as mariadb does."""
        if not self._conn_args:
            raise mariadb.PoolError(f"Couldn't get configuration for pool {self._name}")
        if connection is not None and not isinstance(connection, mariadb.Connection):
            raise mariadb.ProgrammingError("Passed parameter is not a connection object")
        with self._lock:
            if self._pool.closed:
                raise mariadb.PoolError(f"pool '{self._name}' is closed")
            if self.connection_count >= self._size:
                self._raise_full()
            made = connection is None
            if made:
                connection = mariadb.connect(**self._conn_args)
            try:
                self._pool.add_connection(connection)
            except PoolFull:
                # Another connection came in meanwhile (made for a waiter).
                if made:
                    connection.close()  # type: ignore[union-attr]  # made: not None
                self._raise_full()
            except PoolClosed:
                raise mariadb.PoolError(f"pool '{self._name}' is closed") from None
            # Keep it: the max_idle shrinking stops at min_size.
            self._kept = min(self._kept + 1, self._size)
            self._pool.resize(self._kept, self._size)
        return connection

    def _raise_full(self) -> NoReturn:
        raise mariadb.PoolError(
            f"Can't add connection to pool {self._name}: No free slot available ({self.connection_count})."
        )

    def set_config(self, **kwargs: Any) -> None:
        """The connection arguments for connections made from now on (by
        ``add_connection()`` and to replace broken ones); it adds none itself."""
        self._conn_args = kwargs

    def close(self) -> None:
        """Close the pool: its idle connections now, the checked-out ones when
        they are given back; its name is free again."""
        self._pool.close()
        self._release_name()
