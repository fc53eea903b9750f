"""Types of fastpool's psycopg pools: the names and meanings of ``psycopg_pool.abc``.

The pools are generic in their connection type, bound from ``connection_class``
(``ConnectionPool(dsn)`` is a ``ConnectionPool[Connection[TupleRow]]``). The
type variables have a default, which only type checkers read: at run time they
are plain ``typing.TypeVar``s, so fastpool needs no typing_extensions.
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

# Callbacks taking a connection of the pool (configure, check, reset)
ConnectionCB: TypeAlias = Callable[[CT], None]
AsyncConnectionCB: TypeAlias = Callable[[ACT], Awaitable[None]]

# Callbacks the pool passes itself to when reconnecting gives up
ConnectFailedCB: TypeAlias = Callable[["ConnectionPool[Any]"], None]
AsyncConnectFailedCB: TypeAlias = Union[
    Callable[["AsyncConnectionPool[Any]"], None],
    Callable[["AsyncConnectionPool[Any]"], Awaitable[None]],
]

# The connection parameters: a value, or a callable returning it (awaitable in
# the async pools), called before each connection attempt
ConninfoParam: TypeAlias = Union[str, Callable[[], str]]
AsyncConninfoParam: TypeAlias = Union[str, Callable[[], str], Callable[[], Awaitable[str]]]
KwargsParam: TypeAlias = Union[Dict[str, Any], Callable[[], Dict[str, Any]]]
AsyncKwargsParam: TypeAlias = Union[
    Dict[str, Any],
    Callable[[], Dict[str, Any]],
    Callable[[], Awaitable[Dict[str, Any]]],
]

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
