"""psycopg2's ``ThreadedConnectionPool`` on fastpool: swap the import, keep the code.

    from fastpool.psycopg2_pool import ThreadedConnectionPool
    pool = ThreadedConnectionPool(2, 10, "dbname=app")
    conn = pool.getconn()
    ...
    pool.putconn(conn)

Same constructor (``minconn, maxconn, *args, **kwargs`` for ``psycopg2.connect``,
``minconn`` connections made in the constructor, so a bad DSN fails there),
``getconn(key=None)``, ``putconn(conn, key=None, close=False)``, ``closeall()``
and ``closed``; the connections handed out are psycopg2's own, so every
psycopg2 API that checks their type keeps working.

The one deliberate difference: psycopg2's pool raises ``PoolError`` at once when
all ``maxconn`` connections are in use; this one waits for a connection (FIFO)
for up to ``pool_timeout`` seconds, then raises ``PoolExhausted``, a subclass
of both ``psycopg2.pool.PoolError`` and ``fastpool.PoolTimeout``
(``pool_timeout=0``: no wait, ``PoolExhausted`` at once when none is idle).
Other ``pool_*`` keywords (``pool_max_lifetime``, ``pool_pre_ping``, ...) pass
the options of ``fastpool.Pool``; everything else goes to ``psycopg2.connect``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Hashable

import psycopg2
import psycopg2.pool

from .dbapi import Pool, PooledConnection
from .errors import PoolClosed, PoolTimeout

if TYPE_CHECKING:
    # psycopg2 ships no type hints: this is Any unless types-psycopg2 is installed.
    from psycopg2.extensions import connection

__all__ = ["PoolExhausted", "SimpleConnectionPool", "ThreadedConnectionPool"]


class PoolExhausted(psycopg2.pool.PoolError, PoolTimeout):  # type: ignore[misc]  # PoolError is untyped
    """No connection became free within ``pool_timeout`` seconds."""

    __module__ = "fastpool.psycopg2_pool"


class ThreadedConnectionPool:
    """A thread-safe psycopg2 pool that waits, rather than fails, when exhausted."""

    def __init__(
        self, minconn: int, maxconn: int, *args: Any, pool_timeout: float = 30.0, **kwargs: Any
    ) -> None:
        pool_options = {k[5:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("pool_")}
        self.minconn = minconn
        self.maxconn = maxconn
        self._args, self._kwargs = args, kwargs
        self._lock = threading.Lock()
        self._keyed: dict[Hashable, connection] = {}  # key -> raw connection (getconn(key))
        # id(raw) -> (checkout, key)
        self._out: dict[int, tuple[PooledConnection[connection], Hashable | None]] = {}
        self._pool = Pool.filled(
            self._connect, minconn, maxconn, timeout=pool_timeout, **pool_options
        )

    def _connect(self) -> connection:
        return psycopg2.connect(*self._args, **self._kwargs)

    @property
    def closed(self) -> bool:
        return self._pool.closed

    @property
    def pool(self) -> Pool[connection]:
        """The fastpool.Pool underneath (stats, resize, check, drain)."""
        return self._pool

    def getconn(self, key: Hashable | None = None) -> connection:
        """A connection; the same one again for a ``key`` already checked out."""
        if key is not None:
            with self._lock:
                raw = self._keyed.get(key)
            if raw is not None:
                return raw
        try:
            pooled = self._pool.getconn()
        except PoolClosed:
            raise psycopg2.pool.PoolError("connection pool is closed") from None
        except PoolTimeout as ex:
            raise PoolExhausted(f"connection pool exhausted: {ex}") from None
        raw = pooled.raw
        if key is None:
            self._out[id(raw)] = (pooled, None)  # a dict store is atomic: no lock
            return raw
        with self._lock:
            if key in self._keyed:
                # Another thread checked out the same key meanwhile: use theirs.
                pooled.close()
                return self._keyed[key]
            self._out[id(raw)] = (pooled, key)
            self._keyed[key] = raw
        return raw

    def putconn(self, conn: connection, key: Hashable | None = None, close: bool = False) -> None:
        """Give back a connection; ``close=True`` closes it instead of keeping it."""
        entry = self._out.pop(id(conn), None)  # atomic: one of two racing returns wins
        if entry is None:
            if self._pool.closed:
                raise psycopg2.pool.PoolError("connection pool is closed")
            raise psycopg2.pool.PoolError("trying to put unkeyed connection")
        pooled, got_key = entry
        if got_key is not None:
            with self._lock:
                self._keyed.pop(got_key, None)
        if close:
            pooled.invalidate()
        self._pool.putconn(pooled)

    def closeall(self) -> None:
        """Close every connection, the checked-out ones included (as psycopg2 does)."""
        if self._pool.closed:
            raise psycopg2.pool.PoolError("connection pool is closed")
        with self._lock:
            out = list(self._out.values())
            self._out.clear()
            self._keyed.clear()
        self._pool.close()
        for pooled, _ in out:
            try:
                pooled.raw.close()
            except Exception:
                pass  # closing what is already broken
            pooled.close()


# psycopg2's SimpleConnectionPool is the same pool without thread safety; this
# one is thread-safe anyway.
SimpleConnectionPool = ThreadedConnectionPool
