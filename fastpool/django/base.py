"""``ENGINE = "fastpool.django"``: Django's PostgreSQL backend whose
``OPTIONS["pool"]`` makes a fastpool.ConnectionPool (see the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from ..pool import ConnectionPool

if TYPE_CHECKING:
    import psycopg

    # Django's connections: their row type depends on the cursor factory it sets.
    _DjangoPool = ConnectionPool[psycopg.Connection[Any]]


# Django ships no type hints: its DatabaseWrapper is Any to mypy.
class DatabaseWrapper(PostgresDatabaseWrapper):  # type: ignore[misc]
    # One pool per database alias for the process, kept apart from the pools
    # Django's own backend would make.
    _connection_pools: dict[str, _DjangoPool] = {}

    @property
    def pool(self) -> _DjangoPool | None:
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        pool = self._connection_pools.get(self.alias)
        if pool is not None:
            return pool
        if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            raise ImproperlyConfigured(
                "fastpool's pool replaces persistent connections: set CONN_MAX_AGE to 0"
            )
        if options is not True and not isinstance(options, dict):
            raise ImproperlyConfigured(
                f"OPTIONS['pool'] must be True or a dict of pool options, got {options!r}"
            )
        params = self.get_connection_params()
        params["autocommit"] = True  # Django sets the mode it wants on each checkout
        check = (
            ConnectionPool.check_connection if self.settings_dict["CONN_HEALTH_CHECKS"] else None
        )
        # Django's _configure_connection() returns whether it needs a commit: the
        # pool ignores a configure function's result.
        new: _DjangoPool = ConnectionPool(
            kwargs=params,
            open=False,
            configure=self._configure_connection,  # pyright: ignore[reportArgumentType]
            check=check,
            **({} if options is True else options),
        )
        # Not opened here: the first checkout opens it. Threads racing to make
        # the first pool keep the one stored first.
        return self._connection_pools.setdefault(self.alias, new)
