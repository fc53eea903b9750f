"""MySQL Connector/Python's ``MySQLConnectionPool`` on fastpool: swap the import.

    from fastpool.mysql_pool import MySQLConnectionPool
    pool = MySQLConnectionPool(pool_name="web", pool_size=5, host="db", user="app", database="app")
    cnx = pool.get_connection()
    ...
    cnx.close()          # back to the pool

Same constructor (``pool_name``, ``pool_size``, ``pool_reset_session`` and the
connection arguments; ``pool_size`` connections made in it, so bad arguments
fail there), ``get_connection()`` and ``pool_name``/``pool_size``. With
``pool_reset_session=True`` (the default, as in MySQL Connector) each returned
connection's session is reset (``reset_session()``: user variables, temporary
tables, session settings), and ``pool_reset_session=False`` skips that round
trip. The difference: MySQL Connector raises ``PoolError`` at once when all
connections are out; this pool waits for one (FIFO) for up to ``pool_timeout``
seconds (0: not at all), then raises ``PoolExhausted``, a subclass of both
``mysql.connector.errors.PoolError`` and ``fastpool.PoolTimeout``. Connections
are checked with a ping before each checkout, as MySQL Connector does.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, cast

import mysql.connector
from mysql.connector.errors import PoolError

from .dbapi import Pool, PooledConnection
from .errors import PoolClosed, PoolTimeout

if TYPE_CHECKING:
    from mysql.connector.abstracts import MySQLConnectionAbstract

__all__ = ["MySQLConnectionPool", "PoolExhausted"]

_names = itertools.count(1)


class PoolExhausted(PoolError, PoolTimeout):
    """No connection became free within ``pool_timeout`` seconds."""

    __module__ = "fastpool.mysql_pool"


class MySQLConnectionPool:
    """A pool of MySQL Connector connections that waits, rather than fails, when exhausted."""

    def __init__(
        self,
        pool_size: int = 5,
        pool_name: str | None = None,
        pool_reset_session: bool = True,
        pool_timeout: float = 30.0,
        **dbconfig: Any,
    ) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise AttributeError(f"pool_size should be a positive integer, got {pool_size!r}")
        self._name = pool_name or f"pool{next(_names)}"
        self._size = pool_size
        self._dbconfig = dbconfig
        self._pool = Pool.filled(
            self._connect,
            pool_size,
            pool_size,
            timeout=pool_timeout,
            name=self._name,
            pre_ping=True,
            reset=self._reset_session if pool_reset_session else None,
        )

    def _connect(self) -> MySQLConnectionAbstract:
        # connect() returns a PooledMySQLConnection only when given pool arguments,
        # which this class takes itself.
        return cast("MySQLConnectionAbstract", mysql.connector.connect(**self._dbconfig))

    @staticmethod
    def _reset_session(cnx: MySQLConnectionAbstract) -> None:
        cnx.reset_session()

    @property
    def pool_name(self) -> str:
        return self._name

    @property
    def pool_size(self) -> int:
        return self._size

    @property
    def pool(self) -> Pool[MySQLConnectionAbstract]:
        """The fastpool.Pool underneath (stats, check, drain)."""
        return self._pool

    def get_connection(self) -> PooledConnection[MySQLConnectionAbstract]:
        """A connection whose ``close()`` gives it back."""
        try:
            return self._pool.getconn()
        except PoolClosed:
            raise PoolError(f"pool {self._name!r} is closed") from None
        except PoolTimeout as ex:
            raise PoolExhausted(f"Failed getting connection; pool exhausted: {ex}") from None

    def close(self) -> None:
        """Close the idle connections now and the checked-out ones when returned."""
        self._pool.close()
