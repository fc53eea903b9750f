"""pytest-benchmark micro benchmarks of whole pools: one checkout + return on
one thread, for every pool of the comparison, with stub connections (the
pool's own cost) and real psycopg connections::

    .venv/bin/pytest bench/bench_pools.py --benchmark-only --benchmark-group-by=param:source

Each benchmark checks afterwards that the pool still holds all its connections
and hands them out (``extra_info["correct"]``)."""

from __future__ import annotations

import pytest

from .cases_pools import CYCLE, POOL_SIZE
from .contenders import Setup, available

SOURCES = ["stub", "postgres"]


@pytest.fixture(params=SOURCES)
def source(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("name", CYCLE)
def test_pool_cycle(benchmark, request: pytest.FixtureRequest, source: str, name: str) -> None:
    dsn = request.getfixturevalue("pg_dsn") if source == "postgres" else None
    factory = available([name], Setup(dsn, size=POOL_SIZE)).get(name)
    if factory is None:
        pytest.skip(f"{name} can't run on {source} connections here")
    pool = factory()
    try:
        pool.warm()
        cycle = pool.cycle

        def thousand() -> None:
            for _ in range(1000):
                cycle()

        benchmark.group = f"pool cycle, 1000 checkout+return, {source}"
        benchmark.extra_info["impl"] = name
        benchmark(thousand)
        held = [pool.get() for _ in range(POOL_SIZE)]  # all still there, all distinct
        correct = len({id(c) for c in held}) == POOL_SIZE
        for c in held:
            pool.put(c)
        benchmark.extra_info["correct"] = correct
        assert correct
    finally:
        pool.close()
