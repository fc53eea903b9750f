"""Direct access to the psycopg connection attributes the compiled fast
return path reads and writes on every ``with pool.connection()``.

``_pool`` (the pool holding the connection, which psycopg's ``close()``
consults), ``_tpc``, ``_num_transactions`` and ``_pipeline`` are plain
instance attributes of psycopg's connections (set in ``__init__``, no
descriptor, no ``__slots__``; tests/pool/test_conn_attrs_pg.py fails if that
changes). Reading and writing them in the instance ``__dict__`` then means
exactly what ``getattr``/``setattr`` mean, for a fraction of the cost of the
generic attribute machinery, which first searches the whole class hierarchy."""

from __future__ import annotations

from typing import Any

# The attributes the fast path reaches through the instance dict.
NAMES = ("_pool", "_tpc", "_num_transactions", "_pipeline")


def plain_attrs(conn: Any) -> dict[str, Any] | None:
    """``conn``'s instance dict if getattr/setattr of ``NAMES`` on ``conn``
    are plain reads and writes in it (no class in its hierarchy defines one
    of them, nor customises attribute access); else None (then the pool uses
    getattr/setattr)."""
    cls: Any = type(conn)
    if (
        cls.__getattribute__ is not object.__getattribute__
        or cls.__setattr__ is not object.__setattr__
        or hasattr(cls, "__getattr__")
        or any(name in vars(k) for k in cls.__mro__ for name in NAMES)
    ):
        return None
    attrs = getattr(conn, "__dict__", None)
    return attrs if type(attrs) is dict else None
