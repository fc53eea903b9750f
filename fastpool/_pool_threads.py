"""What only the thread pools (``ConnectionPool``, ``NullConnectionPool``) need
and has no async twin, kept out of the module generated from ``pool_async.py``:
psycopg < 3.3 support for ``close_returns``, and the holder of a slot under
maintenance. (Re-initialising pools in a forked child is ``_fork``'s.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers check the code as it runs with psycopg installed
    import psycopg
else:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is needed to use the psycopg pools
        psycopg = None

# psycopg >= 3.3 makes Connection.close() call pool.putconn() when the pool's
# close_returns is set; older versions need PoolConnection below.
CLOSE_RETURNS_BUILTIN = psycopg is not None and tuple(
    int(x) for x in psycopg.__version__.split(".")[:2] if x.isdigit()
) >= (3, 3)

if psycopg is not None:

    class PoolConnection(psycopg.Connection[Any]):
        """A connection whose close() returns it to its pool if the pool says so
        (``close_returns=True``); used with psycopg < 3.3 only."""

        def close(self) -> None:
            pool = getattr(self, "_pool", None)
            if pool is not None and getattr(pool, "close_returns", False):
                pool.putconn(self)
            else:
                super().close()

else:  # pragma: no cover - without psycopg nothing uses it
    PoolConnection = None  # type: ignore[misc]  # (the name must import)


class Holder:
    """Holds one slot for a multi-step operation (check, drain, a discard) so that an
    exception never finds it held by nobody."""

    __slots__ = ("slot",)

    def __init__(self, slot: int = -1) -> None:
        self.slot: int = slot
