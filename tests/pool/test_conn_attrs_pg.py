"""The compiled fast path reads and writes a few psycopg connection
attributes in the instance dict (fastpool._conn_attrs): that is only right
while psycopg keeps them plain instance attributes. These tests fail if a
psycopg release turns one into a descriptor, a class attribute or a slot."""

from __future__ import annotations

import psycopg
import pytest

from fastpool._conn_attrs import NAMES, plain_attrs


@pytest.mark.parametrize("cls", [psycopg.Connection, psycopg.AsyncConnection])
def test_psycopg_defines_none_of_the_names_on_its_classes(cls: type) -> None:
    assert not [(k, n) for k in cls.__mro__ for n in NAMES if n in vars(k)]
    assert cls.__getattribute__ is object.__getattribute__
    assert cls.__setattr__ is object.__setattr__
    assert not hasattr(cls, "__getattr__")


def test_a_psycopg_connection_keeps_them_in_its_dict(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        attrs = plain_attrs(conn)
        assert attrs is conn.__dict__
        # set by psycopg's __init__ (_pool only by a pool)
        assert {"_tpc", "_num_transactions", "_pipeline"} <= attrs.keys()
        with conn.transaction():
            assert attrs["_num_transactions"] == 1 == conn._num_transactions
        conn._pool = "p"
        assert attrs["_pool"] == "p"


class _PoolProperty(psycopg.Connection):  # type: ignore[type-arg]
    """A connection class that owns the _pool attribute: not plain."""

    @property
    def _pool(self) -> object:
        return self.__dict__.get("_pool_seen")

    @_pool.setter
    def _pool(self, value: object) -> None:
        self.__dict__["_pool_seen"] = value


def test_a_class_defining_one_of_the_names_is_served_through_getattr(make_pool) -> None:
    p = make_pool(min_size=1, connection_class=_PoolProperty)
    for _ in range(3):
        with p.connection() as conn:
            assert plain_attrs(conn) is None
            assert conn.__dict__["_pool_seen"] is p  # set through the property
        assert conn.__dict__["_pool_seen"] is None
