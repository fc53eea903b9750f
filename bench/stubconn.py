"""A connection that needs no server, for measuring a pool's own cost.

It has the parts of psycopg 3's ``Connection`` that the pools touch (the
``pgconn``/``info`` transaction status, commit/rollback, the context manager
that commits on exit) and psycopg2's ``get_transaction_status``, so every pool
under comparison can hold it. ``connect_delay`` simulates a slow network.
"""

from __future__ import annotations

import threading
import time

IDLE, UNKNOWN = 0, 4  # psycopg's TransactionStatus values


class _Status:
    __slots__ = ("transaction_status",)

    def __init__(self) -> None:
        self.transaction_status = IDLE


class BenchConnection:
    connect_delay = 0.0
    connects = 0
    _count_lock = threading.Lock()

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs) -> "BenchConnection":
        if cls.connect_delay:
            time.sleep(cls.connect_delay)
        with cls._count_lock:
            cls.connects += 1
        return cls()

    def __init__(self) -> None:
        self.pgconn = self.info = _Status()
        self.closed = False
        self.autocommit = True
        self._pool = None

    # psycopg2 spelling of the same status
    def get_transaction_status(self) -> int:
        return self.pgconn.transaction_status

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        self.pgconn.transaction_status = UNKNOWN

    def __enter__(self) -> "BenchConnection":
        return self

    def __exit__(self, *exc) -> None:
        # psycopg: commit or roll back; close only if no pool owns it
        if not self.closed and self._pool is None:
            self.close()


def stub_connect(*args, **kwargs) -> BenchConnection:
    """A plain function, as DB-API creators (SQLAlchemy, DBUtils) expect."""
    return BenchConnection.connect()


# This module doubles as a DB-API "module" for DBUtils.
connect = stub_connect
threadsafety = 2
OperationalError = InterfaceError = InternalError = OSError
