"""The sync and async pools must not drift apart: same public names, same
parameters and defaults; in the async pools every method is a coroutine
except the ones psycopg_pool keeps sync."""

from __future__ import annotations

import inspect

import pytest

from fastpool import (
    AsyncConnectionPool,
    AsyncNullConnectionPool,
    ConnectionPool,
    NullConnectionPool,
)

# psycopg_pool's async pools keep these sync (connection() is an async
# context manager, the others do no I/O); so is fastpool's get_metrics().
SYNC_IN_ASYNC = {"connection", "get_stats", "pop_stats", "get_metrics"}
# Only the sync pool has them: fork_safe has no meaning for a pool bound to one loop.
SYNC_ONLY_PARAMS = {"fork_safe"}


def public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and not isinstance(member, type)
    }


@pytest.mark.parametrize(
    "sync_cls,async_cls",
    [
        (ConnectionPool, AsyncConnectionPool),
        (NullConnectionPool, AsyncNullConnectionPool),
    ],
)
def test_same_public_methods_and_signatures(sync_cls, async_cls) -> None:
    sync_methods, async_methods = public_methods(sync_cls), public_methods(async_cls)
    assert set(sync_methods) == set(async_methods)
    for name, sync_m in sync_methods.items():
        async_m = async_methods[name]
        if name in SYNC_IN_ASYNC:
            assert not inspect.iscoroutinefunction(async_m), name
        else:
            assert inspect.iscoroutinefunction(async_m), (
                f"{async_cls.__name__}.{name} should be async"
            )
        try:
            sync_sig, async_sig = inspect.signature(sync_m), inspect.signature(async_m)
        except ValueError:  # a compiled method without a signature
            continue
        assert list(sync_sig.parameters) == list(async_sig.parameters), name
        for p in sync_sig.parameters.values():
            assert async_sig.parameters[p.name].default == p.default, (name, p.name)


def test_same_constructor_parameters() -> None:
    sync_params = inspect.signature(ConnectionPool.__init__).parameters
    async_params = inspect.signature(AsyncConnectionPool.__init__).parameters
    assert set(sync_params) - SYNC_ONLY_PARAMS == set(async_params)
    for name, p in async_params.items():
        if name != "connection_class":
            assert sync_params[name].default == p.default, name


def test_async_context_managers() -> None:
    assert inspect.iscoroutinefunction(AsyncConnectionPool.__aenter__)
    assert inspect.iscoroutinefunction(AsyncConnectionPool.__aexit__)
    assert not hasattr(AsyncConnectionPool, "__enter__")
