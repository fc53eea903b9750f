"""At run time too (``inspect.signature``: help(), IDEs, frameworks that read a
constructor), each psycopg pool takes psycopg_pool's parameters, in its order,
of the same kind and with the same defaults, plus the documented extras."""

from __future__ import annotations

import inspect

import pytest

import fastpool

psycopg_pool = pytest.importorskip("psycopg_pool")

# fastpool's own options (docs/differences.md, "Opt-in additions")
EXTRAS = {"check_bypass", "fork_safe", "leak_threshold", "use_lifo"}
POOLS = ["ConnectionPool", "AsyncConnectionPool", "NullConnectionPool", "AsyncNullConnectionPool"]


@pytest.mark.parametrize("name", POOLS)
def test_constructor_signature_is_psycopg_pools(name: str) -> None:
    theirs = inspect.signature(getattr(psycopg_pool, name)).parameters
    ours = inspect.signature(getattr(fastpool, name)).parameters
    assert [n for n in ours if n not in EXTRAS] == list(theirs)
    for n, param in theirs.items():
        assert ours[n].kind == param.kind, n
        if n != "connection_class":  # None: psycopg's class, imported on use (differences.md)
            assert ours[n].default == param.default, n


@pytest.mark.parametrize("name", ["NullConnectionPool", "AsyncNullConnectionPool"])
def test_null_pools_show_their_own_defaults_and_no_use_lifo(name: str) -> None:
    params = inspect.signature(getattr(fastpool, name)).parameters
    assert params["min_size"].default == 0
    assert "use_lifo" not in params
    assert "kwargs" in params and params["kwargs"].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_subclass_shows_its_own_init() -> None:
    class Plain(fastpool.NullConnectionPool):  # type: ignore[type-arg]
        pass

    class Custom(fastpool.NullConnectionPool):  # type: ignore[type-arg]
        def __init__(self, dsn: str, *, app: str = "x") -> None:
            super().__init__(dsn, open=False)

    assert inspect.signature(Plain) == inspect.signature(fastpool.NullConnectionPool)
    assert list(inspect.signature(Custom).parameters) == ["dsn", "app"]
