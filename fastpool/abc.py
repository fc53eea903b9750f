"""Types of fastpool's psycopg pools: the names and meanings of ``psycopg_pool.abc``.

The pools are generic in their connection type, bound from ``connection_class``:
``CT`` for ConnectionPool and NullConnectionPool (a ``psycopg.Connection``,
by default ``Connection[TupleRow]``), ``ACT`` for the async pools (a
``psycopg.AsyncConnection``, by default ``AsyncConnection[TupleRow]``). So
``ConnectionPool(dsn)`` is a ``ConnectionPool[Connection[TupleRow]]`` and
``ConnectionPool(dsn, connection_class=Connection[DictRow])`` a
``ConnectionPool[Connection[DictRow]]``, whose ``connection()`` and ``getconn()``
give that type. Only type checkers read the bounds and defaults: at run time
``CT`` and ``ACT`` are plain ``typing.TypeVar``s, so fastpool needs no
typing_extensions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Union

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection
    from psycopg.rows import TupleRow
    from typing_extensions import TypeAlias, TypeVar

    from .pool import ConnectionPool
    from .pool_async import AsyncConnectionPool

    CT = TypeVar("CT", bound="Connection[Any]", default="Connection[TupleRow]")
    ACT = TypeVar("ACT", bound="AsyncConnection[Any]", default="AsyncConnection[TupleRow]")
else:
    from typing import TypeVar

    CT = TypeVar("CT")
    ACT = TypeVar("ACT")

ConnectionCB: TypeAlias = Callable[[CT], None]
"""A ``configure``, ``check`` or ``reset`` callback: called with a connection of the pool."""
AsyncConnectionCB: TypeAlias = Callable[[ACT], Awaitable[None]]
"""The async pools' ``configure``, ``check`` or ``reset`` callback (a coroutine function)."""

ConnectFailedCB: TypeAlias = Callable[["ConnectionPool[Any]"], None]
"""``reconnect_failed``: called with the pool when reconnecting gives up."""
AsyncConnectFailedCB: TypeAlias = Union[
    Callable[["AsyncConnectionPool[Any]"], None],
    Callable[["AsyncConnectionPool[Any]"], Awaitable[None]],
]
"""The async pools' ``reconnect_failed``: a function or a coroutine function."""

ConninfoParam: TypeAlias = Union[str, Callable[[], str]]
"""``conninfo``: a connection string, or a callable returning one before each attempt."""
AsyncConninfoParam: TypeAlias = Union[str, Callable[[], str], Callable[[], Awaitable[str]]]
"""The async pools' ``conninfo``: the callable may also be a coroutine function."""
KwargsParam: TypeAlias = Union[Dict[str, Any], Callable[[], Dict[str, Any]]]
"""``kwargs`` of ``connect()``: a dict, or a callable returning one before each attempt."""
AsyncKwargsParam: TypeAlias = Union[
    Dict[str, Any],
    Callable[[], Dict[str, Any]],
    Callable[[], Awaitable[Dict[str, Any]]],
]
"""The async pools' ``kwargs``: the callable may also be a coroutine function."""

__all__ = [
    "ACT",
    "CT",
    "AsyncConnectFailedCB",
    "AsyncConnectionCB",
    "AsyncConninfoParam",
    "AsyncKwargsParam",
    "ConnectFailedCB",
    "ConnectionCB",
    "ConninfoParam",
    "KwargsParam",
]
