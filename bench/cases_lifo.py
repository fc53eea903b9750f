"""Hand-out order at low concurrency (case 8 of the comparison): one thread,
and one asyncio task, doing ``SELECT 1`` through a pool of 10 real
connections, in the default order (FIFO, psycopg_pool's: the connection
returned longest ago) and with ``use_lifo=True`` (the one returned last),
against one dedicated connection, the ceiling (and, for the task, a pool
holding a single connection: what no order can beat).

With FIFO each query goes to a different server backend, idle since the
previous round: its process must be woken and scheduled, its caches are cold.
LIFO keeps handing out the same connection, as a dedicated one would be used.
"""

from __future__ import annotations

import argparse
import functools
import importlib
from typing import Callable

from . import cases_async
from .cases_pools import POOL_SIZE, _run, _share_of
from .contenders import Contender, Setup, fastpool_module
from .harness import Result, contended, interleaved
from .report import Table

THREAD_CONTENDERS = [
    "fastpool.c",
    "fastpool.c lifo",
    "fastpool.python",
    "fastpool.python lifo",
    "psycopg_pool",
    "dedicated",
]

ASYNC_CEILING = "dedicated async"
ONE_CONNECTION = "fastpool.c async, pool of 1"
ASYNC_CONTENDERS: dict[str, Callable[[str, int], cases_async.AsyncContender]] = {
    "fastpool.c async": functools.partial(cases_async.PsycopgPoolAsync, impl="c"),
    "fastpool.c async lifo": functools.partial(
        cases_async.PsycopgPoolAsync, impl="c", use_lifo=True
    ),
    "fastpool.python async": functools.partial(cases_async.PsycopgPoolAsync, impl="python"),
    "fastpool.python async lifo": functools.partial(
        cases_async.PsycopgPoolAsync, impl="python", use_lifo=True
    ),
    "psycopg_pool async": functools.partial(cases_async.PsycopgPoolAsync, impl="psycopg_pool"),
    # The most any hand-out order can give: a pool with nothing to choose from.
    ONE_CONNECTION: functools.partial(cases_async.PsycopgPoolAsync, impl="c", size=1),
    ASYNC_CEILING: cases_async.DedicatedAsync,
}

NOTE = (
    "One caller, so nothing waits: the difference is which server backend answers. "
    "FIFO rotates through all 10 (each woken after sitting idle), LIFO keeps using the one "
    "returned last, like the dedicated connection."
)
ASYNC_NOTE = (
    NOTE + f" {ONE_CONNECTION!r} has no other connection to hand out: the bound of any order, "
    "short of dedicated by the async pool's own work per request."
)


def _async_available() -> dict[str, Callable[[str, int], cases_async.AsyncContender]]:
    out = {}
    for name, factory in ASYNC_CONTENDERS.items():
        try:
            impl = getattr(factory, "keywords", {}).get("impl")
            if impl == "psycopg_pool":
                importlib.import_module("psycopg_pool")
            elif impl is not None:
                fastpool_module(impl)
        except ImportError as exc:
            print(f"(skipping {name}: {exc})")
            continue
        out[name] = factory
    return out


def case_low_concurrency(args: argparse.Namespace) -> list[Table]:
    """8. One thread / one task, SELECT 1, pool of 10: FIFO, LIFO, dedicated."""
    setup = Setup(args.dsn, size=POOL_SIZE)

    def measure(c: Contender) -> tuple[float, dict]:
        return contended(functools.partial(c.op, True), 1, args.seconds, c.thread_setup)

    threads = _run(THREAD_CONTENDERS, setup, measure, args.repeats)
    impls = {
        name: functools.partial(cases_async._measure_once, factory, args, True, 1)
        for name, factory in _async_available().items()
    }
    tasks: dict[str, Result] = interleaved(impls, args.repeats)
    return [
        Table(
            "lifo_select1_thread",
            f"8. SELECT 1 end to end, 1 thread, pool of {POOL_SIZE}, autocommit: default "
            "order (FIFO) and use_lifo=True against one dedicated connection "
            "(ops/s, higher is better)",
            threads,
            ["fastpool.c"],
            {"% of dedicated": _share_of(threads, "dedicated")},
            note=NOTE,
        ),
        Table(
            "lifo_select1_async",
            f"8. SELECT 1 end to end, 1 asyncio task ({args.loop} loop), pool of {POOL_SIZE}, "
            "autocommit: default order (FIFO) and use_lifo=True against one dedicated "
            "connection (ops/s, higher is better)",
            tasks,
            ["fastpool.c async"],
            {"% of dedicated": _share_of(tasks, ASYNC_CEILING)},
            note=ASYNC_NOTE,
        ),
    ]
