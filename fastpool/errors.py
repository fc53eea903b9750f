"""fastpool's exceptions.

Two families: errors a caller can cause or must handle (``PoolTimeout``,
``PoolClosed``, ``TooManyRequests``: the same classes, bases and messages as
psycopg_pool's, so ``except psycopg.OperationalError`` keeps working), and
``PoolInternalError`` for a broken invariant inside fastpool itself, which is
always a fastpool bug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers check the code as it runs with psycopg installed
    from psycopg import OperationalError as _OperationalError
else:
    try:  # psycopg is what the drop-in pools are for, but the core doesn't need it.
        from psycopg import OperationalError as _OperationalError
    except ImportError:  # pragma: no cover - exercised only without psycopg installed

        class _OperationalError(Exception):
            """Stand-in for psycopg.OperationalError when psycopg is not installed."""


class PoolTimeout(_OperationalError):
    """The pool couldn't provide a connection in acceptable time."""

    __module__ = "fastpool"


class PoolClosed(_OperationalError):
    """Attempt to get a connection from a closed pool."""

    __module__ = "fastpool"


class TooManyRequests(_OperationalError):
    """Too many requests in the queue waiting for a connection from the pool."""

    __module__ = "fastpool"


class PoolInternalError(RuntimeError):
    """An invariant of fastpool's own bookkeeping was found broken (a fastpool bug)."""

    __module__ = "fastpool"
