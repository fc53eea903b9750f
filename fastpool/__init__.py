"""fastpool: a fast, correct database connection pool.

``fastpool.__impl__`` says which core is active: ``"c"`` (compiled) or
``"python"`` (the pure-Python twin); ``FASTPOOL_IMPL`` chooses.
"""

from __future__ import annotations

from ._core import DEBUG as __debug_core__  # noqa: F401 - reported by the test header
from ._core import IMPL as __impl__
from ._core import SlotRing
from .dbapi import ConnectionReturned, Pool, PooledConnection, PoolFull
from .errors import PoolClosed, PoolInternalError, PoolTimeout, TooManyRequests
from .null_pool import NullConnectionPool
from .null_pool_async import AsyncNullConnectionPool
from .pool import ConnectionPool
from .pool_async import AsyncConnectionPool

__version__ = "0.1.0"

__all__ = [
    "AsyncConnectionPool",
    "AsyncNullConnectionPool",
    "ConnectionPool",
    "ConnectionReturned",
    "NullConnectionPool",
    "Pool",
    "PooledConnection",
    "PoolClosed",
    "PoolFull",
    "PoolInternalError",
    "PoolTimeout",
    "SlotRing",
    "TooManyRequests",
    "__impl__",
    "__version__",
]
