"""Stub connections for scheduling tests: no database, controllable connect
latency and failures, and a record of how many connects overlapped; and an
asyncio twin for the async pools."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Self


class _PGconn:
    def __init__(self) -> None:
        self.transaction_status: int = 0  # IDLE; 4 (UNKNOWN) once closed


class StubConnection:
    """Just enough of psycopg.Connection for the pool."""

    connect_delay: ClassVar[float] = 0.0
    fail_connects: ClassVar[int] = 0  # the next N connects raise
    _lock = threading.Lock()
    _ids = itertools.count(1)
    connects: ClassVar[int] = 0
    in_flight: ClassVar[int] = 0
    max_in_flight: ClassVar[int] = 0

    @classmethod
    def reset_stats(cls, delay: float = 0.0) -> None:
        cls.connect_delay, cls.fail_connects = delay, 0
        cls.connects = cls.in_flight = cls.max_in_flight = 0

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        with cls._lock:
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            if cls.connect_delay:
                time.sleep(cls.connect_delay)
            with cls._lock:
                if cls.fail_connects:
                    cls.fail_connects -= 1
                    raise OSError("stub connect refused")
                cls.connects += 1
        finally:
            with cls._lock:
                cls.in_flight -= 1
        return cls()

    def __init__(self) -> None:
        self.id: int = next(self._ids)
        self.pgconn: _PGconn = _PGconn()
        self.closed: bool = False
        self.autocommit: bool = False

    def close(self) -> None:
        self.closed = True
        self.pgconn.transaction_status = 4

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        self.pgconn.transaction_status = 0

    def execute(self, query: str) -> Self:
        if self.closed:
            raise OSError("connection closed")
        return self

    def __repr__(self) -> str:
        return f"<StubConnection {self.id}>"


class AsyncStubConnection(StubConnection):
    """Just enough of psycopg.AsyncConnection for the async pools; connect and
    rollback suspend once, as the real ones do."""

    # ignore[override]: each method is the coroutine twin of StubConnection's,
    # as psycopg.AsyncConnection's are of Connection's.
    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:  # type: ignore[override]
        await asyncio.sleep(0)
        return cls()

    async def close(self) -> None:  # type: ignore[override]
        StubConnection.close(self)

    async def commit(self) -> None:  # type: ignore[override]
        pass

    async def rollback(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        StubConnection.rollback(self)

    async def execute(self, query: str) -> StubConnection:  # type: ignore[override]
        return StubConnection.execute(self, query)

    async def set_autocommit(self, value: bool) -> None:
        self.autocommit = value


def settle(pool: Any, timeout: float = 5.0) -> None:
    """Wait until a pool's background connects have finished (state-machine
    tests check the books between steps, not while workers are connecting)."""
    deadline = time.monotonic() + timeout
    while pool._connecting and time.monotonic() < deadline:
        time.sleep(0.001)
