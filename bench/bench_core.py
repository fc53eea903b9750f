"""pytest-benchmark micro benchmarks of the core: ``pytest bench/bench_core.py``.

Each benchmark records which implementation ran and that it really handed out
valid slots (``extra_info["correct"]``)."""

from __future__ import annotations

from collections import deque

import pytest

from fastpool import _pycore

try:
    from fastpool import _fastpool
except ImportError:  # pragma: no cover
    _fastpool = None

SLOTS = 10
IMPLEMENTATIONS = {"python": _pycore}
if _fastpool is not None:
    IMPLEMENTATIONS["c"] = _fastpool


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_core_cycle(benchmark, impl: str) -> None:
    ring = IMPLEMENTATIONS[impl].SlotRing(64)
    for _ in range(SLOTS):
        ring.add()
    acquire, release = ring.try_acquire, ring.release
    seen = set()

    def cycle() -> None:
        for _ in range(1000):
            s = acquire()
            seen.add(s)
            release(s)

    benchmark.group = "core cycle (1000 acquire+release)"
    benchmark.extra_info["impl"] = impl
    benchmark(cycle)
    benchmark.extra_info["correct"] = seen == set(range(SLOTS)) and ring.idle_count() == SLOTS
    assert benchmark.extra_info["correct"]


def test_deque_cycle(benchmark) -> None:
    d = deque(range(SLOTS))
    pop, push = d.popleft, d.append
    seen = set()

    def cycle() -> None:
        for _ in range(1000):
            s = pop()
            seen.add(s)
            push(s)

    benchmark.group = "core cycle (1000 acquire+release)"
    benchmark.extra_info["impl"] = "collections.deque"
    benchmark(cycle)
    assert seen == set(range(SLOTS))
